"""The aggregator's writes and announcements against the real embedded database."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from raw_events import T0, decoded, integration, removed, ticket, upserted

from syntaskio_aggregator.changes import Change, Latest, Stored, change_of, latest_per_task
from syntaskio_aggregator.store import TaskStore, Written
from syntaskio_aggregator.writer import TaskWriter
from syntaskio_common import task_events
from syntaskio_common.events import KafkaRecord
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.task_events import TaskDeleted, TaskUpserted

HOUR = timedelta(hours=1)


class Feed:
    """Collects what the writer announces, as a subscriber would read it."""

    def __init__(self) -> None:
        self.announced: list[TaskUpserted | TaskDeleted] = []

    async def publish(self, records: Iterable[KafkaRecord]) -> None:
        for record in records:
            parsed = task_events.parse(decoded(record))
            assert parsed is not None
            self.announced.append(parsed)

    def titles(self) -> list[str | None]:
        return [
            item.task.title if isinstance(item, TaskUpserted) else None for item in self.announced
        ]


async def writer_for(
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    store_class: type[TaskStore] = TaskStore,
) -> tuple[TaskWriter, Feed, Any]:
    db = mongo[settings.mongodb_database]
    store = store_class(db, timedelta(days=14))
    await store.create_indexes()
    feed = Feed()
    return TaskWriter(store, feed.publish), feed, db.tasks


_positions = itertools.count()


def position() -> str:
    """Where a test's event was read: a new offset unless the test redoes a batch."""
    return f"raw/0/{next(_positions)}"


def edit(
    tenant: str, title: str, updated: Any, observed: Any, user: str = "u1", **kw: Any
) -> Change:
    ref = integration(tenant, user, kw.pop("generation", 1))
    return change_of(decoded(upserted(ref, ticket(42, updated, title), observed, **kw)), position())


def close(tenant: str, last_updated: Any, observed: Any, generation: int = 1) -> Change:
    return change_of(
        decoded(removed(integration(tenant, generation=generation), 42, observed, last_updated)),
        position(),
    )


async def live_titles(tasks: Any, tenant: str) -> list[str]:
    return [d["title"] async for d in tasks.find({"tenant_id": tenant, "deleted": False})]


async def test_an_older_version_never_overwrites_a_newer_one(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    writer, feed, tasks = await writer_for(mongo, settings)
    newer = edit(tenant, "v2", T0 + HOUR, T0 + 2 * HOUR)
    assert await writer.apply([newer]) == 1
    assert await writer.apply([edit(tenant, "v1", T0, T0 + 3 * HOUR)]) == 0
    # The same event published again (read at another offset) is a duplicate.
    assert await writer.apply([edit(tenant, "v2", T0 + HOUR, T0 + 2 * HOUR)]) == 0
    assert await live_titles(tasks, tenant) == ["v2"]
    assert feed.titles() == ["v2"]


async def test_only_the_newest_change_of_a_batch_is_written_and_announced(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    writer, feed, tasks = await writer_for(mongo, settings)
    batch = [edit(tenant, f"v{i}", T0 + i * HOUR, T0 + i * HOUR) for i in (3, 1, 2)]
    assert await writer.apply(batch) == 1
    assert await live_titles(tasks, tenant) == ["v3"]
    assert feed.titles() == ["v3"]


async def test_an_unchanged_task_is_not_announced_but_its_version_moves_on(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    writer, feed, tasks = await writer_for(mongo, settings)
    await writer.apply([edit(tenant, "same", T0, T0)])
    # Read again later, unchanged (e.g. the connector lost its checkpoint).
    assert await writer.apply([edit(tenant, "same", T0, T0 + HOUR)]) == 0
    assert feed.titles() == ["same"]
    # So a straggler observed in between is older than what is stored now.
    assert await writer.apply([edit(tenant, "in between", T0, T0 + HOUR / 2)]) == 0
    assert await live_titles(tasks, tenant) == ["same"]


async def test_a_removal_is_a_tombstone_that_older_events_cannot_undo(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    writer, feed, tasks = await writer_for(mongo, settings)
    await writer.apply([edit(tenant, "open", T0, T0)])
    # A removal ranking below the stored version (an older close) changes nothing.
    assert await writer.apply([close(tenant, T0 - HOUR, T0 - HOUR)]) == 0
    assert await live_titles(tasks, tenant) == ["open"]
    assert await writer.apply([close(tenant, T0 + HOUR, T0 + HOUR)]) == 1
    assert await live_titles(tasks, tenant) == []
    stored = await tasks.find_one({"tenant_id": tenant})
    assert stored["deleted"] is True
    assert stored["deleted_at"] is not None
    # The open edit arrives again late: the task stays closed.
    assert await writer.apply([edit(tenant, "open", T0, T0)]) == 0
    assert await live_titles(tasks, tenant) == []
    # Reopened (a newer lastUpdated) it comes back.
    assert await writer.apply([edit(tenant, "reopened", T0 + 2 * HOUR, T0 + 2 * HOUR)]) == 1
    assert await live_titles(tasks, tenant) == ["reopened"]
    assert feed.titles() == ["open", None, "reopened"]
    versions = [item.version for item in feed.announced]
    assert versions == sorted(versions)


async def test_a_removal_of_a_task_never_stored_announces_nothing(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    writer, feed, tasks = await writer_for(mongo, settings)
    assert await writer.apply([close(tenant, T0 + HOUR, T0 + HOUR)]) == 0
    assert feed.announced == []
    # Its tombstone still refuses the older upsert that arrives after it.
    assert await writer.apply([edit(tenant, "older", T0, T0)]) == 0
    assert await live_titles(tasks, tenant) == []


async def test_two_users_assigned_the_same_ticket_each_get_their_own_task(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    writer, _, tasks = await writer_for(mongo, settings)
    both = [edit(tenant, "shared", T0, T0, user="u1"), edit(tenant, "shared", T0, T0, user="u2")]
    assert await writer.apply(both) == 2
    assert await tasks.count_documents({"tenant_id": tenant, "deleted": False}) == 2


class CrashAfterWriting(TaskStore):
    """Writes, then dies before anything is announced, the first time only."""

    crashed = False

    async def write(self, latest: Sequence[Latest]) -> Written:
        written = await super().write(latest)
        if not CrashAfterWriting.crashed:
            CrashAfterWriting.crashed = True
            raise ConnectionError("killed between the write and the announcement")
        return written


async def test_a_batch_redone_after_a_crash_announces_what_its_first_attempt_wrote(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    writer, feed, tasks = await writer_for(mongo, settings, CrashAfterWriting)
    first, second = (
        edit(tenant, "v1", T0, T0),
        edit(tenant, "v1", T0, T0 + HOUR),
    )
    with pytest.raises(ConnectionError):
        await writer.apply([first])
    assert await live_titles(tasks, tenant) == ["v1"]
    assert feed.announced == []
    # The batch comes again, now with a later event that changes nothing by itself.
    assert await writer.apply([first, second]) == 1
    assert feed.titles() == ["v1"]
    # Once announced and committed, the same events announce nothing more.
    assert await writer.apply([edit(tenant, "v1", T0, T0 + 2 * HOUR)]) == 0


async def test_disconnecting_removes_the_tasks_and_refuses_that_connections_stragglers(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    writer, feed, tasks = await writer_for(mongo, settings)
    await writer.apply([edit(tenant, "first connection", T0, T0)])
    assert await writer.disconnect(tenant, "i-u1", 1) == 1
    # A record the first connection still had in flight arrives after the disconnect.
    assert await writer.apply([edit(tenant, "straggler", T0 + HOUR, T0 + HOUR)]) == 0
    assert await live_titles(tasks, tenant) == []
    # The reconnect (generation 2) syncs again, even the unchanged ticket; a redelivered
    # disconnect of generation 1 leaves it alone.
    assert await writer.apply([edit(tenant, "first connection", T0, T0, generation=2)]) == 1
    assert await writer.disconnect(tenant, "i-u1", 1) == 0
    assert await live_titles(tasks, tenant) == ["first connection"]
    assert feed.titles() == ["first connection", None, "first connection"]
    # Another tenant's integration with the same id is not fenced.
    assert await writer.apply([edit(f"{tenant}-other", "elsewhere", T0, T0)]) == 1


class DisconnectDuringTheWrite(TaskStore):
    """The disconnect lands after the batch's fence check and before its write."""

    async def write(self, latest: Sequence[Latest]) -> Written:
        change = latest[0].change
        await self.disconnect(change.identity.tenant_id, change.identity.integration_id, 1)
        return await super().write(latest)


async def test_a_disconnect_landing_between_the_check_and_the_write_still_wins(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    writer, feed, tasks = await writer_for(mongo, settings, DisconnectDuringTheWrite)
    await writer.apply([edit(tenant, "raced", T0, T0)])
    assert await live_titles(tasks, tenant) == []
    # Announced, then taken back: a subscriber ends without it too.
    assert feed.titles() == ["raced", None]


class AnotherWriterBetweenReadAndWrite(TaskStore):
    """Another writer (a replica still finishing the batch a rebalance took from it)
    changes the task after this one read the stored versions and before it writes."""

    interloper: Sequence[Latest] = ()

    async def _stored(self, ids: list[str]) -> dict[str, Stored]:
        read = await super()._stored(ids)
        interloper, type(self).interloper = type(self).interloper, ()
        if interloper:
            await TaskStore(self._tasks.database, timedelta(days=14)).write(interloper)
        return read


@pytest.mark.parametrize(
    ("theirs", "ours", "expected", "announced"),
    [
        # Theirs is newer: ours, decided again against it, changes nothing.
        ("newer", "older", "newer", ["base"]),
        # Theirs is older than ours: ours still lands, once.
        ("older", "newer", "newer", ["base", "newer"]),
    ],
)
async def test_a_write_raced_by_another_writer_is_decided_again_against_what_it_wrote(
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    tenant: str,
    theirs: str,
    ours: str,
    expected: str,
    announced: list[str],
) -> None:
    writer, feed, tasks = await writer_for(mongo, settings, AnotherWriterBetweenReadAndWrite)
    await writer.apply([edit(tenant, "base", T0, T0)])
    at = {"older": T0 + HOUR, "newer": T0 + 2 * HOUR}
    their_change = edit(tenant, theirs, at[theirs], at[theirs])
    AnotherWriterBetweenReadAndWrite.interloper = latest_per_task([their_change])
    await writer.apply([edit(tenant, ours, at[ours], at[ours])])
    assert not AnotherWriterBetweenReadAndWrite.interloper  # it did write in between
    assert await live_titles(tasks, tenant) == [expected]
    # This writer announces only what it wrote (the other announces its own).
    assert feed.titles() == announced
