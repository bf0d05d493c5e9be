"""One sync run for one integration: schedule entries first (they assign tickets), then
service and project tickets, each in the mode its cursor calls for, then the phases of
the projects the member works on.

Per entity and page: classify each record (`assignment.py`), publish the raw events for
what changed or left, wait for Kafka's acks, then record the page (`tracking.py`). A run
that dies resumes after its last recorded page.

Phases: the member works on the projects of their tracked project tickets (see
`assignment.py`). A project's state (`project/projects`, `id in (…)`, a few fields) and
its open phases (`project/projects/{id}/phases`, `closedFlag = false`) are read together
at most once per `SyncPolicy.phase_refresh`, and at once for a project newly worked on or
named in `Changed.projects`; per project, the events are published and then the phases
and the time recorded, so a crash redoes at most that project. Phases that closed or
went, and every phase of a project that closed, went, or the member no longer works on,
are tombstoned. An unchanged scheduled run within the interval asks nothing for phases.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from faststream.kafka import KafkaBroker

from syntaskio_common import topics
from syntaskio_common.connectwise import ConnectWiseClient
from syntaskio_common.connectwise_conditions import Condition, F
from syntaskio_common.events import KafkaRecord
from syntaskio_common.kafka import publish_all
from syntaskio_common.task import parse_timestamp
from syntaskio_connector.assignment import (
    IDS_ONLY_FIELDS,
    PATHS,
    PROJECT_FIELDS,
    PROJECTS_PATH,
    TICKET_ENTITIES,
    Entity,
    IntegrationRef,
    ScheduleEntry,
    assigned_open_tickets,
    assignment,
    changed_schedule_entries,
    changed_tickets,
    digest,
    fingerprint,
    last_updated,
    open_phases,
    open_schedule_entries,
    open_schedule_entry,
    phase_assignment,
    phase_data,
    phase_fingerprint,
    phase_project,
    phase_started,
    phases_path,
    project_context,
    projects_by_id,
    ref_id,
    removed_event,
    ticket_data,
    tickets_by_id,
    upserted_event,
    worked_on_projects,
)
from syntaskio_connector.metadata import MetadataCache, closed_status_ids
from syntaskio_connector.tracking import Mode, Progress, ProjectState, SyncTracking, Tracked

# ids per targeted request: long lists go to `/search`, but stay a modest body.
TARGETED_CHUNK = 500
# Projects per state listing: short enough that `id in (…)` stays a GET (the client
# moves long conditions to `…/search`, which ConnectWise offers for tickets, not for
# projects).
PROJECT_CHUNK = 100


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
    # Projects whose state and phases are read again now, whatever `phase_refresh` says
    # (only those the member works on).
    projects: frozenset[int] = frozenset()

    def __bool__(self) -> bool:
        return self.schedule or bool(self.projects) or any(self.tickets.values())


NOTHING_CHANGED = Changed()


@dataclass(frozen=True)
class SyncPolicy:
    overlap: timedelta = timedelta(minutes=5)
    reconcile_every: timedelta = timedelta(hours=1)
    page_size: int = 1000
    # A project's state and phases are read at most this often (sooner when the member
    # starts working on it, or it is named in `Changed.projects`).
    phase_refresh: timedelta = timedelta(hours=1)


@dataclass
class _Run:
    """What one run knows while it goes: the client, the member's schedule, counts."""

    client: ConnectWiseClient
    ref: IntegrationRef
    counts: RunCounts
    schedule: list[ScheduleEntry] = field(default_factory=list)
    priorities: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def schedule_ticket_ids(self) -> set[int]:
        return {entry.ticket_id for entry in self.schedule}


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
        changed: Changed = NOTHING_CHANGED,
    ) -> RunCounts:
        """A scheduled run: each entity in its due mode (`reconcile` forces the id
        listing), then whatever `changed` names is fetched again, then the phases of the
        projects that are due."""
        await self._tracking.start_generation(ref)
        run = _Run(client, ref, RunCounts())
        rescheduled = await self._sync_schedule(run)
        run.priorities = await self._metadata.priorities(client, ref)
        project_tickets: dict[int, Tracked] = {}
        for entity in TICKET_ENTITIES:
            tracked = await self._sync_tickets(run, entity, reconcile=reconcile)
            if ids := rescheduled | changed.tickets.get(entity, frozenset()):
                await self._refetch(run, entity, tracked, ids)
            if entity is Entity.PROJECT_TICKET:
                project_tickets = tracked
        await self._sync_phases(run, project_tickets, changed.projects, scheduled=True)
        return run.counts

    async def refresh(
        self, client: ConnectWiseClient, ref: IntegrationRef, changed: Changed
    ) -> RunCounts:
        """Only what `changed` names (a webhook, a write-back): the named tickets are
        fetched by id, and the member's schedule listed again if it changed. When project
        work may have changed (project tickets, the schedule, named projects), the phases
        of named projects and of projects newly worked on are read, and those of projects
        no longer worked on tombstoned; the others wait for their scheduled refresh."""
        await self._tracking.start_generation(ref)
        run = _Run(client, ref, RunCounts())
        if changed.schedule:
            rescheduled = await self._sync_schedule(run)
        else:
            rescheduled = set()
            entries = await self._tracking.tracked(ref, Entity.SCHEDULE_ENTRY)
            run.schedule = [ScheduleEntry.from_data(t.data or {}) for t in entries.values()]
        run.priorities = await self._metadata.priorities(client, ref)
        for entity in TICKET_ENTITIES:
            if ids := rescheduled | changed.tickets.get(entity, frozenset()):
                tracked = await self._tracking.tracked(ref, entity, ids)
                await self._refetch(run, entity, tracked, ids)
        if changed.projects or rescheduled or changed.tickets.get(Entity.PROJECT_TICKET):
            project_tickets = await self._tracking.tracked(ref, Entity.PROJECT_TICKET)
            await self._sync_phases(run, project_tickets, changed.projects, scheduled=False)
        return run.counts

    # -- schedule entries ---------------------------------------------------------------

    async def _sync_schedule(self, run: _Run) -> set[int]:
        """Bring the member's open "S" entries up to date; the ids of tickets whose
        schedule changed (they are fetched again, as their assignment may have)."""
        entity, member = Entity.SCHEDULE_ENTRY, run.ref.member_identifier
        cursor = await self._tracking.cursor(run.ref, entity)
        tracked = await self._tracking.tracked(run.ref, entity)
        progress = cursor.progress or self._new_progress(
            # Open entries are few, so the full listing doubles as the reconciliation.
            Mode.FULL
            if cursor.since is None or self._reconcile_due(cursor.reconciled_at)
            else Mode.INCREMENTAL,
            cursor.since,
        )
        run.counts.modes[entity.value] = progress.mode.value
        if progress.mode is Mode.FULL:
            condition = open_schedule_entries(member)
        else:
            assert progress.since is not None
            condition = changed_schedule_entries(member, progress.since)
        changed_tickets: set[int] = set()
        newest = cursor.since
        async for page in self._listing(run, entity, condition, progress):
            newest = _newest(newest, page)
            published, removed, seen = [], [], []
            for record in page:
                record_id = int(record["id"])
                entry, before = open_schedule_entry(record, member), tracked.get(record_id)
                if entry is None:
                    if before is not None:
                        removed.append(record_id)
                        changed_tickets.add(ScheduleEntry.from_data(before.data or {}).ticket_id)
                    continue
                version = digest(entry.as_data())
                if before is not None and before.version == version:
                    seen.append(record_id)
                    continue
                published.append(Tracked(record_id, version, entry.as_data()))
                changed_tickets.add(entry.ticket_id)
                if before is not None and before.data:
                    changed_tickets.add(ScheduleEntry.from_data(before.data).ticket_id)
            progress = _past(progress, page)
            await self._tracking.save_page(
                run.ref,
                entity,
                published=published,
                removed=removed,
                seen=seen,
                run_id=progress.run_id,
                progress=progress,
            )
            for record_id in removed:
                tracked.pop(record_id, None)
            tracked.update({item.id: item for item in published})
        if progress.mode is Mode.FULL:
            gone = await self._tracking.unseen(run.ref, entity, progress.run_id)
            changed_tickets |= {ScheduleEntry.from_data(t.data or {}).ticket_id for t in gone}
            await self._tracking.forget(run.ref, entity, [t.id for t in gone])
            for item in gone:
                tracked.pop(item.id, None)
        await self._tracking.finish(run.ref, entity, progress.mode, newest)
        run.schedule = [ScheduleEntry.from_data(t.data or {}) for t in tracked.values()]
        return changed_tickets

    # -- tickets ------------------------------------------------------------------------

    async def _sync_tickets(
        self, run: _Run, entity: Entity, *, reconcile: bool
    ) -> dict[int, Tracked]:
        """Bring one ticket kind up to date; what is tracked for it afterwards."""
        member = run.ref.member_identifier
        cursor = await self._tracking.cursor(run.ref, entity)
        tracked = await self._tracking.tracked(run.ref, entity)
        if cursor.progress is not None:
            progress = cursor.progress
        elif cursor.since is None and not tracked:
            progress = self._new_progress(Mode.FULL, None)
        elif reconcile or self._reconcile_due(cursor.reconciled_at) or cursor.since is None:
            progress = self._new_progress(Mode.RECONCILE, cursor.since)
        else:
            progress = self._new_progress(Mode.INCREMENTAL, cursor.since)
        run.counts.modes[entity.value] = progress.mode.value
        if progress.mode is Mode.INCREMENTAL:
            assert progress.since is not None
            watched = set(tracked) | run.schedule_ticket_ids
            condition = changed_tickets(member, progress.since, watched)
        else:
            condition = assigned_open_tickets(member, run.schedule_ticket_ids)
        fields = IDS_ONLY_FIELDS if progress.mode is Mode.RECONCILE else None
        newest = cursor.since
        async for page in self._listing(run, entity, condition, progress, fields):
            progress = _past(progress, page)
            if progress.mode is Mode.RECONCILE:
                unchanged = {
                    int(r["id"])
                    for r in page
                    if (t := tracked.get(int(r["id"]))) is not None
                    and (t.data or {}).get("last_updated") == last_updated(r)
                }
                stale = [int(r["id"]) for r in page if int(r["id"]) not in unchanged]
                bodies = await self._fetch_by_id(run, entity, stale)
                await self._apply(run, entity, tracked, bodies, progress, seen=sorted(unchanged))
            else:
                newest = _newest(newest, page)
                await self._apply(run, entity, tracked, page, progress)
        if progress.mode is not Mode.INCREMENTAL:
            gone = await self._tracking.unseen(run.ref, entity, progress.run_id)
            await self._tombstone(run, entity, tracked, gone)
        await self._tracking.finish(run.ref, entity, progress.mode, newest)
        return tracked

    async def _refetch(
        self, run: _Run, entity: Entity, tracked: dict[int, Tracked], ids: Collection[int]
    ) -> None:
        """Look at these tickets again whatever their `lastUpdated` (their schedule
        changed, or a webhook said so); tracked ones that are gone are tombstoned."""
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
    ) -> None:
        """Publish what changed or left among `records`, then record it (and the
        listing's progress, if this is a listing's page)."""
        statuses = await self._metadata.board_statuses(
            run.client, run.ref, filter(None, (ref_id(r.get("board")) for r in records))
        )
        closed = closed_status_ids(statuses)
        member, now = run.ref.member_identifier, datetime.now(UTC)
        events: list[KafkaRecord] = []
        published: list[Tracked] = []
        removed: list[int] = []
        seen = list(seen or [])
        for record in records:
            record_id = int(record["id"])
            before = tracked.get(record_id)
            assigned = assignment(record, member, run.schedule, closed)
            if assigned is None:
                if before is not None:
                    events.append(
                        removed_event(
                            run.ref,
                            entity,
                            str(record_id),
                            before.version,
                            now,
                            last_updated(record),
                        )
                    )
                    removed.append(record_id)
                continue
            version = fingerprint(record, assigned)
            if before is not None and before.version == version:
                seen.append(record_id)
                continue
            context = _context(record, statuses, run.priorities)
            events.append(upserted_event(run.ref, entity, record, assigned, version, context, now))
            published.append(Tracked(record_id, version, ticket_data(entity, record)))
        await self._sink.publish(events)
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

    async def _tombstone(
        self, run: _Run, entity: Entity, tracked: dict[int, Tracked], gone: list[Tracked]
    ) -> None:
        if not gone:
            return
        now = datetime.now(UTC)
        await self._sink.publish(
            [
                removed_event(run.ref, entity, str(t.id), t.version, now, _last_updated(t))
                for t in gone
            ]
        )
        await self._tracking.forget(run.ref, entity, [t.id for t in gone])
        run.counts.tombstoned += len(gone)
        for item in gone:
            tracked.pop(item.id, None)

    # -- project phases -----------------------------------------------------------------

    async def _sync_phases(
        self,
        run: _Run,
        project_tickets: dict[int, Tracked],
        forced: Collection[int],
        *,
        scheduled: bool,
    ) -> None:
        """Bring the phases of the member's projects up to date (the module docstring
        says when each project is read). `project_tickets`: the tracked project tickets,
        which name the projects the member works on."""
        entity = Entity.PROJECT_PHASE
        project_tickets = await self._backfill_projects(run, project_tickets)
        worked_on = worked_on_projects(t.data for t in project_tickets.values())
        known = await self._tracking.projects(run.ref)
        tracked = await self._tracking.tracked(run.ref, entity)
        # Projects the member no longer works on: their phases leave, at no cost.
        left = [t for t in tracked.values() if phase_project(t.data) not in worked_on]
        await self._tombstone(run, entity, tracked, left)
        await self._tracking.forget_projects(run.ref, [p for p in known if p not in worked_on])
        now = datetime.now(UTC)
        due = sorted(
            project_id
            for project_id in worked_on
            if project_id in forced
            or (state := known.get(project_id)) is None
            or (scheduled and _refresh_due(state, now, self.policy.phase_refresh))
        )
        if not due:
            return
        run.counts.modes[entity.value] = Mode.FULL.value
        projects = await self._list_projects(run, due)
        for project_id in due:
            await self._sync_project_phases(
                run, tracked, project_id, projects.get(project_id), worked_on
            )

    async def _sync_project_phases(
        self,
        run: _Run,
        tracked: dict[int, Tracked],
        project_id: int,
        project: dict[str, Any] | None,
        worked_on: Collection[int],
    ) -> None:
        """One project's open phases (none asked for when the project is closed or gone):
        publish what changed or left, then record the phases and the time."""
        entity, now = Entity.PROJECT_PHASE, datetime.now(UTC)
        records: list[dict[str, Any]] = []
        if project is not None and project.get("closedFlag") is not True:
            async for page in run.client.pages(
                phases_path(project_id), conditions=open_phases(), page_size=self.policy.page_size
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
            assigned = phase_assignment(phase, project, worked_on)
            if assigned is None or project is None:
                if before is not None:
                    removed.append(phase_id)
                continue
            context = {"project": project_context(project), "started": phase_started(phase, now)}
            version = phase_fingerprint(phase, assigned, context)
            if before is not None and before.version == version:
                continue
            events.append(upserted_event(run.ref, entity, phase, assigned, version, context, now))
            published.append(Tracked(phase_id, version, phase_data(phase, project_id)))
        # Tracked phases the listing left out closed, or went.
        removed += [
            t.id
            for t in tracked.values()
            if phase_project(t.data) == project_id and t.id not in listed
        ]
        events += [
            removed_event(
                run.ref, entity, str(i), tracked[i].version, now, _last_updated(tracked[i])
            )
            for i in removed
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
        await self._tracking.save_project(run.ref, ProjectState(project_id, project, now))
        run.counts.fetched += len(records)
        run.counts.published += len(published)
        run.counts.tombstoned += len(removed)
        for phase_id in removed:
            tracked.pop(phase_id, None)
        tracked.update({item.id: item for item in published})

    async def _list_projects(self, run: _Run, ids: list[int]) -> dict[int, dict[str, Any]]:
        """The projects' state, a few fields each; a project missing from the answer is
        gone (or out of the member's sight)."""
        projects: dict[int, dict[str, Any]] = {}
        for start in range(0, len(ids), PROJECT_CHUNK):
            async for page in run.client.pages(
                PROJECTS_PATH,
                conditions=projects_by_id(ids[start : start + PROJECT_CHUNK]),
                fields=PROJECT_FIELDS,
                page_size=self.policy.page_size,
            ):
                projects.update({int(p["id"]): p for p in page})
        return projects

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


def _refresh_due(state: ProjectState, now: datetime, every: timedelta) -> bool:
    return state.phases_at is None or now - state.phases_at >= every


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
