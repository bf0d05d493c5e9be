"""The chaos suite: the running system's parts killed and stopped while ConnectWise
changes, closes, reassigns and deletes tickets, and no callback about it is ever
delivered (ConnectWise gives up on a receiver that does not answer). After each,
every technician's dashboard must equal ConnectWise again — nothing lost, duplicated,
stale or extra — and no sync job may be left `running`.

A ConnectWise company of its own (the second sandbox, 2,000 tickets) with three
technicians connected. In order: the aggregator SIGKILLed mid-drain, the connector
SIGKILLed mid-sync, the gateway SIGKILLed with live streams open, the database stopped
and the broker frozen (SIGSTOP: the embedded broker keeps its data in memory, so it is
frozen rather than restarted). How long each took to recover — from the part's restart
(or thaw) until every dashboard was true — is printed at the end of the run
(tests/chaos/conftest.py) and kept in docs/operations.md."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from contract_checks import assert_no_contract_violations
from e2e_helpers import (
    TICKET_TYPES,
    EventStream,
    connector,
    dashboard_tasks,
    eventually,
    jobs,
    signed_in,
)
from sandbox_company import SandboxCompany

from syntaskio_devstack.processes import ManagedProcess
from syntaskio_devstack.stack import EmbeddedStack, dev_secrets

TENANT = "chaos-msp"
MEMBERS = ("bjones", "cmiller", "ewong")
TICKETS = 2_000
# Recovery times by scenario, printed at the end of the run (conftest.py).
RECOVERY: dict[str, float] = {}


@dataclass
class Technician:
    client: httpx.Client
    integration_id: str
    company: SandboxCompany


@pytest.fixture(scope="module")
def team(system: EmbeddedStack) -> Iterator[list[Technician]]:
    system.start_second_sandbox(tickets=TICKETS)
    with ExitStack() as stack:
        team = []
        for member in MEMBERS:
            company = SandboxCompany(system, "second_sandbox", member)
            user = f"{member}-{uuid.uuid4().hex[:6]}@chaos-msp.example"
            client = stack.enter_context(signed_in(system, user, TENANT))
            connected = client.post(
                "/api/v1/integrations/connectwise/api-key", json=company.connection()
            )
            assert connected.status_code == 201, connected.text
            team.append(Technician(client, connected.json()["id"], company))
        recovered(team, "connected", timeout=240)
        yield team
        for technician in team:
            technician.client.delete(f"/api/v1/integrations/{technician.integration_id}")
    assert_no_contract_violations(system.url("second_sandbox"))
    system.processes["second_sandbox"].stop()


def differences(technician: Technician) -> dict[str, list[str]]:
    """The technician's dashboard against ConnectWise: what is lost, extra, shown more
    than once, or shown out of date (title or status)."""
    tasks = [t for t in dashboard_tasks(technician.client) if t["source_type"] in TICKET_TYPES]
    shown = {t["external_id"]: t for t in tasks}
    truth = technician.company.assigned_open_tickets()
    return {
        "lost": sorted(truth.keys() - shown.keys()),
        "extra": sorted(shown.keys() - truth.keys()),
        "duplicated": sorted(
            i for i, n in Counter(t["external_id"] for t in tasks).items() if n > 1
        ),
        "stale": sorted(
            i
            for i in truth.keys() & shown.keys()
            if shown[i]["title"] != truth[i]["summary"]
            or shown[i]["source_status"] != truth[i]["status"]["name"]
        ),
    }


def recovered(
    team: list[Technician], scenario: str, since: float | None = None, timeout: float = 120
) -> float:
    """Seconds from `since` until every dashboard equals ConnectWise (recorded)."""
    since = time.monotonic() if since is None else since
    found: list[dict[str, list[str]]] = []

    def true() -> bool:
        found[:] = [differences(t) for t in team]
        return not any(any(d.values()) for d in found)

    assert eventually(true, timeout=timeout, interval=1.0), f"{scenario}: {found}"
    RECOVERY[scenario] = time.monotonic() - since
    return RECOVERY[scenario]


def disturb(team: list[Technician]) -> None:
    """For each technician, one of their own service tickets deleted, one closed, one
    given to someone else and one renamed — and no callback about any of it arrives."""
    admin = team[0].company.admin
    for technician in team:
        member = technician.company.member
        own = sorted(
            (
                t
                for t in technician.company.assigned_open_tickets().values()
                if (t.get("owner") or {}).get("identifier") == member and "project" not in t
            ),
            key=lambda t: t["id"],
        )
        deleted, closed, moved, renamed = (t["id"] for t in own[:4])
        assert admin.delete(f"/tickets/{deleted}").is_success
        assert admin.post(f"/tickets/{closed}/close").is_success
        assert admin.patch(
            f"/tickets/{moved}", json={"owner": "jsmith", "resources": []}
        ).is_success
        summary = f"Renamed while down {uuid.uuid4().hex[:6]}"
        assert admin.patch(f"/tickets/{renamed}", json={"summary": summary}).is_success


@pytest.fixture
def callbacks_lost(team: list[Technician]) -> Iterator[None]:
    """Callbacks held, then dropped unsent: ConnectWise gave up on them."""
    admin = team[0].company.admin
    assert admin.post("/callbacks/pause").is_success
    try:
        yield
    finally:
        admin.delete("/callbacks/deliveries")
        admin.post("/callbacks/resume")


def no_job_left_running(system: EmbeddedStack, team: list[Technician], before: float) -> None:
    """Every job that started before the part came back ends (the interrupted one marked
    so); jobs started since may still be running, as runs do."""

    def stuck() -> list[dict[str, Any]]:
        return [
            j
            for t in team
            for j in jobs(system, t.integration_id, TENANT)
            if j["status"] == "running" and j["started_at"] < iso(before)
        ]

    assert eventually(lambda: not stuck(), timeout=60), stuck()


def iso(monotonic: float) -> str:
    """A monotonic instant as the jobs' UTC ISO timestamps (comparable as strings)."""
    wall = time.time() - (time.monotonic() - monotonic)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall))


def restart(process: ManagedProcess, ready_within: float = 90.0) -> float:
    """Start a killed or stopped part again; when it was started (monotonic), from which
    its recovery is counted."""
    started = time.monotonic()
    process.start()
    process.wait_ready(ready_within)
    return started


def resync_all(system: EmbeddedStack, team: list[Technician]) -> None:
    for technician in team:
        asked = connector(
            system,
            "POST",
            f"/integrations/{technician.integration_id}/sync",
            params={"resync": "true"},
        )
        assert asked.status_code == 202, asked.text


def test_the_aggregator_killed_mid_drain(system: EmbeddedStack, team: list[Technician]) -> None:
    aggregator = system.processes["aggregator"]
    before = {t.integration_id: jobs(system, t.integration_id, TENANT)[0]["id"] for t in team}
    resync_all(system, team)  # thousands of records to apply

    def published() -> bool:
        latest = jobs(system, team[0].integration_id, TENANT)[0]
        return latest["id"] != before[team[0].integration_id] and latest["status"] == "succeeded"

    assert eventually(published, timeout=60, interval=0.2)
    aggregator.kill()  # the others' records, and most of these, not yet applied
    disturb(team)  # the connector fetches them; they wait in Kafka
    restarted = restart(aggregator)
    recovered(team, "aggregator SIGKILL mid-drain", since=restarted)
    no_job_left_running(system, team, restarted)


def test_the_connector_killed_mid_sync(
    system: EmbeddedStack, team: list[Technician], callbacks_lost: None
) -> None:
    admin, connector_process = team[0].company.admin, system.processes["connector"]
    slow = {"delay_seconds": 2, "duration_seconds": 30}
    assert admin.post("/faults", json=slow).status_code == 201
    resync_all(system, team)

    def running() -> bool:
        return any(jobs(system, t.integration_id, TENANT)[0]["status"] == "running" for t in team)

    assert eventually(running, timeout=30, interval=0.2)
    connector_process.kill()
    assert admin.delete("/faults").is_success
    disturb(team)
    restarted = restart(connector_process)
    recovered(team, "connector SIGKILL mid-sync", since=restarted)
    no_job_left_running(system, team, restarted)
    interrupted = [
        j
        for t in team
        for j in jobs(system, t.integration_id, TENANT)
        if j["status"] == "interrupted"
    ]
    assert interrupted, "the killed run is marked interrupted"


def test_the_gateway_killed_with_streams_open(
    system: EmbeddedStack, team: list[Technician]
) -> None:
    gateway = system.processes["gateway"]
    streams = [EventStream(t.client) for t in team]
    for stream in streams:
        stream.__enter__()
        assert stream.next("status", timeout=30)["data"] == 200
    try:
        gateway.kill()
        disturb(team)
        restarted = restart(gateway)
        recovered(team, "gateway SIGKILL with streams open", since=restarted)
    finally:
        for stream in streams:
            stream.__exit__()
    # A browser's EventSource reconnects: the new stream delivers the next change.
    technician = team[0]
    with EventStream(technician.client) as stream:
        assert stream.next("status", timeout=30)["data"] == 200
        mine = next(
            t for t in technician.company.assigned_open_tickets().values() if "project" not in t
        )
        summary = f"After the gateway came back {uuid.uuid4().hex[:6]}"
        assert technician.company.admin.patch(
            f"/tickets/{mine['id']}", json={"summary": summary}
        ).is_success
        while True:
            event = stream.next("task.upserted", timeout=60)
            if event["data"]["task"]["title"] == summary:
                break


def answered_503(system: EmbeddedStack, team: list[Technician]) -> dict[str, httpx.Response]:
    """One request to each service while a dependency is down, all at once."""
    token = dev_secrets(system.config.data_dir)["INTERNAL_API_TOKEN"]
    internal = {"Authorization": f"Bearer {token}"}
    integration = team[0].integration_id
    # Well-formed, so it gets past the cheap checks to what needs the database.
    signed_body = json.dumps(
        {
            "Action": "updated",
            "Type": "Ticket",
            "ID": 1,
            "CompanyId": "x",
            "Metadata": {"key_url": "k"},
        }
    ).encode()
    probes = {
        "gateway": lambda: team[0].client.get("/api/v1/tasks"),
        "auth": lambda: httpx.get(
            f"{system.url('auth')}/internal/v1/integrations",
            params={"status": "active"},
            headers=internal,
            timeout=30,
        ),
        "connector": lambda: httpx.get(
            f"{system.url('connector')}/internal/v1/integrations/{integration}/sync-jobs",
            params={"tenant_id": TENANT},
            headers=internal,
            timeout=30,
        ),
        "connector webhook": lambda: httpx.post(
            f"{system.url('connector')}/webhooks/connectwise/{integration}",
            content=signed_body,
            headers={"x-content-signature": "A" * 43 + "="},
            timeout=30,
        ),
        "aggregator": lambda: httpx.get(f"{system.url('aggregator')}/readyz", timeout=30),
    }
    with ThreadPoolExecutor(len(probes)) as pool:
        futures = {name: pool.submit(probe) for name, probe in probes.items()}
        return {name: future.result() for name, future in futures.items()}


def test_the_database_stopped(
    system: EmbeddedStack, team: list[Technician], callbacks_lost: None
) -> None:
    database = system.processes["database"]
    database.stop()
    stopped = time.monotonic()
    try:
        # Callbacks for these arrive now and are refused with 503 (then given up on).
        team[0].company.admin.post("/callbacks/resume")
        disturb(team)
        answers = answered_503(system, team)
        for name, answer in answers.items():
            assert answer.status_code == 503, (name, answer.status_code, answer.text)
            assert "Traceback" not in answer.text
            if name != "aggregator":  # readiness says which check failed, as JSON
                assert answer.headers["content-type"] == "application/problem+json", name
                assert answer.headers["retry-after"] == "5", name
        time.sleep(max(0.0, 10 - (time.monotonic() - stopped)))
    finally:
        back = restart(database, ready_within=60.0)
    recovered(team, "database stopped 10 s", since=back)
    no_job_left_running(system, team, back)


def test_the_broker_frozen(
    system: EmbeddedStack, team: list[Technician], callbacks_lost: None
) -> None:
    broker = system.processes["broker"]
    assert broker.popen is not None
    os.kill(broker.popen.pid, signal.SIGSTOP)
    frozen = time.monotonic()
    try:
        team[0].company.admin.post("/callbacks/resume")  # delivered and taken; Kafka waits
        disturb(team)
        # The dashboard still answers from the database; readiness says Kafka is gone.
        assert team[0].client.get("/api/v1/tasks").status_code == 200
        ready = httpx.get(f"{system.url('aggregator')}/readyz", timeout=30)
        assert ready.status_code == 503
        assert ready.json()["checks"]["kafka"] is False
        time.sleep(max(0.0, 10 - (time.monotonic() - frozen)))
    finally:
        os.kill(broker.popen.pid, signal.SIGCONT)
    back = time.monotonic()
    recovered(team, "broker frozen 10 s", since=back)
    no_job_left_running(system, team, back)
