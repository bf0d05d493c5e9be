"""Webhook latency: how long from a ticket changing in ConnectWise (the sandbox) until
(1) its raw event is durable on `syntaskio.connectwise.raw.v1`, through the sandbox's
signed callback delivery, the connector's receiver and the targeted refresh, and (2) the
change is on an open dashboard: the gateway's task stream (`GET /api/v1/tasks/stream`,
Server-Sent Events) has sent the `task.upserted` event with the new summary as title,
after the aggregator stored the task and announced it on `syntaskio.tasks.v1`.

The whole stack runs (broker, database, sandbox, the four services) with a scheduled
sync interval of an hour, so after the initial sync only webhooks bring changes in (the
sync jobs started during the measurement are reported by trigger, to show it). A user
signs in and connects one member with API keys; once the callbacks are registered, the
initial sync has succeeded and the dashboard's task list is stable, the bench opens the
task stream as the dashboard page does (its own connection, the session cookie) and
waits for its `ready` event. The member's open service tickets then get their summary
changed through the sandbox's admin API, one change every `--spacing` seconds (a ticket
is not changed again while its previous change is still on its way to either end).

Latencies are from just before the change (the `PATCH`) to:

- the raw topic: a consumer (assigned every partition, at the end) receiving the
  upserted event with the new summary; the producer's record timestamp gives the time
  without the consumer's fetch;
- the task feed: the record timestamp of the aggregator's `task.upserted` with the new
  title on `syntaskio.tasks.v1` (the task is stored by then), read by the same consumer;
- the dashboard: the stream's `task.upserted` event with the new title parsed by the
  client.

Each is reported as median, p95 and max ms, with the changes that missed it (nothing
within `--timeout` seconds). The first leg is split further into the steps the sandbox's
delivery log and the connector's sync jobs can tell apart, and the whole path into
change -> raw record produced -> task announced (aggregator) -> on the dashboard
(gateway's feed reader and SSE), the aggregator's leg at the start of its span for the
record (from the stack's trace sink): the consumer's waits, then the batch's work.
Before the changes, each process's CPU at rest (`--rest` seconds with nothing changing):
the price of the consumers' short waits. All on one machine's wall clock. `--json`
prints the figures as JSON (progress goes to stderr). A measurement: it prints figures
and asserts no timings.

    uv run python bench/webhook_latency.py [--changes 50] [--spacing 0.4] [--member atech]
        [--timeout 30] [--rest 10] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from asyncio import ALL_COMPLETED, FIRST_COMPLETED
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from bench_dashboard import DashboardUser, progress, until
from bench_stack import Sample, bench_stack

from syntaskio_common import events, topics
from syntaskio_connector.webhooks import CALLBACK_TYPES
from syntaskio_devstack.stack import EmbeddedStack

TENANT = "acme-msp"
USER = "webhook-bench@acme-msp.example"


@dataclass
class Change:
    number: int
    ticket: str
    summary: str
    t0: float = 0.0  # wall clock, just before the PATCH
    received: float | None = None  # the consumer had the raw event
    produced: float | None = None  # the raw record's timestamp (the connector's producer)
    raw_at: tuple[int, int] | None = None  # the raw record's (partition, offset)
    handled: float | None = None  # the aggregator began applying it (its span's start)
    announced: float | None = None  # the task feed record's timestamp (the aggregator's)
    shown: float | None = None  # the dashboard's stream had the task.upserted event
    done: asyncio.Event = field(default_factory=asyncio.Event)  # received and shown

    def settle(self) -> None:
        if self.received is not None and self.shown is not None:
            self.done.set()


@dataclass
class RawEvents:
    """The upserted raw events of one integration, and the aggregator's task events of
    its tasks, matched to the changes expected."""

    integration_id: str
    since: float  # records produced before this are from the initial sync
    expected: dict[tuple[str, str], Change] = field(default_factory=dict)
    earlier: int = 0  # read although produced before the consumer started (see `consumer`)
    duplicates: int = 0  # an expected change's event again
    unexpected: list[str] = field(default_factory=list)  # "key summary (partition@offset)"
    feed_duplicates: int = 0  # the same, on the task feed
    feed_unexpected: list[str] = field(default_factory=list)

    def expect(self, change: Change) -> None:
        self.expected[(self.key(change.ticket), change.summary)] = change

    def key(self, ticket: str) -> str:
        return f"{self.integration_id}/service_ticket/{ticket}"

    async def collect(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            received = time.time()
            for records in batches.values():
                for record in records:
                    if record.topic == topics.TASKS:
                        self._match_task(record)
                    else:
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
            change.raw_at = (record.partition, record.offset)
            change.settle()

    def _match_task(self, record: Any) -> None:
        event = events.decode_event(dict(record.headers), record.value or b"")
        task = event.data.get("task") if event.type == events.TASK_UPSERTED else None
        if not isinstance(task, dict) or task.get("integration_id") != self.integration_id:
            return
        if record.timestamp / 1000 < self.since:
            self.earlier += 1
            return
        ticket, title = str(task.get("external_id")), str(task.get("title"))
        change = self.expected.get((self.key(ticket), title))
        if change is None:
            self.feed_unexpected.append(f"{ticket} {title!r} ({record.partition}@{record.offset})")
        elif change.announced is not None:
            self.feed_duplicates += 1
        else:
            change.announced = record.timestamp / 1000


@dataclass
class Dashboard:
    """The gateway's task stream as the dashboard page holds it open, its `task.upserted`
    events matched to the changes expected (by the task's ticket and title)."""

    raw: RawEvents  # whose `expected` it shares
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    status: int | None = None
    counts: Counter[str] = field(default_factory=Counter)  # events by name
    duplicates: int = 0
    unexpected: list[str] = field(default_factory=list)  # "ticket title"

    async def read(self, client: httpx.AsyncClient) -> None:
        fields: dict[str, str] = {}
        async with client.stream("GET", "/api/v1/tasks/stream") as response:
            self.status = response.status_code
            async for line in response.aiter_lines():
                if line == "" and "event" in fields:
                    self._event(fields["event"], fields.get("data", "null"), time.time())
                    fields = {}
                elif line.startswith("data:"):
                    data = line.removeprefix("data:").removeprefix(" ")
                    fields["data"] = f"{fields['data']}\n{data}" if "data" in fields else data
                elif line and not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")

    def _event(self, name: str, data: str, at: float) -> None:
        self.counts[name] += 1
        if name == "ready":
            self.ready.set()
        if name != "task.upserted":
            return
        task = json.loads(data).get("task") or {}
        ticket, title = str(task.get("external_id")), str(task.get("title"))
        change = self.raw.expected.get((self.raw.key(ticket), title))
        if change is None:
            self.unexpected.append(f"{ticket} {title!r}")
        elif change.shown is not None:
            self.duplicates += 1
        else:
            change.shown = at
            change.settle()


def _wall(stamp: str | None) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() if stamp else 0.0


def _stats(values: list[float]) -> dict[str, float]:
    """Median, p95 and max in ms, and how many (n)."""
    if not values:
        return {"n": 0}
    p95 = statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 else 0
    return {
        "median_ms": statistics.median(values) * 1000,
        "p95_ms": p95 * 1000,
        "max_ms": max(values) * 1000,
        "n": len(values),
    }


def _ms(values: list[float]) -> str:
    if not values:
        return "n/a"
    found = _stats(values)
    return (
        f"median {found['median_ms']:7.1f}  p95 {found['p95_ms']:7.1f}  "
        f"max {found['max_ms']:7.1f} ms  (n={len(values)})"
    )


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
        self.user = DashboardUser(stack, TENANT, USER)
        self.sandbox, self.gateway, self.connector = (
            self.user.sandbox,
            self.user.gateway,
            self.user.connector,
        )
        self.integration_id = ""
        self.results: dict[str, Any] = {}
        self.lines: list[str] = []

    async def close(self) -> None:
        await self.user.close()

    def out(self, line: str = "") -> None:
        self.lines.append(line)

    # -- setting up ---------------------------------------------------------------------
    async def connect(self) -> list[str]:
        """Sign in, connect the member, wait for the initial sync and the callbacks; the
        member's open service tickets as the dashboard shows them."""
        tasks = await self.user.connect(self.args.member)
        [integration] = (await self.gateway.get("/api/v1/integrations")).json()
        self.integration_id = integration["id"]

        async def registered() -> bool:
            return len(await self.callbacks()) == len(CALLBACK_TYPES)

        await until(registered, f"{len(CALLBACK_TYPES)} callbacks registered")
        return [t["external_id"] for t in tasks]

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
        """At the end of the raw topic and the task feed, the seek resolved before anything
        changes. The embedded broker's end offset can lag its log by a few records for a
        while after a burst of produces, so some of the initial sync's events may still be
        read."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.stack.kafka_bootstrap_servers,
            enable_auto_commit=False,
            fetch_max_wait_ms=50,
        )
        await consumer.start()
        partitions = [
            TopicPartition(topic, p)
            for topic in (topics.CONNECTWISE_RAW, topics.TASKS)
            for p in consumer.partitions_for_topic(topic) or ()
        ]
        assert {p.topic for p in partitions} == {topics.CONNECTWISE_RAW, topics.TASKS}, (
            "no partitions for the raw topic or the task feed"
        )
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        for partition in partitions:
            await consumer.position(partition)
        return consumer

    # -- measuring ----------------------------------------------------------------------
    async def run(self) -> None:
        tickets = await self.connect()
        progress(
            f"member {self.args.member}: {len(tickets)} open service tickets on the dashboard; "
            f"integration {self.integration_id}"
        )
        self.results |= {"member": self.args.member, "tickets": len(tickets)}
        await self.at_rest()
        delivered_before = len(await self.deliveries())
        started = time.time()
        raw = RawEvents(self.integration_id, started)
        dashboard = Dashboard(raw)
        consumer = await self.consumer()
        # The dashboard page's stream: its own connection, with the session cookie.
        stream_client = httpx.AsyncClient(
            base_url=self.gateway.base_url,
            cookies=self.gateway.cookies,
            timeout=httpx.Timeout(10.0, read=None),
        )
        collecting = asyncio.create_task(raw.collect(consumer))
        streaming = asyncio.create_task(dashboard.read(stream_client))
        try:
            await asyncio.wait_for(dashboard.ready.wait(), 30)
            changes = await self.change(tickets, raw)
            await _arrivals(changes, changes[-1].t0 + self.args.timeout - time.time())
        finally:
            for task in (collecting, streaming):
                task.cancel()
            await asyncio.gather(collecting, streaming, return_exceptions=True)
            await consumer.stop()
            await stream_client.aclose()
        log = (await self.deliveries())[delivered_before:]
        await self.handled(changes)
        jobs = [j for j in await self.jobs() if _wall(j["started_at"]) >= started]
        self.report(changes, raw, dashboard, log, jobs)

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

    async def at_rest(self) -> None:
        """Each process's CPU while nothing happens (the initial sync done, the schedule
        hourly, no stream open) for `--rest` seconds: what the consumers' waits for
        records cost when there are none."""
        pids = {
            name: process.popen.pid
            for name, process in self.stack.processes.items()
            if process.popen is not None and process.running
        }
        before, started = {name: Sample.of(pid) for name, pid in pids.items()}, time.monotonic()
        await asyncio.sleep(self.args.rest)
        elapsed = time.monotonic() - started
        cpu = {
            name: round(100 * (Sample.of(pid).cpu_seconds - before[name].cpu_seconds) / elapsed, 1)
            for name, pid in pids.items()
        }
        self.results["at_rest_cpu_pct"] = cpu
        shown = ", ".join(f"{name} {pct}%" for name, pct in cpu.items())
        self.out(f"at rest ({self.args.rest:.0f} s, nothing changing): CPU {shown}")
        self.out(f"  all processes: {sum(cpu.values()):.1f}% of one core\n")

    async def handled(self, changes: list[Change]) -> None:
        """When the aggregator began applying each change's raw record: the start of its
        span for the record (`RecordSpans`), from the trace sink, once the services have
        exported their spans (every 200 ms)."""
        await asyncio.sleep(1.0)
        async with httpx.AsyncClient(base_url=self.stack.url("trace_sink")) as sink:
            spans = (
                await sink.get("/spans", params={"name": f"{topics.CONNECTWISE_RAW} apply"})
            ).json()
        began = {
            (
                span["attributes"]["messaging.kafka.destination.partition"],
                span["attributes"]["messaging.kafka.message.offset"],
            ): span["start_ns"] / 1e9
            for span in spans
            if span["service"] == "aggregator"
        }
        for change in changes:
            if change.raw_at is not None:
                change.handled = began.get(change.raw_at)

    # -- reporting ----------------------------------------------------------------------
    def report(
        self,
        changes: list[Change],
        raw: RawEvents,
        dashboard: Dashboard,
        log: list[dict[str, Any]],
        jobs: list[dict[str, Any]],
    ) -> None:
        timeout = self.args.timeout

        def within(at: float | None, change: Change) -> bool:
            return at is not None and at - change.t0 <= timeout

        arrived = [c for c in changes if within(c.received, c)]
        received = [c.received - c.t0 for c in arrived if c.received is not None]
        produced = [c.produced - c.t0 for c in arrived if c.produced is not None]
        announced = [c.announced - c.t0 for c in changes if c.announced is not None]
        shown_changes = [c for c in changes if within(c.shown, c)]
        shown = [c.shown - c.t0 for c in shown_changes if c.shown is not None]
        self.results |= {
            "changes": len(changes),
            "spacing_s": self.args.spacing,
            "timeout_s": timeout,
            "raw_arrived": len(arrived),
            "raw_missed": len(changes) - len(arrived),
            "raw_duplicates": raw.duplicates,
            "raw_unexpected": len(raw.unexpected),
            "earlier": raw.earlier,
            "feed_announced": len(announced),
            "feed_duplicates": raw.feed_duplicates,
            "feed_unexpected": len(raw.feed_unexpected),
            "dashboard_shown": len(shown),
            "dashboard_missed": len(changes) - len(shown),
            "dashboard_duplicates": dashboard.duplicates,
            "dashboard_unexpected": len(dashboard.unexpected),
            "dashboard_events": dict(dashboard.counts),
            "dashboard_status": dashboard.status,
            "latency": {
                "raw_received": _stats(received),
                "raw_produced": _stats(produced),
                "task_announced": _stats(announced),
                "dashboard": _stats(shown),
            },
            "first_change_raw_ms": received[0] * 1000 if received else None,
        }
        self.out(
            f"{len(changes)} changes, {self.args.spacing}s apart: {len(arrived)} arrived, "
            f"{len(changes) - len(arrived)} missed (no event within {timeout:.0f}s); "
            f"besides: {raw.duplicates} duplicate events, {len(raw.unexpected)} unexpected, "
            f"{raw.earlier} from before the measurement"
        )
        for unexpected in raw.unexpected[:5]:
            self.out(f"  unexpected: {unexpected}")
        self.out(f"  change -> event received by a consumer  {_ms(received)}")
        self.out(f"  change -> event's record timestamp      {_ms(produced)}")
        if received:
            self.out(f"  the first change (signing key fetched): {received[0] * 1000:.1f} ms")
        self.out(
            f"\non the open dashboard (task stream, SSE `task.upserted` with the new title): "
            f"{len(shown)} shown, {len(changes) - len(shown)} missed; besides: "
            f"{dashboard.duplicates} duplicate, {len(dashboard.unexpected)} unexpected; "
            f"stream events {dict(dashboard.counts)}"
        )
        for unexpected in dashboard.unexpected[:5]:
            self.out(f"  unexpected: {unexpected}")
        self.out(f"  change -> on the dashboard               {_ms(shown)}")
        self.out(f"  change -> task feed record timestamp     {_ms(announced)}")
        if raw.feed_unexpected or raw.feed_duplicates:
            self.out(
                f"  task feed: {raw.feed_duplicates} duplicate, "
                f"{len(raw.feed_unexpected)} unexpected {raw.feed_unexpected[:3]}"
            )

        ok = sum(1 for d in log if d["delivered"])
        retried = sum(1 for d in log if d["attempts"] > 1)
        outcomes = Counter(str(d["status_code"] or d["error"]) for d in log)
        self.out(
            f"\nsandbox deliveries: {len(log)} made, {ok} got a 2xx, {retried} needed a retry; "
            f"final outcomes {dict(outcomes)}"
        )
        by_trigger = Counter(f"{j['trigger']}/{j['status']}" for j in jobs)
        self.out(
            f"sync jobs started during the measurement: {dict(by_trigger)} "
            f"({len(changes) / max(1, len(jobs)):.2f} changes per run)"
        )
        durations = [j["duration_ms"] / 1000 for j in jobs if j.get("duration_ms") is not None]
        requests = [j["api_requests"] for j in jobs]
        self.results |= {
            "deliveries": {
                "made": len(log),
                "2xx": ok,
                "retried": retried,
                "outcomes": dict(outcomes),
            },
            "sync_jobs": dict(by_trigger),
            "run_duration": _stats(durations),
            "run_api_requests_median": statistics.median(requests) if requests else None,
        }
        if requests:
            self.out(f"  run duration                            {_ms(durations)}")
            self.out(
                f"  ConnectWise requests per run: median {statistics.median(requests)}, "
                f"max {max(requests)}"
            )
        self.breakdown(arrived, log, jobs)
        self.downstream(changes)

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
        self.out("\nwhere the time goes (a run may start before the sandbox has its answer):")
        for step, values in found.items():
            self.out(f"  {step:<40}{_ms(values)}")
        self.results["breakdown"] = {step: _stats(values) for step, values in found.items()}

    def downstream(self, changes: list[Change]) -> None:
        """The whole path, for the changes that reached every point: the raw record's and
        the feed record's timestamps (the connector's and the aggregator's producers),
        and the dashboard client's clock. The aggregator's leg splits at the start of its
        span for the record: before it, the consumer's fetch and batch waits; after it,
        the batch's reads, write and announcement."""
        steps = (
            "change -> raw record produced",
            "raw produced -> task announced (aggregator)",
            "task announced -> on the dashboard (gateway)",
        )
        split = ("  raw produced -> applying (fetch, batch wait)", "  applying -> task announced")
        found: dict[str, list[float]] = {step: [] for step in (*steps[:2], *split, steps[2])}
        for change in changes:
            if change.produced is None or change.announced is None or change.shown is None:
                continue
            times = (change.t0, change.produced, change.announced, change.shown)
            for step, before, after in zip(steps, times, times[1:], strict=False):
                found[step].append(after - before)
            if change.handled is not None:
                found[split[0]].append(change.handled - change.produced)
                found[split[1]].append(change.announced - change.handled)
        self.out("\nfrom the change to the dashboard:")
        for step, values in found.items():
            self.out(f"  {step:<47}{_ms(values)}")
        self.results["to_dashboard"] = {step: _stats(values) for step, values in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--spacing", type=float, default=0.4, help="seconds between changes")
    parser.add_argument("--member", default="atech")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds until missed")
    parser.add_argument("--rest", type=float, default=10.0, help="seconds of CPU at rest")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs/)")
    args = parser.parse_args()
    if args.changes < 1:
        parser.error("--changes must be at least 1")
    started = time.monotonic()
    with bench_stack("webhook-bench-", keep=args.keep, sync_interval_seconds=3600.0) as stack:
        stack.start_sandbox()
        stack.start_services()
        bench = Bench(stack, args)
        bench.results["stack_up_s"] = time.monotonic() - started
        progress(f"stack up in {time.monotonic() - started:.1f}s (data in {stack.config.data_dir})")

        async def measure() -> None:
            try:
                await bench.run()
            finally:
                await bench.close()

        asyncio.run(measure())
    print(json.dumps(bench.results, indent=2) if args.json else "\n".join(bench.lines))


if __name__ == "__main__":
    main()
