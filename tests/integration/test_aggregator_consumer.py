"""The aggregator's consumer against the real embedded broker and database."""

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from syntaskio_aggregator.consumer import register
from syntaskio_aggregator.store import TaskStore
from syntaskio_common import events, topics
from syntaskio_common.kafka import create_broker, ensure_topics, publish
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings

DLQ = topics.dead_letter(topics.CONNECTWISE_RAW)


@pytest.fixture
async def aggregator(
    settings: ServiceSettings, mongo: AsyncMongoClient[Document]
) -> AsyncIterator[KafkaBroker]:
    await ensure_topics(settings, [topics.CONNECTWISE_RAW, DLQ])
    store = TaskStore(mongo[settings.mongodb_database])
    await store.create_indexes()
    broker = create_broker(settings, client_id="aggregator-test")
    register(broker, store)
    await broker.start()
    yield broker
    await broker.stop()


def ticket_event(tenant: str, ticket_id: int, updated: str, summary: str) -> events.KafkaRecord:
    data: dict[str, Any] = {
        "tenant_id": tenant,
        "user_id": "u1",
        "integration_id": "i1",
        "entity": "service_ticket",
        "external_id": str(ticket_id),
        "api_base_url": "http://cw/v2025_1/apis/3.0/",
        "company_id": "acme",
        "record": {
            "id": ticket_id,
            "summary": summary,
            "closedFlag": False,
            "_info": {"lastUpdated": updated},
        },
    }
    return events.encode_event(
        event_id=f"service_ticket/{ticket_id}/{updated}",
        source=f"/test/{tenant}",
        event_type=events.CONNECTWISE_RECORD_UPSERTED,
        key=f"i1/service_ticket/{ticket_id}",
        data=data,
    )


async def eventually(check: Any, within: float = 45.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.3)


async def test_raw_events_become_tasks_and_redelivery_changes_nothing(
    aggregator: KafkaBroker,
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    tenant: str,
) -> None:
    tasks = mongo[settings.mongodb_database].tasks
    newer = ticket_event(tenant, 1, "2026-11-02T00:00:00Z", "new title")
    older = ticket_event(tenant, 1, "2026-11-01T00:00:00Z", "old title")
    for record in (newer, older, newer, ticket_event(tenant, 2, "2026-11-01T00:00:00Z", "two")):
        await publish(aggregator, topics.CONNECTWISE_RAW, record)

    async def both_stored() -> bool:
        return await tasks.count_documents({"tenant_id": tenant}) == 2

    assert await eventually(both_stored)
    first = await tasks.find_one({"tenant_id": tenant, "external_id": "1"})
    assert first is not None
    assert first["title"] == "new title"
    assert first["source_updated_at"] == datetime(2026, 11, 2, tzinfo=UTC)


async def test_a_poison_message_goes_to_the_dlq_and_the_stream_keeps_flowing(
    aggregator: KafkaBroker,
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    tenant: str,
) -> None:
    dlq = AIOKafkaConsumer(
        DLQ,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=f"dlq-{tenant}",
        auto_offset_reset="earliest",
    )
    await dlq.start()
    try:
        await aggregator.publish(
            b"definitely not an event", topic=topics.CONNECTWISE_RAW, key=tenant.encode()
        )
        await publish(
            aggregator,
            topics.CONNECTWISE_RAW,
            ticket_event(tenant, 3, "2026-11-01T00:00:00Z", "after poison"),
        )

        async def stored() -> bool:
            tasks = mongo[settings.mongodb_database].tasks
            return await tasks.count_documents({"tenant_id": tenant}) == 1

        assert await eventually(stored)
        dead: list[Any] = []
        deadline = asyncio.get_running_loop().time() + 30
        while not dead and asyncio.get_running_loop().time() < deadline:
            batches = await dlq.getmany(timeout_ms=1000)
            dead += [m for ms in batches.values() for m in ms if m.key == tenant.encode()]
        assert len(dead) == 1
        headers = {k: v.decode() for k, v in dead[0].headers}
        assert "not a CloudEvent" in headers["dlq_reason"]
        assert headers["dlq_original_topic"] == topics.CONNECTWISE_RAW
        assert dead[0].value == b"definitely not an event"
    finally:
        await dlq.stop()
