"""The scheduler on the real database: due integrations run side by side (one whose
ConnectWise hangs holds its own slot only); two replicas claiming from one schedule
never run an integration twice at once and leave none behind; a replica that dies
mid-run has its claims taken over once they lapse; each connection keeps its own
interval."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.integrations import JobStatus, SyncJob, SyncOptions, Trigger
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.options import SyncOptionsStore
from syntaskio_connector.sync import SyncSchedule, SyncScheduler


def succeeded(integration_id: str, trigger: Trigger) -> SyncJob:
    now = datetime.now(UTC)
    return SyncJob(
        id=uuid.uuid4().hex,
        tenant_id="acme",
        integration_id=integration_id,
        trigger=trigger,
        status=JobStatus.SUCCEEDED,
        started_at=now,
        finished_at=now,
    )


class FakeRunner:
    """Records each run; a run of an integration in `hold` waits for `release`."""

    def __init__(self, hold: set[str] | None = None, seconds: float = 0.0) -> None:
        self.hold = hold or set()
        self.seconds = seconds
        self.release = asyncio.Event()
        self.started: list[tuple[str, datetime]] = []
        self.finished: list[str] = []
        self.running: Counter[str] = Counter()
        self.overlaps: list[str] = []  # integrations found running twice at once
        self.late: list[float] = []  # seconds each run started after it was due
        self.late_of: dict[str, list[float]] = {}

    async def run(self, integration_id: str, trigger: Trigger, *_: Any, **run: Any) -> SyncJob:
        self.started.append((integration_id, datetime.now(UTC)))
        if run.get("due_at") is not None:
            lateness = (datetime.now(UTC) - run["due_at"]).total_seconds()
            self.late.append(lateness)
            self.late_of.setdefault(integration_id, []).append(lateness)
        self.running[integration_id] += 1
        if self.running[integration_id] > 1:
            self.overlaps.append(integration_id)
        try:
            await asyncio.sleep(self.seconds)
            if integration_id in self.hold:
                await self.release.wait()
        finally:
            self.running[integration_id] -= 1
        self.finished.append(integration_id)
        return succeeded(integration_id, trigger)

    def runs_of(self, integration_id: str) -> int:
        return sum(1 for started, _ in self.started if started == integration_id)


class Fleet:
    """Replicas' scheduler loops over one schedule, each stoppable on its own."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.schedule = SyncSchedule(db)
        self.loops: list[asyncio.Task[None]] = []

    def replica(
        self,
        runner: FakeRunner,
        *,
        concurrency: int = 8,
        interval: timedelta = timedelta(hours=1),
        lease: timedelta = timedelta(seconds=30),
        poll_seconds: float = 0.1,
        slow_after: timedelta = timedelta(seconds=2),
    ) -> asyncio.Task[None]:
        scheduler = SyncScheduler(
            runner,  # type: ignore[arg-type]
            self.schedule,
            interval=interval,
            lease=lease,
            poll_seconds=poll_seconds,
            concurrency=concurrency,
            slow_after=slow_after,
        )
        loop = asyncio.create_task(scheduler.run_forever())
        self.loops.append(loop)
        return loop

    async def connect(self, count: int) -> list[str]:
        ids = [f"int-{n}-{uuid.uuid4().hex[:6]}" for n in range(count)]
        for integration_id in ids:
            await self.schedule.activate(integration_id, Trigger.CONNECTED)
        return ids


async def stop(loop: asyncio.Task[None]) -> None:
    """A replica killed: its loop and runs end where they are, nothing is handed back."""
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)


@pytest.fixture
async def fleet(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> AsyncIterator[Fleet]:
    db = mongo[f"{settings.mongodb_database}_fleet_{uuid.uuid4().hex[:6]}"]
    made = Fleet(db)
    await made.schedule.create_indexes()
    yield made
    for loop in made.loops:
        await stop(loop)
    await mongo.drop_database(db.name)


async def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    """Wait for what the runners recorded (checked every 20 ms)."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - the fakes' lists are what is watched
            await asyncio.sleep(0.02)


async def test_a_hanging_integration_holds_only_its_own_slot(fleet: Fleet) -> None:
    ids = await fleet.connect(5)
    runner = FakeRunner(hold={ids[0]})
    fleet.replica(runner, concurrency=2)
    await until(lambda: set(runner.finished) == set(ids[1:]))
    # The slow one still holds its slot, and was started once, not again each poll.
    assert runner.runs_of(ids[0]) == 1
    assert ids[0] not in runner.finished
    runner.release.set()
    await until(lambda: ids[0] in runner.finished, 10)


async def test_two_replicas_claiming_at_once_run_each_integration_once_and_all_of_them(
    fleet: Fleet,
) -> None:
    """Every connection due every 0.3 s, two replicas of 4 slots, runs of 50 ms: over
    a few rounds none runs twice at once, and each runs on every round (none starved)."""
    ids = await fleet.connect(12)
    runner = FakeRunner(seconds=0.05)  # the replicas share one runner: overlaps show
    every = timedelta(seconds=0.3)
    fleet.replica(runner, concurrency=4, interval=every)
    fleet.replica(runner, concurrency=4, interval=every)
    await asyncio.sleep(3)
    assert runner.overlaps == []
    runs = Counter(integration for integration, _ in runner.started)
    assert set(runs) == set(ids)
    assert min(runs.values()) >= 4, runs


async def test_a_replica_killed_mid_run_has_its_claims_taken_over_when_they_lapse(
    fleet: Fleet,
) -> None:
    ids = await fleet.connect(3)
    dying = FakeRunner(hold=set(ids))  # its runs never end
    doomed = fleet.replica(dying, lease=timedelta(seconds=1.5))
    await until(lambda: len(dying.started) == 3)
    survivor = FakeRunner()
    fleet.replica(survivor, lease=timedelta(seconds=1.5))
    await asyncio.sleep(1)
    assert survivor.started == []  # claims kept alive by the living replica are left alone

    await stop(doomed)
    killed_at = datetime.now(UTC)
    await until(lambda: set(survivor.finished) == set(ids), 10)
    taken_over_after = min(at for _, at in survivor.started) - killed_at
    assert taken_over_after <= timedelta(seconds=1.5 + 1)  # a lease, and a poll or so


async def test_each_connection_keeps_its_own_interval_give_or_take_a_tenth(
    fleet: Fleet,
) -> None:
    """The default interval (here 0.5 s), and a connection's own from its sync options
    (`sync_interval_minutes`), each drawn within a tenth of itself."""
    often, rarely = await fleet.connect(2)
    await SyncOptionsStore(fleet.db).set("acme", rarely, SyncOptions(sync_interval_minutes=15))
    runner = FakeRunner()
    fleet.replica(runner, interval=timedelta(seconds=0.5))
    await asyncio.sleep(2.6)
    assert runner.runs_of(rarely) == 1
    assert 4 <= runner.runs_of(often) <= 6
    starts = [at for integration, at in runner.started if integration == often]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(starts)]
    assert all(0.44 <= gap <= 0.75 for gap in gaps), gaps
    planned = await fleet.schedule.get(rarely)
    assert planned is not None
    last_run: datetime = planned["last_run_at"]
    assert timedelta(minutes=13.5) <= planned["next_sync_at"] - last_run <= timedelta(minutes=16.5)


async def test_a_replica_wakes_when_the_next_sync_falls_due_not_at_its_next_poll(
    fleet: Fleet,
) -> None:
    """Polling every 30 s, a connection due every 0.5 s still runs every 0.5 s: the
    loop sleeps until the next due time; each run is told when it was due."""
    [often] = await fleet.connect(1)
    runner = FakeRunner()
    fleet.replica(runner, poll_seconds=30, interval=timedelta(seconds=0.5))
    await asyncio.sleep(2.6)
    assert 4 <= runner.runs_of(often) <= 6
    assert len(runner.late) == runner.runs_of(often)
    assert max(runner.late) < 0.25, runner.late


class HangingServers(FakeRunner):
    """The `hang` integrations' ConnectWise does not answer: each run fails after 1 s."""

    def __init__(self, hang: set[str]) -> None:
        super().__init__()
        self.hang = hang

    async def run(self, integration_id: str, trigger: Trigger, *_: Any, **run: Any) -> SyncJob:
        job = await super().run(integration_id, trigger, **run)
        if integration_id not in self.hang:
            return job
        await asyncio.sleep(1)
        return job.model_copy(update={"status": JobStatus.FAILED, "error": "timed out"})


async def test_servers_that_hang_delay_the_others_by_the_slow_limit_at_most(
    fleet: Fleet,
) -> None:
    """Two slots; three connections whose ConnectWise hangs and four that answer, all
    due every 0.5 s. A run still going after 0.2 s leaves its slot, and a connection
    whose slow run failed starts the next one off the slots: the others keep time."""
    hanging = await fleet.connect(3)
    healthy = await fleet.connect(4)
    runner = HangingServers(set(hanging))
    fleet.replica(
        runner, concurrency=2, slow_after=timedelta(seconds=0.2), interval=timedelta(seconds=0.5)
    )
    await asyncio.sleep(4)
    assert runner.overlaps == []
    assert all(runner.runs_of(i) >= 5 for i in healthy), runner.started
    assert all(runner.runs_of(i) >= 2 for i in hanging), runner.started
    late = [t for i in healthy for t in runner.late_of[i]]
    assert max(late) < 0.45, sorted(late)[-5:]
    # After their first (slow, failed) run, the hanging ones never took a slot.
    later = [t for i in healthy for t in runner.late_of[i][2:]]
    assert max(later) < 0.1, sorted(later)[-5:]


class AuthServiceDown(FakeRunner):
    """Every run fails to lease: auth-service answers 503."""

    async def run(self, integration_id: str, trigger: Trigger, *_: Any, **__: Any) -> SyncJob:
        self.started.append((integration_id, datetime.now(UTC)))
        request = httpx.Request("POST", "http://auth-service/internal/v1/lease")
        response = httpx.Response(503, request=request)
        raise httpx.HTTPStatusError("503", request=request, response=response)


async def test_auth_service_down_is_one_line_per_run_not_a_traceback(
    fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    await fleet.connect(1)
    runner = AuthServiceDown()
    fleet.replica(runner)
    await until(lambda: bool(runner.started))
    await asyncio.sleep(0.3)
    said = [r for r in caplog.records if r.name == "syntaskio_connector.sync"]
    assert any(r.getMessage() == "sync not started: auth-service answered 503" for r in said)
    assert not [r for r in said if r.exc_info], "a traceback was logged"


class NoLongerActive(FakeRunner):
    """auth-service refuses the lease: the connection was disconnected or paused."""

    async def run(self, integration_id: str, trigger: Trigger, *_: Any, **__: Any) -> None:  # type: ignore[override]
        self.started.append((integration_id, datetime.now(UTC)))


async def test_a_connection_whose_lease_is_refused_is_parked_until_it_is_activated(
    fleet: Fleet,
) -> None:
    [parked] = await fleet.connect(1)
    runner = NoLongerActive()
    fleet.replica(runner, interval=timedelta(seconds=0.2))
    await until(lambda: bool(runner.started))
    await asyncio.sleep(1)
    assert runner.runs_of(parked) == 1  # not tried again every interval
    await fleet.schedule.activate(parked, Trigger.RESUMED)
    await until(lambda: runner.runs_of(parked) == 2, 5)
