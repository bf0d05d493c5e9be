"""A fleet of connected technicians synced by connector replicas: how many members one
replica carries, whether more replicas carry more, and whether servers that time out
hold up anyone else (issue 19).

The whole connector path runs as processes: the embedded broker and database,
auth-service, the sandbox in fleet mode (companies of `--members-per-company`
technicians, a few open tickets each, `--latency-ms` per API request) and 1 or more
connector replicas. Each member is connected with their own API keys, as a technician
connecting themselves would be: the integration and its sealed credentials are written
with auth-service's own vault (connecting 10,000 members through the API would take
longer than the runs), and `integration.connected` is announced on
`syntaskio.integrations.v1` as auth-service does, which is how the connector learns of
them. Webhooks are off: the schedule alone syncs.

Each step connects more members (`--steps`), spread over one interval as a fleet joining
over time would be (members connected all at once have their first runs in a burst, and
their later runs stay bunched for many intervals: the jitter spreads them only slowly),
waits until every member has had its first sync, then measures `--window` seconds of
steady state: runs per second, schedule lag (a run's claim time minus its due time, from
the sync jobs) p50/p99/max, ConnectWise requests per second (the sandbox's count),
database commands per run (the services' `syntaskio_mongodb_commands_total`), CPU (of one
core) and RSS per process. The ramp stops at the first step whose lag p99 exceeds the
interval: the ceiling lies below it.

    uv run python bench/fleet.py [--steps 500,1000,2000] [--replicas 1,3] [--interval 60]
        [--window 120] [--latency-ms 100] [--down 0.05] [--settle 120] [--json] [--keep]

`--down` adds a run at the first step's size in which that fraction of companies' servers
hang (the sandbox's down companies: the connector's 15 s timeouts, retried) and reports
the healthy members' lag in three windows, after `--settle` seconds of steady state:
without faults, with them, and once the servers are back (a control: what differs in
both later windows is time's doing, not the faults').
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from bench_stack import Sample, bench_stack
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient

from connectwise_sandbox import Settings as SandboxSettings
from connectwise_sandbox.fleet import FleetSpec
from syntaskio_auth.vault import Vault
from syntaskio_common import events, topics
from syntaskio_common.connectwise import RetryPolicy, api_base_url
from syntaskio_common.http import timeout
from syntaskio_common.integrations import (
    AuthMethod,
    ConnectionScope,
    Integration,
    IntegrationStatus,
)
from syntaskio_common.kafka import ensure_topics
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_devstack.ports import Ports
from syntaskio_devstack.processes import ManagedProcess
from syntaskio_devstack.stack import EmbeddedStack, dev_secrets

CODEBASE = "v2025_1/"
SEED = 42
# A run against a server that hangs: every attempt at its first request times out.
SLOWEST_RUN_SECONDS = RetryPolicy().max_attempts * (timeout().read or 0.0)


def progress(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Member:
    integration_id: str
    company_id: str
    identifier: str
    down: bool


@dataclass
class Fleet:
    stack: EmbeddedStack
    args: argparse.Namespace
    members: list[Member] = field(default_factory=list)
    replicas: list[ManagedProcess] = field(default_factory=list)
    sandbox: ManagedProcess | None = None

    # -- processes ---------------------------------------------------------------------
    def start_sandbox(self, down: float) -> None:
        if self.sandbox is not None:
            self.sandbox.stop()
        port = self.stack.config.ports.sandbox
        self.sandbox = ManagedProcess(
            f"sandbox-down-{down}",
            [sys.executable, "-m", "connectwise_sandbox", "--port", str(port)],
            self.stack.config.data_dir / "logs" / f"sandbox-{down}.log",
            env={
                **self.stack.sandbox_env(),
                **fleet_env(self.args, down),
                "CW_SANDBOX_LOG_LEVEL": "warning",
            },
            ready_url=f"{self.stack.url('sandbox')}/_sandbox/health",
        )
        self.sandbox.start()
        self.sandbox.wait_ready(60)

    def start_replicas(self, count: int) -> None:
        self.stop_replicas()
        for n in range(count):
            ports = Ports.free()
            env = self.stack.service_env("connector") | {
                "PORT": str(ports.connector),
                "METRICS_PORT": str(ports.connector_metrics),
                "SYNC_INTERVAL_SECONDS": str(self.args.interval),
                "SYNC_CONCURRENCY": str(self.args.concurrency),
                "SYNC_POLL_SECONDS": str(self.args.poll),
                "LOG_LEVEL": "WARNING",
            }
            env.pop("WEBHOOK_BASE_URL", None)
            replica = ManagedProcess(
                f"connector-{n}",
                [sys.executable, "-m", "syntaskio_connector"],
                self.stack.config.data_dir / "logs" / f"connector-{count}-{n}.log",
                env=env,
                ready_url=f"http://127.0.0.1:{env['PORT']}/readyz",
            )
            replica.start()
            self.replicas.append(replica)
        for replica in self.replicas:
            replica.wait_ready(90)

    def stop_replicas(self) -> None:
        for replica in self.replicas:
            replica.stop()
        self.replicas = []

    def metrics_urls(self) -> list[str]:
        urls = [self.stack.metrics_url("auth")]
        for replica in self.replicas:
            urls.append(f"http://127.0.0.1:{replica.env['METRICS_PORT']}/metrics")
        return urls

    def pids(self) -> dict[str, int]:
        """The processes whose CPU and memory are reported."""
        named = {r.name: r for r in self.replicas}
        named |= {"auth-service": self.stack.processes["auth"]}
        named |= {
            "database": self.stack.processes["database"],
            "broker": self.stack.processes["broker"],
        }
        if self.sandbox is not None:
            named["sandbox"] = self.sandbox
        return {name: p.popen.pid for name, p in named.items() if p.popen is not None}


def fleet_env(args: argparse.Namespace, down: float) -> dict[str, str]:
    return {
        "CW_SANDBOX_SEED": str(SEED),
        "CW_SANDBOX_FLEET_COMPANIES": str(companies_for(args)),
        "CW_SANDBOX_FLEET_MEMBERS_PER_COMPANY": str(args.members_per_company),
        "CW_SANDBOX_FLEET_TICKETS_PER_MEMBER": str(args.tickets_per_member),
        "CW_SANDBOX_FLEET_DOWN_FRACTION": str(down),
        "CW_SANDBOX_LATENCY_MS": str(args.latency_ms),
        "CW_SANDBOX_LATENCY_TAIL_MS": str(args.latency_tail_ms),
        "CW_SANDBOX_LATENCY_TAIL_FRACTION": str(args.latency_tail_fraction),
    }


def companies_for(args: argparse.Namespace) -> int:
    largest: int = max(args.steps)
    per_company: int = args.members_per_company
    return -(-largest // per_company)


def sandbox_settings(args: argparse.Namespace, down: float) -> SandboxSettings:
    return SandboxSettings(
        seed=SEED,
        fleet_companies=companies_for(args),
        fleet_members_per_company=args.members_per_company,
        fleet_tickets_per_member=args.tickets_per_member,
        fleet_down_fraction=down,
    )


# -- connecting members ------------------------------------------------------------------


async def connect(fleet: Fleet, db: Any, count: int, down: float) -> list[Member]:
    """Members `len(fleet.members)` .. `count - 1` connected with their own API keys, as
    auth-service stores a connection, and announced."""
    spec = FleetSpec.from_settings(sandbox_settings(fleet.args, down))
    stack = fleet.stack
    secrets = dev_secrets(stack.config.data_dir)  # the keys auth-service was given
    keyring = json.loads(secrets["VAULT_KEYS"])
    vault = Vault(
        {key_id: base64.b64decode(key) for key_id, key in keyring.items()},
        secrets["VAULT_PRIMARY_KEY_ID"],
    )
    site = stack.sandbox_site
    site_url = f"http://{site}"
    now = datetime.now(UTC)
    new: list[Member] = []
    integrations: list[Document] = []
    credentials: list[Document] = []
    announced: list[Integration] = []
    per_company = fleet.args.members_per_company
    for n in range(len(fleet.members), count):
        company, number = divmod(n, per_company)
        member = spec.member(company + 1, number + 1)  # both 1-based
        integration_id = str(uuid.uuid4())
        tenant_id = member.company_id.lower()
        integration = Integration(
            id=integration_id,
            tenant_id=tenant_id,
            user_id=f"user-{member.member_identifier}",
            scope=ConnectionScope.PERSONAL,
            provider="connectwise",
            auth_method=AuthMethod.API_KEY,
            site=site,
            site_url=site_url,
            company_id=member.company_id,
            codebase=CODEBASE,
            api_base_url=api_base_url(site_url, CODEBASE),
            member_id=member.member_id,
            member_identifier=member.member_identifier,
            member_name=member.member_identifier,
            status=IntegrationStatus.ACTIVE,
            created_at=now,
            updated_at=now,
            last_validated_at=now,
            generation=1,
        )
        doc = integration.model_dump(mode="python", exclude={"id"})
        integrations.append({"_id": integration_id, **doc, "acts_as_member": True})
        keys = {"public_key": member.public_key, "private_key": member.private_key}
        credentials.append(
            {
                "_id": integration_id,
                "tenant_id": tenant_id,
                "secrets": vault.seal_fields(keys, tenant_id, integration_id),
                "expires_at": None,
                "renewal_failures": 0,
                "updated_at": now,
                "version": 1,
            }
        )
        announced.append(integration)
        new.append(Member(integration_id, member.company_id, member.member_identifier, member.down))
    for batch in chunks(integrations, 1000):
        await db["integrations"].insert_many(batch, ordered=False)
    for batch in chunks(credentials, 1000):
        await db["credentials"].insert_many(batch, ordered=False)
    await announce(stack, announced, over_seconds=fleet.args.interval)
    fleet.members += new
    return new


def chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def announce(
    stack: EmbeddedStack, integrations: list[Integration], over_seconds: float
) -> None:
    """`integration.connected` for each, evenly spread over `over_seconds`."""
    settings = ServiceSettings(kafka_bootstrap_servers=stack.kafka_bootstrap_servers)
    await ensure_topics(settings, [topics.INTEGRATIONS])
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        sent = []
        started, gap = time.monotonic(), over_seconds / max(1, len(integrations))
        for n, integration in enumerate(integrations):
            await asyncio.sleep(max(0.0, started + n * gap - time.monotonic()))
            record = events.encode_event(
                event_id=f"{integration.id}:connected:{integration.updated_at.isoformat()}",
                source="/syntaskio/auth-service",
                event_type=events.INTEGRATION_CONNECTED,
                subject=f"integration/{integration.id}",
                key=integration.id,
                data=integration.model_dump(mode="json"),
            )
            sent.append(
                await producer.send(
                    topics.INTEGRATIONS,
                    record.value,
                    key=record.key,
                    headers=list(events.header_pairs(record.headers)),
                )
            )
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


# -- measuring ---------------------------------------------------------------------------


async def scrape(urls: list[str]) -> dict[str, float]:
    """The counters the bench reads, summed over the processes."""
    found: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for url in urls:
            text = (await http.get(url)).text
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "syntaskio_mongodb_commands_total":
                        found["db_commands"] = found.get("db_commands", 0) + sample.value
                    elif sample.name == "syntaskio_sync_runs_total":
                        key = f"runs_{sample.labels.get('outcome')}"
                        found[key] = found.get(key, 0) + sample.value
                    elif sample.name == "http_server_request_duration_seconds_count" and (
                        sample.labels.get("http_route", "").endswith("/credentials/lease")
                    ):
                        found["leases"] = found.get("leases", 0) + sample.value
    return found


async def sandbox_requests(stack: EmbeddedStack) -> int:
    async with httpx.AsyncClient(base_url=stack.url("sandbox"), timeout=30) as http:
        stats = (await http.get("/_sandbox/stats")).json()
    return sum(int(count) for count in stats.get("by_endpoint", {}).values())


async def first_syncs_done(db: Any, members: list[Member], since: datetime) -> int:
    """How many of `members` have had a run finish since `since`."""
    ids = [m.integration_id for m in members if not m.down]
    done = await db["sync_jobs"].distinct(
        "integration_id", {"finished_at": {"$gte": since}, "status": "succeeded"}
    )
    return len(set(done) & set(ids))


def percentile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else float("nan")


async def lags(db: Any, start: datetime, end: datetime, healthy: set[str] | None) -> list[float]:
    """Seconds from each scheduled run's due time to its claim, for runs started in the
    window (of the `healthy` integrations only, if given)."""
    found = db["sync_jobs"].find(
        {"started_at": {"$gte": start, "$lt": end}, "trigger": "scheduled"},
        {"integration_id": 1, "due_at": 1, "claimed_at": 1, "started_at": 1},
    )
    values = []
    async for job in found:
        if healthy is not None and job["integration_id"] not in healthy:
            continue
        if job.get("due_at") is None:
            continue
        claimed = job.get("claimed_at") or job["started_at"]
        values.append((claimed - job["due_at"]).total_seconds())
    return sorted(values)


async def measure(
    fleet: Fleet, db: Any, label: str, healthy: set[str] | None = None
) -> dict[str, Any]:
    seconds = fleet.args.window
    pids = fleet.pids()
    before = {name: Sample.of(pid) for name, pid in pids.items()}
    counters_before = await scrape(fleet.metrics_urls())
    requests_before = await sandbox_requests(fleet.stack)
    jobs_before = await db["sync_jobs"].count_documents({})
    start = datetime.now(UTC)
    started = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - started
    end = datetime.now(UTC)
    after = {name: Sample.of(pid) for name, pid in pids.items()}
    scraped = await scrape(fleet.metrics_urls())
    counters = {k: v - counters_before.get(k, 0) for k, v in scraped.items()}
    requests = await sandbox_requests(fleet.stack) - requests_before
    runs = await db["sync_jobs"].count_documents({}) - jobs_before
    lag = await lags(db, start, end, healthy)
    figures: dict[str, Any] = {
        "label": label,
        "members": len(fleet.members),
        "replicas": len(fleet.replicas),
        "window_s": round(elapsed, 1),
        "runs_per_s": round(runs / elapsed, 2),
        "runs_needed_per_s": round(len(fleet.members) / fleet.args.interval, 2),
        "lag_p50_s": round(percentile(lag, 0.5), 2),
        "lag_p99_s": round(percentile(lag, 0.99), 2),
        "lag_max_s": round(lag[-1], 2) if lag else None,
        "connectwise_requests_per_s": round(requests / elapsed, 1),
        "db_commands_per_run": round(counters.get("db_commands", 0) / runs, 1) if runs else None,
        "leases_per_run": round(counters.get("leases", 0) / runs, 2) if runs else None,
        "processes": {
            name: {
                "cpu_pct": round(
                    100 * (after[name].cpu_seconds - before[name].cpu_seconds) / elapsed
                ),
                "rss_mib": round(after[name].rss_mib),
            }
            for name in pids
        },
    }
    print_figures(figures)
    return figures


def print_figures(f: dict[str, Any]) -> None:
    print(
        f"{f['label']}: {f['members']} members, {f['replicas']} replica(s): "
        f"{f['runs_per_s']} runs/s (needed {f['runs_needed_per_s']}), lag p50 {f['lag_p50_s']} s "
        f"p99 {f['lag_p99_s']} s max {f['lag_max_s']} s, {f['connectwise_requests_per_s']} "
        f"ConnectWise req/s, {f['db_commands_per_run']} db commands/run, "
        f"{f['leases_per_run']} leases/run",
        flush=True,
    )
    for name, p in f["processes"].items():
        print(f"    {name:<14} cpu {p['cpu_pct']:>4}%  rss {p['rss_mib']:>5} MiB", flush=True)


async def until_synced(db: Any, members: list[Member], since: datetime, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    healthy = [m for m in members if not m.down]
    while time.monotonic() < deadline:
        done = await first_syncs_done(db, healthy, since)
        if done >= len(healthy):
            return
        progress(f"  {done}/{len(healthy)} members synced")
        await asyncio.sleep(5)
    progress(f"  not every member synced within {seconds:.0f} s: measuring anyway")


async def ramp(fleet: Fleet, db: Any, replicas: int) -> list[dict[str, Any]]:
    """Members added step by step while `replicas` replicas sync them."""
    results = []
    fleet.start_replicas(replicas)
    for size in fleet.args.steps:
        since = datetime.now(UTC)
        if size > len(fleet.members):
            progress(f"connecting members {len(fleet.members)}..{size}")
            await connect(fleet, db, size, 0.0)
        await until_synced(db, fleet.members, since, seconds=max(300.0, 3 * fleet.args.interval))
        figures = await measure(fleet, db, f"{replicas} replica(s)")
        results.append(figures)
        if figures["lag_p99_s"] > fleet.args.interval:
            progress(f"lag p99 above the interval at {size} members: the ceiling is below it")
            break
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"args": vars(args), "ramps": {}}
    for replicas in filter(None, args.replicas):  # 0: no ramp, only the faults run
        async with fleet_stack(args) as (fleet, db):
            report["ramps"][replicas] = await ramp(fleet, db, replicas)
    if args.down:
        async with fleet_stack(args) as (fleet, db):
            report["faults"] = await faults(fleet, db)
    return report


@asynccontextmanager
async def fleet_stack(args: argparse.Namespace) -> AsyncIterator[tuple[Fleet, Any]]:
    """A fresh stack per run: the broker, the database, the fleet sandbox, auth-service."""
    with bench_stack("fleet-", keep=args.keep) as stack:
        fleet = Fleet(stack, args)
        fleet.start_sandbox(0.0)
        stack.start_all([stack.service("auth")])
        mongo: AsyncMongoClient[Document] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
        try:
            yield fleet, mongo[stack.config.database_name]
        finally:
            fleet.stop_replicas()
            if fleet.sandbox is not None:
                fleet.sandbox.stop()
            await mongo.close()


async def faults(fleet: Fleet, db: Any) -> dict[str, Any]:
    """The first step's members, one replica, without and then with `--down` of the
    companies' servers hanging: the healthy members' lag, compared."""
    args = fleet.args
    fleet.start_replicas(1)
    since = datetime.now(UTC)
    await connect(fleet, db, args.steps[0], 0.0)
    await until_synced(db, fleet.members, since, seconds=max(300.0, 3 * args.interval))
    spec = FleetSpec.from_settings(sandbox_settings(args, args.down))
    down_companies = {spec.company_id(i) for i in spec.down}
    healthy = {m.integration_id for m in fleet.members if m.company_id not in down_companies}
    # The first runs (each fetches and publishes every ticket) end, and the database's
    # cost per write grows as it holds more retryable-write records (up to its cap), before
    # the windows compared.
    progress(f"settling for {args.settle:.0f} s")
    await asyncio.sleep(args.settle)
    results = {"no faults": await measure(fleet, db, "no faults", healthy)}
    fleet.start_sandbox(args.down)  # the same members; the down ones now hang
    label = f"{args.down:.0%} of servers down"
    await asyncio.sleep(args.interval)  # the hanging runs fill up their slots
    results[label] = await measure(fleet, db, label, healthy)
    # The servers back: what this window shares with the one before differs from the first
    # by time's doing, not the faults' (the database's cost per write grows over a run).
    fleet.start_sandbox(0.0)
    await asyncio.sleep(args.interval + SLOWEST_RUN_SECONDS)  # the hung runs end
    results["servers back"] = await measure(fleet, db, "servers back", healthy)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="500,1000,2000", help="members connected at each step")
    parser.add_argument("--replicas", default="1,3", help="replica counts, one ramp each")
    parser.add_argument("--interval", type=float, default=60.0, help="SYNC_INTERVAL_SECONDS")
    parser.add_argument("--concurrency", type=int, default=8, help="SYNC_CONCURRENCY")
    parser.add_argument("--poll", type=float, default=1.0, help="SYNC_POLL_SECONDS")
    parser.add_argument("--window", type=float, default=120.0, help="seconds measured per step")
    parser.add_argument("--members-per-company", type=int, default=10)
    parser.add_argument("--tickets-per-member", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--latency-tail-ms", type=float, default=1000.0)
    parser.add_argument("--latency-tail-fraction", type=float, default=0.01)
    parser.add_argument(
        "--down", type=float, default=0.05, help="share of servers down (0: no run)"
    )
    parser.add_argument(
        "--settle", type=float, default=120.0, help="seconds before the faults run's windows"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and its logs")
    args = parser.parse_args()
    args.steps = [int(s) for s in args.steps.split(",")]
    args.replicas = [int(r) for r in args.replicas.split(",")]
    report = asyncio.run(run(args))
    if args.json:
        print(json.dumps(report, indent=2, default=str))


if __name__ == "__main__":
    main()
