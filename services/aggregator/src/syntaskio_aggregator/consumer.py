"""Consumes raw ConnectWise events: normalise, store, and send poison to the DLQ.

At-least-once: the offset is committed only after the write is durable (NACK_ON_ERROR
rewinds on an unhandled error). Transient database errors are retried with backoff
inside the handler, so a database restart is ridden out instead of hot-looping.
"""

from __future__ import annotations

import logging
from typing import Any

from faststream.kafka import KafkaBroker, KafkaMessage
from pymongo.errors import PyMongoError
from tenacity import (
    AsyncRetrying,
    retry_if_exception_type,
    stop_after_delay,
    wait_exponential_jitter,
)

from syntaskio_aggregator.normalize import (
    NormalizationError,
    integration_generation,
    normalize,
    removal,
)
from syntaskio_aggregator.store import TaskStore
from syntaskio_common import events, topics
from syntaskio_common.kafka import at_least_once

logger = logging.getLogger(__name__)
GROUP_ID = "aggregator"
LIFECYCLE_GROUP_ID = "aggregator-integrations"


class PoisonMessage(Exception):
    """The record can never be processed as it is."""


def register(broker: KafkaBroker, store: TaskStore) -> None:
    dlq = topics.dead_letter(topics.CONNECTWISE_RAW)

    @at_least_once(broker, topics.CONNECTWISE_RAW, GROUP_ID)
    async def on_raw_event(message: KafkaMessage) -> None:
        # Raw bytes, not FastStream's decoding: a body that isn't JSON must reach the DLQ
        # rather than fail before this handler and be redelivered forever.
        try:
            await apply(store, events.decode_event(message.headers, message.body))
        except (events.InvalidEvent, NormalizationError, PoisonMessage) as error:
            await _dead_letter(broker, dlq, message, str(error))

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
        async for attempt in _retrying():
            with attempt:
                removed = await store.disconnect(tenant_id, integration_id, generation)
        logger.info(
            "removed a disconnected integration's tasks",
            extra={"integration_id": integration_id, "removed": removed},
        )


def _retrying() -> AsyncRetrying:
    """Ride out a database restart instead of failing (and redelivering) at once."""
    return AsyncRetrying(
        retry=retry_if_exception_type(PyMongoError),
        wait=wait_exponential_jitter(multiplier=0.2, max=5.0, jitter=0.5),
        stop=stop_after_delay(60),
        reraise=True,
    )


async def apply(store: TaskStore, event: events.Event) -> None:
    async for attempt in _retrying():
        with attempt:
            await _apply_once(store, event)


async def _apply_once(store: TaskStore, event: events.Event) -> None:
    data = event.data
    if event.type == events.CONNECTWISE_RECORD_UPSERTED:
        await store.upsert(normalize(data), integration_generation(data))
    elif event.type == events.CONNECTWISE_RECORD_REMOVED:
        gone = removal(data)
        await store.delete(
            gone.tenant_id, gone.user_id, gone.source_type, gone.external_id, gone.observed_at
        )
    else:
        raise PoisonMessage(f"unknown event type {event.type!r}")


async def _dead_letter(broker: KafkaBroker, dlq: str, message: KafkaMessage, reason: str) -> None:
    raw: Any = message.raw_message
    headers = {
        **message.headers,
        "dlq_reason": reason[:1000],
        "dlq_original_topic": str(getattr(raw, "topic", "")),
        "dlq_original_partition": str(getattr(raw, "partition", "")),
        "dlq_original_offset": str(getattr(raw, "offset", "")),
    }
    logger.warning("dead-lettered a raw event", extra={"reason": reason, "topic": dlq})
    await broker.publish(message.body, topic=dlq, key=getattr(raw, "key", None), headers=headers)
