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
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from aiokafka.errors import KafkaError
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError
from pymongo.errors import PyMongoError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from syntaskio_aggregator.changes import Change, change_of
from syntaskio_aggregator.normalize import NormalizationError
from syntaskio_aggregator.writer import TaskWriter
from syntaskio_common import events, topics
from syntaskio_common.events import KafkaRecord
from syntaskio_common.kafka import at_least_once, publish_all

logger = logging.getLogger(__name__)
GROUP_ID: Final = "aggregator"
LIFECYCLE_GROUP_ID: Final = "aggregator-integrations"
T = TypeVar("T")


def register(
    broker: KafkaBroker, writer: TaskWriter, batch_size: int, group_id: str = GROUP_ID
) -> None:
    """Every aggregator replica joins `group_id`; each partition is one replica's."""
    dlq = topics.dead_letter(topics.CONNECTWISE_RAW)

    @at_least_once(broker, topics.CONNECTWISE_RAW, group_id, batch_size=batch_size)
    async def on_raw_events(message: KafkaMessage) -> None:
        # Raw records, not FastStream's decoding: a body that isn't a CloudEvent must
        # reach the DLQ rather than fail before this handler and be redelivered forever.
        changes: list[Change] = []
        poison: list[KafkaRecord] = []
        for record in message.raw_message:
            try:
                event = events.decode_event(_headers(record), record.value)
                position = f"{record.topic}/{record.partition}/{record.offset}"
                changes.append(change_of(event, position))
            except (events.InvalidEvent, NormalizationError, ValidationError) as error:
                poison.append(dead_letter(record, str(error)))
        changed = await retrying(lambda: writer.apply(changes))
        if poison:
            logger.warning("dead-lettered raw events", extra={"count": len(poison), "topic": dlq})
            await retrying(lambda: publish_all(broker, dlq, poison))
        logger.debug("applied a batch", extra={"records": len(changes), "changed": changed})

    @at_least_once(broker, topics.INTEGRATIONS, LIFECYCLE_GROUP_ID)
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
