"""What a sync costs in ConnectWise API requests: the initial sync of a member with
~10,000 assigned tickets against the minimum (ceil(records/1000) per listing), then an
incremental sync with 1% of them changed. Counts, not timings, so the figures are exact.

The connector's engine runs against the sandbox in-process and the embedded database
(started here); raw events go to a counting sink instead of Kafka.

    uv run python bench/connector_requests.py [--tickets 60000]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pymongo import AsyncMongoClient

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.seed import assignments
from connectwise_sandbox.state import SandboxState
from syntaskio_common.connectwise import ApiKeyCredentials, ConnectWiseClient
from syntaskio_common.events import KafkaRecord
from syntaskio_common.mongo import Document
from syntaskio_connector.assignment import IntegrationRef
from syntaskio_connector.engine import IntegrationSync, SyncPolicy
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.tracking import SyncTracking
from syntaskio_devstack.ports import Ports
from syntaskio_devstack.stack import EmbeddedStack, StackConfig

MEMBER = "atech"
BASE = "http://sandbox.bench"


class CountingSink:
    def __init__(self) -> None:
        self.published = 0

    async def publish(self, records: list[KafkaRecord]) -> None:
        self.published += len(records)


async def measure(tickets: int, mongodb_url: str) -> None:
    app = create_app(Settings(tickets=tickets, seed=42, client_ids=DEV_CLIENT_ID))
    state: SandboxState = app.state.sandbox
    held = assignments(state.dataset(), MEMBER)
    key = next(k for k in state.store.api_keys if k.member_identifier == MEMBER)
    credentials = ApiKeyCredentials(state.settings.company_id, key.public_key, key.private_key)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_url, tz_aware=True)
    db = mongo[f"bench_{uuid.uuid4().hex[:8]}"]
    sink = CountingSink()
    engine = IntegrationSync(
        SyncTracking(db), MetadataCache(db, timedelta(hours=1)), sink, SyncPolicy()
    )
    ref = IntegrationRef(str(uuid.uuid4()), "bench", "u1", MEMBER, BASE, "syntaskio", 1)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as http:

        def client() -> ConnectWiseClient:
            base = f"{BASE}{state.settings.api_prefix}/"
            return ConnectWiseClient(http, base, credentials, DEV_CLIENT_ID)

        first = client()
        started = datetime.now(UTC)
        await engine.run(first, ref)
        seconds = (datetime.now(UTC) - started).total_seconds()
        records = sink.published
        # One listing per entity: the member's schedule entries (one page here), then
        # service and project tickets (project ticket ids start at 200001).
        service = sum(1 for i in held.open_tickets if i < 200_001)
        project = len(held.open_tickets) - service
        minimum = 1 + math.ceil(service / 1000) + math.ceil(project / 1000)
        print(f"sandbox: {tickets} service tickets; {MEMBER} is assigned {records} tickets")
        print(
            f"initial sync: {first.requests_made} requests "
            f"(listing minimum {minimum}, the rest metadata: priorities + board statuses); "
            f"ratio {first.requests_made / minimum:.2f}; {seconds:.1f} s in-process"
        )

        unchanged = client()
        await engine.run(unchanged, ref)
        print(f"incremental, nothing changed: {unchanged.requests_made} requests")

        changed = sorted(held.service)[: max(1, records // 100)]
        for ticket_id in changed:
            response = await http.patch(
                f"/_sandbox/tickets/{ticket_id}", json={"summary": f"bench change {ticket_id}"}
            )
            response.raise_for_status()
        sink.published = 0
        incremental = client()
        await engine.run(incremental, ref)
        print(
            f"incremental, {len(changed)} changed (1%): {incremental.requests_made} requests, "
            f"{sink.published} events published"
        )
    await mongo.drop_database(db.name)
    await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=60_000)
    tickets = parser.parse_args().tickets
    with tempfile.TemporaryDirectory() as data_dir:
        stack = EmbeddedStack(
            StackConfig(data_dir=Path(data_dir), ports=Ports.free(), environment="test")
        )
        try:
            stack.start_data_stores()
            asyncio.run(measure(tickets, stack.mongodb_url))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
