"""The one Kafka factory: a FastStream broker, topic creation, and CloudEvent publishing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from syntaskio_common.events import KafkaRecord
from syntaskio_common.settings import ServiceSettings

logger = logging.getLogger(__name__)


def create_broker(settings: ServiceSettings, client_id: str) -> KafkaBroker:
    # acks="all": a publish is acknowledged only once it is durable. Producer idempotence
    # is not relied on (the embedded broker lacks it); consumers dedupe by version instead.
    # Batches of up to 512 KiB a partition: a burst (a page of a sync, a batch's
    # announcements) goes in a few requests, where the default 16 KiB queues most of it
    # behind one acknowledged request after another.
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        max_batch_size=512 * 1024,
        logger=logger,
    )


Handler = Callable[..., Awaitable[None]]


def at_least_once(
    broker: KafkaBroker,
    topic: str,
    group_id: str,
    *,
    description: str,
    batch_size: int | None = None,
    consumers: int = 1,
    decoder: Any = None,
) -> Callable[[Handler], Handler]:
    """The one way to subscribe: the offset is committed only after the handler returns
    (an unhandled error rewinds), and a new group starts from the oldest record. With
    `batch_size`, the handler gets up to that many records at once and the whole batch
    is committed or rewound together (every partition in it rewinds to its earliest).
    With `consumers`, that many consumers of the group run in this process, each owning
    some of the topic's partitions, so their batches are handled concurrently (one
    key's records stay in one partition, so in order)."""
    batching: dict[str, Any] = (
        {"batch": True, "max_records": batch_size} if batch_size is not None else {}
    )
    subscribers = [
        broker.subscriber(
            topic,
            group_id=group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
            description=description,
            decoder=decoder,
            include_in_schema=index == 0,  # one subscription, however many consumers
            **batching,
        )
        for index in range(consumers)
    ]

    def subscribe(handler: Handler) -> Handler:
        for subscriber in subscribers:
            subscriber(handler)
        return handler

    return subscribe


async def ensure_topics(settings: ServiceSettings, topics: Iterable[str]) -> None:
    """Create missing topics (embedded broker, tests). In production topics are
    provisioned by operations and this is a no-op for the ones that exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.kafka_topic_partitions, 1)
            for name in topics
            if name not in existing
        ]
        if missing:
            # Another service may have created it first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, in order, for a consumer that assigns them itself (it
    reads them all, without a group's assignment); LookupError if the topic is missing."""
    await consumer.topics()  # fetches the cluster metadata
    numbers = consumer.partitions_for_topic(topic)
    if not numbers:
        raise LookupError(f"topic {topic!r} does not exist")
    return [TopicPartition(topic, n) for n in sorted(numbers)]


async def publish(broker: KafkaBroker, topic: str, record: KafkaRecord) -> None:
    await broker.publish(
        record.value,
        topic=topic,
        key=record.key,
        headers=record.headers,
    )


Send = Callable[[Iterable[KafkaRecord]], Awaitable[None]]


def documented_publisher(broker: KafkaBroker, topic: str, *, description: str, schema: Any) -> Send:
    """A publisher that appears in the service's AsyncAPI document with its payload
    schema; sends concurrently and returns once all are acked."""
    publisher = broker.publisher(topic, title=topic, description=description, schema=schema)

    async def send(records: Iterable[KafkaRecord]) -> None:
        await asyncio.gather(
            *(publisher.publish(r.value, key=r.key, headers=r.headers) for r in records)
        )

    return send


async def publish_all(broker: KafkaBroker, topic: str, records: Iterable[KafkaRecord]) -> None:
    """Publish concurrently (the producer batches them) and return once all are acked."""
    await asyncio.gather(*(publish(broker, topic, record) for record in records))
