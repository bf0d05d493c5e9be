"""Seeded projects, phases, team members and project tickets. They draw from their own
random stream (`projects:{seed}`), so adding them left every seeded service ticket as
it was. Their number follows the service ticket count (`project_counts`): one project
per 20 service tickets and one project ticket per 5, capped at 250 and 5 000.

Guarantees: every fifth project is closed, the rest open. Of the project tickets, in
every ten: the first is owned by ``atech`` (open), the fourth lists ``atech`` only as a
resource (open, owned by someone else), the sixth is owned by ``bjones`` (open), the
ninth lists ``bjones`` only as a resource (open) and the tenth is owned by ``atech``
but closed. A project's team is its manager plus everyone owning or working a ticket
of it, plus up to two more members.
"""

from __future__ import annotations

import random
from bisect import bisect
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import Final, TypeVar

from connectwise_sandbox.project_records import (
    phase_record,
    phase_status_ref,
    project_record,
    status_record,
    team_member_record,
)
from connectwise_sandbox.records import (
    JsonObject,
    TimestampFormatter,
    as_project_ticket,
    board_ref,
    company_ref,
    member_ref,
    phase_ref,
    priority_ref,
    project_ref,
    status_ref,
    ticket_record,
)
from connectwise_sandbox.vocabulary import (
    CONTACT_FIRST_NAMES,
    CONTACT_LAST_NAMES,
    PHASE_STATUSES,
    PRIORITIES,
    PROJECT_ROLES,
    PROJECT_STATUSES,
    PROJECT_TEMPLATES,
    SEVERITIES,
    SOURCES,
    ProjectTemplate,
    StatusSpec,
)

FIRST_PROJECT_ID: Final = 1
FIRST_PHASE_ID: Final = 1
# Real ConnectWise numbers service and project tickets from one sequence. Project tickets
# start above any seeded service ticket (at most 100 000 from 1001), so ids never collide.
FIRST_PROJECT_TICKET_ID: Final = 200_001
SERVICE_TICKETS_PER_PROJECT: Final = 20
SERVICE_TICKETS_PER_PROJECT_TICKET: Final = 5
# Caps that keep a 100 000-ticket seed fast; an MSP's project work is a side line anyway.
MAX_PROJECTS: Final = 250
MAX_PROJECT_TICKETS: Final = 5_000
CLOSED_PROJECT_EVERY: Final = 5
GUARANTEE_EVERY: Final = 10
_DAY: Final = 86_400
_T = TypeVar("_T")

# index % GUARANTEE_EVERY -> (member identifier, how the member is on the ticket)
_GUARANTEED: Final = {
    0: ("atech", "owner"),
    3: ("atech", "resource"),
    5: ("bjones", "owner"),
    8: ("bjones", "resource"),
    9: ("atech", "closed"),
}


# Phase status ids are their position in PHASE_STATUSES plus one.
PHASE_OPEN, PHASE_IN_PROGRESS, PHASE_COMPLETED = 1, 2, 3
CLOSED_PHASE_STATUS_IDS: Final = frozenset(
    index + 1 for index, spec in enumerate(PHASE_STATUSES) if spec.closed
)


def phase_is_closed(phase: JsonObject) -> bool:
    """A phase is closed when its status is one of the closed (seeded) phase statuses."""
    return phase["status"]["id"] in CLOSED_PHASE_STATUS_IDS


@dataclass(frozen=True)
class ProjectData:
    statuses: tuple[JsonObject, ...]
    phase_statuses: tuple[JsonObject, ...]
    projects: tuple[JsonObject, ...]
    phases: tuple[JsonObject, ...]
    team_members: tuple[JsonObject, ...]
    tickets: tuple[JsonObject, ...]
    descriptions: dict[int, str]


def project_counts(service_tickets: int) -> tuple[int, int]:
    """(projects, project tickets) seeded alongside `service_tickets` service tickets."""
    projects = min(MAX_PROJECTS, -(-service_tickets // SERVICE_TICKETS_PER_PROJECT))
    tickets = min(MAX_PROJECT_TICKETS, service_tickets // SERVICE_TICKETS_PER_PROJECT_TICKET)
    return projects, tickets


def project_statuses(created: str) -> tuple[JsonObject, ...]:
    return _statuses(PROJECT_STATUSES, created)


def phase_statuses(created: str) -> tuple[JsonObject, ...]:
    return _statuses(PHASE_STATUSES, created)


def _statuses(specs: Iterable[StatusSpec], created: str) -> tuple[JsonObject, ...]:
    return tuple(
        status_record(index + 1, spec.name, closed=spec.closed, created=created)
        for index, spec in enumerate(specs)
    )


def generate_projects(
    *,
    seed: int,
    service_tickets: int,
    anchor: datetime,
    created: str,
    members: Sequence[JsonObject],
    companies: Sequence[JsonObject],
    boards: Sequence[JsonObject],
    statuses: Sequence[JsonObject],
    priorities: Sequence[JsonObject],
) -> ProjectData:
    """`members` are the technicians (no API member); `boards` the project boards."""
    phase_status_records = phase_statuses(created)
    builder = _Builder(
        random.Random(f"projects:{seed}"), anchor, members, companies, phase_status_records
    )
    project_count, ticket_count = project_counts(service_tickets)
    status_records = project_statuses(created)
    for index in range(project_count):
        builder.add_project(index, status_records, boards)
    builder.add_tickets(ticket_count, statuses, priorities)
    return ProjectData(
        statuses=status_records,
        phase_statuses=phase_status_records,
        projects=tuple(builder.projects),
        phases=tuple(builder.phases),
        team_members=builder.team(),
        tickets=tuple(builder.tickets),
        descriptions=builder.descriptions,
    )


class _Builder:
    def __init__(
        self,
        rng: random.Random,
        anchor: datetime,
        members: Sequence[JsonObject],
        companies: Sequence[JsonObject],
        phase_statuses: Sequence[JsonObject],
    ) -> None:
        self._random = rng.random
        self._phase_status_refs = {s["id"]: phase_status_ref(s) for s in phase_statuses}
        self._stamp = TimestampFormatter()
        self._anchor = int(anchor.timestamp())
        self._active = [m for m in members if not m["inactiveFlag"]]
        self._by_identifier = {m["identifier"]: m for m in members}
        self._refs = {m["identifier"]: member_ref(m) for m in members}
        self._companies = companies
        self.projects: list[JsonObject] = []
        self.phases: list[JsonObject] = []
        self.tickets: list[JsonObject] = []
        self.descriptions: dict[int, str] = {}
        self._templates: dict[int, ProjectTemplate] = {}
        self._entered: dict[int, int] = {}
        self._phases_of: dict[int, list[JsonObject]] = {}
        self._workers: dict[int, dict[str, str]] = {}  # project -> identifier -> role

    def _choice(self, options: Sequence[_T]) -> _T:
        return options[int(self._random() * len(options))]

    def _between(self, start: int, stop: int) -> int:
        return start + int(self._random() * max(stop - start, 1))

    def add_project(
        self, index: int, statuses: Sequence[JsonObject], boards: Sequence[JsonObject]
    ) -> None:
        project_id = FIRST_PROJECT_ID + index
        template = self._choice(PROJECT_TEMPLATES)
        company = self._choice(self._companies)
        board = next(b for b in boards if b["name"] == template.board)
        closed = index % CLOSED_PROJECT_EVERY == CLOSED_PROJECT_EVERY - 1
        open_statuses = [s for s in statuses if not s["closedFlag"]]
        status = next(s for s in statuses if s["closedFlag"]) if closed else None
        status = status or self._choice(open_statuses)
        manager = self._choice(self._active)
        if closed:
            start = self._anchor - self._between(150, 300) * _DAY
            end = min(start + self._between(30, 120) * _DAY, self._anchor - _DAY)
        else:
            start = self._anchor - self._between(10, 150) * _DAY
            end = start + self._between(60, 180) * _DAY
        entered = start - self._between(3, 20) * _DAY
        updated = end if closed else self._between(entered, self._anchor)
        name = f"{company['name']} - {template.name}"
        self.projects.append(
            project_record(
                project_id=project_id,
                name=name,
                status={"id": status["id"], "name": status["name"]},
                closed=closed,
                company=company_ref(company),
                board=board_ref(board),
                manager=self._refs[manager["identifier"]],
                estimated_start=self._stamp(start),
                estimated_end=self._stamp(end),
                description=f"{template.name} for {company['name']}.",
                date_entered=self._stamp(entered),
                entered_by=manager["identifier"],
                last_updated=self._stamp(updated),
                updated_by=manager["identifier"],
            )
        )
        self._templates[project_id] = template
        self._entered[project_id] = entered
        self._workers[project_id] = {manager["identifier"]: PROJECT_ROLES[0]}
        self._add_phases(project_id, template, closed, start, end)

    def _add_phases(
        self, project_id: int, template: ProjectTemplate, closed: bool, start: int, end: int
    ) -> None:
        count = len(template.phases)
        span = (end - start) // count
        progress = (self._anchor - start) / max(end - start, 1)
        current = count if closed else min(count - 1, max(0, int(progress * count)))
        phases: list[JsonObject] = []
        for position, description in enumerate(template.phases):
            if position < current:
                status_id = PHASE_COMPLETED
            elif position == current:
                status_id = PHASE_IN_PROGRESS
            else:
                status_id = PHASE_OPEN
            phase_start = start + position * span
            phases.append(
                phase_record(
                    phase_id=FIRST_PHASE_ID + len(self.phases) + position,
                    project_id=project_id,
                    description=description,
                    wbs_code=str(position + 1),
                    status=self._phase_status_refs[status_id],
                    scheduled_start=self._stamp(phase_start),
                    scheduled_end=self._stamp(phase_start + span),
                    last_updated=self._stamp(min(phase_start, self._anchor)),
                )
            )
        self.phases.extend(phases)
        self._phases_of[project_id] = phases

    def add_tickets(
        self, count: int, statuses: Sequence[JsonObject], priorities: Sequence[JsonObject]
    ) -> None:
        if not self.projects:
            return
        open_projects = [p for p in self.projects if not p["closedFlag"]] or self.projects
        open_phases = {
            project_id: [p for p in phases if not phase_is_closed(p)] or phases
            for project_id, phases in self._phases_of.items()
        }
        # Reference shapes are built once and shared, as the service tickets' are.
        status_refs: dict[tuple[int, bool], list[JsonObject]] = {}
        for status in statuses:
            key = (status["board"]["id"], bool(status["closedStatus"]))
            status_refs.setdefault(key, []).append(status_ref(status))
        priority_refs = [priority_ref(priority) for priority in priorities]
        weights = list(accumulate(spec.weight for spec in PRIORITIES))
        sources = [{"id": index + 1, "name": name} for index, name in enumerate(SOURCES)][:3]
        project_refs = {p["id"]: project_ref(p) for p in self.projects}
        phase_refs = {p["id"]: phase_ref(p) for p in self.phases}
        wbs_counters: Counter[int] = Counter()
        random_, choice, stamp = self._random, self._choice, self._stamp
        for index in range(count):
            ticket_id = FIRST_PROJECT_TICKET_ID + index
            guaranteed = _GUARANTEED.get(index % GUARANTEE_EVERY)
            project = choice(open_projects if guaranteed else self.projects)
            project_id = project["id"]
            if guaranteed is not None:
                closed = guaranteed[1] == "closed"
            else:
                closed = project["closedFlag"] or random_() < 0.25
            phase = choice(self._phases_of[project_id] if closed else open_phases[project_id])
            status = choice(status_refs[(project["board"]["id"], closed)])
            owner, resources = self._people(guaranteed, closed)
            priority = priority_refs[bisect(weights, random_() * weights[-1])]
            summary = choice(self._templates[project_id].tasks)
            entered = self._between(self._entered[project_id], self._anchor)
            updated = self._between(entered, self._anchor)
            required = phase["scheduledEnd"] if random_() < 0.6 else None
            first, last = choice(CONTACT_FIRST_NAMES), choice(CONTACT_LAST_NAMES)
            email_user = f"{first}.{last}".lower().replace("'", "")
            budget = choice((1.0, 2.0, 4.0, 8.0, 16.0))
            wbs_counters[phase["id"]] += 1
            manager = project["manager"]["identifier"]
            ticket = ticket_record(
                ticket_id=ticket_id,
                summary=summary,
                board=project["board"],
                status=status,
                closed=closed,
                priority=priority,
                company=project["company"],
                contact_name=f"{first} {last}",
                contact_email=f"{email_user}@{project['company']['identifier'].lower()}.example",
                owner=owner,
                resources=resources,
                required_date=required,
                severity=choice(SEVERITIES),
                impact=choice(SEVERITIES),
                source=choice(sources),
                budget_hours=budget,
                actual_hours=round(random_() * budget * 4) / 4,
                date_entered=stamp(entered),
                entered_by=manager,
                last_updated=stamp(updated),
                updated_by=owner["identifier"] if owner else manager,
            )
            self.tickets.append(
                as_project_ticket(
                    ticket,
                    project=project_refs[project_id],
                    phase=phase_refs[phase["id"]],
                    wbs_code=f"{phase['wbsCode']}.{wbs_counters[phase['id']]}",
                )
            )
            self.descriptions[ticket_id] = (
                f"{summary}. Part of {project['name']}, phase {phase['description']}."
            )
            workers = self._workers[project_id]
            for identifier in ([owner["identifier"]] if owner else []) + resources:
                workers.setdefault(identifier, PROJECT_ROLES[2])

    def _people(
        self, guaranteed: tuple[str, str] | None, closed: bool
    ) -> tuple[JsonObject | None, list[str]]:
        """The owner (a member reference) and the resources (identifiers) of one project
        ticket."""
        refs = self._refs
        if guaranteed is not None:
            identifier, how = guaranteed
            if how == "resource":
                others = [m for m in self._active if m["identifier"] != identifier]
                holder = refs[self._choice(others)["identifier"]]
                return holder, [holder["identifier"], identifier]
            return refs[identifier], [identifier]
        owner: JsonObject | None = refs[self._choice(self._active)["identifier"]]
        if not closed and self._random() < 0.15:
            owner = None  # not picked up yet
        resources = [owner["identifier"]] if owner and self._random() < 0.85 else []
        if self._random() < 0.3:
            extra = self._choice(self._active)["identifier"]
            if extra not in resources:
                resources.append(extra)
        return owner, resources

    def team(self) -> tuple[JsonObject, ...]:
        """Each project's team: its workers, then up to two more members, by member id."""
        members: list[JsonObject] = []
        for project in self.projects:
            workers = self._workers[project["id"]]
            for _ in range(int(self._random() * 3)):
                workers.setdefault(self._choice(self._active)["identifier"], PROJECT_ROLES[1])
            ordered = sorted(workers, key=lambda identifier: self._by_identifier[identifier]["id"])
            for identifier in ordered:
                role = workers[identifier]
                members.append(
                    team_member_record(
                        team_member_id=len(members) + 1,
                        project_id=project["id"],
                        member=self._refs[identifier],
                        role={"id": PROJECT_ROLES.index(role) + 1, "name": role},
                        start=project["estimatedStart"],
                        end=project["estimatedEnd"],
                        last_updated=project["_info"]["dateEntered"],
                    )
                )
        return tuple(members)
