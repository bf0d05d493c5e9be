"""The in-memory ConnectWise database: seeded reference data, tickets, and the changes
the sandbox admin API makes to them. No HTTP here.

Concurrency: one lock guards every mutation. Records are never changed in place — a
change builds a new ticket dict and swaps it in — so a reader can take a snapshot list
under the lock and then filter and serialise it without holding the lock.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Final, TypeVar

from connectwise_sandbox.records import (
    JsonObject,
    board_ref,
    company_ref,
    example_ticket,
    format_timestamp,
    member_ref,
    next_last_updated,
    priority_ref,
    split_resources,
    status_ref,
    ticket_record,
)
from connectwise_sandbox.schema import schema_of
from connectwise_sandbox.seed import FIRST_TICKET_ID, ApiKey, Dataset
from connectwise_sandbox.vocabulary import DEFAULT_PRIORITY

SANDBOX_USER: Final = "SandboxAdmin"
DEFAULT_BOARD: Final = "Service Desk"


class Keep(Enum):
    """Marks a `TicketChange` field the caller did not set."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP
_T = TypeVar("_T")


@dataclass(frozen=True)
class TicketChange:
    """What the admin API may set on a ticket; references are by name or identifier."""

    summary: str | Keep = KEEP
    description: str | Keep = KEEP
    owner: str | Keep | None = KEEP
    resources: tuple[str, ...] | Keep = KEEP
    board: str | Keep = KEEP
    status: str | Keep = KEEP
    priority: str | Keep = KEEP
    company: str | Keep = KEEP
    required_date: datetime | Keep | None = KEEP


class UnknownReference(LookupError):
    def __init__(self, kind: str, value: str) -> None:
        super().__init__(f"unknown {kind} '{value}'")
        self.kind = kind
        self.value = value


class TicketNotFound(LookupError):
    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"ticket {ticket_id} not found")
        self.ticket_id = ticket_id


class Schemas:
    """One schema per entity, read from the records themselves."""

    def __init__(self, dataset: Dataset) -> None:
        self.ticket = schema_of("ticket", [example_ticket()])
        self.member = schema_of("member", dataset.members)
        self.company = schema_of("company", dataset.companies)
        self.board = schema_of("board", dataset.boards)
        self.status = schema_of("status", dataset.statuses)
        self.priority = schema_of("priority", dataset.priorities)
        self.note = schema_of("note", [note_record(1, "x", "2000-01-01T00:00:00Z", None)])


def note_record(ticket_id: int, text: str, created: str, member: JsonObject | None) -> JsonObject:
    """The ticket's initial description as `GET /service/tickets/{id}/notes` lists it."""
    note: JsonObject = {
        "id": ticket_id,
        "ticketId": ticket_id,
        "text": text,
        "detailDescriptionFlag": True,
        "internalAnalysisFlag": False,
        "resolutionFlag": False,
        "issueFlag": False,
        "internalFlag": False,
        "externalFlag": False,
        "dateCreated": created,
        "createdBy": member["identifier"] if member else "EmailConnector",
    }
    if member is not None:
        note["member"] = member
    note["_info"] = {"lastUpdated": created, "updatedBy": note["createdBy"]}
    return note


class Store:
    def __init__(self, dataset: Dataset, clock: Callable[[], datetime] | None = None) -> None:
        self._lock = threading.Lock()
        self._clock = clock or (lambda: datetime.now(UTC))
        self.schemas = Schemas(dataset)
        self._load(dataset)

    def _load(self, dataset: Dataset) -> None:
        self.members = dataset.members
        self.api_keys = dataset.api_keys
        self.companies = dataset.companies
        self.boards = dataset.boards
        self.statuses = dataset.statuses
        self.priorities = dataset.priorities
        self._tickets: dict[int, JsonObject] = {t["id"]: t for t in dataset.tickets}
        self._descriptions: dict[int, str] = dict(dataset.descriptions)
        self._next_id = max(self._tickets, default=FIRST_TICKET_ID - 1) + 1

    def reset(self, dataset: Dataset) -> None:
        with self._lock:
            self._load(dataset)

    # --- reads -------------------------------------------------------------------------

    def tickets(self) -> list[JsonObject]:
        """A snapshot in id order."""
        with self._lock:
            return list(self._tickets.values())

    def ticket(self, ticket_id: int) -> JsonObject | None:
        with self._lock:
            return self._tickets.get(ticket_id)

    def notes(self, ticket_id: int) -> list[JsonObject] | None:
        with self._lock:
            ticket = self._tickets.get(ticket_id)
            text = self._descriptions.get(ticket_id)
        if ticket is None:
            return None
        if not text:
            return []
        return [note_record(ticket_id, text, ticket["_info"]["dateEntered"], ticket.get("owner"))]

    def statuses_of(self, board_id: int) -> list[JsonObject]:
        return [status for status in self.statuses if status["board"]["id"] == board_id]

    def member(self, member_id: int) -> JsonObject | None:
        return next((m for m in self.members if m["id"] == member_id), None)

    def member_by_identifier(self, identifier: str) -> JsonObject | None:
        """Identifiers compare case-insensitively, as ConnectWise's do."""
        wanted = identifier.lower()
        return next((m for m in self.members if m["identifier"].lower() == wanted), None)

    def member_for_key(self, public_key: str, private_key: str) -> JsonObject | None:
        """The member a key pair belongs to; compares in constant time."""
        found: ApiKey | None = None
        for key in self.api_keys:
            public_ok = hmac.compare_digest(key.public_key.encode(), public_key.encode())
            private_ok = hmac.compare_digest(key.private_key.encode(), private_key.encode())
            if public_ok and private_ok:
                found = key
        if found is None:
            return None
        return self.member(found.member_id)

    # --- changes -----------------------------------------------------------------------

    def create_ticket(self, change: TicketChange) -> JsonObject:
        if isinstance(change.summary, Keep):
            raise ValueError("a new ticket needs a summary")
        with self._lock:
            ticket_id = self._next_id
            now = next_last_updated(None, self._clock())
            ticket = self._build(ticket_id, change, base=None, now=now)
            self._tickets[ticket_id] = ticket
            self._descriptions[ticket_id] = (
                change.description if isinstance(change.description, str) else change.summary
            )
            self._next_id += 1
            return ticket

    def update_ticket(self, ticket_id: int, change: TicketChange) -> JsonObject:
        with self._lock:
            current = self._require(ticket_id)
            now = next_last_updated(current["_info"]["lastUpdated"], self._clock())
            ticket = self._build(ticket_id, change, base=current, now=now)
            self._tickets[ticket_id] = ticket
            if isinstance(change.description, str):
                self._descriptions[ticket_id] = change.description
            return ticket

    def close_ticket(self, ticket_id: int) -> JsonObject:
        """Move the ticket to its board's first closed status."""
        with self._lock:
            board_id = self._require(ticket_id)["board"]["id"]
            closed = [s for s in self.statuses_of(board_id) if s["closedStatus"]]
            closing = min(closed, key=lambda status: status["sortOrder"])
        return self.update_ticket(ticket_id, TicketChange(status=closing["name"]))

    def delete_ticket(self, ticket_id: int) -> None:
        with self._lock:
            self._require(ticket_id)
            del self._tickets[ticket_id]
            self._descriptions.pop(ticket_id, None)

    def _require(self, ticket_id: int) -> JsonObject:
        ticket = self._tickets.get(ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        return ticket

    def _build(
        self, ticket_id: int, change: TicketChange, *, base: JsonObject | None, now: str
    ) -> JsonObject:
        """The ticket after `change`; unset fields keep `base` (or a new ticket's default)."""
        current = _names_of(base) if base else self._new_ticket_names()
        wanted = _apply(current, change)
        board = self._find(self.boards, "name", wanted.board, "board")
        statuses = self.statuses_of(board["id"])
        if isinstance(change.status, str):
            status = self._find(statuses, "name", change.status, f"status on {board['name']}")
        else:
            # Moving boards keeps a status of the same name, else takes the board's default.
            same = [s for s in statuses if s["name"].lower() == (current.status or "").lower()]
            status = same[0] if same else min(statuses, key=lambda s: s["sortOrder"])
        owner = (
            None
            if wanted.owner is None
            else self._find(self.members, "identifier", wanted.owner, "member")
        )
        resources = [
            self._find(self.members, "identifier", name, "member")["identifier"]
            for name in dict.fromkeys(wanted.resources)
        ]
        info = base["_info"] if base else {"dateEntered": now, "enteredBy": SANDBOX_USER}
        kept = base or _NEW_TICKET_DETAILS
        ticket = ticket_record(
            ticket_id=ticket_id,
            summary=wanted.summary,
            board=board_ref(board),
            status=status_ref(status),
            closed=bool(status["closedStatus"]),
            priority=priority_ref(self._find(self.priorities, "name", wanted.priority, "priority")),
            company=company_ref(
                self._find(self.companies, "identifier", wanted.company, "company")
            ),
            contact_name=kept["contactName"],
            contact_email=kept["contactEmailAddress"],
            owner=member_ref(owner) if owner else None,
            resources=resources,
            required_date=wanted.required_date,
            severity=kept["severity"],
            impact=kept["impact"],
            source=kept["source"],
            budget_hours=kept["budgetHours"],
            actual_hours=kept["actualHours"],
            date_entered=info["dateEntered"],
            entered_by=info["enteredBy"],
            last_updated=now,
            updated_by=SANDBOX_USER,
        )
        if base and base.get("closedFlag") and ticket["closedFlag"]:
            # Staying closed keeps the original close stamp.
            ticket["closedDate"] = base.get("closedDate", now)
            ticket["closedBy"] = base.get("closedBy", SANDBOX_USER)
        return ticket

    def _new_ticket_names(self) -> _TicketNames:
        return _TicketNames(
            summary="",
            board=DEFAULT_BOARD,
            status=None,
            priority=DEFAULT_PRIORITY,
            company=self.companies[0]["identifier"],
            owner=None,
            resources=(),
            required_date=None,
        )

    @staticmethod
    def _find(
        records: tuple[JsonObject, ...] | list[JsonObject],
        key: str,
        value: object,
        kind: str,
    ) -> JsonObject:
        for record in records:
            stored = record[key]
            if stored == value or (
                isinstance(stored, str)
                and isinstance(value, str)
                and stored.lower() == value.lower()
            ):
                return record
        raise UnknownReference(kind, str(value))


@dataclass(frozen=True)
class _TicketNames:
    """A ticket's settable fields as names and identifiers, the admin API's vocabulary."""

    summary: str
    board: str
    status: str | None
    priority: str
    company: str
    owner: str | None
    resources: tuple[str, ...]
    required_date: str | None


# What a ticket created through the admin API carries beyond the settable fields.
_NEW_TICKET_DETAILS: Final[JsonObject] = {
    "contactName": "Sandbox Contact",
    "contactEmailAddress": "contact@sandbox.example",
    "severity": "Medium",
    "impact": "Medium",
    "source": {"id": 3, "name": "Portal"},
    "budgetHours": 1.0,
    "actualHours": 0.0,
}


def _names_of(ticket: JsonObject) -> _TicketNames:
    owner = ticket.get("owner")
    return _TicketNames(
        summary=ticket["summary"],
        board=ticket["board"]["name"],
        status=ticket["status"]["name"],
        priority=ticket["priority"]["name"],
        company=ticket["company"]["identifier"],
        owner=owner["identifier"] if owner else None,
        resources=tuple(split_resources(ticket.get("resources"))),
        required_date=ticket.get("requiredDate"),
    )


def _apply(names: _TicketNames, change: TicketChange) -> _TicketNames:
    required = names.required_date
    if not isinstance(change.required_date, Keep):
        moment = change.required_date
        required = None if moment is None else format_timestamp(moment)
    return _TicketNames(
        summary=_keep_or(change.summary, names.summary),
        board=_keep_or(change.board, names.board),
        status=_keep_or(change.status, names.status),
        priority=_keep_or(change.priority, names.priority),
        company=_keep_or(change.company, names.company),
        owner=_keep_or(change.owner, names.owner),
        resources=_keep_or(change.resources, names.resources),
        required_date=required,
    )


def _keep_or(new: _T | Keep, current: _T) -> _T:
    return current if isinstance(new, Keep) else new
