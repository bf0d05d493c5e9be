"""Fleet mode: many companies on one sandbox host, each reachable by its own Basic
credentials and company lookup, seeing only its own records; every member's keys from
the seed (a function and a paged admin endpoint); companies whose server is down;
response latency; records built per company on first use."""

from __future__ import annotations

import asyncio
import base64
import time
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import uvicorn
from contract_checks import assert_none_refused
from fastapi import FastAPI
from pydantic import ValidationError

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.__main__ import parse_settings
from connectwise_sandbox.contract import problems
from connectwise_sandbox.fleet import Fleet, FleetMember, FleetSpec, fleet_members
from connectwise_sandbox.latency import Latency
from connectwise_sandbox.state import SandboxState
from syntaskio_common.connectwise import (
    ApiKeyCredentials,
    ConnectWiseClient,
    api_base_url,
    fetch_codebase,
)
from syntaskio_common.connectwise_conditions import F, all_of, any_of

ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)
MEMBERS = 3
TICKETS = 2


def fleet_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "tickets": 20,
        "seed": 42,
        "anchor": ANCHOR,
        "client_ids": DEV_CLIENT_ID,
        "fleet_companies": 4,
        "fleet_members_per_company": MEMBERS,
        "fleet_tickets_per_member": TICKETS,
        "fleet_down_fraction": 0.25,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def cw_settings() -> Settings:
    return fleet_settings()


def fleet_of(app: FastAPI) -> Fleet:
    state: SandboxState = app.state.sandbox
    assert state.fleet is not None
    return state.fleet


def healthy(spec: FleetSpec) -> list[int]:
    return [index for index in range(1, spec.companies + 1) if index not in spec.down]


def headers_of(member: FleetMember, company_id: str | None = None) -> dict[str, str]:
    """Basic credentials of `member`, under its own company id unless told otherwise."""
    user = f"{company_id or member.company_id}+{member.public_key}:{member.private_key}"
    return {
        "Authorization": "Basic " + base64.b64encode(user.encode()).decode(),
        "clientId": DEV_CLIENT_ID,
    }


async def test_off_by_default_and_nothing_answers_for_a_fleet_company(
    cw: httpx.AsyncClient,
) -> None:
    app = create_app(Settings(anchor=ANCHOR))
    state: SandboxState = app.state.sandbox
    assert Settings().fleet_companies == 0
    assert state.fleet is None
    assert state.latency is not None
    assert not state.latency.enabled
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test"
    ) as client:
        assert (await client.get("/login/companyinfo/fleet00001")).json() is None
        page = (await client.get("/_sandbox/fleet/members")).json()
        assert (page["total"], page["members"], page["next_offset"]) == (0, [], None)


async def test_each_company_sees_only_its_own_records_with_its_own_keys(
    cw: httpx.AsyncClient, api: str, cw_app: FastAPI
) -> None:
    spec = fleet_of(cw_app).spec
    first, second = healthy(spec)[:2]
    ticket_sets: list[list[dict[str, Any]]] = []
    for index in (first, second):
        company_id = spec.company_id(index)
        member = spec.member(index, 2)
        headers = headers_of(member)
        info = (await cw.get(f"/login/companyinfo/{company_id}")).json()
        assert info["CompanyID"] == company_id
        assert info["Codebase"] == "v2025_1/"
        me = (await cw.get(f"{api}/system/myMembers", headers=headers)).json()
        assert (me["id"], me["identifier"]) == (member.member_id, "tech0002")
        assert me["officeEmail"] == member.email == f"tech.number0002@{company_id}.example"
        members = (await cw.get(f"{api}/system/members", headers=headers)).json()
        assert all(m["officeEmail"].endswith(f"@{company_id}.example") for m in members)
        assert len(members) == MEMBERS + 1  # the technicians and the API member
        response = await cw.get(f"{api}/service/tickets?pageSize=1000", headers=headers)
        tickets = response.json()
        assert len(tickets) == MEMBERS * TICKETS
        assert all(not t["closedFlag"] for t in tickets)
        owners = [t["owner"]["identifier"] for t in tickets]
        assert owners == sorted(f"tech{n:04d}" for n in range(1, MEMBERS + 1) for _ in "ab")
        assert all(t["resources"] == t["owner"]["identifier"] for t in tickets)
        ticket_sets.append(tickets)
    # Same ids (each company is its own database), different records.
    assert [t["id"] for t in ticket_sets[0]] == [t["id"] for t in ticket_sets[1]]
    assert ticket_sets[0] != ticket_sets[1]


async def test_a_change_in_one_company_leaves_another_alone(
    cw: httpx.AsyncClient, api: str, cw_app: FastAPI, cw_state: SandboxState
) -> None:
    spec = fleet_of(cw_app).spec
    first, second = healthy(spec)[:2]
    a, b = headers_of(spec.member(first, 1)), headers_of(spec.member(second, 1))
    before = (await cw.get(f"{api}/service/tickets/1001", headers=b)).json()
    patch = [{"op": "replace", "path": "summary", "value": "Changed in A only"}]
    changed = await cw.patch(f"{api}/service/tickets/1001", json=patch, headers=a)
    assert changed.status_code == 200
    assert changed.json()["summary"] == "Changed in A only"
    assert (await cw.get(f"{api}/service/tickets/1001", headers=b)).json() == before
    home = await cw.get(f"{api}/service/tickets/1001", headers=home_headers(cw_state))
    assert home.json()["summary"] != "Changed in A only"


def home_headers(state: SandboxState) -> dict[str, str]:
    key = next(k for k in state.store.api_keys if k.member_identifier == "atech")
    user = f"{state.settings.company_id}+{key.public_key}:{key.private_key}"
    return {
        "Authorization": "Basic " + base64.b64encode(user.encode()).decode(),
        "clientId": DEV_CLIENT_ID,
    }


async def test_a_key_used_with_another_company_id_is_refused_like_a_bad_key(
    cw: httpx.AsyncClient, api: str, cw_app: FastAPI, cw_state: SandboxState
) -> None:
    spec = fleet_of(cw_app).spec
    first, second = healthy(spec)[:2]
    member_a = spec.member(first, 1)
    crossed = await cw.get(
        f"{api}/system/info", headers=headers_of(member_a, spec.company_id(second))
    )
    garbage = FleetMember(spec.company_id(second), 101, "x", "", "F", "A" * 16, "B" * 16)
    bad = await cw.get(f"{api}/system/info", headers=headers_of(garbage))
    assert crossed.status_code == bad.status_code == 401
    assert (
        crossed.json()
        == bad.json()
        == {
            "code": "Unauthorized",
            "message": "Incorrect public/private key",
        }
    )
    # Nor under the home company's id, nor the home company's keys under a fleet id.
    home_id = cw_state.settings.company_id
    as_home = await cw.get(f"{api}/system/info", headers=headers_of(member_a, home_id))
    assert as_home.status_code == 401
    key = next(k for k in cw_state.store.api_keys if k.member_identifier == "atech")
    home_key = FleetMember(
        spec.company_id(first), 101, "atech", "", "F", key.public_key, key.private_key
    )
    assert (await cw.get(f"{api}/system/info", headers=headers_of(home_key))).status_code == 401
    # The home company is unchanged.
    assert (await cw.get(f"{api}/system/info", headers=home_headers(cw_state))).status_code == 200


async def test_the_connector_sync_path_works_per_company(
    cw_app: FastAPI, cw_state: SandboxState
) -> None:
    """What the connector asks, through the shared client: the company lookup, the
    metadata, the member by identifier, assigned open tickets (count, pages, fields,
    order), the empty project and schedule lists, callbacks and their keys, a ticket's
    GET and PATCH — without a single contract violation."""
    spec = fleet_of(cw_app).spec
    index = healthy(spec)[0]
    member = spec.member(index, 3)
    site = "http://sandbox.test"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=cw_app), base_url=site) as http:
        codebase = await fetch_codebase(http, site, member.company_id.upper())
        assert codebase == "v2025_1/"
        client = ConnectWiseClient(
            http,
            api_base_url(site, codebase),
            ApiKeyCredentials(member.company_id, member.public_key, member.private_key),
            DEV_CLIENT_ID,
        )
        assert (await client.get("system/info"))["version"].startswith("v2025.1")
        found = await client.get("system/members", conditions=F("identifier") == "tech0003")
        assert [m["id"] for m in found] == [member.member_id]
        mine = all_of(
            F("closedFlag").eq(False),
            any_of(F("owner/identifier") == "tech0003", F("resources").contains("tech0003")),
        )
        assert await client.count("service/tickets", mine) == TICKETS
        rows = [
            row
            async for page in client.pages(
                "service/tickets",
                conditions=mine,
                fields=["id", "_info/lastUpdated", "owner/identifier"],
                page_size=1,
                order_by="id desc",
            )
            for row in page
        ]
        assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
        assert {r["owner"]["identifier"] for r in rows} == {"tech0003"}
        assert len(rows) == TICKETS
        for path in ("project/tickets", "project/projects", "schedule/entries"):
            assert [row async for page in client.pages(path) for row in page] == []
        boards = await client.get("service/boards")
        assert await client.get(f"service/boards/{boards[0]['id']}/statuses")
        assert await client.get("service/priorities")
        assert await client.get("project/phaseStatuses")
        assert await client.get("time/workTypes")

        hook = {
            "url": "https://hooks.example/cw",
            "objectId": 1,
            "type": "Ticket",
            "level": "Owner",
        }
        made = await client.post("system/callbacks", hook)
        listed = [row async for page in client.pages("system/callbacks") for row in page]
        assert [c["id"] for c in listed] == [made["id"]]
        company = fleet_of(cw_app).state(index)
        assert company.callbacks.company_id == member.company_id
        key_id = company.callbacks.key_id_of(member.member_id)
        assert (await client.get(f"system/callbackKeys/{key_id}"))["signing_key"]
        # Another company has neither the callback nor its key; the home company neither.
        other = spec.member(healthy(spec)[1], 3)
        other_headers = headers_of(other)
        prefix = cw_state.settings.api_prefix
        assert (await http.get(f"{prefix}/system/callbacks", headers=other_headers)).json() == []
        key_url = f"{prefix}/system/callbackKeys/{key_id}"
        assert (await http.get(key_url, headers=other_headers)).status_code == 404
        home = await http.get(f"{prefix}/system/callbacks", headers=home_headers(cw_state))
        assert home.json() == []
        await client.delete(f"system/callbacks/{made['id']}")
        assert [row async for page in client.pages("system/callbacks") for row in page] == []

        ticket = await client.get(f"service/tickets/{rows[0]['id']}")
        patched = await client.patch(
            f"service/tickets/{ticket['id']}",
            [{"op": "replace", "path": "status/name", "value": "In Progress"}],
        )
        assert patched["status"]["name"] == "In Progress"
    assert_none_refused(cw_state.stats.snapshot())
    assert any(
        key.startswith(f"{member.company_id}+") for key in cw_state.stats.snapshot()["by_caller"]
    )


async def test_a_company_api_member_mints_keys_valid_in_its_company_only(
    cw: httpx.AsyncClient, api: str, cw_app: FastAPI
) -> None:
    spec = fleet_of(cw_app).spec
    first, second = healthy(spec)[:2]
    integration = spec.api_members(first - 1, 1)[0]
    assert (integration.company_id, integration.member_identifier) == (
        spec.company_id(first),
        "syntaskio-api",
    )
    minted = await cw.post(f"{api}/system/members/tech0003/tokens", headers=headers_of(integration))
    assert minted.status_code == 201
    keys = minted.json()
    as_tech = FleetMember(
        integration.company_id, 0, "", "", "F", keys["publicKey"], keys["privateKey"]
    )
    me = await cw.get(f"{api}/system/myMembers", headers=headers_of(as_tech))
    assert me.json()["officeEmail"] == f"tech.number0003@{integration.company_id}.example"
    elsewhere = headers_of(as_tech, spec.company_id(second))
    assert (await cw.get(f"{api}/system/myMembers", headers=elsewhere)).status_code == 401


def test_fleet_records_have_their_documented_shape(cw_app: FastAPI) -> None:
    company = fleet_of(cw_app).state(1)
    found = [p for t in company.store.tickets() for p in problems("Ticket", t)]
    found += [p for m in company.store.members for p in problems("Member", m)]
    assert found == []


async def test_the_credentials_are_deterministic_and_paged(
    cw: httpx.AsyncClient, cw_settings: Settings
) -> None:
    expected = [m.as_json() for m in fleet_members(cw_settings)]
    assert len(expected) == 4 * MEMBERS
    assert len({(m["public_key"], m["private_key"]) for m in expected}) == len(expected)
    rows: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = (
            await cw.get("/_sandbox/fleet/members", params={"offset": offset, "limit": 5})
        ).json()
        assert page["total"] == len(expected)
        assert len(page["members"]) <= 5
        rows += page["members"]
        offset = page["next_offset"]
    assert rows == expected
    assert [r["company_id"] for r in rows[:4]] == ["fleet00001"] * 3 + ["fleet00002"]
    # Another sandbox from the same settings hands out the same keys; another seed not.
    again = create_app(cw_settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=again), base_url="http://sandbox.test"
    ) as client:
        assert (await client.get("/_sandbox/fleet/members?limit=100")).json()["members"] == expected
    reseeded = fleet_members(fleet_settings(seed=43))
    assert {m.public_key for m in reseeded}.isdisjoint(m["public_key"] for m in expected)
    # The API members, one per company, with keys of their own that work.
    companies = (await cw.get("/_sandbox/fleet/companies", params={"offset": 1, "limit": 2})).json()
    assert (companies["total"], companies["next_offset"]) == (4, 3)
    assert [c["company_id"] for c in companies["companies"]] == ["fleet00002", "fleet00003"]
    assert {c["license_class"] for c in companies["companies"]} == {"A"}
    assert (await cw.get("/_sandbox/fleet/members", params={"limit": 0})).status_code == 422


async def test_down_companies_follow_the_seed(cw: httpx.AsyncClient, cw_app: FastAPI) -> None:
    spec = fleet_of(cw_app).spec
    assert len(spec.down) == 1  # round(4 x 0.25)
    assert spec.down == FleetSpec.from_settings(fleet_settings()).down
    summary = (await cw.get("/_sandbox/fleet")).json()
    assert summary["down_companies"] == [spec.company_id(i) for i in spec.down]
    rows = (await cw.get("/_sandbox/fleet/members")).json()["members"]
    assert {r["company_id"] for r in rows if r["down"]} == set(summary["down_companies"])
    fractions = [FleetSpec(100, 1, 1, 0.05, seed).down for seed in (1, 2)]
    assert [len(d) for d in fractions] == [5, 5]
    assert fractions[0] != fractions[1]


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, FleetSpec, uvicorn.Server]]:
    """The fleet sandbox on a real port: a client timeout is a real disconnect."""
    app = create_app(fleet_settings(fleet_down_hang_seconds=30))
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(500):  # uvicorn offers no event to wait on
        if server.started:
            break
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", fleet_of(app).spec, server
    server.should_exit = True
    server.force_exit = True  # a down company's request may still be waiting
    await task


async def test_a_down_company_does_not_answer_within_a_client_timeout(
    served: tuple[str, FleetSpec, uvicorn.Server],
) -> None:
    url, spec, server = served
    down = min(spec.down)
    api = f"{url}/v2025_1/apis/3.0"
    async with httpx.AsyncClient(timeout=0.5) as client:
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{api}/system/info", headers=headers_of(spec.member(down, 1)))
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{url}/login/companyinfo/{spec.company_id(down)}")
        assert time.monotonic() - started >= 1.0
        # Meanwhile, every other company answers at once — also while one waits.
        waiting = asyncio.create_task(
            client.get(f"{api}/system/info", headers=headers_of(spec.member(down, 2)))
        )
        for index in healthy(spec):
            response = await client.get(
                f"{api}/system/info", headers=headers_of(spec.member(index, 1))
            )
            assert response.status_code == 200
        with pytest.raises(httpx.ReadTimeout):
            await waiting
    # The client gave up: the server stops waiting too (no request left running).
    for _ in range(100):
        if not server.server_state.tasks:
            break
        await asyncio.sleep(0.01)
    assert not server.server_state.tasks


async def test_a_down_company_answers_504_once_the_hang_ends() -> None:
    app = create_app(fleet_settings(fleet_down_hang_seconds=0.2))
    spec = fleet_of(app).spec
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://sandbox.test"
    ) as client:
        started = time.monotonic()
        response = await client.get(
            "/v2025_1/apis/3.0/system/info", headers=headers_of(spec.member(min(spec.down), 1))
        )
        assert time.monotonic() - started >= 0.2
    assert response.status_code == 504
    assert response.json()["code"] == "GatewayTimeout"
    assert fleet_of(app).built == 0  # it never reached the company


class CountingLatency(Latency):
    def __init__(self, seconds: float) -> None:
        super().__init__(base_ms=seconds * 1000, tail_ms=0, tail_fraction=0, seed=0)
        self.calls = 0

    def next_seconds(self) -> float:
        self.calls += 1
        return super().next_seconds()


async def test_latency_applies_to_api_requests_only_and_does_not_serialise_them(
    cw: httpx.AsyncClient, api: str, cw_app: FastAPI, cw_state: SandboxState
) -> None:
    latency = CountingLatency(0.2)
    cw_state.latency = latency
    spec = fleet_of(cw_app).spec
    member = spec.member(healthy(spec)[0], 1)
    headers = headers_of(member)
    started = time.monotonic()
    assert (await cw.get(f"{api}/system/info", headers=headers)).status_code == 200
    assert time.monotonic() - started >= 0.2
    assert (await cw.get(f"/login/companyinfo/{member.company_id}")).status_code == 200
    assert latency.calls == 2
    await cw.get("/_sandbox/fleet")
    await cw.get("/_sandbox/stats")
    assert latency.calls == 2  # the admin API waits for nothing
    started = time.monotonic()
    answers = await asyncio.gather(
        *(cw.get(f"{api}/system/info", headers=headers) for _ in range(20))
    )
    elapsed = time.monotonic() - started
    assert {a.status_code for a in answers} == {200}
    assert latency.calls == 22
    assert elapsed < 20 * 0.2 / 2, elapsed  # concurrent waits, not one after another


def test_the_slow_tail_takes_its_fraction_of_requests() -> None:
    def draws(seed: int) -> list[float]:
        latency = Latency(base_ms=100, tail_ms=2000, tail_fraction=0.1, seed=seed)
        return [latency.next_seconds() for _ in range(10_000)]

    first = draws(1)
    assert set(first) == {0.1, 2.0}
    assert 0.08 < first.count(2.0) / len(first) < 0.12
    assert draws(1) == first  # from the seed


def test_settings_bounds_environment_and_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CW_SANDBOX_FLEET_COMPANIES", "1000")
    monkeypatch.setenv("CW_SANDBOX_LATENCY_MS", "100")
    settings = parse_settings(
        [
            "--fleet-members-per-company",
            "10",
            "--latency-tail-ms",
            "5000",
            "--latency-tail-fraction",
            "0.01",
        ]
    )
    assert (settings.fleet_companies, settings.fleet_members_per_company) == (1000, 10)
    assert (settings.latency_ms, settings.latency_tail_ms, settings.latency_tail_fraction) == (
        100,
        5000,
        0.01,
    )
    for bad in (
        {"fleet_companies": -1},
        {"fleet_companies": 100_000},
        {"fleet_companies": 1000, "fleet_members_per_company": 1000},  # 1 000 000 members
        {"fleet_members_per_company": 0},
        {"fleet_down_fraction": 1.5},
        {"latency_ms": -1},
        {"latency_ms": 500, "latency_tail_ms": 100, "latency_tail_fraction": 0.1},
        {"fleet_companies": 2, "company_id": "fleet00001"},
    ):
        with pytest.raises(ValidationError):
            Settings(**bad)


async def test_reset_forgets_the_fleet_and_follows_the_new_seed(
    cw: httpx.AsyncClient, api: str, cw_app: FastAPI
) -> None:
    fleet = fleet_of(cw_app)
    member = fleet.spec.member(healthy(fleet.spec)[0], 1)
    assert (await cw.get(f"{api}/system/info", headers=headers_of(member))).status_code == 200
    assert fleet.built == 1
    assert (await cw.post("/_sandbox/reset", json={"seed": 7})).status_code == 200
    assert (fleet.built, fleet.spec.seed) == (0, 7)
    assert (await cw.get(f"{api}/system/info", headers=headers_of(member))).status_code == 401
    renewed = fleet.spec.member(healthy(fleet.spec)[0], 1)
    assert (await cw.get(f"{api}/system/info", headers=headers_of(renewed))).status_code == 200


@pytest.fixture
def large_fleet() -> Iterator[FastAPI]:
    app = create_app(
        fleet_settings(
            tickets=0,
            fleet_companies=200,
            fleet_members_per_company=10,
            fleet_tickets_per_member=3,
            fleet_down_fraction=0,
        )
    )
    yield app
    app.state.sandbox.callbacks.deliverer.close()


def test_a_large_fleet_is_built_per_company_on_use(
    large_fleet: FastAPI, capsys: pytest.CaptureFixture[str]
) -> None:
    """2,000 members: nothing is built up front; each company on first use, with only
    its own records over shared reference data. Timing and memory are printed, not
    asserted (a shared machine)."""
    fleet = fleet_of(large_fleet)
    assert fleet.built == 0
    tracemalloc.start()
    started = time.perf_counter()
    companies = [fleet.state(index) for index in range(1, 201)]
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert fleet.built == 200
    assert fleet.state(7) is companies[6]  # built once
    for company in companies[:3]:
        assert len(company.store.members) == 11
        assert len(company.store.tickets()) == 30
        assert company.store.project_tickets() == []
        assert company.store.schedule_entries() == []
    shared = companies[0].store, companies[1].store
    assert shared[0].boards is shared[1].boards
    assert shared[0].schemas is shared[1].schemas
    assert shared[0].statuses is shared[1].statuses
    assert shared[0].tickets()[0]["board"] is not None
    with capsys.disabled():
        print(f"\n2,000 fleet members: built in {elapsed:.2f} s, {peak / 2**20:.0f} MiB traced")
