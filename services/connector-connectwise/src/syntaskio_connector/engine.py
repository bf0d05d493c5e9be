"""One sync run for one integration and its team (the member of a personal connection,
the mapped members of a tenant connection: `IntegrationRef.members`), with one listing
per entity for the whole team, however many members it has: the members' open schedule
entries first (they assign tickets), then service and project tickets, each in the mode
its cursor calls for, then the state of the projects the members' tickets are in and — when the
connection asks for them (`SyncOptions.project_phases`) — the open phases of those
projects.

Per entity and page: classify each record for every member (`assignment.py`), publish
the raw events — one per member it is assigned to, and a removal for each member it left
— wait for Kafka's acks, then record the page (`tracking.py`). A run that dies resumes
after its last recorded page. When the team changes (a member mapped or unmapped), the
tickets are listed in full once, so each member's set is right again.

Schedule entries: a member's open "S" entries are few, so every run lists all of them
(one request per 1000). An entry that is done, deleted or given to someone else is no
longer listed, so its ticket is looked at again in the same run, not at the hourly
reconciliation. Tickets whose schedule changed are asked for inside that run's ticket
listing (`… or id in (…)`), which costs no request of its own; the schedule's new state
is recorded after the tickets, so a crash in between compares again.

Projects: a project ticket is not open work while its project is closed. The state of
each project the member's open tickets are in (`project/projects`, `id in (…)`, a few
fields, one request per 100 projects) is read when a ticket of it is first seen, when a
`Project` callback names it, and otherwise at most once per `SyncPolicy.project_refresh`.
A project found closed takes its tickets off the dashboard; one found reopened has the
member's tickets in it listed again.

Phases (off by default): the open phases of the open projects the member works on are
listed per project (`project/projects/{id}/phases`, `status/id not in (closed phase
statuses)`) whenever the project's state is read, and at once for a project newly worked
on; the phases of a project closed, gone or left are tombstoned without a request.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Collection, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from faststream.kafka import KafkaBroker

from syntaskio_common import topics
from syntaskio_common.connectwise import ConnectWiseClient
from syntaskio_common.connectwise_conditions import Condition, F
from syntaskio_common.events import KafkaRecord
from syntaskio_common.integrations import SyncOptions
from syntaskio_common.kafka import publish_all
from syntaskio_common.task import parse_timestamp
from syntaskio_connector.assignment import (
    IDS_ONLY_FIELDS,
    PATHS,
    PROJECT_FIELDS,
    PROJECTS_PATH,
    TICKET_ENTITIES,
    Assignments,
    Entity,
    IntegrationRef,
    Member,
    ScheduleEntry,
    assigned_open_tickets,
    changed_tickets,
    digest,
    fingerprint,
    last_updated,
    open_phases,
    open_schedule_entries,
    open_schedule_entry,
    open_tickets_of_projects,
    phase_assignment,
    phase_data,
    phase_fingerprint,
    phase_project,
    phase_started,
    phases_path,
    project_closed,
    project_context,
    project_workers,
    projects_by_id,
    ref_id,
    removed_event,
    team_assignment,
    ticket_data,
    tickets_by_id,
    upserted_event,
)
from syntaskio_connector.metadata import MetadataCache, closed_phase_status_ids, closed_status_ids
from syntaskio_connector.tracking import (
    NO_CURSOR,
    Cursor,
    Mode,
    Progress,
    ProjectState,
    SyncTracking,
    Tracked,
)

# ids per targeted request: long lists go to `/search`, but stay a modest body.
TARGETED_CHUNK = 500
# Projects per state listing: short enough that `id in (…)` stays a GET (ConnectWise
# offers `…/search` for tickets, not for projects).
PROJECT_CHUNK = 100
# A scheduled run lists the members' schedule and each ticket kind at least once: it
# reserves that many requests of the budget at once.
SCHEDULED_RUN_REQUESTS = 1 + len(TICKET_ENTITIES)
DEFAULT_OPTIONS = SyncOptions()


class RawEventSink(Protocol):
    async def publish(self, records: list[KafkaRecord]) -> None:
        """Return once every record is durable."""
        ...


@dataclass(frozen=True)
class KafkaSink:
    broker: KafkaBroker

    async def publish(self, records: list[KafkaRecord]) -> None:
        await publish_all(self.broker, topics.CONNECTWISE_RAW, records)


@dataclass
class RunCounts:
    fetched: int = 0
    published: int = 0
    tombstoned: int = 0
    modes: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Changed:
    """Records we were told changed (a webhook, our own write-back): fetched again
    whatever their `lastUpdated` says, and tombstoned if they are gone."""

    tickets: Mapping[Entity, frozenset[int]] = field(default_factory=dict)
    schedule: bool = False
    # Projects whose state (and phases) are read again now, whatever `project_refresh`
    # says (only those the member's open tickets are in).
    projects: frozenset[int] = frozenset()

    def __bool__(self) -> bool:
        return self.schedule or bool(self.projects) or any(self.tickets.values())


NOTHING_CHANGED = Changed()


@dataclass(frozen=True)
class SyncPolicy:
    overlap: timedelta = timedelta(minutes=5)
    reconcile_every: timedelta = timedelta(hours=1)
    page_size: int = 1000
    # A project's state (and phases) are read at most this often, sooner when a ticket of
    # it is first seen or it is named in `Changed.projects`.
    project_refresh: timedelta = timedelta(hours=1)


@dataclass(frozen=True)
class SchedulePlan:
    """The member's schedule as listed, against what was tracked: recorded after the
    tickets it touches (`ticket_ids`) have been looked at again."""

    published: list[Tracked]
    removed: list[int]
    ticket_ids: frozenset[int]


UNCHANGED_SCHEDULE = SchedulePlan([], [], frozenset())


@dataclass
class _Run:
    """What one run knows while it goes: the client, the member's schedule, counts."""

    client: ConnectWiseClient
    ref: IntegrationRef
    counts: RunCounts
    options: SyncOptions
    schedule: list[ScheduleEntry] = field(default_factory=list)
    priorities: dict[int, dict[str, Any]] = field(default_factory=dict)
    projects: dict[int, ProjectState] | None = None  # read from tracking when first needed
    # A scheduled run reads every cursor and tracked record at its start, in two reads.
    cursors: dict[Entity, Cursor] = field(default_factory=dict)
    tracked: dict[Entity, dict[int, Tracked]] | None = None
    # Projects the project-ticket listing named; complete when `listed_all_projects`.
    referenced_projects: set[int] = field(default_factory=set)
    listed_all_projects: bool = False

    @property
    def schedule_ticket_ids(self) -> set[int]:
        return {entry.ticket_id for entry in self.schedule}

    @property
    def identifiers(self) -> list[str]:
        return [member.identifier for member in self.ref.members]


class IntegrationSync:
    def __init__(
        self,
        tracking: SyncTracking,
        metadata: MetadataCache,
        sink: RawEventSink,
        policy: SyncPolicy | None = None,
    ) -> None:
        self._tracking = tracking
        self._metadata = metadata
        self._sink = sink
        self.policy = policy or SyncPolicy()

    async def run(
        self,
        client: ConnectWiseClient,
        ref: IntegrationRef,
        *,
        reconcile: bool = False,
        resync: bool = False,
        changed: Changed = NOTHING_CHANGED,
        options: SyncOptions = DEFAULT_OPTIONS,
    ) -> RunCounts:
        """A scheduled run: the schedule, then each ticket kind in its due mode
        (`reconcile` forces the id listing, `resync` the full listing with bodies) with
        whatever `changed` names, then the projects (and phases) that are due (`resync`:
        all of them)."""
        run = _Run(client, ref, RunCounts(), options)
        run.cursors = await self._tracking.start(ref)
        run.tracked = await self._tracking.all_tracked(ref)
        plan = await self._list_schedule(run)
        run.priorities = await self._metadata.priorities(client, ref)
        forced = Mode.FULL if resync else Mode.RECONCILE if reconcile else None
        tracked = {
            entity: await self._sync_tickets(
                run, entity, plan.ticket_ids | changed.tickets.get(entity, frozenset()), forced
            )
            for entity in TICKET_ENTITIES
        }
        await self._save_schedule(run, plan)
        projects = set(changed.projects)
        if resync:
            projects |= (await self._project_states(run)).keys()
        await self._sync_projects(run, tracked[Entity.PROJECT_TICKET], projects, scheduled=True)
        return run.counts

    async def refresh(
        self,
        client: ConnectWiseClient,
        ref: IntegrationRef,
        changed: Changed,
        options: SyncOptions = DEFAULT_OPTIONS,
    ) -> RunCounts:
        """Only what `changed` names (a webhook, a write-back): the named tickets are
        fetched by id, and the member's schedule listed again if it changed. When project
        work may have changed, named projects (and projects newly worked on) are read;
        the others wait for their scheduled refresh."""
        await self._tracking.start(ref)
        run = _Run(client, ref, RunCounts(), options)
        if changed.schedule:
            plan = await self._list_schedule(run)
        else:
            plan = UNCHANGED_SCHEDULE
            entries = await self._tracking.tracked(ref, Entity.SCHEDULE_ENTRY)
            run.schedule = [ScheduleEntry.from_data(t.data or {}) for t in entries.values()]
        run.priorities = await self._metadata.priorities(client, ref)
        for entity in TICKET_ENTITIES:
            if ids := plan.ticket_ids | changed.tickets.get(entity, frozenset()):
                tracked = await self._tracking.tracked(ref, entity, ids)
                await self._fetch_named(run, entity, tracked, ids)
        await self._save_schedule(run, plan)
        if changed.projects or plan.ticket_ids or changed.tickets.get(Entity.PROJECT_TICKET):
            tickets = await self._tracking.tracked(ref, Entity.PROJECT_TICKET)
            await self._sync_projects(run, tickets, changed.projects, scheduled=False)
        return run.counts

    # -- schedule entries ---------------------------------------------------------------

    async def _list_schedule(self, run: _Run) -> SchedulePlan:
        """List the members' open "S" entries in full; which tickets' schedule changed."""
        entity, members = Entity.SCHEDULE_ENTRY, run.identifiers
        tracked = await self._tracked(run, entity)
        entries: dict[int, ScheduleEntry] = {}
        if members:
            async for page in run.client.pages(
                PATHS[entity],
                conditions=open_schedule_entries(members),
                forward_only=True,
                page_size=self.policy.page_size,
            ):
                for record in page:
                    if (entry := open_schedule_entry(record, members)) is not None:
                        entries[entry.id] = entry
        run.counts.modes[entity.value] = Mode.FULL.value
        run.schedule = list(entries.values())
        published: list[Tracked] = []
        tickets: set[int] = set()
        for entry in entries.values():
            before, version = tracked.get(entry.id), digest(entry.as_data())
            if before is not None and before.version == version:
                continue
            published.append(Tracked(entry.id, version, entry.as_data()))
            tickets.add(entry.ticket_id)
            if before is not None and before.data:
                tickets.add(ScheduleEntry.from_data(before.data).ticket_id)
        gone = [t for entry_id, t in tracked.items() if entry_id not in entries]
        tickets |= {ScheduleEntry.from_data(t.data or {}).ticket_id for t in gone}
        return SchedulePlan(published, [t.id for t in gone], frozenset(tickets))

    async def _save_schedule(self, run: _Run, plan: SchedulePlan) -> None:
        if plan.published or plan.removed:
            await self._tracking.save_page(
                run.ref,
                Entity.SCHEDULE_ENTRY,
                published=plan.published,
                removed=plan.removed,
                seen=[],
                run_id="",
                progress=None,
            )

    # -- tickets ------------------------------------------------------------------------

    async def _sync_tickets(
        self, run: _Run, entity: Entity, named: Collection[int], forced: Mode | None
    ) -> dict[int, Tracked]:
        """Bring one ticket kind up to date, in the `forced` mode or the one that is due;
        what is tracked for it afterwards. `named` tickets (their schedule changed, or a
        webhook named them) are looked at whatever their `lastUpdated` says."""
        members, team = run.identifiers, run.ref.team_digest
        cursor = run.cursors.get(entity, NO_CURSOR)
        tracked = await self._tracked(run, entity)
        # Cursors from before teams existed were a personal connection's: the same team.
        same_team = cursor.team == team or (cursor.team is None and run.ref.team is None)
        if not members:
            # Nobody mapped yet: nothing is anyone's (what was is tombstoned below).
            progress = self._new_progress(Mode.FULL, None)
        elif cursor.progress is not None and same_team:
            progress = cursor.progress
        elif (cursor.since is None and not tracked) or not same_team or forced is Mode.FULL:
            progress = self._new_progress(Mode.FULL, None)
        elif (
            forced is Mode.RECONCILE
            or self._reconcile_due(cursor.reconciled_at)
            or cursor.since is None
        ):
            progress = self._new_progress(Mode.RECONCILE, cursor.since)
        else:
            progress = self._new_progress(Mode.INCREMENTAL, cursor.since)
        run.counts.modes[entity.value] = progress.mode.value
        resumed_after = progress.after_id
        condition: Condition | None = None
        if not members:
            pass  # nothing to ask for
        elif progress.mode is Mode.INCREMENTAL:
            assert progress.since is not None
            watched = set(tracked) | run.schedule_ticket_ids
            condition = changed_tickets(members, progress.since, watched, named)
        else:
            # The listing of everything open and assigned covers the named tickets too.
            condition = assigned_open_tickets(members, run.schedule_ticket_ids)
        fields = IDS_ONLY_FIELDS[entity] if progress.mode is Mode.RECONCILE else None
        newest = cursor.since
        listed: set[int] = set()
        wrote = False
        pages = (
            self._listing(run, entity, condition, progress, fields)
            if condition is not None
            else _no_pages()
        )
        async for page in pages:
            progress = _past(progress, page)
            listed.update(int(r["id"]) for r in page)
            if entity is Entity.PROJECT_TICKET:
                run.referenced_projects.update(_projects_of(page))
            if progress.mode is Mode.RECONCILE:
                unchanged = {
                    int(r["id"])
                    for r in page
                    if int(r["id"]) not in named
                    and (t := tracked.get(int(r["id"]))) is not None
                    and (t.data or {}).get("last_updated") == last_updated(r)
                }
                stale = [int(r["id"]) for r in page if int(r["id"]) not in unchanged]
                bodies = await self._fetch_by_id(run, entity, stale)
                wrote |= await self._apply(
                    run, entity, tracked, bodies, progress, seen=sorted(unchanged)
                )
            else:
                newest = _newest(newest, page)
                wrote |= await self._apply(run, entity, tracked, page, progress)
        if progress.mode is Mode.INCREMENTAL:
            # A named ticket the listing did not return no longer exists.
            gone = [
                tracked[i]
                for i in sorted(named)
                if i in tracked and i not in listed and i > resumed_after
            ]
        else:
            gone = await self._tracking.unseen(run.ref, entity, progress.run_id)
            run.listed_all_projects |= entity is Entity.PROJECT_TICKET
        await self._tombstone(run, entity, tracked, gone)
        # A listing that wrote nothing saved no progress: the cursor may stay as it was.
        untouched = cursor if not wrote else None
        await self._tracking.finish(run.ref, entity, progress.mode, newest, team, untouched)
        return tracked

    async def _tracked(self, run: _Run, entity: Entity) -> dict[int, Tracked]:
        if run.tracked is not None:
            return run.tracked[entity]
        return await self._tracking.tracked(run.ref, entity)

    async def _fetch_named(
        self, run: _Run, entity: Entity, tracked: dict[int, Tracked], ids: Collection[int]
    ) -> None:
        """Look at these tickets again whatever their `lastUpdated` (a targeted run);
        tracked ones that are gone are tombstoned."""
        bodies = await self._fetch_by_id(run, entity, sorted(ids))
        await self._apply(run, entity, tracked, bodies, None)
        found = {int(record["id"]) for record in bodies}
        await self._tombstone(
            run, entity, tracked, [tracked[i] for i in ids if i in tracked and i not in found]
        )

    async def _apply(
        self,
        run: _Run,
        entity: Entity,
        tracked: dict[int, Tracked],
        records: list[dict[str, Any]],
        progress: Progress | None,
        seen: list[int] | None = None,
    ) -> bool:
        """Publish what changed or left among `records`, then record it (and the
        listing's progress, if this is a listing's page); whether anything was written.
        A page of an incremental listing that changed nothing writes nothing: a run
        that stopped after it lists it again, as the cursor then still says."""
        statuses = await self._metadata.board_statuses(
            run.client, run.ref, filter(None, (ref_id(r.get("board")) for r in records))
        )
        closed = closed_status_ids(statuses)
        closed_projects: set[int] = set()
        if entity is Entity.PROJECT_TICKET:
            closed_projects = await self._closed_projects(run, _projects_of(records))
        now = datetime.now(UTC)
        events: list[KafkaRecord] = []
        published: list[Tracked] = []
        removed: list[int] = []
        seen = list(seen or [])
        # What a full listing returned is marked seen: the tracked records it did not
        # return are no longer the member's (`SyncTracking.unseen`). Other runs need no
        # marks.
        marks_seen = progress is not None and progress.mode is not Mode.INCREMENTAL
        for record in records:
            record_id = int(record["id"])
            before = tracked.get(record_id)
            assigned = team_assignment(
                record, run.ref.members, run.schedule, closed, closed_projects
            )
            version = fingerprint(record, assigned)
            if before is not None and before.version == version:
                if marks_seen:
                    seen.append(record_id)
                continue
            context = _context(record, statuses, run.priorities)
            events += _record_events(
                run.ref, entity, record, before, assigned, version, context, now
            )
            if assigned:
                users = [member.user_id for member in assigned]
                published.append(Tracked(record_id, version, ticket_data(entity, record, users)))
            elif before is not None:
                removed.append(record_id)
        await self._sink.publish(events)
        wrote = bool(published or removed or seen)
        if wrote:
            await self._tracking.save_page(
                run.ref,
                entity,
                published=published,
                removed=removed,
                seen=seen,
                run_id=progress.run_id if progress else "",
                progress=progress,
            )
        run.counts.fetched += len(records)
        run.counts.published += len(published)
        run.counts.tombstoned += len(removed)
        for record_id in removed:
            tracked.pop(record_id, None)
        tracked.update({item.id: item for item in published})
        return wrote

    async def _tombstone(
        self, run: _Run, entity: Entity, tracked: dict[int, Tracked], gone: list[Tracked]
    ) -> None:
        if not gone:
            return
        now = datetime.now(UTC)
        await self._sink.publish(
            [
                removed_event(run.ref, user, entity, str(t.id), t.version, now, _last_updated(t))
                for t in gone
                for user in sorted(run.ref.users_of(t.data))
            ]
        )
        await self._tracking.forget(run.ref, entity, [t.id for t in gone])
        run.counts.tombstoned += len(gone)
        for item in gone:
            tracked.pop(item.id, None)

    # -- projects -----------------------------------------------------------------------

    async def _project_states(self, run: _Run) -> dict[int, ProjectState]:
        if run.projects is None:
            run.projects = await self._tracking.projects(run.ref)
        return run.projects

    async def _closed_projects(self, run: _Run, project_ids: set[int]) -> set[int]:
        """Which of these projects are closed; those never read before are read first."""
        states = await self._project_states(run)
        if unknown := sorted(project_ids - states.keys()):
            await self._read_projects(run, unknown)
        return {p for p in project_ids if project_closed(states[p].project)}

    async def _read_projects(
        self, run: _Run, ids: list[int]
    ) -> list[tuple[ProjectState | None, ProjectState]]:
        """Read the projects' state and record it; each project's state before and after."""
        states = await self._project_states(run)
        found: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), PROJECT_CHUNK):
            async for page in run.client.pages(
                PROJECTS_PATH,
                conditions=projects_by_id(ids[start : start + PROJECT_CHUNK]),
                fields=PROJECT_FIELDS,
                page_size=self.policy.page_size,
            ):
                found.update({int(p["id"]): p for p in page})
        now = datetime.now(UTC)
        changes = []
        for project_id in ids:
            before = states.get(project_id)
            after = ProjectState(
                project_id, found.get(project_id), now, before.phases_at if before else None
            )
            states[project_id] = after
            changes.append((before, after))
        await self._tracking.save_projects(run.ref, [after for _, after in changes])
        return changes

    async def _sync_projects(
        self,
        run: _Run,
        tickets: dict[int, Tracked],
        named: Collection[int],
        *,
        scheduled: bool,
    ) -> None:
        """Read the projects that are due (the module docstring says when); take the
        tickets of projects found closed off the dashboard and list the member's tickets
        of projects found reopened; then the phases. `tickets`: the tracked project
        tickets."""
        entity = Entity.PROJECT_TICKET
        states = await self._project_states(run)
        tickets = await self._backfill_projects(run, tickets)
        worked_on = set(project_workers(run.ref, (t.data for t in tickets.values())))
        if run.listed_all_projects:
            # The full listing named every project the member's open tickets are in.
            unused = [p for p in states if p not in worked_on | run.referenced_projects]
            await self._tracking.forget_projects(run.ref, unused)
            for project_id in unused:
                del states[project_id]
        now, every = datetime.now(UTC), self.policy.project_refresh
        due = sorted(
            p
            for p in states.keys() | worked_on
            if p not in states
            or p in named
            or (scheduled and _refresh_due(states[p].checked_at, now, every))
        )
        changes = await self._read_projects(run, due) if due else []
        closed = {a.project_id for _, a in changes if project_closed(a.project)}
        reopened = {
            a.project_id
            for b, a in changes
            if b is not None and project_closed(b.project) and not project_closed(a.project)
        }
        gone = [t for t in tickets.values() if (t.data or {}).get("project_id") in closed]
        await self._tombstone(run, entity, tickets, gone)
        if reopened:
            await self._list_reopened(run, tickets, reopened)
        workers = project_workers(run.ref, (t.data for t in tickets.values()))
        await self._sync_phases(run, workers, {a.project_id for _, a in changes})

    async def _list_reopened(
        self, run: _Run, tickets: dict[int, Tracked], project_ids: Collection[int]
    ) -> None:
        """The members' open tickets of reopened projects: unchanged themselves, so no
        "changed since" listing returns them."""
        entity = Entity.PROJECT_TICKET
        if not run.identifiers:
            return
        condition = open_tickets_of_projects(run.identifiers, run.schedule_ticket_ids, project_ids)
        records: list[dict[str, Any]] = []
        async for page in run.client.pages(
            PATHS[entity], conditions=condition, forward_only=True, page_size=self.policy.page_size
        ):
            records.extend(page)
        await self._apply(run, entity, tickets, records, None)

    async def _backfill_projects(
        self, run: _Run, project_tickets: dict[int, Tracked]
    ) -> dict[int, Tracked]:
        """Project tickets tracked before their project was kept: their projects, asked
        once (id and project only) and kept from then on."""
        missing = sorted(
            i for i, t in project_tickets.items() if "project_id" not in (t.data or {})
        )
        if not missing:
            return project_tickets
        entity = Entity.PROJECT_TICKET
        found = {
            int(r["id"]): ref_id(r.get("project"))
            for r in await self._fetch_by_id(run, entity, missing, fields=("id", "project"))
        }
        data = {i: {**(project_tickets[i].data or {}), "project_id": found.get(i)} for i in missing}
        await self._tracking.set_data(run.ref, entity, data)
        return project_tickets | {
            i: Tracked(i, project_tickets[i].version, data[i]) for i in missing
        }

    # -- project phases -----------------------------------------------------------------

    async def _sync_phases(
        self, run: _Run, workers: dict[int, set[str]], just_read: set[int]
    ) -> None:
        """With phases on, list the open phases of open projects worked on whose state was
        just read, whose phases were never listed, or whose workers changed; tombstone the
        phases of projects closed, gone or left (all of them, with phases off)."""
        entity = Entity.PROJECT_PHASE
        states = await self._project_states(run)
        tracked = await self._tracked(run, entity)
        open_projects = {
            p
            for p in workers
            if p in states
            and states[p].project is not None
            and not project_closed(states[p].project)
        }
        if not run.options.project_phases:
            open_projects = set()
        left = [t for t in tracked.values() if phase_project(t.data) not in open_projects]
        await self._tombstone(run, entity, tracked, left)
        published_to: dict[int, set[str]] = {}
        for phase in tracked.values():
            if (project := phase_project(phase.data)) is not None:
                published_to.setdefault(project, set()).update(run.ref.users_of(phase.data))
        due = sorted(
            p
            for p in open_projects
            if p in just_read
            or states[p].phases_at is None
            or published_to.get(p, workers[p]) != workers[p]
        )
        if not due:
            return
        run.counts.modes[entity.value] = Mode.FULL.value
        statuses = await self._metadata.phase_statuses(run.client, run.ref)
        closed = closed_phase_status_ids(statuses)
        for project_id in due:
            team = [m for m in run.ref.members if m.user_id in workers[project_id]]
            await self._sync_project_phases(run, tracked, states[project_id], team, closed)

    async def _sync_project_phases(
        self,
        run: _Run,
        tracked: dict[int, Tracked],
        state: ProjectState,
        workers: Collection[Member],
        closed_statuses: Collection[int],
    ) -> None:
        """One open project's open phases, for the members who work on it: publish what
        changed or left, then record the phases and the time."""
        entity, now = Entity.PROJECT_PHASE, datetime.now(UTC)
        project_id, project = state.project_id, state.project or {}
        records: list[dict[str, Any]] = []
        async for page in run.client.pages(
            phases_path(project_id),
            conditions=open_phases(closed_statuses),
            page_size=self.policy.page_size,
        ):
            records.extend(page)
        events: list[KafkaRecord] = []
        published: list[Tracked] = []
        removed: list[int] = []
        listed: set[int] = set()
        for phase in records:
            phase_id = int(phase["id"])
            listed.add(phase_id)
            before = tracked.get(phase_id)
            assigned = phase_assignment(phase, project, workers, closed_statuses)
            context = {"project": project_context(project), "started": phase_started(phase, now)}
            version = phase_fingerprint(phase, assigned, context)
            if before is not None and before.version == version:
                continue
            events += _record_events(
                run.ref, entity, phase, before, assigned, version, context, now
            )
            if assigned:
                users = [member.user_id for member in assigned]
                published.append(Tracked(phase_id, version, phase_data(phase, project_id, users)))
            elif before is not None:
                removed.append(phase_id)
        # Tracked phases the listing left out closed, or went.
        gone = [
            t
            for t in tracked.values()
            if phase_project(t.data) == project_id and t.id not in listed
        ]
        removed += [t.id for t in gone]
        events += [
            removed_event(run.ref, user, entity, str(t.id), t.version, now, _last_updated(t))
            for t in gone
            for user in sorted(run.ref.users_of(t.data))
        ]
        await self._sink.publish(events)
        await self._tracking.save_page(
            run.ref,
            entity,
            published=published,
            removed=removed,
            seen=[],
            run_id="",
            progress=None,
        )
        phases_read = replace(state, phases_at=now)
        await self._tracking.save_projects(run.ref, [phases_read])
        (await self._project_states(run))[project_id] = phases_read
        run.counts.fetched += len(records)
        run.counts.published += len(published)
        run.counts.tombstoned += len(removed)
        for phase_id in removed:
            tracked.pop(phase_id, None)
        tracked.update({item.id: item for item in published})

    # -- listing ------------------------------------------------------------------------

    def _listing(
        self,
        run: _Run,
        entity: Entity,
        condition: Condition,
        progress: Progress,
        fields: tuple[str, ...] | None = None,
    ) -> Any:
        """The pages of a listing in id order, resuming after `progress.after_id`."""
        if progress.after_id:
            condition = condition & (F("id") > progress.after_id)
        return run.client.pages(
            PATHS[entity],
            conditions=condition,
            fields=fields,
            forward_only=True,
            page_size=self.policy.page_size,
        )

    async def _fetch_by_id(
        self,
        run: _Run,
        entity: Entity,
        ids: list[int],
        fields: tuple[str, ...] | None = None,
    ) -> list[dict[str, Any]]:
        records: list[dict[str, Any]] = []
        for start in range(0, len(ids), TARGETED_CHUNK):
            chunk = ids[start : start + TARGETED_CHUNK]
            async for page in run.client.pages(
                PATHS[entity], conditions=tickets_by_id(chunk), fields=fields, forward_only=True
            ):
                records.extend(page)
        return records

    def _new_progress(self, mode: Mode, since: datetime | None) -> Progress:
        window = since - self.policy.overlap if since is not None else None
        return Progress(run_id=uuid.uuid4().hex, mode=mode, after_id=0, since=window)

    def _reconcile_due(self, reconciled_at: datetime | None) -> bool:
        return reconciled_at is None or (
            datetime.now(UTC) - reconciled_at >= self.policy.reconcile_every
        )


def _record_events(
    ref: IntegrationRef,
    entity: Entity,
    record: Mapping[str, Any],
    before: Tracked | None,
    assigned: Assignments,
    version: str,
    context: Mapping[str, Any],
    now: datetime,
) -> list[KafkaRecord]:
    """The record (at `version`, its fingerprint) as each assigned member's task, and a
    removal for each user it was published for before and no longer is (reassigned,
    unmapped, closed or gone)."""
    upserts = [
        upserted_event(ref, member, entity, record, why, version, context, now)
        for member, why in assigned.items()
    ]
    if before is None:
        return upserts
    left = ref.users_of(before.data) - {member.user_id for member in assigned}
    return upserts + [
        removed_event(ref, user, entity, str(before.id), before.version, now, last_updated(record))
        for user in sorted(left)
    ]


async def _no_pages() -> AsyncIterator[list[dict[str, Any]]]:
    """A listing with nothing in it (a team with nobody mapped asks for nothing)."""
    for page in list[list[dict[str, Any]]]():
        yield page


def _refresh_due(checked_at: datetime | None, now: datetime, every: timedelta) -> bool:
    return checked_at is None or now - checked_at >= every


def _projects_of(tickets: Collection[Mapping[str, Any]]) -> set[int]:
    return {p for t in tickets if (p := ref_id(t.get("project"))) is not None}


def _past(progress: Progress, page: list[dict[str, Any]]) -> Progress:
    if not page:
        return progress
    last = max(int(record["id"]) for record in page)
    return Progress(progress.run_id, progress.mode, max(progress.after_id, last), progress.since)


def _newest(current: datetime | None, page: list[dict[str, Any]]) -> datetime | None:
    """The cursor after `page`: the newest `lastUpdated` seen so far."""
    seen = [parse_timestamp(last_updated(record)) for record in page]
    return max(filter(None, [current, *seen]), default=None)


def _last_updated(tracked: Tracked) -> str | None:
    """The record's `lastUpdated` as last published (kept in `ticket_data`/`phase_data`)."""
    value = (tracked.data or {}).get("last_updated")
    return value if isinstance(value, str) and value else None


def _context(
    record: Mapping[str, Any],
    statuses: Mapping[int, Mapping[int, Mapping[str, Any]]],
    priorities: Mapping[int, Mapping[str, Any]],
) -> dict[str, Any]:
    board_id, status_id = ref_id(record.get("board")), ref_id(record.get("status"))
    priority_id = ref_id(record.get("priority"))
    status = statuses.get(board_id or -1, {}).get(status_id or -1)
    priority = priorities.get(priority_id or -1)
    return {
        "status": dict(status) if status else None,
        "priority": dict(priority) if priority else None,
    }
