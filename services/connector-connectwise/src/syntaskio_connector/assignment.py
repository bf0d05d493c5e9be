"""What "assigned to me" means, what to ask ConnectWise for, and which raw events a record
turns into. Pure: no I/O, so it is tested without servers.

A ticket (service or project) is the member's when it is open — not `closedFlag`, and
not in a board status marked `closedStatus` — and the member owns it, is one of its
`resources`, or has an open schedule entry for it (`type` "S", not `doneFlag`). A
project ticket is not open work while its project is closed (`Project.closedFlag`):
nobody works on a closed project's tickets, whatever their own state.

Project phases are tasks only when the connection asks for them (`SyncOptions`):
ConnectWise does not assign phases to members. A phase is the member's when it is open
— its `status` is not a phase status with `closedFlag` (`ProjectPhase` has no
`closedFlag` of its own) — and belongs to an open project the member **works on**: one
where they have at least one open project ticket that is theirs by the rule above. A
phase event's reason is `project_work`; its context carries the project (`id`, `name`,
`company`, `board`, `status`) and whether the phase's scheduled start has passed, and
its fingerprint covers the phase's `lastUpdated` and that context, so a renamed project
or a phase that has started is published again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from syntaskio_common import events
from syntaskio_common.connectwise_conditions import Condition, F, all_of, any_of
from syntaskio_common.events import KafkaRecord
from syntaskio_common.task import parse_timestamp

SCHEDULE_TYPE_TICKET: Final = "S"


class Entity(StrEnum):
    SERVICE_TICKET = "service_ticket"
    PROJECT_TICKET = "project_ticket"
    SCHEDULE_ENTRY = "schedule_entry"  # tracked for assignment, never a task itself
    PROJECT_PHASE = "project_phase"  # listed per project: see `phases_path`


TICKET_ENTITIES: Final = (Entity.SERVICE_TICKET, Entity.PROJECT_TICKET)
PATHS: Final = {
    Entity.SERVICE_TICKET: "service/tickets",
    Entity.PROJECT_TICKET: "project/tickets",
    Entity.SCHEDULE_ENTRY: "schedule/entries",
}
PROJECTS_PATH: Final = "project/projects"
PHASE_STATUSES_PATH: Final = "project/phaseStatuses"
# Enough to notice changes (and, for project tickets, their project), for the
# reconciliation's cheap listing.
IDS_ONLY_FIELDS: Final = {
    Entity.SERVICE_TICKET: ("id", "_info/lastUpdated"),
    Entity.PROJECT_TICKET: ("id", "_info/lastUpdated", "project/id"),
}
# Whether a project is open, and what a phase task shows of it.
PROJECT_FIELDS: Final = ("id", "name", "closedFlag", "company", "board", "status")
PROJECT_WORK: Final = "project_work"


def phases_path(project_id: int) -> str:
    return f"project/projects/{project_id}/phases"


@dataclass(frozen=True)
class IntegrationRef:
    """The integration a sync runs for (from the credential lease)."""

    integration_id: str
    tenant_id: str
    user_id: str
    member_identifier: str
    api_base_url: str
    company_id: str
    generation: int


@dataclass(frozen=True)
class ScheduleEntry:
    """An open "S" schedule entry of the member, as far as assignment needs it."""

    id: int
    ticket_id: int
    date_start: str | None = None
    date_end: str | None = None

    def as_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ticket_id": self.ticket_id,
            "date_start": self.date_start,
            "date_end": self.date_end,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ScheduleEntry:
        return cls(
            int(data["id"]), int(data["ticket_id"]), data.get("date_start"), data.get("date_end")
        )


@dataclass(frozen=True)
class Assignment:
    """Why the ticket is the member's (in a fixed order, so fingerprints are stable)."""

    reasons: tuple[str, ...]
    schedule: tuple[ScheduleEntry, ...] = field(default=())

    def as_data(self) -> dict[str, Any]:
        return {"reasons": list(self.reasons), "schedule": [e.as_data() for e in self.schedule]}


# -- conditions ---------------------------------------------------------------------------


def _mine(member: str) -> list[Condition]:
    return [F("owner/identifier") == member, F("resources").contains(member)]


def assigned_open_tickets(member: str, schedule_ticket_ids: Collection[int] = ()) -> Condition:
    """Open tickets the member owns, is a resource on, or is scheduled for."""
    mine = _mine(member)
    if schedule_ticket_ids:
        mine.append(F("id").in_(sorted(schedule_ticket_ids)))
    return all_of(F("closedFlag").eq(False), any_of(*mine))


def changed_tickets(
    member: str, since: datetime, watched_ids: Collection[int], named_ids: Collection[int] = ()
) -> Condition:
    """Tickets changed since `since` that are the member's now or were before (`watched`):
    closed, reassigned-away ones come back too, so they can be tombstoned. `named` tickets
    come back whatever their `lastUpdated` (their schedule changed, or a webhook named
    them), so one listing serves both."""
    mine = _mine(member)
    if watched_ids:
        mine.append(F("id").in_(sorted(watched_ids)))
    changed = all_of(F("_info/lastUpdated") > since, any_of(*mine))
    return any_of(changed, F("id").in_(sorted(named_ids))) if named_ids else changed


def tickets_by_id(ids: Collection[int]) -> Condition:
    return F("id").in_(sorted(ids))


def projects_by_id(ids: Collection[int]) -> Condition:
    return F("id").in_(sorted(ids))


def open_phases(closed_status_ids: Collection[int]) -> Condition | None:
    """A phase's state is its status; None (every phase) when no phase status is closed."""
    return F("status/id").not_in(sorted(closed_status_ids)) if closed_status_ids else None


def open_tickets_of_projects(
    member: str, schedule_ticket_ids: Collection[int], project_ids: Collection[int]
) -> Condition:
    """The member's open tickets in these projects (reopened ones)."""
    return assigned_open_tickets(member, schedule_ticket_ids) & F("project/id").in_(
        sorted(project_ids)
    )


def _member_schedule(member: str) -> list[Condition]:
    return [F("type/identifier") == SCHEDULE_TYPE_TICKET, F("member/identifier") == member]


def open_schedule_entries(member: str) -> Condition:
    return all_of(*_member_schedule(member), F("doneFlag").eq(False))


# -- classification -----------------------------------------------------------------------


def last_updated(record: Mapping[str, Any]) -> str:
    info = record.get("_info")
    return str(info.get("lastUpdated", "")) if isinstance(info, Mapping) else ""


def _identifier(value: Any) -> str | None:
    if isinstance(value, Mapping) and value.get("identifier") is not None:
        return str(value["identifier"])
    return None


def ref_id(value: Any) -> int | None:
    """The id of a reference (`{"id": 5, "name": …}`), if it has one."""
    if isinstance(value, Mapping) and isinstance(value.get("id"), int):
        return int(value["id"])
    return None


def resources(record: Mapping[str, Any]) -> list[str]:
    """`resources` is one string of member identifiers ("atech, bjones")."""
    value = record.get("resources")
    if not isinstance(value, str):
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def is_closed(record: Mapping[str, Any], closed_status_ids: Collection[int]) -> bool:
    return record.get("closedFlag") is True or ref_id(record.get("status")) in closed_status_ids


def open_schedule_entry(record: Mapping[str, Any], member: str) -> ScheduleEntry | None:
    """The entry as an assignment, or None when it doesn't (or no longer does) assign a
    ticket to the member."""
    kind = record.get("type")
    if not isinstance(kind, Mapping) or kind.get("identifier") != SCHEDULE_TYPE_TICKET:
        return None
    if _identifier(record.get("member")) != member or record.get("doneFlag") is True:
        return None
    ticket_id = record.get("objectId")
    if not isinstance(ticket_id, int) or isinstance(ticket_id, bool):
        return None
    return ScheduleEntry(
        int(record["id"]), ticket_id, record.get("dateStart"), record.get("dateEnd")
    )


def assignment(
    ticket: Mapping[str, Any],
    member: str,
    schedule: Iterable[ScheduleEntry],
    closed_status_ids: Collection[int],
    closed_project_ids: Collection[int] = (),
) -> Assignment | None:
    """Why the open ticket is the member's, or None (closed, in a closed project, or not
    theirs)."""
    if is_closed(ticket, closed_status_ids):
        return None
    if ref_id(ticket.get("project")) in closed_project_ids:
        return None
    reasons = []
    if _identifier(ticket.get("owner")) == member:
        reasons.append("owner")
    if member in resources(ticket):
        reasons.append("resource")
    entries = tuple(sorted((e for e in schedule if e.ticket_id == ticket.get("id")), key=_by_id))
    if entries:
        reasons.append("schedule")
    return Assignment(tuple(reasons), entries) if reasons else None


def _by_id(entry: ScheduleEntry) -> int:
    return entry.id


def ticket_data(entity: Entity, record: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept of a published ticket: its `lastUpdated` (the reconciliation compares
    it) and, for a project ticket, its project (the member's projects, for phases)."""
    data: dict[str, Any] = {"last_updated": last_updated(record)}
    if entity is Entity.PROJECT_TICKET:
        data["project_id"] = ref_id(record.get("project"))
    return data


def worked_on_projects(tickets: Iterable[Mapping[str, Any] | None]) -> set[int]:
    """The projects the member works on, from what is kept of their tracked (open,
    assigned) project tickets (`ticket_data`)."""
    found = (data.get("project_id") for data in tickets if data)
    return {p for p in found if isinstance(p, int) and not isinstance(p, bool)}


def project_context(project: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a project a phase's task shows (and its fingerprint covers)."""
    return {key: project.get(key) for key in ("id", "name", "company", "board", "status")}


def phase_started(phase: Mapping[str, Any], now: datetime) -> bool:
    start = parse_timestamp(phase.get("scheduledStart"))
    return start is not None and start <= now


def project_closed(project: Mapping[str, Any] | None) -> bool:
    """Only a project known to be closed; one out of sight (None) is not known closed."""
    return project is not None and project.get("closedFlag") is True


def phase_assignment(
    phase: Mapping[str, Any],
    project: Mapping[str, Any] | None,
    worked_on: Collection[int],
    closed_phase_status_ids: Collection[int],
) -> Assignment | None:
    """Why the phase is the member's, or None: its status is closed, its project is
    closed or gone (None), it is not that project's, or the member does not work on the
    project."""
    if project is None or project_closed(project):
        return None
    if ref_id(phase.get("status")) in closed_phase_status_ids:
        return None
    project_id = ref_id(project)
    if project_id is None or project_id not in worked_on:
        return None
    if phase.get("projectId") not in (None, project_id):
        return None
    return Assignment((PROJECT_WORK,))


def phase_project(data: Mapping[str, Any] | None) -> int | None:
    """The project a tracked phase belongs to (what `phase_data` kept)."""
    value = (data or {}).get("project_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def phase_data(phase: Mapping[str, Any], project_id: int) -> dict[str, Any]:
    return {"last_updated": last_updated(phase), "project_id": project_id}


def digest(data: Any) -> str:
    """A short, stable hash of JSON-able data: what a published version is compared by."""
    payload = json.dumps(data, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def fingerprint(record: Mapping[str, Any], assigned: Assignment) -> str:
    """Changes when the record or why it is the member's changes (a new schedule entry
    changes the due date without touching the ticket)."""
    return digest([last_updated(record), assigned.as_data()])


def phase_fingerprint(
    phase: Mapping[str, Any], assigned: Assignment, context: Mapping[str, Any]
) -> str:
    """Changes when the phase changes, or what its event says of its project (renamed,
    moved) or of its start (scheduled start passed) — none of which moves the phase's
    own `lastUpdated`."""
    return digest([last_updated(phase), assigned.as_data(), dict(context)])


# -- raw events ---------------------------------------------------------------------------


def _source(ref: IntegrationRef) -> str:
    return f"/syntaskio/connector-connectwise/integrations/{ref.integration_id}"


def _envelope(ref: IntegrationRef, entity: Entity, record_id: str) -> dict[str, Any]:
    return {
        "integration_id": ref.integration_id,
        "integration_generation": ref.generation,
        "tenant_id": ref.tenant_id,
        "user_id": ref.user_id,
        "member_identifier": ref.member_identifier,
        "api_base_url": ref.api_base_url,
        "company_id": ref.company_id,
        "entity": entity.value,
        "external_id": record_id,
    }


def upserted_event(
    ref: IntegrationRef,
    entity: Entity,
    record: Mapping[str, Any],
    assigned: Assignment,
    version: str,
    context: Mapping[str, Any],
    observed_at: datetime,
) -> KafkaRecord:
    """`version` is the record's `fingerprint` (the caller has it already); `context`
    carries the metadata the record only points at (its board status with
    `closedStatus`, its priority with `sortOrder`), so normalising needs no lookups.
    `observed_at` (when the record was read) orders versions that share a `lastUpdated`
    (a schedule entry added or removed does not touch the ticket)."""
    record_id = str(record["id"])
    return events.encode_event(
        # Same record version → same id, so a replay is recognisable as a duplicate; a
        # reconnect (new generation) publishes afresh.
        event_id=f"g{ref.generation}/{entity.value}/{record_id}/{version}",
        source=_source(ref),
        event_type=events.CONNECTWISE_RECORD_UPSERTED,
        subject=f"{entity.value}/{record_id}",
        key=f"{ref.integration_id}/{entity.value}/{record_id}",
        data={
            **_envelope(ref, entity, record_id),
            "last_updated": last_updated(record),
            "observed_at": observed_at.isoformat(),
            "record": dict(record),
            "assignment": assigned.as_data(),
            "context": dict(context),
        },
    )


def removed_event(
    ref: IntegrationRef,
    entity: Entity,
    record_id: str,
    last_seen_version: str,
    observed_at: datetime,
    last_updated: str | None,
) -> KafkaRecord:
    """The record left the member's open, assigned set (closed, reassigned or deleted).
    `last_updated` is the record's `lastUpdated` as last read (None if never known): the
    removal outranks every version up to it, and a later one (reopened) outranks it."""
    data = {**_envelope(ref, entity, record_id), "observed_at": observed_at.isoformat()}
    if last_updated:
        data["last_updated"] = last_updated
    return events.encode_event(
        event_id=f"g{ref.generation}/{entity.value}/{record_id}/{last_seen_version}/removed",
        source=_source(ref),
        event_type=events.CONNECTWISE_RECORD_REMOVED,
        subject=f"{entity.value}/{record_id}",
        key=f"{ref.integration_id}/{entity.value}/{record_id}",
        data=data,
    )
