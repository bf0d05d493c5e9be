"""Request bodies held against the documented contract before the sandbox's own rules.

`documented_body(body, "TimeEntry", …)` refuses, as one 400 `InvalidObject` counted as a
contract violation (`errors.py`):

* a body that is not an object;
* a member the model does not document (`InvalidField`) — names are matched
  case-insensitively, as ConnectWise's JSON binding does, and inside a reference
  (`member: {"identifier"}`) against the reference's model;
* a read-only member (`ReadOnly`: `id`, `_info`, … — the contract's `readOnly`, our own
  list as the document marks none; the item code is our choice too, since the document
  names none for this case);
* a documented required member that is missing or null (`Required`).

Then a documented, writable member the sandbox does not model is refused with
`NotSupported` — a limit of the sandbox, not of the caller, so not counted. What passes
comes back with the documented spelling of every name, for the route's pydantic model
(`validated`), whose refusals are the sandbox's business rules (not counted either).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from connectwise_sandbox.contract import Model, contract
from connectwise_sandbox.errors import ErrorItem, invalid_items, invalid_object

_M = TypeVar("_M", bound=BaseModel)


def documented_body(
    body: Any, model_name: str, resource: str, *, supported: Collection[str]
) -> dict[str, Any]:
    """`body` with documented names, or the 400 (see the module docstring); `supported`
    are the top-level members the sandbox models."""
    model = contract().model(model_name)
    if not isinstance(body, dict):
        raise invalid_object(resource, "", f"The body must be a {model_name} object", contract=True)
    violations: list[ErrorItem] = []
    members = _members(model, body, "", resource, violations)
    for name in model.required:
        if members.get(name) is None and not any(item.field == name for item in violations):
            violations.append(
                ErrorItem("Required", f"{name} is required by {model_name}", resource, name)
            )
    if violations:
        raise invalid_items(resource, violations, contract=True)
    unsupported = [
        ErrorItem(
            "NotSupported",
            f"The sandbox does not model {model_name}.{name}; leave it out",
            resource,
            name,
        )
        for name in members
        if name not in supported
    ]
    if unsupported:
        raise invalid_items(resource, unsupported)
    return members


def _members(
    model: Model, body: Mapping[Any, Any], prefix: str, resource: str, found: list[ErrorItem]
) -> dict[str, Any]:
    documented = contract()
    members: dict[str, Any] = {}
    for key, value in body.items():
        field = model.field(key) if isinstance(key, str) else None
        if field is None:
            where = f"{prefix}{key}"
            message = f"'{where}' is not a field of {model.name}"
            found.append(ErrorItem("InvalidField", message, resource, where))
            continue
        where = prefix + field.name
        if field.read_only:
            found.append(ErrorItem("ReadOnly", f"{where} is read-only", resource, where))
            continue
        inner = documented.get(field.ref)
        if inner is not None and not field.is_array and isinstance(value, dict):
            value = _members(inner, value, f"{where}/", resource, found)
        elif inner is not None and field.is_array and isinstance(value, list):
            value = [
                _members(inner, item, f"{where}/", resource, found)
                if isinstance(item, dict)
                else item
                for item in value
            ]
        members[field.name] = value
    return members


def validated(model: type[_M], data: Mapping[str, Any], resource: str) -> _M:
    """`data` as the route's pydantic model; its refusals as ConnectWise's 400."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        items = [
            ErrorItem(
                "InvalidField",
                str(detail.get("msg", "invalid")),
                resource,
                "/".join(str(part) for part in detail.get("loc", ())) or resource,
            )
            for detail in error.errors()
        ]
        raise invalid_items(resource, items) from None
