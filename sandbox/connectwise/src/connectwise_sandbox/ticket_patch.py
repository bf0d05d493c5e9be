"""`PATCH …/tickets/{id}` bodies: a JSON Patch (RFC 6902) array, as ConnectWise takes
it, turned into one `TicketChange`. Every operation is checked before anything
changes; all problems come back together in one 400 `InvalidObject`.

First against the documented contract (counted as contract violations): each operation
is a `PatchOperation` (`op`, `path`, `value` and nothing else; `op` one of RFC 6902's),
its path names a field of the `Ticket` / `ProjectTicket` model (through references:
`status/id`), never a read-only one (`id`, `_info/…`, `closedDate`, `recordType`, … —
item code `ReadOnly`, our choice: the document names none) and never removes a required
one. Then against what the sandbox supports (not counted): a documented, writable field
it does not model is `NotSupported`, as are `move`, `copy` and `test`.

Operations: `replace` and `add` (the same here: every path exists on a ticket) and
`remove` (clears `owner`, `resources` or `requiredDate`). Paths, with or without a
leading `/`, case-insensitive:

* `summary`; `requiredDate` (ISO 8601 or null); `resources` ("a, b" or a list);
* `status`, `status/id`, `status/name` (an object `{"id"}`/`{"name"}` for `status`);
* `priority`, `priority/id`, `priority/name`;
* `owner`, `owner/id`, `owner/identifier` (null clears);
* `closedFlag` (true: the board's first closed status; false: its default status);
* service tickets: `board`, `board/id`, `board/name`; project tickets: `phase`,
  `phase/id` (a phase of the ticket's project).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Final

from connectwise_sandbox.contract import contract
from connectwise_sandbox.errors import CwError, ErrorItem
from connectwise_sandbox.schema import ModelSchema, model_schema
from connectwise_sandbox.store import Store, TicketChange, TicketKind

RESOURCE: Final = "ticket"
MAX_SUMMARY: Final = 100
_SETTING_OPS: Final = frozenset({"replace", "add"})
_RFC_6902_OPS: Final = frozenset({"add", "remove", "replace", "move", "copy", "test"})
_REMOVABLE: Final = frozenset({"owner", "resources", "requireddate"})
_MODELS: Final = {TicketKind.SERVICE: "Ticket", TicketKind.PROJECT: "ProjectTicket"}


class _Invalid(ValueError):
    """A refused operation; `contract` when its form breaks the documented contract."""

    def __init__(self, code: str, message: str, *, contract: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.contract = contract


def _violation(code: str, message: str) -> _Invalid:
    return _Invalid(code, message, contract=True)


@dataclass(frozen=True)
class _Target:
    """Which `TicketChange` field a path sets, and how the value is read."""

    field: str
    read: Callable[[Any, Store], Any]
    kinds: frozenset[TicketKind] = frozenset(TicketKind)


def parse_patch(body: Any, kind: TicketKind, store: Store) -> TicketChange:
    """The change `body` asks for, or a 400 `InvalidObject` listing every bad operation."""
    if not isinstance(body, list) or not body:
        message = "Expected a non-empty JSON Patch array"
        raise _error([ErrorItem("InvalidField", message, RESOURCE, "")], contract=True)
    schema = model_schema(_MODELS[kind])
    change = TicketChange()
    problems: list[ErrorItem] = []
    violation = False
    for index, operation in enumerate(body):
        try:
            name, value = _operation(operation, kind, schema, store)
        except _Invalid as error:
            path = operation.get("path") if isinstance(operation, dict) else None
            field = str(path).lstrip("/") if path else f"[{index}]"
            problems.append(ErrorItem(error.code, error.message, RESOURCE, field))
            violation = violation or error.contract
            continue
        change = replace(change, **{name: value})
    if problems:
        raise _error(problems, contract=violation)
    return change


def _error(items: list[ErrorItem], *, contract: bool) -> CwError:
    return CwError(400, "InvalidObject", f"{RESOURCE} object is invalid", items, contract=contract)


def _operation(
    operation: Any, kind: TicketKind, schema: ModelSchema, store: Store
) -> tuple[str, Any]:
    if not isinstance(operation, dict):
        raise _violation("InvalidField", "Each operation must be a PatchOperation object")
    members = _patch_operation(operation)
    op_value = members.get("op")
    if not isinstance(op_value, str) or not op_value.strip():
        raise _violation("Required", "Each operation needs an op")
    op = op_value.strip().lower()
    if op not in _RFC_6902_OPS:
        raise _violation("InvalidField", f"'{op_value}' is not a JSON Patch operation")
    raw_path = members.get("path")
    if not isinstance(raw_path, str) or not raw_path.strip("/"):
        raise _violation("Required", "Each operation needs a path")
    path = _documented_path(raw_path, schema)
    if op not in _SETTING_OPS | {"remove"}:
        raise _Invalid("NotSupported", f"Operation '{op_value}' is not supported")
    target = _TARGETS.get(path.lower())
    if op == "remove":
        top = schema.model.field(path.split("/")[0])
        if top is not None and top.required:
            raise _violation("InvalidField", f"'{raw_path}' is required and cannot be removed")
        if target is None or path.split("/")[0].lower() not in _REMOVABLE:
            raise _Invalid("NotSupported", f"The sandbox cannot remove '{raw_path}'")
        return target.field, () if target.field == "resources" else None
    if target is None:
        raise _Invalid("NotSupported", f"The sandbox cannot change '{raw_path}'")
    if kind not in target.kinds:
        # Documented on the model, fixed by the data: a project ticket's board is its
        # project's.
        raise _Invalid("InvalidField", f"'{raw_path}' cannot be changed on a {kind.value}")
    if "value" not in members:
        raise _violation("Required", f"'{op}' of '{raw_path}' needs a value")
    return target.field, target.read(members["value"], store)


def _patch_operation(operation: dict[str, Any]) -> dict[str, Any]:
    """The operation's members by their documented names (`PatchOperation`: op, path,
    value); any other (RFC 6902's `from` too) is a contract violation."""
    model = contract().model("PatchOperation")
    members: dict[str, Any] = {}
    for key, value in operation.items():
        field = model.field(key) if isinstance(key, str) else None
        if field is None:
            raise _violation("InvalidField", f"'{key}' is not a member of PatchOperation")
        members[field.name] = value
    return members


def _documented_path(raw_path: str, schema: ModelSchema) -> str:
    """The path's documented spelling; unknown or read-only fields are violations."""
    text = raw_path.strip().strip("/")
    fields = schema.fields_along(text)
    resolved = schema.resolve(text)
    if fields is None or resolved is None:
        raise _violation("InvalidField", f"'{raw_path}' is not a field of {schema.entity}")
    locked = next((field for field in fields if field.read_only), None)
    if locked is not None:
        raise _violation("ReadOnly", f"'{raw_path}' is read-only ({locked.name})")
    return resolved.name


# --- value readers ----------------------------------------------------------------------


def _summary(value: Any, _: Store) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("InvalidField", "summary must be a non-empty string")
    if len(value) > MAX_SUMMARY:
        raise _Invalid("InvalidField", f"summary must be at most {MAX_SUMMARY} characters")
    return value


def _integer(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise _Invalid("InvalidField", f"{name} must be a number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    raise _Invalid("InvalidField", f"{name} must be a number")


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("InvalidField", f"{name} must be a non-empty string")
    return value.strip()


def _reference(value: Any, name: str, keys: tuple[str, ...]) -> tuple[str, Any]:
    """An object value such as `{"id": 5}` → ("id", 5)."""
    if isinstance(value, dict):
        for key in keys:
            if value.get(key) is not None:
                return key, value[key]
    raise _Invalid("InvalidField", f"{name} must be an object with {' or '.join(keys)}")


def _status_id(value: Any, _: Store) -> int:
    return _integer(value, "status/id")  # checked against the board by the store


def _status_name(value: Any, _: Store) -> str:
    return _text(value, "status/name")


def _status(value: Any, store: Store) -> int | str:
    key, inner = _reference(value, "status", ("id", "name"))
    return _status_id(inner, store) if key == "id" else _status_name(inner, store)


def _priority_id(value: Any, store: Store) -> int:
    number = _integer(value, "priority/id")
    if not any(p["id"] == number for p in store.priorities):
        raise _Invalid("NotFound", f"Priority ID {number} not found")
    return number


def _priority_name(value: Any, store: Store) -> str:
    name = _text(value, "priority/name")
    if not any(p["name"].lower() == name.lower() for p in store.priorities):
        raise _Invalid("NotFound", f"Priority '{name}' not found")
    return name


def _priority(value: Any, store: Store) -> int | str:
    key, inner = _reference(value, "priority", ("id", "name"))
    return _priority_id(inner, store) if key == "id" else _priority_name(inner, store)


def _member_identifier(value: Any, store: Store) -> str:
    identifier = _text(value, "identifier")
    member = store.member_by_identifier(identifier)
    if member is None:
        raise _Invalid("NotFound", f"Member '{identifier}' not found")
    if member["inactiveFlag"]:
        raise _Invalid("InvalidField", f"Member '{identifier}' is inactive")
    return str(member["identifier"])


def _member_id(value: Any, store: Store) -> str:
    number = _integer(value, "owner/id")
    member = store.member(number)
    if member is None:
        raise _Invalid("NotFound", f"Member ID {number} not found")
    return _member_identifier(member["identifier"], store)


def _owner(value: Any, store: Store) -> str | None:
    if value is None:
        return None
    key, inner = _reference(value, "owner", ("id", "identifier"))
    return _member_id(inner, store) if key == "id" else _member_identifier(inner, store)


def _owner_identifier(value: Any, store: Store) -> str | None:
    return None if value is None else _member_identifier(value, store)


def _resources(value: Any, store: Store) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        names = [part.strip() for part in value.split(",") if part.strip()]
    elif isinstance(value, list) and all(isinstance(part, str) for part in value):
        names = [part.strip() for part in value if part.strip()]
    else:
        raise _Invalid("InvalidField", "resources must be a string of member identifiers")
    return tuple(_member_identifier(name, store) for name in names)


def _required_date(value: Any, _: Store) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    raise _Invalid("InvalidField", "requiredDate must be an ISO 8601 date-time or null")


def _closed(value: Any, _: Store) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("InvalidField", "closedFlag must be true or false")
    return value


def _board_name(value: Any, store: Store) -> str:
    name = _text(value, "board/name")
    if not any(b["name"].lower() == name.lower() for b in store.service_boards):
        raise _Invalid("NotFound", f"Board '{name}' not found")
    return name


def _board_id(value: Any, store: Store) -> str:
    number = _integer(value, "board/id")
    board = next((b for b in store.service_boards if b["id"] == number), None)
    if board is None:
        raise _Invalid("NotFound", f"Board ID {number} not found")
    return str(board["name"])


def _board(value: Any, store: Store) -> str:
    key, inner = _reference(value, "board", ("id", "name"))
    return _board_id(inner, store) if key == "id" else _board_name(inner, store)


def _phase_id(value: Any, _: Store) -> int:
    return _integer(value, "phase/id")  # checked against the project by the store


def _phase(value: Any, store: Store) -> int:
    _, inner = _reference(value, "phase", ("id",))
    return _phase_id(inner, store)


_SERVICE_ONLY: Final = frozenset({TicketKind.SERVICE})
_PROJECT_ONLY: Final = frozenset({TicketKind.PROJECT})
_TARGETS: Final = {
    "summary": _Target("summary", _summary),
    "status": _Target("status", _status),
    "status/id": _Target("status", _status_id),
    "status/name": _Target("status", _status_name),
    "priority": _Target("priority", _priority),
    "priority/id": _Target("priority", _priority_id),
    "priority/name": _Target("priority", _priority_name),
    "owner": _Target("owner", _owner),
    "owner/id": _Target("owner", _member_id),
    "owner/identifier": _Target("owner", _owner_identifier),
    "resources": _Target("resources", _resources),
    "requireddate": _Target("required_date", _required_date),
    "closedflag": _Target("closed", _closed),
    "board": _Target("board", _board, _SERVICE_ONLY),
    "board/id": _Target("board", _board_id, _SERVICE_ONLY),
    "board/name": _Target("board", _board_name, _SERVICE_ONLY),
    "phase": _Target("phase", _phase, _PROJECT_ONLY),
    "phase/id": _Target("phase", _phase_id, _PROJECT_ONLY),
}
assert {target.field for target in _TARGETS.values()} <= {f.name for f in fields(TicketChange)}
