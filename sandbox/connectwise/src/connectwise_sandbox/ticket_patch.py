"""`PATCH …/tickets/{id}` bodies: a JSON Patch (RFC 6902) array, as ConnectWise takes
it, turned into one `TicketChange`. Every operation is checked before anything
changes; all problems come back together in one 400 `InvalidObject`.

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

from connectwise_sandbox.errors import CwError, ErrorItem
from connectwise_sandbox.store import Store, TicketChange, TicketKind

RESOURCE: Final = "ticket"
MAX_SUMMARY: Final = 100
_SETTING_OPS: Final = frozenset({"replace", "add"})
_REMOVABLE: Final = frozenset({"owner", "resources", "requireddate"})


class _Invalid(ValueError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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
        raise _error([ErrorItem("InvalidField", message, RESOURCE, "")])
    change = TicketChange()
    problems: list[ErrorItem] = []
    for index, operation in enumerate(body):
        try:
            name, value = _operation(operation, kind, store)
        except _Invalid as error:
            path = operation.get("path") if isinstance(operation, dict) else None
            field = str(path).lstrip("/") if path else f"[{index}]"
            problems.append(ErrorItem(error.code, error.message, RESOURCE, field))
            continue
        change = replace(change, **{name: value})
    if problems:
        raise _error(problems)
    return change


def _error(items: list[ErrorItem]) -> CwError:
    return CwError(400, "InvalidObject", f"{RESOURCE} object is invalid", items)


def _operation(operation: Any, kind: TicketKind, store: Store) -> tuple[str, Any]:
    if not isinstance(operation, dict):
        raise _Invalid("InvalidField", "Each operation must be an object")
    op = str(operation.get("op", "")).lower()
    raw_path = operation.get("path")
    if not isinstance(raw_path, str) or not raw_path.strip("/"):
        raise _Invalid("Required", "Each operation needs a path")
    path = raw_path.strip().strip("/").lower()
    target = _TARGETS.get(path)
    if target is None or kind not in target.kinds:
        raise _Invalid("InvalidField", f"'{raw_path}' cannot be changed on a {kind.value}")
    if op == "remove":
        if path.split("/")[0] not in _REMOVABLE:
            raise _Invalid("InvalidField", f"'{raw_path}' cannot be removed")
        return target.field, () if target.field == "resources" else None
    if op not in _SETTING_OPS:
        raise _Invalid("NotSupported", f"Operation '{operation.get('op')}' is not supported")
    if "value" not in operation:
        raise _Invalid("Required", f"'{op}' of '{raw_path}' needs a value")
    return target.field, target.read(operation["value"], store)


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
