"""The in-memory ConnectWise database: seeded reference data, service and project
tickets, projects, schedule entries, notes and time entries, and the changes the admin
API and API clients make to them. No HTTP here.

Concurrency: one lock guards every mutation. Records are never changed in place — a
change builds a new dict and swaps it in — so a reader can take a snapshot list under
the lock and then filter and serialise it without holding the lock.

Every change to a ticket, project or schedule entry is announced to the subscribed
listeners (callbacks) after the lock is released; notes and time entries count as
changes to their ticket, whose `_info.lastUpdated` they move forward.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from connectwise_sandbox.events import Action, ChangeEvent, EntityType, Listener
from connectwise_sandbox.project_records import example_team_member, phase_status_ref
from connectwise_sandbox.project_seed import FIRST_PROJECT_TICKET_ID
from connectwise_sandbox.records import (
    RECORD_TYPE_PROJECT,
    RECORD_TYPE_SERVICE,
    SLA_FIELDS,
    JsonObject,
    as_project_ticket,
    board_ref,
    company_ref,
    format_timestamp,
    member_ref,
    next_last_updated,
    phase_ref,
    priority_ref,
    project_ref,
    status_ref,
    ticket_record,
    touched,
)
from connectwise_sandbox.schedule_seed import SCHEDULE_TYPE_REFS
from connectwise_sandbox.schema import EntitySchema, model_schema, schema_of
from connectwise_sandbox.seed import FIRST_TICKET_ID, ApiKey, Dataset
from connectwise_sandbox.ticket_change import (
    KEEP,
    Keep,
    TicketChange,
    TicketNames,
    apply_change,
    keep_or,
    names_of,
)
from connectwise_sandbox.vocabulary import DEFAULT_PRIORITY
from connectwise_sandbox.work_records import (
    added_note,
    customer_note,
    description_note,
    schedule_entry_record,
    time_entry_record,
)

__all__ = [
    "KEEP",
    "SANDBOX_USER",
    "InvalidChange",
    "Keep",
    "PhaseChange",
    "ProjectChange",
    "RecordNotFound",
    "ScheduleChange",
    "Store",
    "TicketChange",
    "TicketKind",
    "TicketNotFound",
    "UnknownReference",
]

log = logging.getLogger("connectwise_sandbox")

SANDBOX_USER: Final = "SandboxAdmin"
DEFAULT_BOARD: Final = "Service Desk"
# Added notes are numbered above every ticket id: a ticket's description note has the
# ticket's own id, so a ticket's notes stay in id order.
FIRST_NOTE_ID: Final = 5_000_001
FIRST_TIME_ENTRY_ID: Final = 1
MAX_ENTRY_HOURS: Final = 24.0


class TicketKind(StrEnum):
    """Service and project tickets live in separate collections (see the README)."""

    SERVICE = RECORD_TYPE_SERVICE
    PROJECT = RECORD_TYPE_PROJECT

    @property
    def entity(self) -> EntityType:
        return EntityType.TICKET if self is TicketKind.SERVICE else EntityType.PROJECT_TICKET


class UnknownReference(LookupError):
    def __init__(self, kind: str, value: str) -> None:
        super().__init__(f"unknown {kind} '{value}'")
        self.kind = kind
        self.value = value


class RecordNotFound(LookupError):
    def __init__(self, entity: str, record_id: int) -> None:
        super().__init__(f"{entity.lower()} {record_id} not found")
        self.entity = entity
        self.record_id = record_id


class TicketNotFound(RecordNotFound):
    def __init__(self, ticket_id: int) -> None:
        super().__init__("Ticket", ticket_id)
        self.ticket_id = ticket_id


class InvalidChange(ValueError):
    """A change the data does not allow; `field` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class ScheduleChange:
    """What the admin API may set on a schedule entry; `member` is an identifier, `kind`
    the type identifier ("S" ticket, "C" activity)."""

    object_id: int | Keep = KEEP
    member: str | Keep = KEEP
    kind: str | Keep = KEEP
    done: bool | Keep = KEEP
    date_start: datetime | Keep = KEEP
    date_end: datetime | Keep = KEEP
    name: str | Keep = KEEP


@dataclass(frozen=True)
class ProjectChange:
    """What the admin API may set on a project; `status` is a project status name and
    `manager` a member identifier."""

    name: str | Keep = KEEP
    status: str | Keep = KEEP
    manager: str | Keep = KEEP


@dataclass(frozen=True)
class PhaseChange:
    """What the admin API may set on a project phase; `status` is a phase status name
    ("Open", "In Progress", "Completed", "Cancelled" — the last two closed)."""

    description: str | Keep = KEEP
    status: str | Keep = KEEP


class Schemas:
    """One schema per entity: its documented model (`contract/`)."""

    def __init__(self) -> None:
        self.ticket = model_schema("Ticket")
        self.project_ticket = model_schema("ProjectTicket")
        self.member = model_schema("Member")
        self.company = model_schema("Company")
        self.contact = model_schema("Contact")
        self.board = model_schema("Board")
        self.status = model_schema("BoardStatus")
        self.priority = model_schema("Priority")
        # Service and project ticket notes alike: the facts hold no `TicketNote` model
        # (the project ticket notes' documented body), so both use ServiceNote's.
        self.note = model_schema("ServiceNote")
        self.project = model_schema("Project")
        self.project_status = model_schema("ProjectStatus")
        self.phase = model_schema("ProjectPhase")
        self.phase_status = model_schema("PhaseStatus")
        # The facts document the teamMembers endpoints but no ProjectTeamMember model:
        # its schema is read from an example record, and it is left out of the model check.
        self.team_member = schema_of("ProjectTeamMember", [example_team_member()])
        self.schedule_entry = model_schema("ScheduleEntry")
        self.time_entry = model_schema("TimeEntry")
        self.work_type = model_schema("WorkType")

    def tickets(self, kind: TicketKind) -> EntitySchema:
        return self.ticket if kind is TicketKind.SERVICE else self.project_ticket


class Store:
    def __init__(
        self,
        dataset: Dataset,
        clock: Callable[[], datetime] | None = None,
        schemas: Schemas | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._listeners: list[Listener] = []
        # Immutable: fleet companies share one.
        self.schemas = schemas or Schemas()
        self._load(dataset)

    def _load(self, dataset: Dataset) -> None:
        self.members = dataset.members
        self.api_keys = dataset.api_keys
        self.companies = dataset.companies
        self.contacts = dataset.contacts
        self.boards = dataset.boards
        self.service_boards = tuple(b for b in dataset.boards if not b["projectFlag"])
        self.statuses = dataset.statuses
        self.priorities = dataset.priorities
        self.work_types = dataset.work_types
        self.project_statuses = dataset.project_statuses
        self.phase_statuses = dataset.phase_statuses
        self.phases = dataset.phases
        self.team_members = dataset.team_members
        self._tickets: dict[int, JsonObject] = {t["id"]: t for t in dataset.tickets}
        self._project_tickets: dict[int, JsonObject] = {t["id"]: t for t in dataset.project_tickets}
        self._descriptions: dict[int, str] = {
            **dataset.descriptions,
            **dataset.project_descriptions,
        }
        self._projects: dict[int, JsonObject] = {p["id"]: p for p in dataset.projects}
        self._schedule: dict[int, JsonObject] = {e["id"]: e for e in dataset.schedule_entries}
        self._notes: dict[int, list[JsonObject]] = {}
        self._time_entries: dict[int, JsonObject] = {}
        self._next_ids = {
            TicketKind.SERVICE: max(self._tickets, default=FIRST_TICKET_ID - 1) + 1,
            TicketKind.PROJECT: max(self._project_tickets, default=FIRST_PROJECT_TICKET_ID - 1) + 1,
        }
        self._next_schedule_id = max(self._schedule, default=0) + 1
        self._next_note_id = FIRST_NOTE_ID
        self._next_time_entry_id = FIRST_TIME_ENTRY_ID

    def reset(self, dataset: Dataset) -> None:
        """Back to `dataset`; listeners hear nothing (it is not a change to a record)."""
        with self._lock:
            self._load(dataset)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, events: Iterable[ChangeEvent]) -> None:
        for event in events:
            for listener in self._listeners:
                try:
                    listener(event)
                except Exception:  # a listener's failure must not fail the change
                    log.exception("change listener failed for %s %s", event.entity, event.action)

    # --- reads -------------------------------------------------------------------------

    def tickets(self, kind: TicketKind = TicketKind.SERVICE) -> list[JsonObject]:
        """A snapshot in id order."""
        with self._lock:
            return list(self._table(kind).values())

    def ticket(self, ticket_id: int, kind: TicketKind = TicketKind.SERVICE) -> JsonObject | None:
        with self._lock:
            return self._table(kind).get(ticket_id)

    def project_tickets(self) -> list[JsonObject]:
        return self.tickets(TicketKind.PROJECT)

    def any_ticket(self, ticket_id: int) -> tuple[TicketKind, JsonObject] | None:
        """A ticket of either kind (ids are unique across both)."""
        with self._lock:
            for kind in TicketKind:
                ticket = self._table(kind).get(ticket_id)
                if ticket is not None:
                    return kind, ticket
        return None

    def notes(
        self, ticket_id: int, kind: TicketKind = TicketKind.SERVICE
    ) -> list[JsonObject] | None:
        """The initial description, then the notes added through the API."""
        with self._lock:
            ticket = self._table(kind).get(ticket_id)
            text = self._descriptions.get(ticket_id)
            added = list(self._notes.get(ticket_id, ()))
        if ticket is None:
            return None
        first = (
            [description_note(ticket_id, text, ticket["_info"]["dateEntered"], ticket.get("owner"))]
            if text
            else []
        )
        return first + added

    def projects(self) -> list[JsonObject]:
        with self._lock:
            return list(self._projects.values())

    def project(self, project_id: int) -> JsonObject | None:
        with self._lock:
            return self._projects.get(project_id)

    def phases_of(self, project_id: int) -> list[JsonObject]:
        return [phase for phase in self.phases if phase["projectId"] == project_id]

    def team_of(self, project_id: int) -> list[JsonObject]:
        return [member for member in self.team_members if member["projectId"] == project_id]

    def schedule_entries(self) -> list[JsonObject]:
        with self._lock:
            return list(self._schedule.values())

    def time_entries(self) -> list[JsonObject]:
        with self._lock:
            return list(self._time_entries.values())

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

    # --- ticket changes ----------------------------------------------------------------

    def create_ticket(
        self,
        change: TicketChange,
        kind: TicketKind = TicketKind.SERVICE,
        actor: str | None = None,
    ) -> JsonObject:
        if isinstance(change.summary, Keep):
            raise ValueError("a new ticket needs a summary")
        with self._lock:
            ticket_id = self._allocate_ticket_id(kind)
            now = next_last_updated(None, self._clock())
            ticket = self._build(kind, ticket_id, change, base=None, now=now, actor=actor)
            self._table(kind)[ticket_id] = ticket
            self._descriptions[ticket_id] = (
                change.description if isinstance(change.description, str) else change.summary
            )
            self._next_ids[kind] = ticket_id + 1
        self._emit([ChangeEvent(kind.entity, Action.ADDED, ticket_id, ticket, actor)])
        return ticket

    def update_ticket(
        self,
        ticket_id: int,
        change: TicketChange,
        kind: TicketKind = TicketKind.SERVICE,
        actor: str | None = None,
    ) -> JsonObject:
        with self._lock:
            current = self._require(kind, ticket_id)
            now = next_last_updated(current["_info"]["lastUpdated"], self._clock())
            ticket = self._build(kind, ticket_id, change, base=current, now=now, actor=actor)
            self._table(kind)[ticket_id] = ticket
            if isinstance(change.description, str):
                self._descriptions[ticket_id] = change.description
        self._emit([ChangeEvent(kind.entity, Action.UPDATED, ticket_id, ticket, actor)])
        return ticket

    def close_ticket(self, ticket_id: int, kind: TicketKind = TicketKind.SERVICE) -> JsonObject:
        """Move the ticket to its board's first closed status."""
        with self._lock:
            board_id = self._require(kind, ticket_id)["board"]["id"]
            closing = self._first_status(board_id, closed=True)
        return self.update_ticket(ticket_id, TicketChange(status=closing["id"]), kind)

    def delete_ticket(self, ticket_id: int, kind: TicketKind = TicketKind.SERVICE) -> None:
        with self._lock:
            ticket = self._require(kind, ticket_id)
            del self._table(kind)[ticket_id]
            self._descriptions.pop(ticket_id, None)
            self._notes.pop(ticket_id, None)
        self._emit([ChangeEvent(kind.entity, Action.DELETED, ticket_id, ticket, None)])

    def add_note(
        self,
        ticket_id: int,
        kind: TicketKind,
        *,
        text: str,
        detail: bool,
        internal: bool,
        resolution: bool,
        member: JsonObject,
    ) -> JsonObject:
        """A note by `member`; the ticket's `lastUpdated` moves forward."""
        actor = member["identifier"]
        with self._lock:
            current = self._require(kind, ticket_id)
            now = next_last_updated(current["_info"]["lastUpdated"], self._clock())
            note = added_note(
                note_id=self._next_note_id,
                ticket_id=ticket_id,
                text=text,
                detail=detail,
                internal=internal,
                resolution=resolution,
                member=member_ref(member),
                created=now,
            )
            self._next_note_id += 1
            self._notes.setdefault(ticket_id, []).append(note)
            ticket = touched(current, now, actor)
            self._table(kind)[ticket_id] = ticket
        self._emit([ChangeEvent(kind.entity, Action.UPDATED, ticket_id, ticket, actor)])
        return note

    def add_customer_reply(self, ticket_id: int, kind: TicketKind, text: str) -> JsonObject:
        """The ticket's contact answers (by e-mail or the portal): a discussion note of
        theirs, and the ticket's `customerUpdatedFlag` set, as ConnectWise flags a ticket
        the customer updated. Nothing in the documentation clears the flag but a change
        to it, so nothing here does."""
        with self._lock:
            current = self._require(kind, ticket_id)
            now = next_last_updated(current["_info"]["lastUpdated"], self._clock())
            name = str(current.get("contactName") or "Customer")
            note = customer_note(
                note_id=self._next_note_id,
                ticket_id=ticket_id,
                text=text,
                contact=current.get("contact"),
                name=name,
                created=now,
            )
            self._next_note_id += 1
            self._notes.setdefault(ticket_id, []).append(note)
            ticket = touched(current, now, name, customerUpdatedFlag=True)
            self._table(kind)[ticket_id] = ticket
        self._emit([ChangeEvent(kind.entity, Action.UPDATED, ticket_id, ticket, name)])
        return note

    def add_time_entry(
        self,
        kind: TicketKind,
        ticket_id: int,
        *,
        member: JsonObject,
        start: datetime,
        end: datetime,
        billable_option: str | None,
        notes: str | None,
        actor: str,
        work_type_id: int | None = None,
    ) -> JsonObject:
        """Time worked by `member` on a ticket; adds to the ticket's `actualHours` and
        moves its `lastUpdated` forward. Refused on a status that allows no time. Without
        a work type it is the default one; without a billable option, its work type's."""
        hours = round((end - start).total_seconds() / 3600, 2)
        if hours <= 0 or hours > MAX_ENTRY_HOURS:
            raise InvalidChange("timeEnd", "timeEnd must be after timeStart, within 24 hours")
        with self._lock:
            current = self._table(kind).get(ticket_id)
            if current is None:
                raise InvalidChange("chargeToId", f"{kind.value} {ticket_id} not found")
            active = [w for w in self.work_types if not w["inactiveFlag"]]
            work_type = next(
                (
                    w
                    for w in active
                    if (
                        w["overallDefaultFlag"] if work_type_id is None else w["id"] == work_type_id
                    )
                ),
                None,
            )
            if work_type is None:
                raise UnknownReference("work type", str(work_type_id))
            status = self._find(self.statuses, "id", current["status"]["id"], "status")
            if status["timeEntryNotAllowed"]:
                raise InvalidChange(
                    "chargeToId",
                    f"Time entries are not allowed on tickets in status '{status['name']}'",
                )
            now = next_last_updated(current["_info"]["lastUpdated"], self._clock())
            ticket = touched(
                current, now, actor, actualHours=round(current["actualHours"] + hours, 2)
            )
            entry = time_entry_record(
                entry_id=self._next_time_entry_id,
                ticket=ticket,
                charge_to_type=kind.value,
                member=member_ref(member),
                time_start=format_timestamp(start),
                time_end=format_timestamp(end),
                actual_hours=hours,
                billable_option=billable_option or work_type["billTime"],
                work_type=work_type,
                notes=notes,
                created=now,
                entered_by=actor,
            )
            self._next_time_entry_id += 1
            self._time_entries[entry["id"]] = entry
            self._table(kind)[ticket_id] = ticket
        self._emit([ChangeEvent(kind.entity, Action.UPDATED, ticket_id, ticket, actor)])
        return entry

    def _table(self, kind: TicketKind) -> dict[int, JsonObject]:
        return self._tickets if kind is TicketKind.SERVICE else self._project_tickets

    def _allocate_ticket_id(self, kind: TicketKind) -> int:
        """The next id of this kind's range that neither collection uses: ConnectWise has
        one id space for service and project tickets."""
        candidate = self._next_ids[kind]
        while candidate in self._tickets or candidate in self._project_tickets:
            candidate += 1
        return candidate

    def _require(self, kind: TicketKind, ticket_id: int) -> JsonObject:
        ticket = self._table(kind).get(ticket_id)
        if ticket is None:
            raise TicketNotFound(ticket_id)
        return ticket

    def _first_status(self, board_id: int, *, closed: bool) -> JsonObject:
        """The board's first closed status, or its default (first open) one."""
        statuses = [s for s in self.statuses_of(board_id) if s["closedStatus"] is closed]
        return min(statuses, key=lambda status: status["sortOrder"])

    def _build(
        self,
        kind: TicketKind,
        ticket_id: int,
        change: TicketChange,
        *,
        base: JsonObject | None,
        now: str,
        actor: str | None,
    ) -> JsonObject:
        """The ticket after `change`; unset fields keep `base` (or a new ticket's default)."""
        current = names_of(base) if base else self._new_ticket_names(kind, change)
        wanted = apply_change(current, change)
        project: JsonObject | None = None
        phase: JsonObject | None = None
        if kind is TicketKind.PROJECT:
            project, phase = self._project_and_phase(current, wanted, change)
            board = self._find(self.boards, "id", project["board"]["id"], "board")
            company = project["company"]
        else:
            board = self._find(self.service_boards, "name", wanted.board, "board")
            company = company_ref(
                self._find(self.companies, "identifier", wanted.company, "company")
            )
        status = self._status(board, change, current)
        owner = (
            None
            if wanted.owner is None
            else self._find(self.members, "identifier", wanted.owner, "member")
        )
        resources = [
            self._find(self.members, "identifier", name, "member")["identifier"]
            for name in dict.fromkeys(wanted.resources)
        ]
        priority_key = "id" if isinstance(wanted.priority, int) else "name"
        priority = self._find(self.priorities, priority_key, wanted.priority, "priority")
        info = base["_info"] if base else {"dateEntered": now, "enteredBy": actor or SANDBOX_USER}
        # A project ticket has no severity or impact (service-only fields): defaults fill
        # in, and `as_project_ticket` leaves them out again.
        kept = _NEW_TICKET_DETAILS | (base or {})
        ticket = ticket_record(
            ticket_id=ticket_id,
            summary=wanted.summary,
            board=board_ref(board),
            status=status_ref(status),
            closed=bool(status["closedStatus"]),
            priority=priority_ref(priority),
            company=company,
            contact_name=kept["contactName"],
            contact_email=kept["contactEmailAddress"],
            contact=kept.get("contact"),
            contact_phone=kept.get("contactPhoneNumber"),
            sla=_sla_after(kept, closed=bool(status["closedStatus"]), now=now),
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
            updated_by=actor or SANDBOX_USER,
        )
        if base and base.get("closedFlag") and ticket["closedFlag"]:
            # Staying closed keeps the original close stamp.
            ticket["closedDate"] = base.get("closedDate", now)
            ticket["closedBy"] = base.get("closedBy", SANDBOX_USER)
        if project is None or phase is None:
            return ticket
        same_phase = base is not None and base["phase"]["id"] == phase["id"]
        wbs = base["wbsCode"] if base is not None and same_phase else self._next_wbs(phase)
        return as_project_ticket(
            ticket, project=project_ref(project), phase=phase_ref(phase), wbs_code=wbs
        )

    def _status(self, board: JsonObject, change: TicketChange, current: TicketNames) -> JsonObject:
        statuses = self.statuses_of(board["id"])
        if not isinstance(change.status, Keep):
            key = "id" if isinstance(change.status, int) else "name"
            status = self._find(statuses, key, change.status, f"status on {board['name']}")
            if isinstance(change.closed, bool) and status["closedStatus"] is not change.closed:
                raise InvalidChange("closedFlag", "closedFlag contradicts the status' closedStatus")
            return status
        # Moving boards keeps a status of the same name, else takes the board's default.
        same = [s for s in statuses if s["name"].lower() == str(current.status or "").lower()]
        status = same[0] if same else min(statuses, key=lambda s: s["sortOrder"])
        if isinstance(change.closed, bool) and status["closedStatus"] is not change.closed:
            status = self._first_status(board["id"], closed=change.closed)
        return status

    def _project_and_phase(
        self, current: TicketNames, wanted: TicketNames, change: TicketChange
    ) -> tuple[JsonObject, JsonObject]:
        project = self._projects.get(wanted.project or 0)
        if project is None:
            raise UnknownReference("project", str(wanted.project))
        phases = self.phases_of(project["id"])
        if isinstance(change.phase, int):
            phase = next((p for p in phases if p["id"] == change.phase), None)
            if phase is None:
                raise UnknownReference(f"phase of project {project['id']}", str(change.phase))
            return project, phase
        phase = next((p for p in phases if p["id"] == wanted.phase), None)
        if phase is None or current.project != wanted.project:
            # A new ticket, or one moved to another project: its first open phase.
            phase = next((p for p in phases if not self.phase_closed(p)), phases[0])
        return project, phase

    def phase_closed(self, phase: JsonObject) -> bool:
        """Whether the phase's status is a closed phase status."""
        status_id = phase["status"]["id"]
        return any(s["id"] == status_id and s["closedFlag"] for s in self.phase_statuses)

    def _next_wbs(self, phase: JsonObject) -> str:
        taken = sum(1 for t in self._project_tickets.values() if t["phase"]["id"] == phase["id"])
        return f"{phase['wbsCode']}.{taken + 1}"

    def _new_ticket_names(self, kind: TicketKind, change: TicketChange) -> TicketNames:
        if kind is TicketKind.PROJECT and not isinstance(change.project, int):
            raise InvalidChange("project", "a project ticket needs a project")
        return TicketNames(
            summary="",
            board=DEFAULT_BOARD,
            status=None,
            priority=DEFAULT_PRIORITY,
            company=self.companies[0]["identifier"],
            owner=None,
            resources=(),
            required_date=None,
            project=keep_or(change.project, None),
            phase=None,
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

    # --- schedule entries --------------------------------------------------------------

    def create_schedule_entry(self, change: ScheduleChange) -> JsonObject:
        if not isinstance(change.object_id, int) or not isinstance(change.member, str):
            raise ValueError("a schedule entry needs objectId and member")
        with self._lock:
            entry_id = self._next_schedule_id
            now = next_last_updated(None, self._clock())
            entry = self._build_entry(entry_id, change, base=None, now=now)
            self._schedule[entry_id] = entry
            self._next_schedule_id += 1
        self._emit([ChangeEvent(EntityType.SCHEDULE, Action.ADDED, entry_id, entry, None)])
        return entry

    def update_schedule_entry(self, entry_id: int, change: ScheduleChange) -> JsonObject:
        with self._lock:
            current = self._schedule.get(entry_id)
            if current is None:
                raise RecordNotFound("ScheduleEntry", entry_id)
            now = next_last_updated(current["_info"]["lastUpdated"], self._clock())
            entry = self._build_entry(entry_id, change, base=current, now=now)
            self._schedule[entry_id] = entry
        self._emit([ChangeEvent(EntityType.SCHEDULE, Action.UPDATED, entry_id, entry, None)])
        return entry

    def delete_schedule_entry(self, entry_id: int) -> None:
        with self._lock:
            entry = self._schedule.pop(entry_id, None)
        if entry is None:
            raise RecordNotFound("ScheduleEntry", entry_id)
        self._emit([ChangeEvent(EntityType.SCHEDULE, Action.DELETED, entry_id, entry, None)])

    def _build_entry(
        self, entry_id: int, change: ScheduleChange, *, base: JsonObject | None, now: str
    ) -> JsonObject:
        kind = keep_or(change.kind, base["type"]["identifier"] if base else "S").upper()
        if kind not in SCHEDULE_TYPE_REFS:
            raise InvalidChange("type", f"type must be one of {sorted(SCHEDULE_TYPE_REFS)}")
        object_id = keep_or(change.object_id, base["objectId"] if base else 0)
        member_name = keep_or(change.member, base["member"]["identifier"] if base else "")
        member = self._find(self.members, "identifier", member_name, "member")
        ticket = self._ticket_unlocked(object_id)
        if kind == "S" and ticket is None:
            raise UnknownReference("ticket", str(object_id))
        start = keep_or(
            change.date_start,
            datetime.fromisoformat(base["dateStart"]) if base else self._clock(),
        )
        end = keep_or(
            change.date_end,
            datetime.fromisoformat(base["dateEnd"]) if base else start + timedelta(hours=1),
        )
        if end <= start:
            raise InvalidChange("dateEnd", "dateEnd must be after dateStart")
        default_name = "Activity"
        if kind == "S" and ticket is not None:
            default_name = f"{ticket['company']['name']} / {ticket['summary']}"[:100]
        name = keep_or(change.name, base["name"] if base and change.object_id is KEEP else None)
        return schedule_entry_record(
            entry_id=entry_id,
            object_id=object_id,
            name=name or default_name,
            member=member_ref(member),
            schedule_type=SCHEDULE_TYPE_REFS[kind],
            done=keep_or(change.done, base["doneFlag"] if base else False),
            date_start=format_timestamp(start),
            date_end=format_timestamp(end),
            hours=round((end - start).total_seconds() / 3600, 2),
            date_entered=base["_info"]["dateEntered"] if base else now,
            last_updated=now,
            updated_by=SANDBOX_USER,
        )

    def _ticket_unlocked(self, ticket_id: int) -> JsonObject | None:
        return self._tickets.get(ticket_id) or self._project_tickets.get(ticket_id)

    # --- projects ----------------------------------------------------------------------

    def update_project(self, project_id: int, change: ProjectChange) -> JsonObject:
        with self._lock:
            current = self._projects.get(project_id)
            if current is None:
                raise RecordNotFound("Project", project_id)
            now = next_last_updated(current["_info"]["lastUpdated"], self._clock())
            fields: JsonObject = {}
            if isinstance(change.name, str):
                fields["name"] = change.name
            if isinstance(change.status, str):
                status = self._find(self.project_statuses, "name", change.status, "status")
                fields["status"] = {"id": status["id"], "name": status["name"]}
                fields["closedFlag"] = status["closedFlag"]
            if isinstance(change.manager, str):
                manager = self._find(self.members, "identifier", change.manager, "member")
                fields["manager"] = member_ref(manager)
            project = touched(current, now, SANDBOX_USER, **fields)
            self._projects[project_id] = project
        self._emit([ChangeEvent(EntityType.PROJECT, Action.UPDATED, project_id, project, None)])
        return project

    def update_phase(self, phase_id: int, change: PhaseChange) -> JsonObject:
        """No callback: phases have no callback type of their own. The phases are one
        tuple, swapped whole, so a reader's snapshot never changes under it."""
        with self._lock:
            current = next((p for p in self.phases if p["id"] == phase_id), None)
            if current is None:
                raise RecordNotFound("Phase", phase_id)
            now = next_last_updated(current["_info"]["lastUpdated"], self._clock())
            fields: JsonObject = {}
            if isinstance(change.description, str):
                fields["description"] = change.description
            if isinstance(change.status, str):
                status = self._find(self.phase_statuses, "name", change.status, "phase status")
                fields["status"] = phase_status_ref(status)
            phase = touched(current, now, SANDBOX_USER, **fields)
            self.phases = tuple(phase if p["id"] == phase_id else p for p in self.phases)
        return phase


def _sla_after(ticket: JsonObject, *, closed: bool, now: str) -> JsonObject:
    """A ticket's SLA facts after a change: kept, and a close stamps `dateResolved` (and
    the steps before it, if skipped) once."""
    sla: JsonObject = {key: ticket[key] for key in SLA_FIELDS if key in ticket}
    if sla and closed:
        for key in ("dateResponded", "dateResplan", "dateResolved"):
            sla.setdefault(key, now)
    return sla


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
