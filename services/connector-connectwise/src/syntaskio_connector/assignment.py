"""What "assigned to me" means, what to ask ConnectWise for, and which raw events a record
turns into. Pure: no I/O, so it is tested without servers.

A connection syncs a team: one member for a personal connection, every mapped member for
a tenant connection (`IntegrationRef.members`). Each record is listed and tracked once
for the connection, classified for every member, and turned into raw events per member
it is assigned to (the event's `user_id` is that member's user).

A ticket (service or project) is a member's when it is open — not `closedFlag`, and
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


@dataclass(frozen=True, order=True)
class Member:
    """A ConnectWise member whose work is synced, and the user it is shown to."""

    identifier: str
    user_id: str


@dataclass(frozen=True)
class IntegrationRef:
    """The integration a sync runs for (from the credential lease). A personal
    connection's team is its own member (`user_id`, `member_identifier`); a tenant
    connection names its mapped members in `team` (and may have none yet)."""

    integration_id: str
    tenant_id: str
    user_id: str
    member_identifier: str
    api_base_url: str
    company_id: str
    generation: int
    team: tuple[Member, ...] | None = None

    @property
    def members(self) -> tuple[Member, ...]:
        if self.team is not None:
            return self.team
        return (Member(self.member_identifier, self.user_id),)

    def member_for(self, user_id: str) -> Member | None:
        return next((m for m in self.members if m.user_id == user_id), None)

    @property
    def team_digest(self) -> str:
        """Changes when a member is mapped, unmapped or remapped (a personal connection's
        is fixed): the tickets are then listed in full again."""
        return digest(sorted([m.identifier, m.user_id] for m in self.members))

    def users_of(self, data: Mapping[str, Any] | None) -> set[str]:
        """The users a tracked record was last published for (`ticket_data` keeps them;
        records tracked before teams existed were a personal connection's own)."""
        users = (data or {}).get("users")
        if isinstance(users, list):
            return {str(u) for u in users}
        return {self.user_id} if self.team is None else set()


@dataclass(frozen=True)
class ScheduleEntry:
    """An open "S" schedule entry of a team member, as far as assignment needs it.
    `member` is "" for entries tracked before teams existed (a personal connection's)."""

    id: int
    ticket_id: int
    date_start: str | None = None
    date_end: str | None = None
    member: str = ""

    def as_data(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "ticket_id": self.ticket_id,
            "date_start": self.date_start,
            "date_end": self.date_end,
            "member": self.member,
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ScheduleEntry:
        return cls(
            int(data["id"]),
            int(data["ticket_id"]),
            data.get("date_start"),
            data.get("date_end"),
            str(data.get("member") or ""),
        )

    def of(self, member: str) -> bool:
        return self.member in (member, "")


@dataclass(frozen=True)
class Assignment:
    """Why the ticket is the member's (in a fixed order, so fingerprints are stable)."""

    reasons: tuple[str, ...]
    schedule: tuple[ScheduleEntry, ...] = field(default=())

    def as_data(self) -> dict[str, Any]:
        return {"reasons": list(self.reasons), "schedule": [e.as_data() for e in self.schedule]}


# -- conditions ---------------------------------------------------------------------------


Identifiers = Collection[str]


def _identifiers(members: Identifiers) -> list[str]:
    if isinstance(members, str):  # a string is a collection of one-letter "members"
        raise TypeError("members must be a collection of identifiers, not one string")
    return sorted(set(members))


def _is(field_name: str, members: Identifiers) -> Condition:
    """`field = "x"` for one member, `field in ("x", "y")` for a team."""
    wanted = _identifiers(members)
    return F(field_name) == wanted[0] if len(wanted) == 1 else F(field_name).in_(wanted)


def _mine(members: Identifiers) -> list[Condition]:
    """Owned by, or a resource on, any of the members (`resources` is one string, so
    each member is a `contains` of its own)."""
    return [
        _is("owner/identifier", members),
        *(F("resources").contains(m) for m in _identifiers(members)),
    ]


def assigned_open_tickets(
    members: Identifiers, schedule_ticket_ids: Collection[int] = ()
) -> Condition:
    """Open tickets a member owns, is a resource on, or is scheduled for."""
    mine = _mine(members)
    if schedule_ticket_ids:
        mine.append(F("id").in_(sorted(schedule_ticket_ids)))
    return all_of(F("closedFlag").eq(False), any_of(*mine))


def changed_tickets(
    members: Identifiers,
    since: datetime,
    watched_ids: Collection[int],
    named_ids: Collection[int] = (),
) -> Condition:
    """Tickets changed since `since` that are a member's now or were before (`watched`):
    closed, reassigned-away ones come back too, so they can be tombstoned. `named` tickets
    come back whatever their `lastUpdated` (their schedule changed, or a webhook named
    them), so one listing serves both."""
    mine = _mine(members)
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
    members: Identifiers, schedule_ticket_ids: Collection[int], project_ids: Collection[int]
) -> Condition:
    """The members' open tickets in these projects (reopened ones)."""
    return assigned_open_tickets(members, schedule_ticket_ids) & F("project/id").in_(
        sorted(project_ids)
    )


def open_schedule_entries(members: Identifiers) -> Condition:
    return all_of(
        F("type/identifier") == SCHEDULE_TYPE_TICKET,
        _is("member/identifier", members),
        F("doneFlag").eq(False),
    )


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


def open_schedule_entry(record: Mapping[str, Any], members: Identifiers) -> ScheduleEntry | None:
    """The entry as an assignment, or None when it doesn't (or no longer does) assign a
    ticket to one of the members."""
    kind = record.get("type")
    if not isinstance(kind, Mapping) or kind.get("identifier") != SCHEDULE_TYPE_TICKET:
        return None
    member = _identifier(record.get("member"))
    if member is None or member not in _identifiers(members) or record.get("doneFlag") is True:
        return None
    ticket_id = record.get("objectId")
    if not isinstance(ticket_id, int) or isinstance(ticket_id, bool):
        return None
    return ScheduleEntry(
        int(record["id"]), ticket_id, record.get("dateStart"), record.get("dateEnd"), member
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
    entries = tuple(
        sorted(
            (e for e in schedule if e.ticket_id == ticket.get("id") and e.of(member)), key=_by_id
        )
    )
    if entries:
        reasons.append("schedule")
    return Assignment(tuple(reasons), entries) if reasons else None


Assignments = dict[Member, Assignment]


def team_assignment(
    ticket: Mapping[str, Any],
    members: Iterable[Member],
    schedule: Iterable[ScheduleEntry],
    closed_status_ids: Collection[int],
    closed_project_ids: Collection[int] = (),
) -> Assignments:
    """Every member the open ticket is assigned to, and why (empty: nobody's)."""
    entries = list(schedule)
    found = {
        member: assignment(
            ticket, member.identifier, entries, closed_status_ids, closed_project_ids
        )
        for member in members
    }
    return {member: why for member, why in sorted(found.items()) if why is not None}


def _by_id(entry: ScheduleEntry) -> int:
    return entry.id


def ticket_data(entity: Entity, record: Mapping[str, Any], users: Iterable[str]) -> dict[str, Any]:
    """What is kept of a published ticket: its `lastUpdated` (the reconciliation compares
    it), the users it was published for (so each can be told when it leaves them) and,
    for a project ticket, its project (the projects members work on, for phases)."""
    data: dict[str, Any] = {"last_updated": last_updated(record), "users": sorted(users)}
    if entity is Entity.PROJECT_TICKET:
        data["project_id"] = ref_id(record.get("project"))
    return data


def project_workers(
    ref: IntegrationRef, tickets: Iterable[Mapping[str, Any] | None]
) -> dict[int, set[str]]:
    """Per project, the users who work on it: those its tracked (open, assigned) project
    tickets were published for (from what `ticket_data` kept)."""
    workers: dict[int, set[str]] = {}
    for data in tickets:
        project = (data or {}).get("project_id")
        if isinstance(project, int) and not isinstance(project, bool):
            workers.setdefault(project, set()).update(ref.users_of(data))
    return {p: users for p, users in workers.items() if users}


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
    workers: Iterable[Member],
    closed_phase_status_ids: Collection[int],
) -> Assignments:
    """The members the phase is assigned to (those who work on its project), or none:
    its status is closed, its project is closed or gone (None), or it is not that
    project's."""
    if project is None or project_closed(project):
        return {}
    if ref_id(phase.get("status")) in closed_phase_status_ids:
        return {}
    project_id = ref_id(project)
    if project_id is None or phase.get("projectId") not in (None, project_id):
        return {}
    return {member: Assignment((PROJECT_WORK,)) for member in sorted(workers)}


def phase_project(data: Mapping[str, Any] | None) -> int | None:
    """The project a tracked phase belongs to (what `phase_data` kept)."""
    value = (data or {}).get("project_id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def phase_data(phase: Mapping[str, Any], project_id: int, users: Iterable[str]) -> dict[str, Any]:
    return {"last_updated": last_updated(phase), "project_id": project_id, "users": sorted(users)}


def digest(data: Any) -> str:
    """A short, stable hash of JSON-able data: what a published version is compared by."""
    payload = json.dumps(data, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def _assignments_data(assigned: Assignments) -> list[Any]:
    return [[m.user_id, m.identifier, why.as_data()] for m, why in sorted(assigned.items())]


def fingerprint(record: Mapping[str, Any], assigned: Assignments) -> str:
    """Changes when the record, or to whom and why it is assigned, changes (a new
    schedule entry changes the due date without touching the ticket)."""
    return digest([last_updated(record), _assignments_data(assigned)])


def phase_fingerprint(
    phase: Mapping[str, Any], assigned: Assignments, context: Mapping[str, Any]
) -> str:
    """Changes when the phase changes, who works on its project, or what its event says
    of its project (renamed, moved) or of its start (scheduled start passed) — none of
    which moves the phase's own `lastUpdated`."""
    return digest([last_updated(phase), _assignments_data(assigned), dict(context)])


# -- raw events ---------------------------------------------------------------------------


def _source(ref: IntegrationRef) -> str:
    return f"/syntaskio/connector-connectwise/integrations/{ref.integration_id}"


def _envelope(
    ref: IntegrationRef, user_id: str, member: str | None, entity: Entity, record_id: str
) -> dict[str, Any]:
    return {
        "integration_id": ref.integration_id,
        "integration_generation": ref.generation,
        "tenant_id": ref.tenant_id,
        "user_id": user_id,
        "member_identifier": member,
        "api_base_url": ref.api_base_url,
        "company_id": ref.company_id,
        "entity": entity.value,
        "external_id": record_id,
    }


def upserted_event(
    ref: IntegrationRef,
    member: Member,
    entity: Entity,
    record: Mapping[str, Any],
    assigned: Assignment,
    version: str,
    context: Mapping[str, Any],
    observed_at: datetime,
) -> KafkaRecord:
    """The record as `member`'s task. `version` is the record's `fingerprint` (the
    caller has it already); `context`
    carries the metadata the record only points at (its board status with
    `closedStatus`, its priority with `sortOrder`), so normalising needs no lookups.
    `observed_at` (when the record was read) orders versions that share a `lastUpdated`
    (a schedule entry added or removed does not touch the ticket)."""
    record_id = str(record["id"])
    return events.encode_event(
        # Same record version → same id, so a replay is recognisable as a duplicate; a
        # reconnect (new generation) publishes afresh.
        event_id=f"g{ref.generation}/{member.user_id}/{entity.value}/{record_id}/{version}",
        source=_source(ref),
        event_type=events.CONNECTWISE_RECORD_UPSERTED,
        subject=f"{entity.value}/{record_id}",
        key=f"{ref.integration_id}/{entity.value}/{record_id}",
        data={
            **_envelope(ref, member.user_id, member.identifier, entity, record_id),
            "last_updated": last_updated(record),
            "observed_at": observed_at.isoformat(),
            "record": dict(record),
            "assignment": assigned.as_data(),
            "context": dict(context),
        },
    )


def removed_event(
    ref: IntegrationRef,
    user_id: str,
    entity: Entity,
    record_id: str,
    last_seen_version: str,
    observed_at: datetime,
    last_updated: str | None,
) -> KafkaRecord:
    """The record left the user's open, assigned set (closed, reassigned, deleted, or the
    user no longer mapped). `last_updated` is the record's `lastUpdated` as last read
    (None if never known): the removal outranks every version up to it, and a later one
    (reopened) outranks it."""
    member = ref.member_for(user_id)
    data = {
        **_envelope(ref, user_id, member.identifier if member else None, entity, record_id),
        "observed_at": observed_at.isoformat(),
    }
    if last_updated:
        data["last_updated"] = last_updated
    return events.encode_event(
        event_id=(
            f"g{ref.generation}/{user_id}/{entity.value}/{record_id}/{last_seen_version}/removed"
        ),
        source=_source(ref),
        event_type=events.CONNECTWISE_RECORD_REMOVED,
        subject=f"{entity.value}/{record_id}",
        key=f"{ref.integration_id}/{entity.value}/{record_id}",
        data=data,
    )
