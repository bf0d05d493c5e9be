"""What a technician reads on demand from the ConnectWise sandbox (in-process, over HTTP),
cached in the real database.

A ticket's detail: what one cold read costs, when the cache answers, and when it does
not — a newer ticket, a webhook or write-back naming it, age, a spent budget.
A ticket search: made as the member, one request per distinct query per 30 s per member,
however the same query arrives (again, reworded by case or spaces, at once)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from contract_checks import assert_none_refused
from credential_leases import FixedAuth, sandbox_lease
from fastapi import FastAPI
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.state import SandboxState
from connectwise_sandbox.store import TicketKind
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.leases import Leases
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.task import SourceType
from syntaskio_common.ticket_search import TicketQuery, TicketSearchResults
from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.assignment import Entity
from syntaskio_connector.auth_client import CannotAct
from syntaskio_connector.budget import ApiBudget, BudgetPolicy, SyncDeferred
from syntaskio_connector.details import NoConnection, TicketDetails, TicketGone
from syntaskio_connector.engine import Changed
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.search import TicketSearch

BASE = "http://sandbox.test"
MEMBER = "atech"


class Counting(httpx.AsyncBaseTransport):
    """Forwards every request and counts them by method and path after the API root."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.asked: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.asked[f"{request.method} {request.url.path.split('apis/3.0/', 1)[-1]}"] += 1
        return await self.inner.handle_async_request(request)

    def taken(self) -> Counter[str]:
        asked, self.asked = self.asked, Counter()
        return asked


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def sandbox_app() -> FastAPI:
    return create_app(Settings(tickets=60, seed=11, client_ids=DEV_CLIENT_ID))


@pytest.fixture
def state(sandbox_app: FastAPI) -> Iterator[SandboxState]:
    found: SandboxState = sandbox_app.state.sandbox
    yield found
    assert_none_refused(found.stats.snapshot())


@pytest.fixture
def transport(sandbox_app: FastAPI) -> Counting:
    return Counting(httpx.ASGITransport(app=sandbox_app))


@pytest.fixture
async def http(transport: Counting) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        yield client


@pytest.fixture
def db(mongo: AsyncMongoClient[Document], settings: ServiceSettings) -> AsyncDatabase[Document]:
    return mongo[settings.mongodb_database]


@pytest.fixture
def lease(state: SandboxState) -> CredentialLease:
    return sandbox_lease(state, MEMBER, BASE)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def details_of(
    db: AsyncDatabase[Document],
    http: httpx.AsyncClient,
    lease: CredentialLease,
    clock: Clock,
    requests_per_hour: int = 1000,
) -> TicketDetails:
    budget = ApiBudget(db, BudgetPolicy(requests_per_hour=requests_per_hour))
    access = ConnectWiseAccess(FixedAuth(lease), http, budget)
    return TicketDetails(
        db, access, MetadataCache(db, timedelta(hours=1)), max_age=timedelta(minutes=5), clock=clock
    )


@pytest.fixture
def details(
    db: AsyncDatabase[Document], http: httpx.AsyncClient, lease: CredentialLease, clock: Clock
) -> TicketDetails:
    return details_of(db, http, lease, clock)


def a_ticket(state: SandboxState) -> dict[str, Any]:
    """An open ticket of the member's with a contact, a note and a time entry added."""
    ticket = next(
        t for t in state.store.tickets(TicketKind.SERVICE) if not t["closedFlag"] and "contact" in t
    )
    member = state.store.member_by_identifier(MEMBER)
    assert member is not None
    state.store.add_note(
        ticket["id"],
        TicketKind.SERVICE,
        text="<b>Rebooted</b> the switch",
        detail=False,
        internal=True,
        resolution=False,
        member=member,
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
    state.store.add_time_entry(
        TicketKind.SERVICE,
        ticket["id"],
        member=member,
        start=start,
        end=start + timedelta(minutes=45),
        billable_option="Billable",
        notes="On site",
        actor=MEMBER,
    )
    found = state.store.ticket(ticket["id"])
    assert found is not None
    return found


async def test_one_cold_read_then_the_cache(
    details: TicketDetails, transport: Counting, state: SandboxState, lease: CredentialLease
) -> None:
    ticket = a_ticket(state)
    detail = await details.get(
        lease.tenant_id, lease.integration_id, Entity.SERVICE_TICKET, ticket["id"]
    )
    board = ticket["board"]["id"]
    assert transport.taken() == {
        f"GET service/tickets/{ticket['id']}": 1,
        f"GET service/tickets/{ticket['id']}/notes": 1,
        "GET time/entries": 1,
        "GET schedule/entries": 1,
        f"GET service/boards/{board}/statuses": 1,  # not cached yet by a sync
        "GET time/workTypes": 1,  # nor these
    }
    notes = state.store.notes(ticket["id"]) or []
    assert detail.description == notes[0]["text"]
    assert [(n.text, n.internal, n.discussion) for n in detail.notes] == [
        ("<b>Rebooted</b> the switch", True, False)
    ]
    assert detail.notes[0].author == "Alex Tech"
    [entry] = detail.time_entries
    assert (entry.hours, entry.notes, entry.member) == (0.75, "On site", "Alex Tech")
    assert entry.work_type == "Remote Support"
    assert [(w.name, w.default) for w in detail.work_types][:1] == [("Remote Support", True)]
    assert "Legacy Hourly" not in {w.name for w in detail.work_types}  # inactive
    assert detail.contact is not None
    assert detail.contact.name == ticket["contactName"]
    assert detail.contact.id == ticket["contact"]["id"]
    assert detail.updated_at is not None
    assert detail.updated_at.strftime("%Y-%m-%dT%H:%M:%SZ") == ticket["_info"]["lastUpdated"]
    assert [s.id for s in detail.statuses] == [
        s["id"]
        for s in sorted(state.store.statuses_of(board), key=lambda s: (s["sortOrder"], s["id"]))
    ]

    again = await details.get(
        lease.tenant_id,
        lease.integration_id,
        Entity.SERVICE_TICKET,
        ticket["id"],
        detail.updated_at,
    )
    assert again == detail
    assert transport.taken() == {}


async def test_a_newer_ticket_a_named_ticket_or_age_is_read_again(
    details: TicketDetails,
    transport: Counting,
    state: SandboxState,
    lease: CredentialLease,
    clock: Clock,
) -> None:
    ticket = a_ticket(state)
    read = (lease.tenant_id, lease.integration_id, Entity.SERVICE_TICKET, ticket["id"])
    first = await details.get(*read)
    transport.taken()
    assert first.updated_at is not None

    # The dashboard saw a later change than the cached copy.
    newer = await details.get(*read, first.updated_at + timedelta(seconds=1))
    assert transport.taken()[f"GET service/tickets/{ticket['id']}"] == 1
    assert newer.fetched_at == first.fetched_at  # same clock: read again all the same

    # A webhook or a write-back named it.
    await details.forget(
        lease.integration_id, Changed(tickets={Entity.SERVICE_TICKET: frozenset({ticket["id"]})})
    )
    await details.get(*read)
    assert transport.taken()[f"GET service/tickets/{ticket['id']}"] == 1
    await details.forget(
        lease.integration_id, Changed(tickets={Entity.PROJECT_TICKET: frozenset({ticket["id"]})})
    )
    await details.get(*read)
    assert transport.taken() == {}  # another kind of record with that id: still cached

    clock.now += timedelta(minutes=5)
    await details.get(*read)
    assert transport.taken()[f"GET service/tickets/{ticket['id']}"] == 1


async def test_two_readers_of_one_ticket_make_one_read(
    details: TicketDetails, transport: Counting, state: SandboxState, lease: CredentialLease
) -> None:
    ticket = a_ticket(state)
    read = (lease.tenant_id, lease.integration_id, Entity.SERVICE_TICKET, ticket["id"])
    first, second = await asyncio.gather(details.get(*read), details.get(*read))
    assert first == second
    assert transport.taken()[f"GET service/tickets/{ticket['id']}"] == 1


async def test_a_gone_ticket_and_a_foreign_connection_are_refused(
    details: TicketDetails, state: SandboxState, lease: CredentialLease
) -> None:
    ticket = a_ticket(state)
    state.store.delete_ticket(ticket["id"])
    with pytest.raises(TicketGone):
        await details.get(
            lease.tenant_id, lease.integration_id, Entity.SERVICE_TICKET, ticket["id"]
        )
    with pytest.raises(NoConnection):
        await details.get("another-tenant", lease.integration_id, Entity.SERVICE_TICKET, 1001)
    with pytest.raises(NoConnection):
        await details.get(lease.tenant_id, "int-unknown", Entity.SERVICE_TICKET, 1001)


async def test_the_syncs_share_of_the_budget_is_kept(
    db: AsyncDatabase[Document],
    http: httpx.AsyncClient,
    transport: Counting,
    state: SandboxState,
    lease: CredentialLease,
    clock: Clock,
) -> None:
    """With 12 requests an hour, a fifth is the syncs': one cold read (6) leaves 6, fewer
    than another read and the syncs' share (6 + 2.4), so the next is refused unasked."""
    ticket = a_ticket(state)
    details = details_of(db, http, lease, clock, requests_per_hour=12)
    read = (lease.tenant_id, lease.integration_id, Entity.SERVICE_TICKET, ticket["id"])
    await details.get(*read)
    assert sum(transport.taken().values()) == 6
    await details.forget(
        lease.integration_id, Changed(tickets={Entity.SERVICE_TICKET: frozenset({ticket["id"]})})
    )
    with pytest.raises(SyncDeferred):
        await details.get(*read)
    assert sum(transport.taken().values()) == 0


# -- find any ticket ----------------------------------------------------------------------


def search_of(
    db: AsyncDatabase[Document],
    http: httpx.AsyncClient,
    lease: CredentialLease,
    clock: Clock,
    acting: dict[str, CredentialLease],
    requests_per_hour: int = 1000,
) -> TicketSearch:
    budget = ApiBudget(db, BudgetPolicy(requests_per_hour=requests_per_hour))
    access = ConnectWiseAccess(FixedAuth(lease, acting), http, budget)
    return TicketSearch(db, access, Leases(db), clock=clock)


def as_member(state: SandboxState, lease: CredentialLease, member: str) -> CredentialLease:
    """The connection's credentials acting as another member (keys minted for them)."""
    found = state.store.member_by_identifier(member)
    assert found is not None
    minted = state.member_tokens.mint(found["id"])
    return lease.model_copy(
        update={
            "member_identifier": member,
            "public_key": minted.public_key,
            "private_key": minted.private_key,
        }
    )


async def test_a_search_finds_by_number_or_summary_words_as_the_member(
    db: AsyncDatabase[Document],
    http: httpx.AsyncClient,
    transport: Counting,
    state: SandboxState,
    lease: CredentialLease,
    clock: Clock,
) -> None:
    search = search_of(db, http, lease, clock, {lease.user_id: lease})
    ticket = state.store.tickets()[-3]
    by_number = await search.search(
        lease.tenant_id,
        lease.user_id,
        SourceType.SERVICE_TICKET,
        TicketQuery.parse(f"#{ticket['id']}"),
    )
    assert [t.ticket_id for t in by_number.tickets] == [ticket["id"]]
    assert by_number.tickets[0].summary == ticket["summary"]
    assert (by_number.member, by_number.more) == (MEMBER, False)
    assert transport.taken() == {"GET service/tickets": 1}

    words = ticket["summary"].split()[:2]
    query = TicketQuery.parse(" ".join(w.upper() for w in words))  # case does not matter
    by_words = await search.search(lease.tenant_id, lease.user_id, SourceType.SERVICE_TICKET, query)
    assert ticket["id"] in {t.ticket_id for t in by_words.tickets}
    for found in by_words.tickets:
        assert all(w.casefold() in found.summary.casefold() for w in words)
    ids = [t.ticket_id for t in by_words.tickets]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert transport.taken() == {"GET service/tickets": 1}

    project = state.store.tickets(TicketKind.PROJECT)[0]
    in_projects = await search.search(
        lease.tenant_id,
        lease.user_id,
        SourceType.PROJECT_TICKET,
        TicketQuery.parse(str(project["id"])),
    )
    assert [(t.ticket_id, t.project) for t in in_projects.tickets] == [
        (project["id"], project["project"]["name"])
    ]
    assert transport.taken() == {"GET project/tickets": 1}


async def test_one_request_per_distinct_query_per_30_seconds_per_member(
    db: AsyncDatabase[Document],
    http: httpx.AsyncClient,
    transport: Counting,
    state: SandboxState,
    lease: CredentialLease,
    clock: Clock,
) -> None:
    bea = as_member(state, lease, "bjones")
    search = search_of(db, http, lease, clock, {lease.user_id: lease, "bea": bea})
    tenant, service = lease.tenant_id, SourceType.SERVICE_TICKET

    async def ask(text: str, user: str = lease.user_id) -> TicketSearchResults:
        return await search.search(tenant, user, service, TicketQuery.parse(text))

    first = await ask("printer")
    assert transport.taken() == {"GET service/tickets": 1}
    # The same query, asked again, reworded by case and spaces, or five times at once.
    again = await ask("  PRINTER ")
    together = await asyncio.gather(*(ask("Printer") for _ in range(5)))
    assert [again, *together] == [first] * 6
    assert transport.taken() == {}
    # Another member may see other tickets: asked for them, once, as them.
    theirs = await ask("printer", user="bea")
    assert theirs.member == "bjones"
    assert transport.taken() == {"GET service/tickets": 1}
    # Five new queries at once on a cold cache: each asked once.
    await asyncio.gather(*(ask("network") for _ in range(5)))
    assert transport.taken() == {"GET service/tickets": 1}
    # Thirty seconds on, ConnectWise is asked again.
    clock.now += timedelta(seconds=31)
    await ask("printer")
    assert transport.taken() == {"GET service/tickets": 1}


async def test_a_search_is_refused_before_any_request_when_it_cannot_be_made(
    db: AsyncDatabase[Document],
    http: httpx.AsyncClient,
    transport: Counting,
    lease: CredentialLease,
    clock: Clock,
) -> None:
    query, service = TicketQuery.parse("printer"), SourceType.SERVICE_TICKET
    cannot_act = search_of(db, http, lease, clock, {})
    with pytest.raises(CannotAct):
        await cannot_act.search(lease.tenant_id, lease.user_id, service, query)
    with pytest.raises(LookupError):
        await cannot_act.search("another-tenant", lease.user_id, service, query)
    # The rest of the hour is the syncs': fewer than a fifth of 10 requests left.
    budget = ApiBudget(db, BudgetPolicy(requests_per_hour=10))
    for _ in range(8):
        await budget.admit(lease.integration_id, lease.tenant_id)
    spent = search_of(db, http, lease, clock, {lease.user_id: lease}, requests_per_hour=10)
    with pytest.raises(SyncDeferred):
        await spent.search(lease.tenant_id, lease.user_id, service, query)
    assert transport.taken() == {}
