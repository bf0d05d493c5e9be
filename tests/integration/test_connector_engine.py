"""The sync engine against the ConnectWise sandbox (in-process, over HTTP semantics) and
the real database: what arrives, what it costs, what leaves, and resuming after a crash.
Raw events are collected by a sink standing in for Kafka (the e2e tests use Kafka)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pymongo import AsyncMongoClient

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.state import SandboxState
from syntaskio_common import events
from syntaskio_common.connectwise import ApiKeyCredentials, ConnectWiseClient
from syntaskio_common.events import KafkaRecord
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.assignment import Entity, IntegrationRef
from syntaskio_connector.engine import Changed, IntegrationSync, SyncPolicy
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.tracking import SyncTracking

ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)
BASE = "http://sandbox.test"
PAGE_SIZE = 10  # several pages per listing


class Sink:
    def __init__(self) -> None:
        self.events: list[events.Event] = []

    async def publish(self, records: list[KafkaRecord]) -> None:
        self.events += [events.decode_event(r.headers, r.value) for r in records]

    def take(self) -> list[events.Event]:
        taken, self.events = self.events, []
        return taken


class CrashAfter(httpx.AsyncBaseTransport):
    """Passes requests through until `remaining` runs out, then 'crashes'."""

    def __init__(self, inner: httpx.AsyncBaseTransport, remaining: int | None = None) -> None:
        self.inner, self.remaining = inner, remaining

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.remaining is not None:
            if self.remaining == 0:
                raise RuntimeError("connector crashed")
            self.remaining -= 1
        return await self.inner.handle_async_request(request)


@pytest.fixture
def sandbox_app() -> FastAPI:
    return create_app(Settings(tickets=300, seed=42, anchor=ANCHOR, client_ids=DEV_CLIENT_ID))


@pytest.fixture
def transport(sandbox_app: FastAPI) -> CrashAfter:
    return CrashAfter(httpx.ASGITransport(app=sandbox_app))


@pytest.fixture
async def http(transport: CrashAfter) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
def state(sandbox_app: FastAPI) -> SandboxState:
    sandbox: SandboxState = sandbox_app.state.sandbox
    return sandbox


def client_for(http: httpx.AsyncClient, state: SandboxState, member: str) -> ConnectWiseClient:
    key = next(k for k in state.store.api_keys if k.member_identifier == member)
    credentials = ApiKeyCredentials(state.settings.company_id, key.public_key, key.private_key)
    base = f"{BASE}{state.settings.api_prefix}/"
    return ConnectWiseClient(http, base, credentials, DEV_CLIENT_ID)


@pytest.fixture
def ref() -> IntegrationRef:
    return IntegrationRef(
        str(uuid.uuid4()), f"tenant-{uuid.uuid4().hex[:8]}", "u1", "atech", BASE, "syntaskio", 1
    )


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
async def engine(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, sink: Sink
) -> IntegrationSync:
    db = mongo[settings.mongodb_database]
    tracking, metadata = SyncTracking(db), MetadataCache(db, timedelta(hours=1))
    await tracking.create_indexes()
    return IntegrationSync(
        tracking, metadata, sink, SyncPolicy(overlap=timedelta(minutes=5), page_size=PAGE_SIZE)
    )


async def assigned_to(http: httpx.AsyncClient, state: SandboxState, member: str) -> set[str]:
    """What ConnectWise says is the member's, worked out here independently: open tickets
    they own or are a resource on, plus those with an open "S" schedule entry."""
    client = client_for(http, state, member)

    async def listing(path: str, conditions: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        async for page in client.pages(path, conditions=conditions):
            found += page
        return found

    entries = await listing(
        "schedule/entries",
        f'type/identifier = "S" and member/identifier = "{member}" and doneFlag = false',
    )
    scheduled = {e["objectId"] for e in entries}
    mine: set[str] = set()
    for kind, path in (
        ("service_ticket", "service/tickets"),
        ("project_ticket", "project/tickets"),
    ):
        for ticket in await listing(path, "closedFlag = false"):
            owner = (ticket.get("owner") or {}).get("identifier")
            resources = [r.strip() for r in ticket.get("resources", "").split(",")]
            if owner == member or member in resources or ticket["id"] in scheduled:
                mine.add(f"{kind}/{ticket['id']}")
    return mine


def published(taken: list[events.Event]) -> set[str]:
    return {e.subject or "" for e in taken if e.type == events.CONNECTWISE_RECORD_UPSERTED}


def removed(taken: list[events.Event]) -> set[str]:
    return {e.subject or "" for e in taken if e.type == events.CONNECTWISE_RECORD_REMOVED}


async def test_service_project_and_scheduled_tickets_all_arrive_for_minimal_requests(
    http: httpx.AsyncClient,
    state: SandboxState,
    engine: IntegrationSync,
    sink: Sink,
    ref: IntegrationRef,
) -> None:
    expected = await assigned_to(http, state, "atech")
    kinds = {subject.split("/")[0] for subject in expected}
    assert kinds == {"service_ticket", "project_ticket"}
    client = client_for(http, state, "atech")
    counts = await engine.run(client, ref)
    taken = sink.take()
    assert published(taken) == expected
    assert counts.published == len(expected)
    assert counts.tombstoned == 0
    reasons = {tuple(e.data["assignment"]["reasons"]) for e in taken if e.data.get("assignment")}
    assert ("schedule",) in reasons  # some tickets are the member's only by schedule
    # Every event names its board status (with closedStatus) and priority (sortOrder).
    assert all(e.data["context"]["status"] is not None for e in taken)
    assert all("sortOrder" in (e.data["context"]["priority"] or {}) for e in taken)
    first_run = client.requests_made

    # Nothing changed: one request per entity type, metadata from the cache.
    client = client_for(http, state, "atech")
    await engine.run(client, ref)
    assert sink.take() == []
    assert client.requests_made == 3
    pages = sum(-(-sum(1 for s in expected if s.startswith(k)) // PAGE_SIZE) for k in kinds)
    assert first_run <= 1 + pages + 1 + 12  # schedule, tickets, priorities, statuses


async def test_closed_reassigned_and_deleted_tickets_are_tombstoned(
    http: httpx.AsyncClient,
    state: SandboxState,
    engine: IntegrationSync,
    sink: Sink,
    ref: IntegrationRef,
) -> None:
    await engine.run(client_for(http, state, "atech"), ref)
    service = sorted(
        int(s.split("/")[1]) for s in published(sink.take()) if s.startswith("service_ticket/")
    )
    closed, reassigned, deleted, changed = service[:4]
    assert (await http.post(f"/_sandbox/tickets/{closed}/close")).status_code == 200
    patch = await http.patch(
        f"/_sandbox/tickets/{reassigned}", json={"owner": "bjones", "resources": ["bjones"]}
    )
    assert patch.status_code == 200, patch.text
    assert (await http.delete(f"/_sandbox/tickets/{deleted}")).status_code == 204
    assert (
        await http.patch(f"/_sandbox/tickets/{changed}", json={"summary": "Printer on fire"})
    ).status_code == 200

    await engine.run(client_for(http, state, "atech"), ref)
    taken = sink.take()
    assert removed(taken) == {f"service_ticket/{closed}", f"service_ticket/{reassigned}"}
    assert published(taken) == {f"service_ticket/{changed}"}
    # A deletion is invisible to "what changed": the reconciliation's id listing sees it.
    await engine.run(client_for(http, state, "atech"), ref, reconcile=True)
    assert removed(sink.take()) == {f"service_ticket/{deleted}"}
    assert published(sink.events) == set()


async def test_a_crash_mid_sync_resumes_from_the_last_page_without_gaps(
    http: httpx.AsyncClient,
    state: SandboxState,
    engine: IntegrationSync,
    sink: Sink,
    ref: IntegrationRef,
    transport: CrashAfter,
) -> None:
    expected = await assigned_to(http, state, "bjones")
    ref = IntegrationRef(ref.integration_id, ref.tenant_id, "u2", "bjones", BASE, "syntaskio", 1)
    transport.remaining = 8  # into the first ticket listing
    with pytest.raises(RuntimeError, match="crashed"):
        await engine.run(client_for(http, state, "bjones"), ref)
    before_crash = published(sink.take())
    assert before_crash
    assert before_crash < expected
    transport.remaining = None
    await engine.run(client_for(http, state, "bjones"), ref)
    after = published(sink.take())
    assert before_crash | after == expected


async def test_a_targeted_refresh_fetches_only_the_named_records(
    http: httpx.AsyncClient,
    state: SandboxState,
    engine: IntegrationSync,
    sink: Sink,
    ref: IntegrationRef,
) -> None:
    await engine.run(client_for(http, state, "atech"), ref)
    service = sorted(
        int(s.split("/")[1]) for s in published(sink.take()) if s.startswith("service_ticket/")
    )
    renamed, deleted, untouched = service[:3]
    await http.patch(f"/_sandbox/tickets/{renamed}", json={"summary": "Badge reader offline"})
    await http.patch(f"/_sandbox/tickets/{untouched}", json={"summary": "Changed, not named"})
    assert (await http.delete(f"/_sandbox/tickets/{deleted}")).status_code == 204

    client = client_for(http, state, "atech")
    changed = Changed(tickets={Entity.SERVICE_TICKET: frozenset({renamed, deleted})})
    counts = await engine.refresh(client, ref, changed)
    taken = sink.take()
    # One request for both named tickets; priorities and the schedule come from storage.
    assert client.requests_made == 1
    assert published(taken) == {f"service_ticket/{renamed}"}
    assert removed(taken) == {f"service_ticket/{deleted}"}
    assert (counts.published, counts.tombstoned) == (1, 1)
    # The next scheduled run still picks up what was not named.
    await engine.run(client_for(http, state, "atech"), ref)
    assert published(sink.take()) == {f"service_ticket/{untouched}"}


async def test_a_schedule_change_refreshes_the_schedule_and_its_tickets(
    http: httpx.AsyncClient,
    state: SandboxState,
    engine: IntegrationSync,
    sink: Sink,
    ref: IntegrationRef,
) -> None:
    await engine.run(client_for(http, state, "atech"), ref)
    mine = published(sink.take())
    # A ticket nobody assigned to atech, then scheduled for atech.
    other = next(
        t["id"]
        for t in state.store.tickets()
        if not t["closedFlag"] and f"service_ticket/{t['id']}" not in mine
    )
    created = await http.post(
        "/_sandbox/schedule-entries", json={"objectId": other, "member": "atech", "type": "S"}
    )
    assert created.status_code == 201, created.text

    client = client_for(http, state, "atech")
    await engine.refresh(client, ref, Changed(schedule=True))
    assert published(sink.take()) == {f"service_ticket/{other}"}
    assert client.requests_made == 3  # the schedule listing, then the ticket on both paths
