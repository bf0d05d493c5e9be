from datetime import UTC, datetime, timedelta

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
    assert await store.upsert(make_task(tenant, "v2", T0 + timedelta(hours=1)))
    assert not await store.upsert(make_task(tenant, "v1", T0))
    assert await store.upsert(make_task(tenant, "v2", T0 + timedelta(hours=1)))  # redelivery
    docs = await db.tasks.find({"tenant_id": tenant}).to_list()
    assert [d["title"] for d in docs] == ["v2"]


async def test_a_removal_older_than_the_stored_version_keeps_the_task(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    db = mongo[settings.mongodb_database]
    store = TaskStore(db)
    await store.create_indexes()
    await store.upsert(make_task(tenant, "v1", T0 + timedelta(hours=1)))
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
    await store.upsert(make_task(tenant, "shared", T0, user="u1"))
    await store.upsert(make_task(tenant, "shared", T0, user="u2"))
    assert await db.tasks.count_documents({"tenant_id": tenant}) == 2
