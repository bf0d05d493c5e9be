"""The notifier on the real database: a connection's first listing brings no
notifications, a ticket assigned afterwards one (however often its event comes), a
customer reply one, a ticket that left and came back one again; a connection listed
anew starts a new baseline; an expired personal connection tells its user; the SLA
targets coming due are found through the dashboard's own index; and each user reads
and marks only their own notifications."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_aggregator.changes import Change, latest_per_task, version_key
from syntaskio_aggregator.store import TaskStore
from syntaskio_common import events
from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.task import (
    SlaStage,
    SourceType,
    Task,
    TaskPriority,
    TaskRef,
    TaskSla,
    TaskSource,
    TaskStatus,
    task_id,
)
from syntaskio_common.task_events import FeedTask, TaskDeleted, TaskUpserted
from syntaskio_gateway.notifications import NotificationKind, Notifications, sla_at_risk
from syntaskio_gateway.notifier import FeedChange, TaskWatch, notify_integration, notify_tasks
from syntaskio_gateway.tasks import TaskReader

NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def db(mongo: AsyncMongoClient[Document], settings: ServiceSettings) -> AsyncDatabase[Document]:
    return mongo[settings.mongodb_database]


def ticket(
    tenant: str, number: int, updated: datetime, user: str = "alex", **fields: object
) -> Task:
    return Task.model_validate(
        {
            "id": task_id(
                tenant, user, TaskSource.CONNECTWISE, SourceType.SERVICE_TICKET, str(number)
            ),
            "tenant_id": tenant,
            "user_id": user,
            "integration_id": f"{tenant}-int",
            "source": TaskSource.CONNECTWISE,
            "source_type": SourceType.SERVICE_TICKET,
            "external_id": str(number),
            "title": f"Ticket {number}",
            "status": TaskStatus.PENDING,
            "priority": TaskPriority.MEDIUM,
            "source_updated_at": updated,
            "source_data": {"ticket_id": number},
        }
        | fields
    )


def upserted(task: Task, version: str, at: datetime) -> FeedChange:
    """The feed's event for the task, announced at `at`."""
    event = TaskUpserted(version=version, task=FeedTask.model_validate(task.model_dump()))
    return FeedChange(event, at)


async def kinds(store: Notifications, tenant: str, user: str = "alex") -> list[tuple[str, str]]:
    listed = await store.newest(UserSession(tenant_id=tenant, user_id=user))
    return sorted((n.kind.value, n.task_id or "") for n in listed.items)


async def test_new_assignments_replies_and_returns_are_told_once(
    db: AsyncDatabase[Document], tenant: str
) -> None:
    clock = Clock()
    watch, store = TaskWatch(db), Notifications(db, clock=clock)
    await watch.create_indexes()
    await store.create_indexes()
    # The connection's first listing: work changed before the notifier saw any of it.
    first = [ticket(tenant, n, NOW - n * MINUTE) for n in (1, 2, 3)]
    await notify_tasks(watch, store, [upserted(t, "v1", clock.now) for t in first])
    assert await kinds(store, tenant) == []

    # Later, a ticket assigned to her (changed after the baseline), delivered twice.
    clock.now = NOW + 10 * MINUTE
    assigned = ticket(tenant, 4, NOW + 9 * MINUTE)
    for _ in range(2):
        await notify_tasks(watch, store, [upserted(assigned, "v2", clock.now)])
    # A change to a ticket she had is no assignment; a customer's reply is news once.
    changed = ticket(tenant, 1, NOW + 9 * MINUTE)
    replied = ticket(
        tenant, 2, NOW + 9 * MINUTE, source_data={"ticket_id": 2, "customer_updated": True}
    )
    await notify_tasks(
        watch, store, [upserted(changed, "v2", clock.now), upserted(replied, "v2", clock.now)]
    )
    await notify_tasks(watch, store, [upserted(replied, "v3", clock.now)])
    # An older version redelivered after a newer one tells nothing.
    await notify_tasks(watch, store, [upserted(first[1], "v1", clock.now)])
    assert await kinds(store, tenant) == sorted(
        [("assigned", assigned.id), ("customer_reply", replied.id)]
    )

    # It left her dashboard and came back, reassigned later: news again.
    gone = TaskDeleted.model_validate({**TaskRef.of(assigned).model_dump(), "version": "v3"})
    await notify_tasks(watch, store, [FeedChange(gone, clock.now)])
    back = ticket(tenant, 4, NOW + 20 * MINUTE)
    await notify_tasks(watch, store, [upserted(back, "v4", clock.now)])
    assert [k for k in await kinds(store, tenant) if k[0] == "assigned"] == [
        ("assigned", assigned.id),
        ("assigned", assigned.id),
    ]
    # Nobody else was told anything.
    assert await kinds(store, tenant, user="bea") == []


async def test_a_connection_listed_anew_is_no_news_and_an_expired_one_is(
    db: AsyncDatabase[Document], tenant: str
) -> None:
    clock = Clock()
    watch, store = TaskWatch(db), Notifications(db, clock=clock)
    await notify_tasks(watch, store, [upserted(ticket(tenant, 1, NOW - MINUTE), "v1", clock.now)])

    def lifecycle(event_type: str, scope: str = "personal") -> events.Event:
        data = {"id": f"{tenant}-int", "tenant_id": tenant, "user_id": "alex", "scope": scope}
        return events.Event(f"e-{event_type}-{scope}", "/auth", event_type, None, clock.now, data)

    # A first listing read out of order (its later batch first): the baseline is the
    # earliest, so a ticket changed between the two batches is news.
    bea = [ticket(tenant, n, NOW - MINUTE, user="bea") for n in (7, 8)]
    await notify_tasks(watch, store, [upserted(bea[1], "v1", NOW + 2 * MINUTE)])
    await notify_tasks(watch, store, [upserted(bea[0], "v1", NOW)])
    changed_between = ticket(tenant, 9, NOW + MINUTE, user="bea")
    await notify_tasks(watch, store, [upserted(changed_between, "v1", NOW + 3 * MINUTE)])
    assert await kinds(store, tenant, user="bea") == [("assigned", changed_between.id)]

    # Disconnected and connected again an hour later: the re-listing is not news, even
    # of tickets changed since the first baseline.
    clock.now = NOW + 60 * MINUTE
    await notify_integration(watch, store, lifecycle(events.INTEGRATION_DISCONNECTED))
    await notify_integration(watch, store, lifecycle(events.INTEGRATION_CONNECTED))
    await notify_tasks(
        watch, store, [upserted(ticket(tenant, 5, NOW + 30 * MINUTE), "v1", clock.now)]
    )
    assert await kinds(store, tenant) == []

    await notify_integration(watch, store, lifecycle(events.INTEGRATION_EXPIRED, "tenant"))
    assert await kinds(store, tenant) == []  # a company connection: its admins'
    for _ in range(2):
        await notify_integration(watch, store, lifecycle(events.INTEGRATION_EXPIRED))
    assert await kinds(store, tenant) == [("connection_expired", "")]


async def test_sla_targets_coming_due_and_reading_them(
    db: AsyncDatabase[Document], tenant: str
) -> None:
    clock = Clock()
    store, reader = Notifications(db, clock=clock), TaskReader(db, clock=clock)
    tasks = [
        ticket(tenant, 1, NOW, sla=TaskSla(stage=SlaStage.RESPOND, due_at=NOW + 20 * MINUTE)),
        ticket(tenant, 2, NOW, sla=TaskSla(stage=SlaStage.RESOLVE, due_at=NOW + 5 * 60 * MINUTE)),
        ticket(tenant, 3, NOW, sla=TaskSla(stage=SlaStage.RESPOND, due_at=NOW - MINUTE)),
        ticket(tenant, 4, NOW, user="bea", sla=TaskSla(stage=SlaStage.PLAN, due_at=NOW + MINUTE)),
    ]
    changes = [
        Change(TaskRef.of(t), t, 1, version_key(1, t.source_updated_at, NOW, t.id), "p")
        for t in tasks
    ]
    await TaskStore(db, timedelta(days=14)).write(latest_per_task(changes))
    alex = UserSession(tenant_id=tenant, user_id="alex")
    due = await reader.sla_due(alex, NOW + timedelta(days=1))
    assert [t.external_id for t in due] == ["1", "2"]  # hers, not yet past, soonest first
    for _ in range(2):  # the page asks every half minute
        await store.add(sla_at_risk(due, NOW, timedelta(minutes=60)))
    listed = await store.newest(alex)
    assert [(n.kind, n.task_id, n.read) for n in listed.items] == [
        (NotificationKind.SLA_AT_RISK, tasks[0].id, False)
    ]
    assert listed.unread == 1

    # Marking: another user's ids leave hers alone; her own, then all, are read.
    bea = UserSession(tenant_id=tenant, user_id="bea")
    await store.add(
        sla_at_risk(await reader.sla_due(bea, NOW + timedelta(days=1)), NOW, timedelta(minutes=60))
    )
    await store.mark_read(bea, [listed.items[0].id])
    assert (await store.newest(alex)).unread == 1
    await store.mark_read(alex, [listed.items[0].id])
    assert (await store.newest(alex)).unread == 0
    assert (await store.newest(bea)).unread == 1
    await store.mark_read(bea, None)
    assert (await store.newest(bea)).unread == 0
