"""Replay dead-lettered records to the topic they came from, once the cause is fixed.

An operator command: `replay_dead_letters` moves the records of `<topic>.dlq` back to
`<topic>` and reports what it did. It is at-least-once: the replay group's offsets are
committed only after the broker has acknowledged the republished records, so a crash
mid-replay may republish a record twice; the aggregator dedupes by event id (and record
version), so the duplicate changes nothing. Run one replay at a time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from syntaskio_common import topics
from syntaskio_common.kafka import client_options, consumer_options, topic_partitions
from syntaskio_common.settings import ServiceSettings

logger = logging.getLogger(__name__)

GROUP_ID = "aggregator-dlq-replay"
TRACE_HEADER = "dlq_replayed_from"
REASON_CHARS = 120
_POLL_MS = 1000
# Consecutive empty polls after which the records the end offsets promised are given up on.
_EMPTY_POLLS = 3

Headers = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True)
class ReplayReport:
    """What one run did. `by_reason` counts every record handled (replayed or skipped);
    `remaining` is what is left in the DLQ for the next run (best effort)."""

    replayed: int
    skipped: int
    remaining: int
    by_reason: dict[str, int]
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def replay_dead_letters(
    settings: ServiceSettings,
    source_topic: str = topics.CONNECTWISE_RAW,
    *,
    limit: int | None = None,
    dry_run: bool = False,
) -> ReplayReport:
    """Republish `source_topic`'s dead letters to `source_topic`, then commit them.

    Reads as group `aggregator-dlq-replay` from its committed offsets up to the end offsets
    taken at the start, so records dead-lettered again during this run (the fix did not
    help) wait for the next run instead of looping. Each record keeps its key, body and
    headers minus the `dlq_*` ones, plus `dlq_replayed_from` = "{dlq}/{partition}/{offset}"
    to trace it. A record whose `dlq_original_topic` is not `source_topic` is skipped (and
    committed past, with a warning): a DLQ record must never redirect traffic.

    `limit` caps the records replayed; `dry_run` reads and counts, publishing and
    committing nothing. Offsets are committed per polled batch, once its records are acked.
    """
    if limit is not None and limit < 0:
        raise ValueError("limit must not be negative")
    dlq = topics.dead_letter(source_topic)
    replayed = skipped = 0
    reasons: Counter[str] = Counter()
    async with _clients(settings, dry_run) as (consumer, producer):
        partitions = await topic_partitions(consumer, dlq)
        consumer.assign(partitions)
        start = {tp: await consumer.position(tp) for tp in partitions}
        ends = await _end_offsets(consumer, partitions)
        for tp, offset in start.items():
            consumer.seek(tp, offset)

        done = dict(start)  # per partition: the offset after the last record handled
        pending = {tp for tp in partitions if start[tp] < ends[tp]}
        empty_polls = 0
        while pending and empty_polls < _EMPTY_POLLS and (limit is None or replayed < limit):
            batch = await consumer.getmany(*pending, timeout_ms=_POLL_MS)
            empty_polls = 0 if batch else empty_polls + 1
            acks: list[asyncio.Future[Any]] = []
            for tp, records in batch.items():
                for record in records:
                    if record.offset >= ends[tp] or (limit is not None and replayed >= limit):
                        break
                    headers: Headers = record.headers
                    trace = f"{dlq}/{tp.partition}/{record.offset}"
                    reasons[_reason(headers)] += 1
                    done[tp] = record.offset + 1
                    if _origins(headers) != {source_topic}:
                        skipped += 1
                        logger.warning("skipped a dead letter for another topic: %s", trace)
                        continue
                    replayed += 1
                    if producer is not None:
                        acks.append(
                            await producer.send(
                                source_topic,
                                value=record.value,
                                key=record.key,
                                headers=_replay_headers(headers, trace),
                            )
                        )
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
            await asyncio.gather(*acks)  # durable (acks="all") before the commit
            progress = {tp: done[tp] for tp in batch if done[tp] > start[tp]}
            if progress and not dry_run:
                await consumer.commit(progress)
        if pending and empty_polls >= _EMPTY_POLLS:
            logger.warning("%s: no records arrived up to the end offsets; stopped early", dlq)

        after = await _end_offsets(consumer, partitions)
        kept = start if dry_run else done
        remaining = sum(max(after[tp] - kept[tp], 0) for tp in partitions)
    report = ReplayReport(replayed, skipped, remaining, dict(reasons), dry_run)
    logger.info("replayed dead letters from %s: %s", dlq, report.as_dict())
    return report


@asynccontextmanager
async def _clients(
    settings: ServiceSettings, dry_run: bool
) -> AsyncIterator[tuple[AIOKafkaConsumer, AIOKafkaProducer | None]]:
    """A manually committing consumer and (unless a dry run) an acks=all producer, both
    always stopped; stop() is safe on a client that never started, so it is registered
    before start()."""
    async with AsyncExitStack() as stack:
        consumer = AIOKafkaConsumer(
            **consumer_options(settings),
            client_id=GROUP_ID,
            group_id=GROUP_ID,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        stack.push_async_callback(consumer.stop)
        await consumer.start()
        producer = None
        if not dry_run:
            producer = AIOKafkaProducer(
                **client_options(settings),
                client_id=GROUP_ID,
                acks="all",
            )
            stack.push_async_callback(producer.stop)
            await producer.start()
        yield consumer, producer


async def _end_offsets(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> dict[TopicPartition, int]:
    """The partitions' end offsets now. ListOffsets alone is not trusted: Tansu answers
    with the last batch's first offset + 1, so the tail is fetched, whose response carries
    the true high watermark. Moves the consumer's positions."""
    ends: dict[TopicPartition, int] = dict(await consumer.end_offsets(partitions))
    tails = {tp for tp in partitions if ends[tp] > 0}
    for tp in tails:
        consumer.seek(tp, ends[tp] - 1)
    while tails and (batch := await consumer.getmany(*tails, timeout_ms=_POLL_MS)):
        for tp, records in batch.items():
            ends[tp] = max(ends[tp], records[-1].offset + 1, consumer.highwater(tp) or 0)
            if await consumer.position(tp) >= ends[tp]:
                tails.discard(tp)
    return ends


def _origins(headers: Headers) -> set[str]:
    return {_text(value) for key, value in headers if key == "dlq_original_topic"}


def _reason(headers: Headers) -> str:
    reasons = [_text(value) for key, value in headers if key == "dlq_reason"]
    return (reasons[-1] if reasons else "(no reason)")[:REASON_CHARS]


def _text(value: bytes | None) -> str:
    return (value or b"").decode("utf-8", "replace")


def _replay_headers(headers: Headers, trace: str) -> list[tuple[str, bytes | None]]:
    """The original headers: every `dlq_*` one dropped (a replayed record is not a dead
    letter) and the DLQ coordinates added, so the record can be traced."""
    kept = [(key, value) for key, value in headers if not key.startswith("dlq_")]
    return [*kept, (TRACE_HEADER, trace.encode())]
