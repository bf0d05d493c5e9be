"""Aggregator throughput: raw events per second through the aggregator, against what the
same database does with plain bulk upserts of the same documents in the same run, and
the aggregator's peak memory while draining a backlog.

The embedded broker and database are started; N raw events (distinct open service
tickets from the sandbox's seeded data, spread over the users of one tenant, encoded by
the connector's own functions) are produced before the aggregator starts, so it drains a
backlog. The aggregator then runs as its own process, as in `make run`:

- drain: the raw events the aggregator's consumer group has committed (each batch is
  committed once written and announced), polled from the broker every 0.25 s, from the
  first committed batch to all N, so the process start and the group join are left out;
  the rate is the events committed in that window over its length (the total from
  launch is reported too), with the rates of its first and last quarter, which differ
  when a write's cost grows with the collection. After `--timeout` seconds the figures
  are of what was done by then (marked as timed out).
- peak RSS: the process's `VmHWM` at the end of the drain (`VmRSS` is sampled while
  draining as well), from /proc: the peak over its life, which the drain dominates.
- feed: the records on `syntaskio.tasks.v1`, read with a fresh consumer group (one
  `task.upserted` per stored task is expected; after a timed-out drain the process is
  stopped mid-batch, whose writes are announced only when the batch is redone).
- raw bulk upsert: the N documents the aggregator stores for these events (built here
  with its own `change_of` and `_document`), written with `ReplaceOne({"_id": ...}, doc,
  upsert=True)` in unordered bulks of the same batch size into an empty collection with
  the same indexes (a scratch database, dropped after), before the aggregator starts.
  Inserts, like the drain. Also capped at `--timeout` seconds. For comparison, the same
  documents with `InsertOne` (what the aggregator does for a task it does not have yet).

The ratio (aggregator rate / raw rate) is what the aggregator keeps of the database's
bulk-write rate; the issue's aim is >= 0.8. The raw rate it is taken against is over as
many documents as the aggregator did (all N unless the drain timed out), since on the
embedded database a write's cost grows with the collection. A measurement: it prints
figures and asserts no timings.

    uv run python bench/aggregator_throughput.py [--events 100000] [--batch-size 500]
        [--consumers 1] [--users 20] [--timeout 900] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from bench_stack import bench_stack
from pymongo import AsyncMongoClient, InsertOne, ReplaceOne

from connectwise_sandbox.seed import Dataset, generate
from syntaskio_aggregator.changes import change_of
from syntaskio_aggregator.consumer import GROUP_ID
from syntaskio_aggregator.store import TaskStore, _document
from syntaskio_common import events, topics
from syntaskio_common.events import KafkaRecord
from syntaskio_common.kafka import ensure_topics, topic_partitions
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.assignment import (
    Assignment,
    Entity,
    IntegrationRef,
    fingerprint,
    upserted_event,
)
from syntaskio_devstack.processes import ManagedProcess
from syntaskio_devstack.stack import EmbeddedStack

TENANT = "acme-msp"
ANCHOR = datetime(2026, 11, 1, 8, tzinfo=UTC)
SEED = 42
OPEN_SHARE = 0.75  # at least this share of the sandbox's tickets is open (~80%)
MIB = 1024 * 1024


@dataclass
class Results:
    events: int
    batch_size: int
    consumers: int
    users: int
    build_seconds: float = 0.0  # encoding the raw events (connector's functions)
    produce_seconds: float = 0.0  # producing them, acks=all
    raw_event_bytes: int = 0  # average value size
    normalise_seconds: float = 0.0  # decode + change_of + _document in this process
    startup_seconds: float = 0.0  # aggregator launch → /readyz
    join_seconds: float = 0.0  # ready → first batch committed
    drain_seconds: float = 0.0  # first batch committed → all N (or the timeout)
    drain_events: int = 0  # committed within the drain window
    committed: int = 0  # events committed at the end (N unless the drain timed out)
    complete: bool = False
    stored_at_stop: int = 0  # in `tasks` once drained or stopped
    events_per_second: float = 0.0
    first_quarter_per_second: float = 0.0  # rate in the drain window's first quarter
    last_quarter_per_second: float = 0.0  # … and in its last: a falling rate shows here
    total_seconds: float = 0.0  # launch → all N committed (or the timeout)
    total_events_per_second: float = 0.0
    progress: list[tuple[float, int]] = field(default_factory=list)  # (s from ready, committed)
    rss_ready_mib: float = 0.0
    rss_sampled_max_mib: float = 0.0
    peak_rss_mib: float = 0.0  # VmHWM
    feed_records: int = 0
    feed_types: dict[str, int] = field(default_factory=dict)
    raw_upsert_seconds: float = 0.0
    raw_inserted: int = 0  # N, unless the raw phase hit the timeout too
    raw_docs_per_second: float = 0.0
    # The raw rate over as many documents as the aggregator stored (all N unless its
    # drain timed out): the same collection sizes, as a write's cost grows with them.
    raw_same_size_docs: int = 0  # that many, to the bulk
    raw_same_size_per_second: float = 0.0
    ratio: float = 0.0  # events_per_second / raw_same_size_per_second
    raw_insert_per_second: float = 0.0  # the same documents with InsertOne
    insert_ratio: float = 0.0  # events_per_second / raw_insert_per_second


# -- raw events ---------------------------------------------------------------------------


def _open_tickets(count: int) -> tuple[Dataset, list[dict[str, Any]]]:
    """`count` open service tickets of the sandbox's seeded data (realistic bodies)."""
    tickets = math.ceil(count / OPEN_SHARE) + 100
    while True:
        dataset = generate(seed=SEED, tickets=tickets, anchor=ANCHOR - timedelta(days=1))
        found = [dict(t) for t in dataset.tickets if not t["closedFlag"]]
        if len(found) >= count:
            return dataset, found[:count]
        tickets = math.ceil(tickets * 1.2)


def _integration(user: int) -> IntegrationRef:
    user_id = f"tech{user:02d}@{TENANT}.example"
    return IntegrationRef(
        integration_id=f"i-{user:02d}",
        tenant_id=TENANT,
        user_id=user_id,
        member_identifier=f"tech{user:02d}",
        api_base_url="https://cw.example/v2025_1/apis/3.0/",
        company_id="acme",
        generation=1,
    )


def raw_events(count: int, users: int) -> list[KafkaRecord]:
    """Upserted events as the connector publishes them after an initial sync: one per
    ticket, round-robin over the users, with the status and priority records as context."""
    dataset, tickets = _open_tickets(count)
    statuses = {s["id"]: dict(s) for s in dataset.statuses}
    priorities = {p["id"]: dict(p) for p in dataset.priorities}
    refs = [_integration(user) for user in range(users)]
    assigned = Assignment(("owner",))
    produced: list[KafkaRecord] = []
    for index, record in enumerate(tickets):
        context = {
            "status": statuses.get(record["status"]["id"]),
            "priority": priorities.get(record["priority"]["id"]),
        }
        observed = ANCHOR + timedelta(milliseconds=index)
        ref = refs[index % users]
        (member,) = ref.members
        version = fingerprint(record, {member: assigned})
        produced.append(
            upserted_event(
                ref, member, Entity.SERVICE_TICKET, record, assigned, version, context, observed
            )
        )
    return produced


async def produce(bootstrap: str, records: list[KafkaRecord]) -> None:
    """acks=all like the connector, batched with a short linger so the backlog is written
    quickly; returns once every record is acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=4 * MIB,
    )
    await producer.start()
    try:
        pending = [
            await producer.send(
                topics.CONNECTWISE_RAW,
                record.value,
                key=record.key,
                headers=list(events.header_pairs(record.headers)),
            )
            for record in records
        ]
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


# -- the aggregator -----------------------------------------------------------------------


def _status_kib(pid: int, name: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/{pid}/status, in KiB (0 when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{name}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pid(process: ManagedProcess) -> int:
    assert process.popen is not None, "not started"
    return process.popen.pid


async def committed(reader: AIOKafkaConsumer, partitions: list[TopicPartition]) -> int:
    """Raw events the aggregator's group has committed: written, announced, acknowledged.
    (`reader` is of the group but never joins it, so it does not take partitions.)"""
    offsets = [await reader.committed(partition) for partition in partitions]
    return sum(offset or 0 for offset in offsets)


async def drain(stack: EmbeddedStack, results: Results, limit: float) -> ManagedProcess:
    """Start the aggregator on the backlog and wait until it has committed every event, or
    until `limit` seconds after it is ready (then the figures are of what it did by then);
    returns the (still running) process."""
    aggregator = stack.service("aggregator")
    aggregator.env = {
        **aggregator.env,
        "BATCH_SIZE": str(results.batch_size),
        "CONSUMERS": str(results.consumers),
    }
    reader = AIOKafkaConsumer(
        bootstrap_servers=stack.kafka_bootstrap_servers,
        group_id=GROUP_ID,
        enable_auto_commit=False,
    )
    await reader.start()
    partitions = await topic_partitions(reader, topics.CONNECTWISE_RAW)
    try:
        launched = time.monotonic()
        # start_all blocks (readiness polling): run it off the event loop.
        await asyncio.to_thread(stack.start_all, [aggregator])
        ready = time.monotonic()
        pid = _pid(aggregator)
        results.startup_seconds = ready - launched
        results.rss_ready_mib = _status_kib(pid, "VmRSS") / 1024
        sampled, done = 0, 0
        samples: list[tuple[float, int]] = []
        deadline = ready + limit
        while done < results.events and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            asked = time.monotonic()
            done = await committed(reader, partitions)
            sampled = max(sampled, _status_kib(pid, "VmRSS"))
            if done:
                samples.append((asked, done))
            if not aggregator.running:
                raise RuntimeError(f"the aggregator exited; see {aggregator.log_path}")
    finally:
        await reader.stop()
    if not samples:
        raise TimeoutError(f"no batch committed within {limit:.0f}s of the aggregator's start")
    (first, first_done), (last, _) = samples[0], samples[-1]
    results.committed, results.complete = done, done >= results.events
    results.join_seconds = first - ready
    results.drain_seconds = last - first
    results.drain_events = done - first_done
    results.events_per_second = results.drain_events / max(results.drain_seconds, 1e-9)
    quarter = (last - first) / 4
    results.first_quarter_per_second = _rate(samples, first, first + quarter)
    results.last_quarter_per_second = _rate(samples, last - quarter, last)
    results.total_seconds = last - launched
    results.total_events_per_second = done / results.total_seconds
    results.rss_sampled_max_mib = sampled / 1024
    results.peak_rss_mib = _status_kib(pid, "VmHWM") / 1024
    results.progress = [
        (round(at - ready, 1), count) for at, count in samples[:: max(1, len(samples) // 100)]
    ]
    return aggregator


def _rate(samples: list[tuple[float, int]], start: float, end: float) -> float:
    """Events committed per second between the samples nearest to `start` and `end`."""
    within = [(at, count) for at, count in samples if start <= at <= end]
    if len(within) < 2 or within[-1][0] == within[0][0]:
        return 0.0
    return (within[-1][1] - within[0][1]) / (within[-1][0] - within[0][0])


async def feed(bootstrap: str, expected: int, idle: float) -> tuple[int, dict[str, int]]:
    """Records on the public feed, by event type, read by a fresh group until `expected`
    arrived or nothing more came for `idle` seconds."""
    consumer = AIOKafkaConsumer(
        topics.TASKS,
        bootstrap_servers=bootstrap,
        group_id=f"bench-feed-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=5000,
    )
    await consumer.start()
    types: dict[str, int] = {}
    count = 0
    try:
        last = time.monotonic()
        while count < expected and time.monotonic() - last < idle:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    kind = dict(record.headers).get("ce_type", b"?").decode()
                    types[kind] = types.get(kind, 0) + 1
                    count += 1
                last = time.monotonic()
    finally:
        await consumer.stop()
    return count, types


# -- the database alone -------------------------------------------------------------------


def stored_documents(records: list[KafkaRecord], partitions: int) -> list[Document]:
    """The documents the aggregator stores for these events (its own `change_of` and
    `_document`; `changed_by` names a position of the same shape as the real one)."""
    now = datetime.now(UTC)
    docs = []
    for index, record in enumerate(records):
        event = events.decode_event(record.headers, record.value)
        position = f"{topics.CONNECTWISE_RAW}/{index % partitions}/{index // partitions}"
        docs.append(_document(change_of(event, position), now))
    return docs


def _batches(docs: list[Document], size: int) -> Iterator[list[Document]]:
    for start in range(0, len(docs), size):
        yield docs[start : start + size]


def _upsert(doc: Document) -> ReplaceOne[Document]:
    return ReplaceOne({"_id": doc["_id"]}, doc, upsert=True)


async def raw_write(
    client: AsyncMongoClient[Document],
    docs: list[Document],
    batch_size: int,
    limit: float,
    write: Callable[[Document], ReplaceOne[Document] | InsertOne[Document]] = _upsert,
) -> list[tuple[int, float]]:
    """Bulk-write `docs` (by default upserts by `_id`) into an empty collection with the
    tasks' indexes, until done or `limit` seconds passed: after each bulk, (documents
    inserted so far, seconds so far)."""
    scratch = client[f"bench_raw_{uuid.uuid4().hex[:8]}"]
    await TaskStore(scratch, timedelta(days=14)).create_indexes()
    collection = scratch["tasks"]
    progress: list[tuple[int, float]] = []
    inserted = 0
    started = time.monotonic()
    for batch in _batches(docs, batch_size):
        result = await collection.bulk_write([write(doc) for doc in batch], ordered=False)
        inserted += result.upserted_count + result.inserted_count
        progress.append((inserted, time.monotonic() - started))
        if progress[-1][1] > limit:
            break
    await client.drop_database(scratch.name)
    return progress


# -- the run ------------------------------------------------------------------------------


async def measure(stack: EmbeddedStack, args: argparse.Namespace) -> Results:
    results = Results(
        events=args.events, batch_size=args.batch_size, consumers=args.consumers, users=args.users
    )
    bootstrap = stack.kafka_bootstrap_servers
    settings = ServiceSettings(kafka_bootstrap_servers=bootstrap)
    raw = topics.CONNECTWISE_RAW
    await ensure_topics(settings, [raw, topics.dead_letter(raw), topics.INTEGRATIONS, topics.TASKS])
    started = time.monotonic()
    records = raw_events(args.events, args.users)
    results.build_seconds = time.monotonic() - started
    results.raw_event_bytes = sum(len(r.value) for r in records) // len(records)
    started = time.monotonic()
    await produce(bootstrap, records)
    results.produce_seconds = time.monotonic() - started
    # Built here, not read back: the same documents whether or not the drain completes.
    started = time.monotonic()
    docs = stored_documents(records, settings.kafka_topic_partitions)
    results.normalise_seconds = time.monotonic() - started
    del records

    client: AsyncMongoClient[Document] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
    try:
        # The database alone first: a stopped aggregator's last bulk write would go on in
        # the server (it does not notice the client has gone) and slow what came after.
        progress = await raw_write(client, docs, args.batch_size, args.timeout)
        inserts = await raw_write(client, docs, args.batch_size, args.timeout, InsertOne)
        del docs
        tasks = client[stack.config.database_name]["tasks"]
        aggregator = await drain(stack, results, args.timeout)
        if not results.complete:
            # Still draining: stop it, so the feed is compared with what it stored.
            await asyncio.to_thread(aggregator.stop)
        results.stored_at_stop = await tasks.count_documents({})
        results.feed_records, results.feed_types = await feed(
            bootstrap, results.stored_at_stop, 30.0
        )
    finally:
        await client.close()
    results.raw_inserted, results.raw_upsert_seconds = progress[-1]
    results.raw_docs_per_second = results.raw_inserted / results.raw_upsert_seconds
    same = next(((n, s) for n, s in progress if n >= results.committed), progress[-1])
    results.raw_same_size_docs = same[0]
    results.raw_same_size_per_second = same[0] / same[1]
    results.ratio = results.events_per_second / results.raw_same_size_per_second
    results.raw_insert_per_second = inserts[-1][0] / inserts[-1][1]
    results.insert_ratio = results.events_per_second / results.raw_insert_per_second
    return results


def summary(r: Results) -> str:
    feed_types = ", ".join(f"{kind.rsplit('.', 2)[-2]} {n}" for kind, n in r.feed_types.items())
    drained = "" if r.complete else f" — TIMED OUT with {r.committed} of {r.events} done"
    return "\n".join(
        [
            f"events: {r.events} raw upserts ({r.users} users, one tenant, "
            f"~{r.raw_event_bytes} B each); batch size {r.batch_size}, "
            f"{r.consumers} consumer(s)",
            f"production: built in {r.build_seconds:.1f} s, produced in {r.produce_seconds:.1f} s "
            f"({r.events / r.produce_seconds:,.0f}/s, acks=all)",
            f"aggregator drain: {r.drain_events} events in {r.drain_seconds:.1f} s = "
            f"{r.events_per_second:,.0f} events/s (first batch committed → last){drained}",
            f"  first quarter {r.first_quarter_per_second:,.0f}/s, last quarter "
            f"{r.last_quarter_per_second:,.0f}/s",
            f"  incl. start (with the group join) {r.startup_seconds:.1f} s and the first "
            f"batch {r.join_seconds:.1f} s: {r.total_seconds:.1f} s = "
            f"{r.total_events_per_second:,.0f} events/s",
            f"raw bulk upsert: {r.raw_inserted} docs in {r.raw_upsert_seconds:.1f} s = "
            f"{r.raw_docs_per_second:,.0f} docs/s"
            + ("" if r.raw_inserted >= r.events else " — TIMED OUT"),
            f"  over the first {r.raw_same_size_docs} (as many as the aggregator did): "
            f"{r.raw_same_size_per_second:,.0f} docs/s",
            f"raw bulk insert (InsertOne, for comparison): {r.raw_insert_per_second:,.0f} docs/s",
            f"ratio aggregator / raw bulk upsert: {r.ratio:.2f} (aim >= 0.8); "
            f"/ raw bulk insert: {r.insert_ratio:.2f}",
            f"aggregator RSS: peak {r.peak_rss_mib:.0f} MiB (VmHWM); sampled max "
            f"{r.rss_sampled_max_mib:.0f} MiB; {r.rss_ready_mib:.0f} MiB when ready",
            f"feed {topics.TASKS}: {r.feed_records} records for {r.stored_at_stop} tasks stored "
            f"({feed_types or 'none'})",
            f"in-process normalising (decode, change_of, _document): "
            f"{r.events / r.normalise_seconds:,.0f} events/s on one core",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=500, help="aggregator BATCH_SIZE")
    parser.add_argument("--consumers", type=int, default=1, help="aggregator CONSUMERS")
    parser.add_argument("--users", type=int, default=20, help="users of the one tenant")
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="seconds of draining before reporting"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs/)")
    args = parser.parse_args()
    if args.events < 1 or args.batch_size < 1 or args.users < 1:
        parser.error("--events, --batch-size and --users must be at least 1")
    with bench_stack("aggregator-bench-", keep=args.keep) as stack:
        results = asyncio.run(measure(stack, args))
    print(json.dumps(asdict(results), indent=2) if args.json else summary(results))


if __name__ == "__main__":
    main()
