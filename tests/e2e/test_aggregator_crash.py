"""The running aggregator killed with SIGKILL in the middle of its work: after a restart
the dashboard and the public feed hold exactly what applying every event once, in order,
gives. (The chaos suite kills it again mid-drain, under a live system.)"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import eventually, topic_events
from pymongo import MongoClient
from pymongo.database import Database
from raw_events import Reference, history, integration, rebuilt_from_feed, task_of

from syntaskio_common import topics
from syntaskio_common.events import KafkaRecord
from syntaskio_common.kafka import create_broker, publish_all
from syntaskio_common.settings import Environment, ServiceSettings
from syntaskio_devstack.stack import EmbeddedStack


@pytest.fixture
def db(system: EmbeddedStack) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(system.mongodb_url, tz_aware=True)
    yield client[system.config.database_name]
    client.close()


def produce(system: EmbeddedStack, records: list[KafkaRecord]) -> None:
    async def run() -> None:
        settings = ServiceSettings(
            environment=Environment.TEST, kafka_bootstrap_servers=system.kafka_bootstrap_servers
        )
        broker = create_broker(settings, client_id="crash-test")
        await broker.connect()
        try:
            await publish_all(broker, topics.CONNECTWISE_RAW, records)
        finally:
            await broker.stop()

    asyncio.run(run())


def test_an_aggregator_killed_mid_batch_loses_and_duplicates_nothing(
    system: EmbeddedStack, db: Database[dict[str, Any]]
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:10]}"
    produced = history(integration(tenant), tickets=800, steps=4, seed=5)
    expected = Reference.of(produced).tasks
    produce(system, produced)
    aggregator = system.processes["aggregator"]
    written = {"tenant_id": tenant}
    # Killed once its first batches are written, with most of them still to come.
    assert eventually(
        lambda: db["tasks"].count_documents(written) >= len(expected) // 4, interval=0.05
    )
    aggregator.kill()
    assert db["tasks"].count_documents(written) < len(produced)
    aggregator.start()
    aggregator.wait_ready(90.0)

    def dashboard() -> dict[str, Any]:
        return {
            doc["_id"]: task_of(doc)
            for doc in db["tasks"].find({"tenant_id": tenant, "deleted": False})
        }

    assert eventually(lambda: dashboard() == expected, timeout=120.0)
    # A subscriber of the feed alone sees the same: nothing announced was lost.
    assert eventually(
        lambda: rebuilt_from_feed(topic_events(system, topics.TASKS), tenant) == expected,
        timeout=60.0,
    )
