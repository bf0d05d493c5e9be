"""Which field paths an entity has and what type each holds — what `conditions`,
`orderBy` and `fields` may name. Paths use `/` like the real API (`owner/identifier`)
and are matched case-insensitively, as ConnectWise's query binding does.

`model_schema("Ticket")` reads them from the documented contract (`contract/`): a model's
fields, and through a reference field (`ref`) the fields of the referenced model
(`board/name`, `status/id`, `owner/identifier`); `_info` keys as the contract's
`infoKeys` type them. Nothing else resolves: a condition on an undocumented field is a
400, as on the real API. `schema_of(examples)` derives a schema from example records —
only for what the contract has no model of (project team members)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, Final

from connectwise_sandbox.contract import Contract, Field, Model, contract
from connectwise_sandbox.records import JsonObject

_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    DATETIME = "datetime"
    OBJECT = "object"
    ARRAY = "array"


@dataclass(frozen=True)
class FieldPath:
    """A resolved path: its canonical spelling, its parts and its type."""

    name: str
    parts: tuple[str, ...]
    type: FieldType

    def getter(self) -> Callable[[JsonObject], Any]:
        """A fast accessor; a missing (null) link anywhere along the path yields None."""
        parts = self.parts
        if len(parts) == 1:
            (key,) = parts
            return lambda record: record.get(key)
        if len(parts) == 2:
            outer, inner = parts

            def get_nested(record: JsonObject) -> Any:
                value = record.get(outer)
                return value.get(inner) if isinstance(value, dict) else None

            return get_nested

        def get_deep(record: JsonObject) -> Any:
            value: Any = record
            for key in parts:
                if not isinstance(value, dict):
                    return None
                value = value.get(key)
            return value

        return get_deep


class EntitySchema:
    def __init__(self, entity: str, fields: Mapping[str, FieldPath]) -> None:
        self.entity = entity
        self._by_lower = {name.lower(): path for name, path in fields.items()}

    def resolve(self, name: str) -> FieldPath | None:
        return self._by_lower.get(name.strip().lower())

    def names(self) -> list[str]:
        return sorted(path.name for path in self._by_lower.values())


_DOCUMENTED_TYPES: Final = {
    "integer": FieldType.INTEGER,
    "number": FieldType.NUMBER,
    "boolean": FieldType.BOOLEAN,
    "string": FieldType.STRING,
    "date-time": FieldType.DATETIME,
    "object": FieldType.OBJECT,
}


class ModelSchema(EntitySchema):
    """The paths of a documented model (see the module docstring); `entity` is the
    model's name, so errors name it as the document does."""

    def __init__(self, model: Model, documented: Contract) -> None:
        super().__init__(model.name, {})
        self._model = model
        self._contract = documented
        self._resolved: dict[str, FieldPath | None] = {}

    @property
    def model(self) -> Model:
        return self._model

    def resolve(self, name: str) -> FieldPath | None:
        key = name.strip().lower()
        if key not in self._resolved:
            self._resolved[key] = self._walk(key)
        return self._resolved[key]

    def fields_along(self, name: str) -> list[Field] | None:
        """The documented fields a path passes through (None if it does not resolve);
        an `_info` key adds nothing after `_info` itself."""
        parts = name.strip().split("/")
        model: Model | None = self._model
        found: list[Field] = []
        for index, part in enumerate(parts):
            field = model.field(part) if model is not None and part else None
            if field is None:
                return None
            found.append(field)
            rest = parts[index + 1 :]
            if field.is_info:
                if not rest:
                    return found
                if len(rest) == 1 and self._contract.info_key(rest[0]) is not None:
                    return found
                return None
            if field.ref and not field.is_array:
                model = self._contract.get(field.ref)
            elif rest:
                return None  # nothing below a scalar or an array
        return found

    def _walk(self, name: str) -> FieldPath | None:
        fields = self.fields_along(name)
        if fields is None:
            return None
        parts = [field.name for field in fields]
        last = fields[-1]
        requested = name.split("/")
        if last.is_info and len(requested) > len(fields):
            key, type_ = self._contract.info_key(requested[-1]) or ("", "string")
            parts.append(key)
            kind = _DOCUMENTED_TYPES.get(type_, FieldType.STRING)
        elif last.is_info or (last.ref and not last.is_array):
            kind = FieldType.OBJECT
        elif last.is_array:
            kind = FieldType.ARRAY
        else:
            kind = _DOCUMENTED_TYPES.get(last.base_type, FieldType.STRING)
        return FieldPath("/".join(parts), tuple(parts), kind)

    def names(self) -> list[str]:
        return sorted(self._model.fields)


@cache
def model_schema(model_name: str) -> ModelSchema:
    """The schema of a documented model (KeyError for a model the contract lacks)."""
    documented = contract()
    return ModelSchema(documented.model(model_name), documented)


def schema_of(entity: str, examples: Iterable[JsonObject]) -> EntitySchema:
    """Derive a schema from example records; the union of every path they hold."""
    fields: dict[str, FieldPath] = {}
    for record in examples:
        _walk(record, (), fields)
    return EntitySchema(entity, fields)


def _walk(record: Mapping[str, Any], prefix: tuple[str, ...], out: dict[str, FieldPath]) -> None:
    for key, value in record.items():
        if value is None:
            continue
        parts = (*prefix, key)
        name = "/".join(parts)
        out.setdefault(name, FieldPath(name, parts, _type_of(value)))
        if isinstance(value, dict):
            _walk(value, parts, out)


def _type_of(value: object) -> FieldType:
    if isinstance(value, bool):
        return FieldType.BOOLEAN
    if isinstance(value, int):
        return FieldType.INTEGER
    if isinstance(value, float):
        return FieldType.NUMBER
    if isinstance(value, str):
        return FieldType.DATETIME if _TIMESTAMP.match(value) else FieldType.STRING
    if isinstance(value, dict):
        return FieldType.OBJECT
    return FieldType.ARRAY
