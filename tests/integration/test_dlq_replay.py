"""The dead-letter replay against the real embedded broker: one fresh topic pair per test."""

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from uuid import uuid4

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from syntaskio_aggregator import dlq_replay
from syntaskio_aggregator.dlq_replay import replay_dead_letters
from syntaskio_common import topics
from syntaskio_common.kafka import ensure_topics
from syntaskio_common.settings import ServiceSettings


@dataclass(frozen=True)
class Letter:
    """A record as it was on the source topic, and where it sits in the DLQ."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    trace: str  # "{dlq}/{partition}/{offset}"


@pytest.fixture
async def source(settings: ServiceSettings) -> str:
    topic = f"test.raw.{uuid4().hex[:8]}"
    await ensure_topics(settings, [topic, topics.dead_letter(topic)])
    return topic


async def dead_letter(
    settings: ServiceSettings,
    source: str,
    count: int,
    *,
    reason: str = "unknown event type",
    original_topic: str | None = "",
) -> list[Letter]:
    """Put `count` records in the DLQ the way the aggregator does; `original_topic` ""
    means the source topic, None leaves the header out. Sent together, so the broker
    batches them (Tansu then under-reports the end offsets)."""
    dlq = topics.dead_letter(source)
    origin = source if original_topic == "" else original_topic
    letters: list[tuple[bytes, bytes, list[tuple[str, bytes]]]] = []
    for _ in range(count):
        event_id = uuid4().hex
        headers = [
            ("ce_id", event_id.encode()),
            ("ce_type", b"io.syntaskio.connectwise.record.upserted.v1"),
            ("content-type", b"application/json"),
        ]
        letters.append((f"key-{event_id}".encode(), json.dumps({"id": event_id}).encode(), headers))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        sends = []
        for key, value, headers in letters:
            dlq_headers = [("dlq_reason", reason.encode()), ("dlq_original_partition", b"0")]
            dlq_headers.append(("dlq_original_offset", b"7"))
            if origin is not None:
                dlq_headers.append(("dlq_original_topic", origin.encode()))
            sends.append(await producer.send(dlq, value, key=key, headers=headers + dlq_headers))
        sent = await asyncio.gather(*sends)
    finally:
        await producer.stop()
    return [
        Letter(key, value, headers, f"{dlq}/{meta.partition}/{meta.offset}")
        for (key, value, headers), meta in zip(letters, sent, strict=True)
    ]


async def read(
    settings: ServiceSettings, topic: str, expected: int, *, settle: float = 2.0
) -> list[Any]:
    """Every record on `topic` from the start (no group, no end offsets): waits up to 30 s
    for `expected` records, then `settle` seconds more for any that should not be there."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        await consumer.topics()
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        loop = asyncio.get_running_loop()
        seen: list[Any] = []
        deadline = loop.time() + 30
        while len(seen) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            seen += [record for records in batch.values() for record in records]
        settled = loop.time() + settle
        while loop.time() < settled:
            batch = await consumer.getmany(timeout_ms=500)
            seen += [record for records in batch.values() for record in records]
        return seen
    finally:
        await consumer.stop()


def as_letter(record: Any) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    return record.key, record.value, list(record.headers)


def replayed_as(letter: Letter) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """What a replayed letter must look like on the source topic."""
    return letter.key, letter.value, [*letter.headers, ("dlq_replayed_from", letter.trace.encode())]


async def test_dead_letters_go_back_intact_and_only_once(
    settings: ServiceSettings, source: str
) -> None:
    letters = await dead_letter(settings, source, 5)

    report = await replay_dead_letters(settings, source)

    assert (report.replayed, report.skipped, report.remaining) == (5, 0, 0)
    assert report.by_reason == {"unknown event type": 5}
    assert report.as_dict() == {
        "replayed": 5,
        "skipped": 0,
        "remaining": 0,
        "by_reason": {"unknown event type": 5},
        "dry_run": False,
    }
    back = await read(settings, source, 5)
    assert sorted(as_letter(r) for r in back) == sorted(replayed_as(x) for x in letters)
    assert not any(
        k.startswith("dlq_") and k != "dlq_replayed_from" for r in back for k, _ in r.headers
    )

    again = await replay_dead_letters(settings, source)
    assert (again.replayed, again.skipped, again.remaining, again.by_reason) == (0, 0, 0, {})
    assert len(await read(settings, source, 5)) == 5


async def test_a_dry_run_moves_nothing_and_counts_by_reason(
    settings: ServiceSettings, source: str
) -> None:
    long_reason = "x" * 500
    await dead_letter(settings, source, 2, reason="not a CloudEvent")
    await dead_letter(settings, source, 3, reason=long_reason)

    dry = await replay_dead_letters(settings, source, dry_run=True)

    assert dry.dry_run
    assert (dry.replayed, dry.skipped, dry.remaining) == (5, 0, 5)
    assert dry.by_reason == {"not a CloudEvent": 2, "x" * dlq_replay.REASON_CHARS: 3}
    assert await read(settings, source, 0) == []

    real = await replay_dead_letters(settings, source)
    assert (real.replayed, real.remaining) == (5, 0)
    assert len(await read(settings, source, 5)) == 5


async def test_a_limit_moves_only_that_many_and_the_next_run_the_rest(
    settings: ServiceSettings, source: str
) -> None:
    letters = await dead_letter(settings, source, 5)

    first = await replay_dead_letters(settings, source, limit=2)

    assert (first.replayed, first.remaining) == (2, 3)
    assert len(await read(settings, source, 2)) == 2

    rest = await replay_dead_letters(settings, source, limit=10)
    assert (rest.replayed, rest.remaining) == (3, 0)
    back = await read(settings, source, 5)
    assert sorted(as_letter(r) for r in back) == sorted(replayed_as(x) for x in letters)


async def test_a_dead_letter_naming_another_topic_is_skipped_not_sent(
    settings: ServiceSettings, source: str
) -> None:
    elsewhere = f"test.other.{uuid4().hex[:8]}"
    await ensure_topics(settings, [elsewhere])
    await dead_letter(settings, source, 2, original_topic=elsewhere, reason="redirect")
    await dead_letter(settings, source, 1, original_topic=None, reason="no origin")
    [good] = await dead_letter(settings, source, 1)

    report = await replay_dead_letters(settings, source)

    assert (report.replayed, report.skipped, report.remaining) == (1, 3, 0)
    assert report.by_reason == {"redirect": 2, "no origin": 1, "unknown event type": 1}
    assert [as_letter(r) for r in await read(settings, source, 1)] == [replayed_as(good)]
    assert await read(settings, elsewhere, 0) == []
    # Committed past, like the rest: the next run does not count them again.
    again = await replay_dead_letters(settings, source)
    assert (again.replayed, again.skipped) == (0, 0)


async def test_records_dead_lettered_during_a_run_wait_for_the_next_run(
    settings: ServiceSettings, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The end offsets are taken once, at the start: a record dead-lettered again while
    the replay runs (the fix did not help) is not replayed again in the same run."""
    await dead_letter(settings, source, 3)
    late: list[Letter] = []
    snapshot: Callable[..., Awaitable[Any]] = dlq_replay._end_offsets

    async def then_more_arrive(*args: Any) -> Any:
        ends = await snapshot(*args)
        if not late:  # just after the start's snapshot, before anything is read
            late.extend(await dead_letter(settings, source, 2, reason="again"))
        return ends

    monkeypatch.setattr(dlq_replay, "_end_offsets", then_more_arrive)

    report = await replay_dead_letters(settings, source)

    assert len(late) == 2
    assert (report.replayed, report.remaining) == (3, 2)
    assert report.by_reason == {"unknown event type": 3}
    monkeypatch.undo()
    following = await replay_dead_letters(settings, source)
    assert (following.replayed, following.remaining, following.by_reason) == (2, 0, {"again": 2})
    back = await read(settings, source, 5)
    assert sorted(as_letter(r) for r in back if r.value in {x.value for x in late}) == sorted(
        replayed_as(x) for x in late
    )


async def test_a_run_stops_when_the_promised_records_never_come(
    settings: ServiceSettings, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End offsets that overstate the log (a lagging broker) end the run after a few empty
    polls instead of hanging; what was there is still replayed and committed."""
    await dead_letter(settings, source, 3)
    real: Callable[..., Awaitable[Any]] = dlq_replay._end_offsets
    calls = 0

    async def overstated(*args: Any) -> Any:
        nonlocal calls
        calls += 1
        ends = await real(*args)
        return {tp: end + 1 for tp, end in ends.items()} if calls == 1 else ends

    monkeypatch.setattr(dlq_replay, "_end_offsets", overstated)

    report = await asyncio.wait_for(replay_dead_letters(settings, source), timeout=30)

    assert (report.replayed, report.remaining) == (3, 0)
    monkeypatch.undo()
    assert (await replay_dead_letters(settings, source)).replayed == 0
