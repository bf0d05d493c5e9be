"""The documented ConnectWise PSA API 2025.1 contract the sandbox answers and refuses by:
the models of every entity it serves or takes and of every reference they point at,
read from `models-2025.1.json` beside this file (written from the documented facts by
`scripts/contract_from_facts.py`; never edited by hand).

* `models`: model -> field -> documented `type`, `required`, `ref` (another model);
* `readOnly`: per model, the fields a client may not write — our own choice, as the
  document marks none (ids, `_info`, close stamps, SLA clocks, totals);
* `infoKeys`: the `_info` keys (a documented string map) conditions may name, and their
  types;
* `notInFacts`: models a documented field points at that the facts do not describe.

`problems(model, record)` holds a served record against its model; the tests use it on
every record every endpoint serves, so the sandbox and this file cannot drift.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

VERSION: Final = "2025.1"
INFO: Final = "_info"
INFO_MAP_TYPE: Final = "object<string,string>"
_TIMESTAMP: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


@dataclass(frozen=True)
class Field:
    name: str
    type: str  # as documented: "string", "integer|null", "date-time", "BoardReference", …
    required: bool
    ref: str | None
    read_only: bool

    @property
    def is_array(self) -> bool:
        return self.type.startswith("array<")

    @property
    def is_info(self) -> bool:
        """The `_info` string map."""
        return self.type == INFO_MAP_TYPE

    @property
    def base_type(self) -> str:
        """The type without `|null`."""
        return self.type.removesuffix("|null")


class Model:
    def __init__(self, name: str, fields: Mapping[str, Field]) -> None:
        self.name = name
        self.fields = fields
        self._by_lower = {field.lower(): spec for field, spec in fields.items()}

    def field(self, name: str) -> Field | None:
        """Case-insensitive, as ConnectWise binds names."""
        return self._by_lower.get(name.strip().lower())

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(name for name, field in self.fields.items() if field.required)

    @property
    def read_only(self) -> frozenset[str]:
        return frozenset(name for name, field in self.fields.items() if field.read_only)


class Contract:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.version: str = data["version"]
        self.info_keys: Mapping[str, str] = dict(data["infoKeys"])
        self.not_in_facts: frozenset[str] = frozenset(data["notInFacts"])
        read_only: Mapping[str, list[str]] = data["readOnly"]
        self._models: dict[str, Model] = {}
        for name, fields in data["models"].items():
            locked = set(read_only.get(name, ()))
            self._models[name] = Model(
                name,
                {
                    field: Field(
                        name=field,
                        type=spec["type"],
                        required=bool(spec["required"]),
                        ref=spec.get("ref"),
                        read_only=field in locked,
                    )
                    for field, spec in fields.items()
                },
            )

    def model(self, name: str) -> Model:
        return self._models[name]

    def get(self, name: str | None) -> Model | None:
        return self._models.get(name) if name else None

    def names(self) -> list[str]:
        return sorted(self._models)

    def info_key(self, name: str) -> tuple[str, str] | None:
        """The canonical `_info` key and its type, case-insensitively."""
        wanted = name.strip().lower()
        return next(((k, t) for k, t in self.info_keys.items() if k.lower() == wanted), None)


@cache
def contract() -> Contract:
    text = (
        resources.files("connectwise_sandbox")
        .joinpath(f"contract/models-{VERSION}.json")
        .read_text(encoding="utf-8")
    )
    return Contract(json.loads(text))


# --- holding a served record against its model ------------------------------------------


def problems(model_name: str, record: Any, path: str = "") -> list[str]:
    """What in `record` the model does not document: an unknown key (names are exact
    here — a served record spells them as documented), a value of another type, a
    reference that breaks its own model, a documented required field left out. Empty
    when the record is exactly of the documented shape."""
    found: list[str] = []
    _check_record(contract(), model_name, record, path or model_name, found)
    return found


def _check_record(cw: Contract, model_name: str, record: Any, where: str, found: list[str]) -> None:
    model = cw.get(model_name)
    if model is None:
        found.append(f"{where}: {model_name} is not a model of the contract")
        return
    if not isinstance(record, dict):
        found.append(f"{where}: expected a {model_name} object, got {type(record).__name__}")
        return
    for key, value in record.items():
        field = model.fields.get(key)
        if field is None:
            found.append(f"{where}/{key}: not a field of {model_name}")
            continue
        _check_value(cw, field, value, f"{where}/{key}", found)
    for name in model.required:
        if record.get(name) is None:
            found.append(f"{where}/{name}: required by {model_name} but missing")


def _check_value(cw: Contract, field: Field, value: Any, where: str, found: list[str]) -> None:
    if value is None:
        if not field.type.endswith("|null"):
            found.append(f"{where}: null, but {field.type} is not nullable")
        return
    if field.is_info:
        _check_info(cw, value, where, found)
    elif field.is_array:
        if not isinstance(value, list):
            found.append(f"{where}: expected {field.type}, got {type(value).__name__}")
            return
        item = field.type[len("array<") : -1]
        for index, element in enumerate(value):
            if field.ref:
                if field.ref in cw.not_in_facts:
                    found.append(f"{where}[{index}]: {field.ref} is not described by the facts")
                else:
                    _check_record(cw, field.ref, element, f"{where}[{index}]", found)
            elif not _scalar_ok(item, element):
                found.append(f"{where}[{index}]: {element!r} is not {item}")
    elif field.ref:
        if field.ref in cw.not_in_facts:
            found.append(f"{where}: {field.ref} is not described by the facts")
        else:
            _check_record(cw, field.ref, value, where, found)
    elif not _scalar_ok(field.base_type, value):
        found.append(f"{where}: {value!r} is not {field.type}")


def _check_info(cw: Contract, value: Any, where: str, found: list[str]) -> None:
    if not isinstance(value, dict):
        found.append(f"{where}: expected {INFO_MAP_TYPE}, got {type(value).__name__}")
        return
    for key, text in value.items():
        if not isinstance(key, str) or not isinstance(text, str):
            found.append(f"{where}/{key}: {text!r} is not a string")
            continue
        known = cw.info_keys.get(key)
        if known == "date-time" and not _TIMESTAMP.match(text):
            found.append(f"{where}/{key}: {text!r} is not a date-time")


def _scalar_ok(type_: str, value: Any) -> bool:
    match type_:
        case "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        case "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        case "boolean":
            return isinstance(value, bool)
        case "string":
            return isinstance(value, str)
        case "date-time":
            return isinstance(value, str) and _TIMESTAMP.match(value) is not None
        case "object":
            return True
        case _:
            return False
