"""Which field paths an entity has and what type each holds — what `conditions`,
`orderBy` and `fields` may name. Paths use `/` like the real API (`owner/identifier`)
and are matched case-insensitively, as ConnectWise's query binding does."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

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
