"""The aggregator's consumer against the real embedded broker and database: redelivery,
reordering within a key, poison, and the public feed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from raw_events import (
    T0,
    Reference,
    history,
    integration,
    rebuilt_from_feed,
    shuffled_within_keys,
    task_of,
    ticket,
    upserted,
)

from syntaskio_aggregator import consumer
from syntaskio_aggregator.changes import Change, change_of
from syntaskio_aggregator.consumer import register
from syntaskio_aggregator.dlq_replay import replay_dead_letters
from syntaskio_aggregator.normalize import NormalizationError
from syntaskio_aggregator.store import TaskStore
from syntaskio_common import events, topics
from syntaskio_common.kafka import BatchProducer, create_broker, ensure_topics, publish_all
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.task import Task

DLQ = topics.dead_letter(topics.CONNECTWISE_RAW)


@pytest.fixture
async def aggregator(
    request: pytest.FixtureRequest, settings: ServiceSettings, mongo: AsyncMongoClient[Document]
) -> AsyncIterator[KafkaBroker]:
    """An aggregator consumer (its `CONSUMERS`: the test's parameter, else 1)."""
    await ensure_topics(settings, [topics.CONNECTWISE_RAW, DLQ, topics.TASKS])
    store = TaskStore(mongo[settings.mongodb_database], timedelta(days=14))
    await store.create_indexes()
    broker = create_broker(settings, client_id="aggregator-test")
    # Small batches, so one test spans many of them; a group of its own, so it reads
    # every partition even while the end-to-end system's aggregator is running.
    group = f"aggregator-test-{uuid.uuid4().hex[:8]}"
    producer = BatchProducer(settings, client_id="aggregator-test")
    register(
        broker,
        producer,
        store,
        batch_size=50,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        consumers=getattr(request, "param", 1),
        group_id=group,
    )
    await producer.start()
    await broker.start()
    yield broker
    await broker.stop()
    await producer.stop()


class TopicReader:
    """Everything on a topic from the start, for one test (its own consumer)."""

    def __init__(self, settings: ServiceSettings, topic: str) -> None:
        self._consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=settings.kafka_bootstrap_servers,
            group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
            auto_offset_reset="earliest",
        )
        self.records: list[Any] = []

    async def __aenter__(self) -> TopicReader:
        await self._consumer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._consumer.stop()

    async def read(self) -> list[Any]:
        batches = await self._consumer.getmany(timeout_ms=500)
        self.records += [record for records in batches.values() for record in records]
        return self.records

    def events(self) -> list[events.Event]:
        return [events.decode_event(dict(r.headers), r.value or b"") for r in self.records]


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.3)


async def live_tasks(mongo: AsyncMongoClient[Document], db: str, tenant: str) -> dict[str, Task]:
    found = mongo[db].tasks.find({"tenant_id": tenant, "deleted": False})
    return {doc["_id"]: task_of(doc) async for doc in found}


# Three consumers: their batches (of different partitions) are written concurrently.
@pytest.mark.parametrize("aggregator", [3], indirect=True, ids=["3 consumers"])
async def test_redelivered_and_reordered_events_end_as_if_each_was_applied_once_in_order(
    aggregator: KafkaBroker,
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    tenant: str,
) -> None:
    ref = integration(tenant)
    produced = history(ref, tickets=40, steps=8, seed=7)
    expected = Reference.of(produced).tasks
    assert 0 < len(expected) < 40  # some tickets end closed
    async with TopicReader(settings, topics.TASKS) as feed:
        # Every event twice, each key's events shuffled, keys interleaved.
        await publish_all(
            aggregator, topics.CONNECTWISE_RAW, shuffled_within_keys(produced * 2, seed=11)
        )

        async def settled() -> bool:
            return await live_tasks(mongo, settings.mongodb_database, tenant) == expected

        assert await eventually(settled)

        # A subscriber of the feed alone ends with the same dashboard.
        async def rebuilt() -> bool:
            await feed.read()
            return rebuilt_from_feed(feed.events(), tenant) == expected

        assert await eventually(rebuilt)
        announced = {event.id for event in feed.events()}

        # The same events published once more announce nothing new. Then one more edit
        # per ticket (read after the duplicates, in the same partitions) marks the end.
        later = T0 + timedelta(days=30)
        edits = [upserted(ref, ticket(n, later, f"#{n} final"), later) for n in range(1, 41)]
        await publish_all(aggregator, topics.CONNECTWISE_RAW, [*produced, *edits])
        final = Reference.of([*produced, *edits]).tasks

        async def edited() -> bool:
            await feed.read()
            return rebuilt_from_feed(feed.events(), tenant) == final

        assert await eventually(edited)
        assert await live_tasks(mongo, settings.mongodb_database, tenant) == final
        new = {event.id for event in feed.events()} - announced
        assert len(new) == 40  # the edits, and nothing for the duplicates


async def test_a_poison_message_goes_to_the_dlq_and_the_stream_keeps_flowing(
    aggregator: KafkaBroker,
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    tenant: str,
) -> None:
    ref = integration(tenant)
    broken = upserted(ref, ticket(2, T0, "no version") | {"_info": {}}, T0)
    async with TopicReader(settings, DLQ) as dlq:
        await aggregator.publish(
            b"definitely not an event", topic=topics.CONNECTWISE_RAW, key=tenant.encode()
        )
        await publish_all(
            aggregator,
            topics.CONNECTWISE_RAW,
            [broken, upserted(ref, ticket(3, T0, "after poison"), T0)],
        )

        async def stored() -> bool:
            tasks = await live_tasks(mongo, settings.mongodb_database, tenant)
            return [t.title for t in tasks.values()] == ["after poison"]

        assert await eventually(stored)

        async def both_dead() -> list[Any]:
            mine = [r for r in await dlq.read() if r.key in (tenant.encode(), broken.key)]
            return mine if len(mine) == 2 else []

        dead = await eventually(both_dead)
        by_key = {record.key: record for record in dead}
        not_an_event = by_key[tenant.encode()]
        headers = {k: v.decode() for k, v in not_an_event.headers}
        assert "not a CloudEvent" in headers["dlq_reason"]
        assert headers["dlq_original_topic"] == topics.CONNECTWISE_RAW
        assert int(headers["dlq_original_offset"]) >= 0
        assert not_an_event.value == b"definitely not an event"
        # A valid CloudEvent keeps its own headers, and says what was wrong with it.
        headers = {k: v.decode() for k, v in by_key[broken.key].headers}
        assert headers["ce_id"] == broken.headers["ce_id"]
        assert "lastUpdated" in headers["dlq_reason"]


async def test_dead_letters_replayed_after_a_fix_become_tasks(
    aggregator: KafkaBroker,
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    tenant: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def normaliser_with_a_bug(event: events.Event, position: str) -> Change:
        if event.data.get("tenant_id") == tenant:
            raise NormalizationError("a bug in this release")
        return change_of(event, position)

    monkeypatch.setattr(consumer, "change_of", normaliser_with_a_bug)
    ref = integration(tenant)
    produced = [upserted(ref, ticket(n, T0, f"#{n}"), T0) for n in range(1, 6)]
    async with TopicReader(settings, DLQ) as dlq:
        await publish_all(aggregator, topics.CONNECTWISE_RAW, produced)

        async def all_dead() -> bool:
            mine = [r for r in await dlq.read() if tenant.encode() in (r.value or b"")]
            return len(mine) == len(produced)

        assert await eventually(all_dead)
    assert await live_tasks(mongo, settings.mongodb_database, tenant) == {}

    monkeypatch.undo()  # the fix is deployed
    report = await replay_dead_letters(settings)
    assert report.replayed >= len(produced)
    assert report.by_reason["a bug in this release"] == len(produced)

    async def recovered() -> bool:
        tasks = await live_tasks(mongo, settings.mongodb_database, tenant)
        return tasks == Reference.of(produced).tasks

    assert await eventually(recovered)
    assert (await replay_dead_letters(settings, dry_run=True)).by_reason.get(
        "a bug in this release", 0
    ) == 0
