"""What a sync costs in ConnectWise API requests, for sandboxes of 300, 10,000 and 60,000
service tickets (member `atech`): the initial sync, an idle scheduled run, a run with 1%
of the member's tickets changed, one webhook (a targeted run for one ticket), the hourly
reconciliation, and the project phases option turned on. Each is itemised by what it
asked for, from the sandbox's own request counts: the listings against their minimum
(ceil(records / 1000) per listing), the metadata (priorities, statuses of the boards in
use), the project states, and the one-time callback registration. Counts, not timings,
so the figures are exact.

The connector's engine runs against the sandbox in-process and the embedded database
(started here); raw events go to a counting sink instead of Kafka. The sandbox checks
every request against the documented contract; a refused one stops the bench.

    uv run python bench/connector_requests.py [--tickets 300 10000 60000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import uuid
from collections import Counter
from datetime import timedelta

import httpx
from bench_stack import bench_stack
from pymongo import AsyncMongoClient

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.state import SandboxState
from syntaskio_common.connectwise import ApiKeyCredentials, ConnectWiseClient
from syntaskio_common.events import KafkaRecord
from syntaskio_common.integrations import SyncOptions
from syntaskio_common.mongo import Document
from syntaskio_connector.assignment import (
    PATHS,
    Entity,
    IntegrationRef,
    assigned_open_tickets,
    open_schedule_entries,
)
from syntaskio_connector.engine import Changed, IntegrationSync, SyncPolicy
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.tracking import SyncTracking
from syntaskio_connector.webhooks import WebhookRegistrations

MEMBER = "atech"
BASE = "http://sandbox.bench"
PHASES = SyncOptions(project_phases=True)
LISTING = re.compile(r"(schedule/entries|service/tickets|project/tickets)(/search)?")


class CountingSink:
    def __init__(self) -> None:
        self.published = 0

    async def publish(self, records: list[KafkaRecord]) -> None:
        self.published += len(records)


def kind_of(endpoint: str) -> str:
    """What a request was for, from the sandbox's endpoint name (`GET /…/service/boards/
    {id}/statuses`)."""
    path = endpoint.split(" ", 1)[1].split("/apis/3.0/", 1)[1]
    if LISTING.fullmatch(path):
        return "listings"
    if path == "service/priorities":
        return "metadata: priorities"
    if path == "project/phaseStatuses":
        return "metadata: phase statuses"
    if path.endswith("/statuses"):
        return "metadata: board statuses"
    if path.endswith("/phases"):
        return "phase listings"
    if path == "project/projects":
        return "project states"
    if path.startswith("system/callbacks"):
        return "callback registration"
    return path


class Bench:
    def __init__(self, tickets: int, mongodb_url: str) -> None:
        self.app = create_app(Settings(tickets=tickets, seed=42, client_ids=DEV_CLIENT_ID))
        self.state: SandboxState = self.app.state.sandbox
        self.tickets = tickets
        self.mongodb_url = mongodb_url

    def client(self, http: httpx.AsyncClient, member: str = MEMBER) -> ConnectWiseClient:
        key = next(k for k in self.state.store.api_keys if k.member_identifier == member)
        company = self.state.settings.company_id
        credentials = ApiKeyCredentials(company, key.public_key, key.private_key)
        return ConnectWiseClient(
            http, f"{BASE}{self.state.settings.api_prefix}/", credentials, DEV_CLIENT_ID
        )

    def asked(self) -> Counter[str]:
        """The member's requests since the last call, by kind."""
        snapshot = self.state.stats.snapshot()
        assert snapshot["contract_violations"] == 0, snapshot["recent_contract_violations"]
        callers = [c for c in snapshot["by_caller"].values() if c["member"] == MEMBER]
        kinds: Counter[str] = Counter()
        for caller in callers:
            for endpoint, n in caller["by_path"].items():
                kinds[kind_of(endpoint)] += n
        self.state.stats.reset()
        return kinds

    async def minimum(self, http: httpx.AsyncClient) -> int:
        """ceil(records / 1000) per listing: what the member's listings return, counted
        by another member (so the member's own counts stay clean)."""
        counter = self.client(http, "bjones")
        entries = 0
        async for page in counter.pages(
            PATHS[Entity.SCHEDULE_ENTRY], conditions=open_schedule_entries([MEMBER])
        ):
            entries += len(page)
        scheduled = [
            e["objectId"]
            for e in self.state.store.schedule_entries()
            if e["member"]["identifier"] == MEMBER
            and e["type"]["identifier"] == "S"
            and not e.get("doneFlag")
        ]
        listing = assigned_open_tickets([MEMBER], scheduled)
        total = max(1, math.ceil(entries / 1000))
        for entity in (Entity.SERVICE_TICKET, Entity.PROJECT_TICKET):
            records = 0
            async for page in counter.pages(PATHS[entity], conditions=listing):
                records += len(page)
            total += max(1, math.ceil(records / 1000))
        return total

    async def run(self) -> list[tuple[str, int, str]]:
        mongo: AsyncMongoClient[Document] = AsyncMongoClient(self.mongodb_url, tz_aware=True)
        db = mongo[f"bench_{uuid.uuid4().hex[:8]}"]
        sink = CountingSink()
        engine = IntegrationSync(
            SyncTracking(db), MetadataCache(db, timedelta(hours=1)), sink, SyncPolicy()
        )
        ref = IntegrationRef(str(uuid.uuid4()), "bench", "u1", MEMBER, BASE, "syntaskio", 1)
        webhooks = WebhookRegistrations(db, "http://connector.bench")
        rows: list[tuple[str, int, str]] = []
        transport = httpx.ASGITransport(app=self.app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
            minimum = await self.minimum(http)
            self.state.stats.reset()

            await webhooks.ensure(self.client(http), ref)
            # Hold deliveries: nobody listens at the registered URL here.
            (await http.post("/_sandbox/callbacks/pause")).raise_for_status()
            await engine.run(self.client(http), ref)
            kinds = self.asked()
            assigned = sink.published
            detail = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
            rows.append(
                (
                    "initial sync",
                    sum(kinds.values()),
                    f"{detail}; listing minimum {minimum}; {assigned} tickets published",
                )
            )

            client = self.client(http)
            await engine.run(client, ref)
            rows.append(("idle scheduled run", client.requests_made, _itemised(self.asked())))

            held = sorted(
                int(t["id"])
                for t in self.state.store.tickets()
                if (t.get("owner") or {}).get("identifier") == MEMBER and not t["closedFlag"]
            )
            changed = held[: max(1, assigned // 100)]
            for ticket_id in changed:
                response = await http.patch(
                    f"/_sandbox/tickets/{ticket_id}", json={"summary": f"bench change {ticket_id}"}
                )
                response.raise_for_status()
            sink.published = 0
            client = self.client(http)
            await engine.run(client, ref)
            rows.append(
                (
                    f"1% changed ({len(changed)} tickets)",
                    client.requests_made,
                    f"{_itemised(self.asked())}; {sink.published} events",
                )
            )

            one = held[-1]
            response = await http.patch(f"/_sandbox/tickets/{one}", json={"summary": "webhook"})
            response.raise_for_status()
            client = self.client(http)
            await engine.refresh(
                client, ref, Changed(tickets={Entity.SERVICE_TICKET: frozenset({one})})
            )
            webhook = _itemised(self.asked())
            rows.append(("one webhook (targeted run)", client.requests_made, webhook))

            client = self.client(http)
            await engine.run(client, ref, reconcile=True)
            rows.append(("hourly reconciliation", client.requests_made, _itemised(self.asked())))

            # The option: phases of the projects worked on, listed once, then with each
            # project's hourly refresh.
            sink.published = 0
            client = self.client(http)
            await engine.run(client, ref, options=PHASES)
            phases = f"{_itemised(self.asked())}; {sink.published} phases published"
            rows.append(("phases turned on", client.requests_made, phases))
            client = self.client(http)
            await engine.run(client, ref, options=PHASES)
            rows.append(("idle run, phases on", client.requests_made, _itemised(self.asked())))
        await mongo.drop_database(db.name)
        await mongo.close()
        return rows


def _itemised(kinds: Counter[str]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, nargs="+", default=[300, 10_000, 60_000])
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs)")
    args = parser.parse_args()
    with bench_stack("bench-requests-", keep=args.keep) as stack:
        for tickets in args.tickets:
            rows = asyncio.run(Bench(tickets, stack.mongodb_url).run())
            print(f"\n{tickets} service tickets in the sandbox, member {MEMBER}:")
            print("| run | requests | of which |")
            print("|---|---|---|")
            for name, requests, detail in rows:
                print(f"| {name} | {requests} | {detail} |")


if __name__ == "__main__":
    main()
