"""My day in the real database, over tasks written by the aggregator's own store: plans
are each user's own, survive a sync, are bounded, keep today's order, and go with
their task (a tombstone, or the live feed's removal)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_aggregator.changes import Change, latest_per_task, version_key
from syntaskio_aggregator.store import TaskStore
from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.task import SourceType, Task, TaskRef, TaskSource, TaskStatus, task_id
from syntaskio_gateway import my_day
from syntaskio_gateway.my_day import MyDay, PlanState, TaskPlans, TooManyPlans, read_day
from syntaskio_gateway.tasks import TaskReader

NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)  # a Wednesday afternoon
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
LONDON = ZoneInfo("Europe/London")


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class World:
    """One tenant's tasks as the aggregator writes them, and the gateway's reader and
    plans on the same clock."""

    def __init__(self, db: AsyncDatabase[Document], tenant: str) -> None:
        self.db = db
        self.tenant = tenant
        self.clock = Clock()
        self.store = TaskStore(db, timedelta(days=14))
        self.reader = TaskReader(db, clock=self.clock)
        self.plans = TaskPlans(db, clock=self.clock)
        self._writes = 0

    async def write(self, *tasks: Task, removed: Sequence[Task] = ()) -> None:
        """One sync's worth of changes (each a newer version than any before)."""
        self._writes += 1
        observed = NOW + self._writes * timedelta(seconds=1)
        changes = [
            Change(TaskRef.of(t), t, 1, version_key(1, t.source_updated_at, observed, t.id), "p")
            for t in tasks
        ] + [
            Change(TaskRef.of(t), None, 1, version_key(1, t.source_updated_at, observed, "rm"), "p")
            for t in removed
        ]
        await self.store.write(latest_per_task(changes))

    def user(self, name: str = "alex") -> UserSession:
        return UserSession(tenant_id=self.tenant, user_id=name)

    async def day(self, name: str = "alex") -> MyDay:
        return await read_day(self.user(name), self.reader, self.plans, LONDON)

    async def stored_plans(self) -> set[str]:
        cursor = self.db["task_plans"].find({"tenant_id": self.tenant}, {"task_id": True})
        return {doc["task_id"] async for doc in cursor}


def make_task(
    tenant: str, number: str, *, user: str = "alex", due: datetime | None = None, **changes: object
) -> Task:
    fields: dict[str, object] = {
        "id": task_id(tenant, user, TaskSource.CONNECTWISE, SourceType.SERVICE_TICKET, number),
        "tenant_id": tenant,
        "user_id": user,
        "integration_id": f"i-{user}",
        "source": TaskSource.CONNECTWISE,
        "source_type": SourceType.SERVICE_TICKET,
        "external_id": number,
        "title": f"Ticket {number}",
        "status": TaskStatus.PENDING,
        "priority": "medium",
        "due_at": due,
        "source_updated_at": NOW - DAY,
    }
    return Task.model_validate({**fields, **changes})


@pytest.fixture
async def world(mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str) -> World:
    found = World(mongo[settings.mongodb_database], tenant)
    await found.store.create_indexes()
    await found.plans.create_indexes()
    return found


def ids(tasks: Sequence[Task]) -> list[str]:
    return [t.external_id for t in tasks]


async def test_pins_snoozes_and_hides_survive_a_sync_until_the_task_changes(
    world: World,
) -> None:
    alex, today = world.user(), NOW.date()
    later, undated, changing = (
        make_task(world.tenant, "1", due=NOW + 30 * DAY),
        make_task(world.tenant, "2"),
        make_task(world.tenant, "3", due=NOW + HOUR),
    )
    await world.write(later, undated, changing)
    assert ids((await world.day()).later) == ["1"]

    pinned = await world.plans.put(
        alex, later, today, pinned=True, snoozed_until=None, hidden=False
    )
    assert pinned.pinned
    again = await world.plans.put(alex, later, today, pinned=True, snoozed_until=None, hidden=False)
    assert again == pinned  # a PUT twice: the same plan
    snoozed = await world.plans.put(
        alex, undated, today, pinned=False, snoozed_until=NOW + DAY, hidden=False
    )
    assert snoozed.snoozed_until == NOW + DAY
    hidden = await world.plans.put(
        alex, changing, today, pinned=False, snoozed_until=None, hidden=True
    )
    assert hidden.hidden

    # A sync that rewrites the tasks (new versions, the same tickets) changes no plan.
    await world.write(later, undated, changing)
    day = await world.day()
    assert ids(day.today) == ["1"]
    assert ids(day.set_aside) == ["2", "3"]
    assert (day.overdue, day.this_week, day.later, day.no_date) == ([], [], [], [])

    # Changed in ConnectWise: the hidden one is back, and its plan is gone.
    await world.write(changing.model_copy(update={"source_updated_at": NOW - HOUR}))
    day = await world.day()
    assert ids(day.today) == ["3", "1"]  # by due time
    assert await world.stored_plans() == {later.id, undated.id}

    # The snooze runs out: back where its date puts it, the plan cleaned up.
    world.clock.now = NOW + DAY + HOUR
    day = await world.day()
    assert ids(day.no_date) == ["2"]
    assert ids(day.overdue) == ["3"]
    assert ids(day.later) == ["1"]  # yesterday's pin is over, too
    assert await world.stored_plans() == set()


async def test_a_removed_task_takes_its_plan_with_it(world: World) -> None:
    alex, today = world.user(), NOW.date()
    kept, closed, dropped = (make_task(world.tenant, n) for n in ("10", "11", "12"))
    await world.write(kept, closed, dropped)
    for task in (kept, closed, dropped):
        await world.plans.put(alex, task, today, pinned=True, snoozed_until=None, hidden=False)
    assert await world.stored_plans() == {kept.id, closed.id, dropped.id}

    # Closed in ConnectWise: a tombstone. Reading the day removes the plan.
    await world.write(removed=[closed])
    day = await world.day()
    assert sorted(ids(day.today)) == ["10", "12"]
    assert await world.stored_plans() == {kept.id, dropped.id}

    # The live feed's removal (what every gateway replica does, so twice is fine).
    await world.plans.forget_tasks([TaskRef.of(dropped)])
    await world.plans.forget_tasks([TaskRef.of(dropped)])
    assert await world.stored_plans() == {kept.id}


async def test_plans_are_each_users_own(world: World) -> None:
    alex, today = world.user(), NOW.date()
    beth = world.user("beth")
    stranger = UserSession(tenant_id=f"{world.tenant}-x", user_id="alex")
    hers = make_task(world.tenant, "20")
    his_own = make_task(world.tenant, "20", user="beth")
    await world.write(hers, his_own)
    await world.plans.put(alex, hers, today, pinned=True, snoozed_until=None, hidden=False)

    beths = await world.day("beth")
    assert ids(beths.no_date) == ["20"]
    assert not beths.no_date[0].plan.pinned
    assert await read_day(stranger, world.reader, world.plans, LONDON) == MyDay(
        day=today, time_zone="Europe/London", overdue=[], today=[], this_week=[], later=[],
        no_date=[], set_aside=[], truncated=False,
    )  # fmt: skip
    # Their clearing and ordering reach only their own.
    await world.plans.clear(beth, hers.id)
    await world.plans.clear(stranger, hers.id)
    await world.plans.put_order(beth, today, [hers.id])
    assert ids((await world.day()).today) == ["20"]
    assert (await world.day()).today[0].plan.order is None


async def test_today_keeps_the_users_order(world: World) -> None:
    alex, today = world.user(), NOW.date()
    tasks = [make_task(world.tenant, str(30 + n), due=NOW + (n + 1) * HOUR) for n in range(4)]
    await world.write(*tasks)
    assert ids((await world.day()).today) == ["30", "31", "32", "33"]

    order = [tasks[2].id, tasks[0].id]
    await world.plans.put_order(alex, today, order)
    await world.plans.put_order(alex, today, order)  # the same again: the same order
    day = await world.day()
    assert ids(day.today) == ["32", "30", "31", "33"]
    assert [t.plan.order for t in day.today] == [0, 1, None, None]

    # A new order replaces the old one; a pin keeps the place it has.
    await world.plans.put_order(alex, today, [tasks[3].id, tasks[2].id])
    await world.plans.put(alex, tasks[3], today, pinned=True, snoozed_until=None, hidden=False)
    day = await world.day()
    assert ids(day.today) == ["33", "32", "30", "31"]
    assert day.today[0].plan.pinned
    # Cleared: neither pinned nor ordered.
    await world.plans.clear(alex, tasks[3].id)
    assert ids((await world.day()).today) == ["32", "30", "31", "33"]


async def test_plans_are_bounded_and_an_empty_plan_is_not_kept(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(my_day, "MOST_PLANS", 2)
    alex, today = world.user(), NOW.date()
    tasks = [make_task(world.tenant, str(40 + n)) for n in range(3)]
    await world.write(*tasks)
    nothing = await world.plans.put(
        alex, tasks[0], today, pinned=False, snoozed_until=None, hidden=False
    )
    assert nothing == PlanState()
    assert await world.stored_plans() == set()
    for task in tasks[:2]:
        await world.plans.put(alex, task, today, pinned=True, snoozed_until=None, hidden=False)
    with pytest.raises(TooManyPlans):
        await world.plans.put(alex, tasks[2], today, pinned=True, snoozed_until=None, hidden=False)
    with pytest.raises(TooManyPlans):
        await world.plans.put_order(alex, today, [tasks[2].id])
    # Changing a plan it has is fine; unpinned, a task's plan is gone and makes room.
    await world.plans.put(alex, tasks[0], today, pinned=False, snoozed_until=None, hidden=True)
    await world.plans.put(alex, tasks[1], today, pinned=False, snoozed_until=None, hidden=False)
    assert await world.stored_plans() == {tasks[0].id}
    await world.plans.put(alex, tasks[2], today, pinned=True, snoozed_until=None, hidden=False)


async def test_a_plan_changed_while_the_day_was_read_is_kept(world: World) -> None:
    alex, today = world.user(), NOW.date()
    task = make_task(world.tenant, "50")
    await world.write(task)
    await world.plans.put(alex, task, today, pinned=True, snoozed_until=None, hidden=False)
    [yesterdays] = await world.plans.stored(alex)
    world.clock.now = NOW + DAY  # the pin is spent…
    await world.plans.put(alex, task, today + DAY, pinned=True, snoozed_until=None, hidden=False)
    # …but pinned again meanwhile: what was read as spent is not deleted.
    assert await world.plans.forget_spent(alex, [yesterdays]) == 0
    assert await world.stored_plans() == {task.id}
