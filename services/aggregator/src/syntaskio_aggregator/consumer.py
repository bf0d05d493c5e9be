"""Consumes raw ConnectWise events in batches: normalise, write, announce, and send
poison to the DLQ.

At-least-once: a batch's offsets are committed only after its write is durable and its
announcements and dead letters are acknowledged (NACK_ON_ERROR rewinds every partition
of the batch on an unhandled error). Transient failures (database restarting, broker
unavailable) are retried with backoff inside the handler for up to a minute, so an
outage is ridden out instead of spun on; only then is the batch rewound.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Annotated, Any, Final, TypeVar

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError, WithJsonSchema
from pymongo.errors import PyMongoError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from syntaskio_aggregator.changes import Change, change_of
from syntaskio_aggregator.normalize import NormalizationError
from syntaskio_aggregator.record_spans import RecordSpans
from syntaskio_aggregator.store import TaskStore
from syntaskio_aggregator.writer import TaskWriter
from syntaskio_common import events, topics
from syntaskio_common.connectwise_events import RawRecordRemoved, RawRecordUpserted
from syntaskio_common.events import KafkaRecord
from syntaskio_common.kafka import BatchProducer, at_least_once
from syntaskio_common.task_events import TaskDeleted, TaskUpserted
from syntaskio_common.telemetry import meter

logger = logging.getLogger(__name__)
GROUP_ID: Final = "aggregator"
LIFECYCLE_GROUP_ID: Final = "aggregator-integrations"
T = TypeVar("T")


RECORDS = meter.create_counter(
    "syntaskio.aggregator.records",
    unit="{record}",
    description="Raw records handled: applied, or dead-lettered (sent to the DLQ)",
)
BATCHES = meter.create_counter(
    "syntaskio.aggregator.batches", unit="{batch}", description="Batches of raw records handled"
)
WRITE_DURATION = meter.create_histogram(
    "syntaskio.aggregator.write.duration",
    unit="s",
    description="A batch's write and announcements, retries included",
)
TASKS_CHANGED = meter.create_counter(
    "syntaskio.aggregator.tasks.changed",
    unit="{task}",
    description="Tasks whose content changed (each announced on the task feed)",
)

# What the AsyncAPI document shows for each topic (one schema per Kafka record).
RAW_EVENT: Final = {
    "oneOf": [RawRecordUpserted.model_json_schema(), RawRecordRemoved.model_json_schema()]
}


async def _records(message: Any) -> Any:
    """The batch's raw records, undecoded (see `on_raw_events`)."""
    return list(message.raw_message)


def register(
    broker: KafkaBroker,
    producer: BatchProducer,
    store: TaskStore,
    batch_size: int,
    fetch_max_wait_ms: int,
    consumers: int = 1,
    group_id: str = GROUP_ID,
) -> None:
    """Every aggregator replica joins `group_id` with `consumers` consumers; each
    partition is one consumer's. What it announces and dead-letters goes by `producer`."""
    announce = producer.documented(
        broker,
        topics.TASKS,
        description="The public task feed: `io.syntaskio.task.upserted.v1` (the whole task) "
        "and `io.syntaskio.task.deleted.v1`, keyed by task id, only when a task changed. "
        "Keep per task the event with the greatest `version`.",
        schema=TaskUpserted | TaskDeleted,
    )
    send_to_dlq = producer.documented(
        broker,
        topics.dead_letter(topics.CONNECTWISE_RAW),
        description="Raw records that cannot be processed, as they came, with `dlq_reason`, "
        "`dlq_original_topic`, `dlq_original_partition`, `dlq_original_offset` headers. "
        "`syntaskio-aggregator replay-dlq` moves them back.",
        schema=Annotated[Any, WithJsonSchema(RAW_EVENT)],
    )
    writer = TaskWriter(store, announce)

    @at_least_once(
        broker,
        topics.CONNECTWISE_RAW,
        group_id,
        batch_size=batch_size,
        consumers=consumers,
        fetch_max_wait_ms=fetch_max_wait_ms,
        description="Raw ConnectWise records from the connector (CloudEvents, binary mode): "
        "`io.syntaskio.connectwise.record.upserted.v1` and `….removed.v1`, keyed "
        "`{integration}/{entity}/{id}`.",
        decoder=_records,
    )
    async def on_raw_events(
        records: Annotated[list[Any], WithJsonSchema(RAW_EVENT)],
    ) -> None:
        # Raw records, not FastStream's decoding: a body that isn't a CloudEvent must
        # reach the DLQ rather than fail before this handler and be redelivered forever.
        changes: list[Change] = []
        poison: list[KafkaRecord] = []
        traced = RecordSpans()
        for record in records:
            try:
                event = events.decode_event(_headers(record), record.value)
                position = f"{record.topic}/{record.partition}/{record.offset}"
                change = change_of(event, position)
            except (events.InvalidEvent, NormalizationError, ValidationError) as error:
                poison.append(dead_letter(record, str(error)))
                continue
            changes.append(replace(change, traceparent=traced.begin(event, record)))
        started = time.perf_counter()
        with traced.writing():
            changed = await retrying(lambda: writer.apply(changes))
        WRITE_DURATION.record(time.perf_counter() - started)
        if poison:
            logger.warning("dead-lettered raw events", extra={"count": len(poison)})
            await retrying(lambda: send_to_dlq(poison))
        BATCHES.add(1)
        RECORDS.add(len(changes), {"outcome": "applied"})
        RECORDS.add(len(poison), {"outcome": "dead_lettered"})
        TASKS_CHANGED.add(changed)
        logger.debug("applied a batch", extra={"records": len(changes), "changed": changed})

    @at_least_once(
        broker,
        topics.INTEGRATIONS,
        LIFECYCLE_GROUP_ID,
        fetch_max_wait_ms=fetch_max_wait_ms,
        description="Integration lifecycle; `io.syntaskio.integration.disconnected.v1` "
        "removes the connection's tasks.",
    )
    async def on_integration_event(message: KafkaMessage) -> None:
        """A disconnected integration's tasks leave the dashboard."""
        try:
            event = events.decode_event(message.headers, message.body)
        except events.InvalidEvent:
            return  # not ours to judge: other services publish here too
        if event.type != events.INTEGRATION_DISCONNECTED:
            return
        tenant_id, integration_id = event.data.get("tenant_id"), event.data.get("id")
        generation = event.data.get("generation", 0)
        if (
            not isinstance(tenant_id, str)
            or not isinstance(integration_id, str)
            or not isinstance(generation, int)
        ):
            logger.warning(
                "integration event without tenant, id or generation", extra={"id": event.id}
            )
            return
        removed = await retrying(lambda: writer.disconnect(tenant_id, integration_id, generation))
        logger.info(
            "removed a disconnected integration's tasks",
            extra={"integration_id": integration_id, "removed": removed},
        )


async def retrying(attempt: Callable[[], Awaitable[T]]) -> T:
    """Ride out a database restart or a broker hiccup instead of failing (and being
    redelivered) at once."""
    async for retry in AsyncRetrying(
        retry=retry_if_exception_type((PyMongoError, KafkaError)),
        wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.5),
        stop=stop_after_delay(60),
        reraise=True,
    ):
        with retry:
            return await attempt()
    raise AssertionError("unreachable: tenacity reraises")


def _headers(record: Any) -> dict[str, bytes]:
    return {name: value for name, value in record.headers or ()}


def dead_letter(record: Any, reason: str) -> KafkaRecord:
    """The record as it came, with why it failed and where it came from."""
    headers: dict[str, str] = {
        name: value.decode(errors="replace") for name, value in _headers(record).items()
    }
    headers |= {
        "dlq_reason": reason[:1000],
        "dlq_original_topic": str(record.topic),
        "dlq_original_partition": str(record.partition),
        "dlq_original_offset": str(record.offset),
    }
    return KafkaRecord(key=record.key, value=record.value or b"", headers=headers)
