from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from syntaskio_aggregator.store import TaskStore
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.task import SourceType, Task, TaskPriority, TaskSource, TaskStatus, task_id

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def make_task(tenant: str, title: str, updated: datetime, user: str = "u1") -> Task:
    return Task(
        id=task_id(tenant, user, TaskSource.CONNECTWISE, SourceType.SERVICE_TICKET, "42"),
        tenant_id=tenant,
        user_id=user,
        integration_id="i1",
        source=TaskSource.CONNECTWISE,
        source_type=SourceType.SERVICE_TICKET,
        external_id="42",
        title=title,
        status=TaskStatus.PENDING,
        priority=TaskPriority.MEDIUM,
        source_updated_at=updated,
    )


async def test_an_older_version_never_overwrites_a_newer_one(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    db = mongo[settings.mongodb_database]
    store = TaskStore(db)
    await store.create_indexes()
    assert await store.upsert(make_task(tenant, "v2", T0 + timedelta(hours=1)), 1)
    assert not await store.upsert(make_task(tenant, "v1", T0), 1)
    assert await store.upsert(make_task(tenant, "v2", T0 + timedelta(hours=1)), 1)  # redelivery
    docs = await db.tasks.find({"tenant_id": tenant}).to_list()
    assert [d["title"] for d in docs] == ["v2"]


async def test_a_removal_older_than_the_stored_version_keeps_the_task(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    db = mongo[settings.mongodb_database]
    store = TaskStore(db)
    await store.create_indexes()
    await store.upsert(make_task(tenant, "v1", T0 + timedelta(hours=1)), 1)
    assert not await store.delete(tenant, "u1", SourceType.SERVICE_TICKET, "42", T0)
    assert await store.delete(
        tenant, "u1", SourceType.SERVICE_TICKET, "42", T0 + timedelta(hours=2)
    )
    assert await db.tasks.count_documents({"tenant_id": tenant}) == 0


async def test_two_users_assigned_the_same_ticket_each_get_their_own_task(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    db = mongo[settings.mongodb_database]
    store = TaskStore(db)
    await store.create_indexes()
    await store.upsert(make_task(tenant, "shared", T0, user="u1"), 1)
    await store.upsert(make_task(tenant, "shared", T0, user="u2"), 1)
    assert await db.tasks.count_documents({"tenant_id": tenant}) == 2


async def test_disconnecting_removes_the_tasks_and_refuses_that_connections_stragglers(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    db = mongo[settings.mongodb_database]
    store = TaskStore(db)
    await store.create_indexes()
    await store.upsert(make_task(tenant, "first connection", T0), 1)
    assert await store.disconnect(tenant, "i1", 1) == 1
    # A record the first connection still had in flight arrives after the disconnect.
    assert not await store.upsert(make_task(tenant, "straggler", T0 + timedelta(hours=1)), 1)
    assert await db.tasks.count_documents({"tenant_id": tenant}) == 0
    # The reconnect (generation 2) syncs again, and a redelivered disconnect of
    # generation 1 leaves its tasks alone.
    assert await store.upsert(make_task(tenant, "reconnected", T0), 2)
    assert await store.disconnect(tenant, "i1", 1) == 0
    docs = await db.tasks.find({"tenant_id": tenant}).to_list()
    assert [d["title"] for d in docs] == ["reconnected"]
    # Another tenant's integration with the same id is not fenced.
    assert await store.upsert(make_task(f"{tenant}-other", "elsewhere", T0), 1)


async def test_a_disconnect_landing_between_the_check_and_the_write_still_wins(
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    db = mongo[settings.mongodb_database]
    store = TaskStore(db)
    await store.create_indexes()
    first_check = store._fenced_up_to

    async def disconnect_right_after_the_check(*args: Any) -> int:
        fence = await first_check(*args)
        monkeypatch.setattr(store, "_fenced_up_to", first_check)
        await store.disconnect(tenant, "i1", 1)  # finds nothing to delete yet
        return fence

    monkeypatch.setattr(store, "_fenced_up_to", disconnect_right_after_the_check)
    assert not await store.upsert(make_task(tenant, "raced", T0), 1)
    assert await db.tasks.count_documents({"tenant_id": tenant}) == 0
