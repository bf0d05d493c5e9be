"""What a tenant connection's sync costs in ConnectWise API requests as its team grows:
1, 10 and 50 mapped members of one company, synced with the company's API member (one
listing per entity for the whole team), against the same members each on a connection
of their own (one set of listings per member). Counts, not timings: exact.

The sandbox (in-process) has 10,000 service tickets drawn over its 11 named technicians
and 50 more (`extra_technicians`); the engine runs against it and the embedded database
(started here), raw events go to a counting sink. Steady state at the default 5-minute
interval is 11 incremental runs and one reconciliation an hour.

    uv run python bench/team_requests.py [--tickets 10000] [--teams 1 10 50]
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from dataclasses import dataclass
from datetime import timedelta

import httpx
from bench_stack import bench_stack
from pymongo import AsyncMongoClient

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.state import SandboxState
from syntaskio_common.connectwise import ApiKeyCredentials, ConnectWiseClient
from syntaskio_common.events import KafkaRecord
from syntaskio_common.mongo import Document
from syntaskio_connector.assignment import IntegrationRef, Member
from syntaskio_connector.engine import IntegrationSync, SyncPolicy
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.tracking import SyncTracking

BASE = "http://sandbox.bench"
API_MEMBER = "syntaskio-api"
RUNS_PER_HOUR = 12  # the default interval, 5 minutes
EXTRA_TECHNICIANS = 50


class CountingSink:
    def __init__(self) -> None:
        self.published = 0

    async def publish(self, records: list[KafkaRecord]) -> None:
        self.published += len(records)


@dataclass
class Cost:
    initial: int
    idle: int
    reconcile: int
    published: int

    @property
    def per_hour(self) -> int:
        return (RUNS_PER_HOUR - 1) * self.idle + self.reconcile


class Bench:
    def __init__(self, tickets: int, mongodb_url: str) -> None:
        settings = Settings(
            tickets=tickets,
            seed=42,
            client_ids=DEV_CLIENT_ID,
            extra_technicians=EXTRA_TECHNICIANS,
        )
        self.app = create_app(settings)
        self.state: SandboxState = self.app.state.sandbox
        self.mongodb_url = mongodb_url

    def technicians(self) -> list[str]:
        return [
            m["identifier"]
            for m in self.state.store.members
            if m["licenseClass"] != "A" and not m.get("inactiveFlag")
        ]

    def client(self, http: httpx.AsyncClient, member: str) -> ConnectWiseClient:
        key = next(k for k in self.state.store.api_keys if k.member_identifier == member)
        company = self.state.settings.company_id
        credentials = ApiKeyCredentials(company, key.public_key, key.private_key)
        return ConnectWiseClient(
            http, f"{BASE}{self.state.settings.api_prefix}/", credentials, DEV_CLIENT_ID
        )

    async def cost(
        self, http: httpx.AsyncClient, db_name: str, ref: IntegrationRef, acting: str
    ) -> Cost:
        """Initial sync, an idle run and a reconciliation for `ref`, with `acting`'s keys."""
        mongo: AsyncMongoClient[Document] = AsyncMongoClient(self.mongodb_url, tz_aware=True)
        db = mongo[db_name]
        sink = CountingSink()
        engine = IntegrationSync(
            SyncTracking(db), MetadataCache(db, timedelta(hours=1)), sink, SyncPolicy()
        )
        runs: list[int] = []
        for reconcile in (False, False, True):
            client = self.client(http, acting)
            await engine.run(client, ref, reconcile=reconcile)
            runs.append(client.requests_made)
        await mongo.close()
        initial, idle, reconciled = runs
        return Cost(initial, idle, reconciled, sink.published)

    async def run(self, teams: list[int]) -> list[tuple[int, Cost, Cost]]:
        technicians = self.technicians()
        rows = []
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            for size in teams:
                members = technicians[:size]
                team = tuple(sorted(Member(m, f"user-{m}") for m in members))
                tenant_ref = IntegrationRef(
                    str(uuid.uuid4()), "bench", "", API_MEMBER, BASE, "syntaskio", 1, team
                )
                tenant = await self.cost(
                    http, f"bench_{uuid.uuid4().hex[:8]}", tenant_ref, API_MEMBER
                )
                # The same members each on a personal connection: the sum of their costs.
                personal = Cost(0, 0, 0, 0)
                for member in members:
                    ref = IntegrationRef(
                        str(uuid.uuid4()), "bench", f"user-{member}", member, BASE, "syntaskio", 1
                    )
                    one = await self.cost(http, f"bench_{uuid.uuid4().hex[:8]}", ref, member)
                    personal = Cost(
                        personal.initial + one.initial,
                        personal.idle + one.idle,
                        personal.reconcile + one.reconcile,
                        personal.published + one.published,
                    )
                rows.append((size, tenant, personal))
        return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=10_000)
    parser.add_argument("--teams", type=int, nargs="+", default=[1, 10, 50])
    args = parser.parse_args()
    with bench_stack("bench-team-", keep=False) as stack:
        rows = asyncio.run(Bench(args.tickets, stack.mongodb_url).run(args.teams))
    print(
        f"\n{args.tickets} service tickets over {11 + EXTRA_TECHNICIANS} technicians;"
        f" requests per hour = {RUNS_PER_HOUR - 1} idle runs + 1 reconciliation:"
    )
    print(
        "| mapped members | tasks | tenant connection: initial / idle / reconcile | "
        "per hour | one connection each: per hour |"
    )
    print("|---|---|---|---|---|")
    for size, tenant, personal in rows:
        print(
            f"| {size} | {tenant.published} | {tenant.initial} / {tenant.idle} / "
            f"{tenant.reconcile} | {tenant.per_hour} | {personal.per_hour} |"
        )


if __name__ == "__main__":
    main()
