"""The one Kafka factory: a FastStream broker, topic creation, and CloudEvent publishing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from syntaskio_common.events import KafkaRecord
from syntaskio_common.settings import ServiceSettings

logger = logging.getLogger(__name__)


def create_broker(settings: ServiceSettings, client_id: str) -> KafkaBroker:
    # acks="all": a publish is acknowledged only once it is durable. Producer idempotence
    # is not relied on (the embedded broker lacks it); consumers dedupe by version instead.
    return KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        logger=logger,
    )


Handler = Callable[[KafkaMessage], Awaitable[None]]


def at_least_once(
    broker: KafkaBroker, topic: str, group_id: str, *, batch_size: int | None = None
) -> Callable[[Handler], Any]:
    """The one way to subscribe: the offset is committed only after the handler returns
    (an unhandled error rewinds), and a new group starts from the oldest record. With
    `batch_size`, the handler gets up to that many records at once (`raw_message` is
    their tuple) and the whole batch is committed or rewound together."""
    if batch_size is None:
        return broker.subscriber(
            topic,
            group_id=group_id,
            auto_offset_reset="earliest",
            ack_policy=AckPolicy.NACK_ON_ERROR,
        )
    return broker.subscriber(
        topic,
        group_id=group_id,
        auto_offset_reset="earliest",
        ack_policy=AckPolicy.NACK_ON_ERROR,
        batch=True,
        max_records=batch_size,
    )


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


async def publish(broker: KafkaBroker, topic: str, record: KafkaRecord) -> None:
    await broker.publish(
        record.value,
        topic=topic,
        key=record.key,
        headers=record.headers,
    )


async def publish_all(broker: KafkaBroker, topic: str, records: Iterable[KafkaRecord]) -> None:
    """Publish concurrently (the producer batches them) and return once all are acked."""
    await asyncio.gather(*(publish(broker, topic, record) for record in records))
