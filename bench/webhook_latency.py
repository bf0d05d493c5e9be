"""Webhook to published raw event: how long from a ticket changing in ConnectWise (the
sandbox) until its raw event is durable on `syntaskio.connectwise.raw.v1`, through the
sandbox's signed callback delivery, the connector's receiver and the targeted refresh.

The whole stack runs (broker, database, sandbox, the four services) with a scheduled
sync interval of an hour, so after the initial sync only webhooks bring changes in. One
member's open service tickets get their summary changed, one change every `--spacing`
seconds (a ticket is not changed again while its previous change is still on its way).
Latency is from just before the change to the consumer receiving the upserted event with
the new summary; the producer's record timestamp gives the time without the consumer's
fetch. Also split into the steps the sandbox's delivery log and the connector's sync
jobs can tell apart (all on one machine's wall clock).

    uv run python bench/webhook_latency.py [--changes 50] [--spacing 0.4] [--member atech]
        [--timeout 30]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from asyncio import ALL_COMPLETED, FIRST_COMPLETED
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from syntaskio_common import events, topics
from syntaskio_devstack.ports import Ports
from syntaskio_devstack.stack import EmbeddedStack, StackConfig, dev_secrets

TENANT = "acme-msp"
USER = "webhook-bench@acme-msp.example"
SETUP_SECONDS = 120.0


@dataclass
class Change:
    number: int
    ticket: str
    summary: str
    t0: float = 0.0  # wall clock, just before the PATCH
    received: float | None = None  # the consumer had the event
    produced: float | None = None  # the record's timestamp (set by the connector's producer)
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass
class RawEvents:
    """The upserted raw events of one integration, matched to the changes expected."""

    integration_id: str
    since: float  # records produced before this are from the initial sync
    expected: dict[tuple[str, str], Change] = field(default_factory=dict)
    earlier: int = 0  # read although produced before the consumer started (see `consumer`)
    duplicates: int = 0  # an expected change's event again
    unexpected: list[str] = field(default_factory=list)  # "key summary (partition@offset)"

    def expect(self, change: Change) -> None:
        key = f"{self.integration_id}/service_ticket/{change.ticket}"
        self.expected[(key, change.summary)] = change

    async def collect(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            received = time.time()
            for records in batches.values():
                for record in records:
                    self._match(record, received)

    def _match(self, record: Any, received: float) -> None:
        key = (record.key or b"").decode()
        if not key.startswith(f"{self.integration_id}/"):
            return
        event = events.decode_event(dict(record.headers), record.value or b"")
        if event.type != events.CONNECTWISE_RECORD_UPSERTED:
            return
        if record.timestamp / 1000 < self.since:
            self.earlier += 1
            return
        summary = str((event.data.get("record") or {}).get("summary", ""))
        change = self.expected.get((key, summary))
        if change is None:
            self.unexpected.append(f"{key} {summary!r} ({record.partition}@{record.offset})")
        elif change.received is not None:
            self.duplicates += 1
        else:
            change.received, change.produced = received, record.timestamp / 1000
            change.done.set()


def _wall(stamp: str | None) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    p95 = statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else 0
    return (
        f"median {statistics.median(values) * 1000:7.1f}  p95 {p95 * 1000:7.1f}  "
        f"max {max(values) * 1000:7.1f} ms  (n={len(values)})"
    )


async def _until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    deadline = time.monotonic() + SETUP_SECONDS
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.5)
    raise TimeoutError(f"{what}: not within {SETUP_SECONDS:.0f}s")


async def _arrivals(changes: list[Change], seconds: float, when: str = ALL_COMPLETED) -> None:
    """Until all (or the first) of `changes` have their event, or `seconds` passed."""
    waits = [asyncio.create_task(c.done.wait()) for c in changes]
    try:
        await asyncio.wait(waits, timeout=max(0.0, seconds), return_when=when)
    finally:
        for wait in waits:
            wait.cancel()


class Bench:
    def __init__(self, stack: EmbeddedStack, args: argparse.Namespace) -> None:
        self.stack = stack
        self.args = args
        self.sandbox = httpx.AsyncClient(base_url=stack.url("sandbox"), timeout=30)
        self.gateway = httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30)
        token = dev_secrets(stack.config.data_dir)["INTERNAL_API_TOKEN"]
        self.connector = httpx.AsyncClient(
            base_url=f"{stack.url('connector')}/internal/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        self.integration_id = ""

    async def close(self) -> None:
        for client in (self.sandbox, self.gateway, self.connector):
            await client.aclose()

    # -- setting up ---------------------------------------------------------------------
    async def connect(self) -> list[str]:
        """Sign in, connect the member, wait for callbacks and the initial sync; the
        member's open service tickets as the dashboard shows them."""
        login = {"user_id": USER, "tenant_id": TENANT}
        (await self.gateway.post("/api/v1/session/dev-login", json=login)).raise_for_status()
        keys = next(
            k
            for k in (await self.sandbox.get("/_sandbox/api-keys")).json()
            if k["member_identifier"] == self.args.member
        )
        connected = await self.gateway.post(
            "/api/v1/integrations/connectwise/api-key",
            json={
                "site": f"http://{self.stack.sandbox_site}",
                "company_id": keys["company_id"],
                "public_key": keys["public_key"],
                "private_key": keys["private_key"],
            },
        )
        assert connected.status_code == 201, connected.text
        [integration] = (await self.gateway.get("/api/v1/integrations")).json()
        self.integration_id = integration["id"]

        async def registered() -> bool:
            return len(await self.callbacks()) == 3

        async def synced() -> bool:
            return any(
                j["trigger"] == "connected" and j["status"] == "succeeded"
                for j in await self.jobs()
            )

        await _until(registered, "3 callbacks registered")
        await _until(synced, "the initial sync")
        # The dashboard has them once the aggregator caught up; take them when stable.
        previous: list[str] = []

        async def stable() -> list[str]:
            nonlocal previous
            items = (await self.gateway.get("/api/v1/tasks", params={"limit": 500})).json()
            found = sorted(
                (t["external_id"] for t in items["items"] if t["source_type"] == "service_ticket"),
                key=int,
            )
            done = found if found and found == previous else []
            previous = found
            return done

        tickets: list[str] = await _until(stable, "the member's tasks on the dashboard")
        return tickets

    async def callbacks(self) -> list[dict[str, Any]]:
        listed = (await self.sandbox.get("/_sandbox/callbacks")).json()["callbacks"]
        suffix = f"/webhooks/connectwise/{self.integration_id}"
        return [c for c in listed if c["url"].endswith(suffix)]

    async def jobs(self) -> list[dict[str, Any]]:
        response = await self.connector.get(
            f"/integrations/{self.integration_id}/sync-jobs",
            params={"tenant_id": TENANT, "limit": 100},
        )
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    async def deliveries(self) -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = (
            await self.sandbox.get("/_sandbox/callbacks/deliveries")
        ).json()
        return [d for d in log if d["url"].endswith(f"/webhooks/connectwise/{self.integration_id}")]

    async def consumer(self) -> AIOKafkaConsumer:
        """At the end of the raw topic, the seek resolved before anything changes. The
        embedded broker's end offset can lag its log by a few records for a while after a
        burst of produces, so some of the initial sync's events may still be read."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.stack.kafka_bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        partitions = [
            TopicPartition(topics.CONNECTWISE_RAW, p)
            for p in consumer.partitions_for_topic(topics.CONNECTWISE_RAW) or ()
        ]
        assert partitions, "no partitions for the raw topic"
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        return consumer

    # -- measuring ----------------------------------------------------------------------
    async def run(self) -> None:
        tickets = await self.connect()
        print(
            f"member {self.args.member}: {len(tickets)} open service tickets on the dashboard; "
            f"integration {self.integration_id}"
        )
        delivered_before = len(await self.deliveries())
        started = time.time()
        raw = RawEvents(self.integration_id, started)
        consumer = await self.consumer()
        collecting = asyncio.create_task(raw.collect(consumer))
        try:
            changes = await self.change(tickets, raw)
            await _arrivals(changes, changes[-1].t0 + self.args.timeout - time.time())
        finally:
            collecting.cancel()
            await asyncio.gather(collecting, return_exceptions=True)
            await consumer.stop()
        log = (await self.deliveries())[delivered_before:]
        jobs = [j for j in await self.jobs() if _wall(j["started_at"]) >= started]
        self.report(changes, raw, log, jobs)

    async def change(self, tickets: list[str], raw: RawEvents) -> list[Change]:
        """One change every `spacing` seconds, round the tickets; a ticket whose last
        change has not arrived yet is skipped (waiting if every ticket is)."""
        tag, timeout = uuid.uuid4().hex[:6], self.args.timeout
        changes: list[Change] = []
        outstanding: dict[str, Change] = {}
        turn = 0
        for number in range(self.args.changes):
            while True:
                now = time.time()
                for ticket, change in list(outstanding.items()):
                    if change.done.is_set() or now > change.t0 + timeout:
                        del outstanding[ticket]
                free = [t for t in tickets if t not in outstanding]
                if free:
                    break
                oldest = min(outstanding.values(), key=lambda c: c.t0)
                await _arrivals(
                    list(outstanding.values()), oldest.t0 + timeout - now, FIRST_COMPLETED
                )
            ticket = min(free, key=lambda t: (tickets.index(t) - turn) % len(tickets))
            turn = tickets.index(ticket) + 1
            change = Change(number, ticket, f"Webhook bench {tag} #{number}")
            raw.expect(change)
            change.t0 = time.time()
            patched = await self.sandbox.patch(
                f"/_sandbox/tickets/{ticket}", json={"summary": change.summary}
            )
            patched.raise_for_status()
            changes.append(change)
            outstanding[ticket] = change
            await asyncio.sleep(self.args.spacing)
        return changes

    # -- reporting ----------------------------------------------------------------------
    def report(
        self,
        changes: list[Change],
        raw: RawEvents,
        log: list[dict[str, Any]],
        jobs: list[dict[str, Any]],
    ) -> None:
        timeout = self.args.timeout
        arrived = [c for c in changes if c.received is not None and c.received - c.t0 <= timeout]
        received = [c.received - c.t0 for c in arrived if c.received is not None]
        produced = [c.produced - c.t0 for c in arrived if c.produced is not None]
        print(
            f"\n{len(changes)} changes, {self.args.spacing}s apart: {len(arrived)} arrived, "
            f"{len(changes) - len(arrived)} missed (no event within {timeout:.0f}s); "
            f"besides: {raw.duplicates} duplicate events, {len(raw.unexpected)} unexpected, "
            f"{raw.earlier} from before the measurement"
        )
        for unexpected in raw.unexpected[:5]:
            print(f"  unexpected: {unexpected}")
        print(f"  change -> event received by a consumer  {_ms(received)}")
        print(f"  change -> event's record timestamp      {_ms(produced)}")
        if received:
            print(f"  the first change (signing key fetched): {received[0] * 1000:.1f} ms")

        ok = sum(1 for d in log if d["delivered"])
        retried = sum(1 for d in log if d["attempts"] > 1)
        outcomes = Counter(str(d["status_code"] or d["error"]) for d in log)
        print(
            f"\nsandbox deliveries: {len(log)} made, {ok} got a 2xx, {retried} needed a retry; "
            f"final outcomes {dict(outcomes)}"
        )
        by_trigger = Counter(f"{j['trigger']}/{j['status']}" for j in jobs)
        print(
            f"sync jobs started during the measurement: {dict(by_trigger)} "
            f"({len(changes) / max(1, len(jobs)):.2f} changes per run)"
        )
        durations = [j["duration_ms"] / 1000 for j in jobs if j.get("duration_ms") is not None]
        requests = [j["api_requests"] for j in jobs]
        if requests:
            print(f"  run duration                            {_ms(durations)}")
            print(
                f"  ConnectWise requests per run: median {statistics.median(requests)}, "
                f"max {max(requests)}"
            )
        self.breakdown(arrived, log, jobs)

    def breakdown(
        self, arrived: list[Change], log: list[dict[str, Any]], jobs: list[dict[str, Any]]
    ) -> None:
        """Where the time goes, from the sandbox's delivery log (ms timestamps) and the
        runs' start times: each change's delivery is the first one for its ticket queued
        after it; its run, the last one started before its event was produced."""
        steps = (
            "change -> delivery queued (sandbox)",
            "delivery queued -> answered (receiver)",
            "delivery answered -> run started",
            "run started -> record produced",
            "record produced -> received",
        )
        found: dict[str, list[float]] = {step: [] for step in steps}
        used: set[int] = set()
        starts = sorted(_wall(j["started_at"]) for j in jobs)
        for change in arrived:
            assert change.received is not None
            assert change.produced is not None
            delivery = next(
                (
                    d
                    for d in log
                    if d["delivery_id"] not in used
                    and str(d["id"]) == change.ticket
                    and _wall(d["queued_at"]) >= change.t0 - 0.001
                ),
                None,
            )
            run = max((s for s in starts if s <= change.produced + 0.001), default=None)
            if delivery is None or run is None:
                continue
            used.add(delivery["delivery_id"])
            queued, answered = _wall(delivery["queued_at"]), _wall(delivery["finished_at"])
            times = (change.t0, queued, answered, run, change.produced, change.received)
            for step, before, after in zip(steps, times, times[1:], strict=False):
                found[step].append(after - before)
        print("\nwhere the time goes (a run may start before the sandbox has its answer):")
        for step, values in found.items():
            print(f"  {step:<40}{_ms(values)}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--spacing", type=float, default=0.4, help="seconds between changes")
    parser.add_argument("--member", default="atech")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds until missed")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs/)")
    args = parser.parse_args()
    if args.changes < 1:
        parser.error("--changes must be at least 1")
    data_dir = Path(tempfile.mkdtemp(prefix="webhook-bench-"))
    stack = EmbeddedStack(
        StackConfig(
            data_dir=data_dir,
            ports=Ports.free(),
            database_name=f"bench_{uuid.uuid4().hex[:8]}",
            sync_interval_seconds=3600.0,
            environment="test",
        )
    )
    try:
        started = time.monotonic()
        stack.start_data_stores()
        stack.start_sandbox()
        stack.start_services()
        print(f"stack up in {time.monotonic() - started:.1f}s (data in {data_dir})")

        async def measure() -> None:
            bench = Bench(stack, args)
            try:
                await bench.run()
            finally:
                await bench.close()

        asyncio.run(measure())
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
