"""What a change to a ticket says — the admin API's fields, or an API client's JSON
Patch once resolved — and how it applies to a ticket's current settable values.
No lookups here: the store resolves names and ids against its reference data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Final, TypeVar

from connectwise_sandbox.records import JsonObject, format_timestamp, split_resources


class Keep(Enum):
    """Marks a `TicketChange` field the caller did not set."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
_T = TypeVar("_T")


@dataclass(frozen=True)
class TicketChange:
    """What may be set on a ticket. References are by name or identifier; `status` and
    `priority` may also be ids (what API clients send). `closed` asks for the board's
    first closed status (True) or its default status (False) when `status` is unset.
    `project` and `phase` (ids) apply to project tickets only, whose board and company
    are always the project's."""

    summary: str | Keep = KEEP
    description: str | Keep = KEEP
    owner: str | Keep | None = KEEP
    resources: tuple[str, ...] | Keep = KEEP
    board: str | Keep = KEEP
    status: str | int | Keep = KEEP
    priority: str | int | Keep = KEEP
    company: str | Keep = KEEP
    required_date: datetime | Keep | None = KEEP
    closed: bool | Keep = KEEP
    project: int | Keep = KEEP
    phase: int | Keep = KEEP


@dataclass(frozen=True)
class TicketNames:
    """A ticket's settable values as names, identifiers and ids."""

    summary: str
    board: str
    status: str | int | None
    priority: str | int
    company: str
    owner: str | None
    resources: tuple[str, ...]
    required_date: str | None
    project: int | None = None
    phase: int | None = None


def names_of(ticket: JsonObject) -> TicketNames:
    owner = ticket.get("owner")
    project = ticket.get("project")
    phase = ticket.get("phase")
    return TicketNames(
        summary=ticket["summary"],
        board=ticket["board"]["name"],
        status=ticket["status"]["name"],
        priority=ticket["priority"]["name"],
        company=ticket["company"]["identifier"],
        owner=owner["identifier"] if owner else None,
        resources=tuple(split_resources(ticket.get("resources"))),
        required_date=ticket.get("requiredDate"),
        project=project["id"] if project else None,
        phase=phase["id"] if phase else None,
    )


def apply_change(names: TicketNames, change: TicketChange) -> TicketNames:
    required = names.required_date
    if not isinstance(change.required_date, Keep):
        moment = change.required_date
        required = None if moment is None else format_timestamp(moment)
    return TicketNames(
        summary=keep_or(change.summary, names.summary),
        board=keep_or(change.board, names.board),
        status=keep_or(change.status, names.status),
        priority=keep_or(change.priority, names.priority),
        company=keep_or(change.company, names.company),
        owner=keep_or(change.owner, names.owner),
        resources=keep_or(change.resources, names.resources),
        required_date=required,
        project=keep_or(change.project, names.project),
        phase=keep_or(change.phase, names.phase),
    )


def keep_or(new: _T | Keep, current: _T) -> _T:
    return current if isinstance(new, Keep) else new
