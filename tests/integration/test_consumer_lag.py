"""Consumer lag on the embedded broker: per group and partition, the records the group has
not committed — all of them before it commits anything, none once it has caught up."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from syntaskio_common.consumer_lag import ConsumerLag
from syntaskio_common.kafka import ensure_topics
from syntaskio_common.settings import ServiceSettings


async def produce(bootstrap: str, topic: str, per_partition: dict[int, int]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for partition, count in per_partition.items():
            for n in range(count):
                await producer.send_and_wait(topic, f"{n}".encode(), partition=partition)
    finally:
        await producer.stop()


async def commit(bootstrap: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit({tp: OffsetAndMetadata(o, "") for tp, o in offsets.items()})
    finally:
        await consumer.stop()


async def test_lag_is_what_each_group_has_not_committed_per_partition(
    settings: ServiceSettings,
) -> None:
    topic = f"test.lag.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic])
    bootstrap = settings.kafka_bootstrap_servers
    await produce(bootstrap, topic, {0: 5, 1: 3, 2: 0})
    behind, caught_up = f"lagging-{uuid.uuid4().hex[:6]}", f"done-{uuid.uuid4().hex[:6]}"
    monitor = ConsumerLag(settings, {behind: topic, caught_up: topic})

    before = await monitor.measure()
    assert before == {
        **{(behind, topic, p): n for p, n in ((0, 5), (1, 3), (2, 0))},
        **{(caught_up, topic, p): n for p, n in ((0, 5), (1, 3), (2, 0))},
    }

    await commit(bootstrap, behind, {TopicPartition(topic, 0): 2})
    await commit(bootstrap, caught_up, {TopicPartition(topic, 0): 5, TopicPartition(topic, 1): 3})
    after = await monitor.measure()
    assert after[(behind, topic, 0)] == 3
    assert after[(behind, topic, 1)] == 3
    assert {p: after[(caught_up, topic, p)] for p in (0, 1, 2)} == {0: 0, 1: 0, 2: 0}
    assert monitor.lag == after  # what the gauge reports
