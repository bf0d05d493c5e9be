"""ConnectWise's JSON error shape, and the errors the simulator answers with.

Observed real bodies (public issue threads quoting live responses):

* validation, HTTP 400::

    {"code": "InvalidObject", "message": "pageSize object is invalid",
     "errors": [{"code": "OutOfRange", "message": "The field pageSize must be between 1 and 100.",
                 "resource": "pageSize", "field": "pageSize"}]}

* server faults, HTTP 500: ``{"code": "ConnectWiseApi", "message": "..."}`` — no ``errors`` key.

So ``errors`` is present only when there are item errors, as in the real product.

A refusal whose cause is the request's *form* against the documented contract (an
undocumented query parameter, field, body member; a read-only field; a missing required
member) is marked `contract`: the app counts those per caller (`stats.py`). Business-rule
refusals (a time entry on a closed status, an unknown status id) and faults are not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ErrorItem:
    code: str
    message: str
    resource: str
    field: str

    def as_json(self) -> dict[str, str]:
        return {
            "code": self.code,
            "message": self.message,
            "resource": self.resource,
            "field": self.field,
        }


def error_body(code: str, message: str, errors: list[ErrorItem] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if errors:
        body["errors"] = [item.as_json() for item in errors]
    return body


@dataclass(eq=False)
class CwError(Exception):
    """Raised anywhere below the HTTP layer; the app renders it in ConnectWise's shape."""

    status: int
    code: str
    message: str
    errors: list[ErrorItem] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    contract: bool = False  # a contract violation (see the module docstring)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.errors)

    def describe(self) -> str:
        """One line: the message and every item (`field: message`)."""
        items = "; ".join(f"{item.field}: {item.message}" for item in self.errors)
        return f"{self.message}: {items}" if items else self.message


def invalid_parameter(
    resource: str, item_code: str, message: str, field: str = "", *, contract: bool = False
) -> CwError:
    """A 400 for a bad query parameter, shaped like the observed `pageSize` error."""
    item = ErrorItem(code=item_code, message=message, resource=resource, field=field or resource)
    return CwError(400, "InvalidObject", f"{resource} object is invalid", [item], contract=contract)


def contract_violation(resource: str, item_code: str, message: str, field: str = "") -> CwError:
    """`invalid_parameter`, counted as a contract violation."""
    return invalid_parameter(resource, item_code, message, field, contract=True)


def not_found(entity: str, record_id: int | str) -> CwError:
    return CwError(404, "NotFound", f"{entity} ID {record_id} not found")


def invalid_object(
    resource: str,
    field: str,
    message: str,
    code: str = "InvalidField",
    *,
    contract: bool = False,
) -> CwError:
    """A 400 for a bad request body: `resource` is the object, `field` the property."""
    return invalid_items(resource, [ErrorItem(code, message, resource, field)], contract=contract)


def invalid_items(resource: str, items: list[ErrorItem], *, contract: bool = False) -> CwError:
    """A 400 `InvalidObject` for `resource` with every problem found."""
    return CwError(400, "InvalidObject", f"{resource} object is invalid", items, contract=contract)
