"""The connector in the running system: every run recorded and reported, what leaves
ConnectWise leaves the dashboard, and 429s and 500s ridden out within the budget."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2e_helpers import (
    assigned_open_phase_ids,
    assigned_open_ticket_ids,
    connect,
    connector,
    dashboard_ids,
    dashboard_phase_ids,
    eventually,
    next_job,
    sandbox,
    signed_in,
    sync_now,
)

from syntaskio_devstack.stack import EmbeddedStack

MEMBER = "cmiller"  # not used by other tests, so its tickets can be changed freely


@pytest.fixture(scope="module")
def carlos(system: EmbeddedStack) -> Iterator[tuple[httpx.Client, str]]:
    """Carlos, with a few tickets of his own, connected."""
    for summary in ("Switch stack firmware", "VPN drops at branch", "Replace UPS battery"):
        sandbox(system, "POST", "/tickets", json={"summary": summary, "owner": MEMBER})
    with signed_in(system, f"carlos-{uuid.uuid4().hex[:6]}@acme-msp.example", "acme") as client:
        assert connect(client, system, MEMBER).status_code == 201
        [integration] = client.get("/api/v1/integrations").json()
        yield client, integration["id"]


def test_every_run_is_recorded_with_its_cost(
    system: EmbeddedStack, carlos: tuple[httpx.Client, str]
) -> None:
    client, integration_id = carlos
    expected = assigned_open_ticket_ids(system, MEMBER)
    assert eventually(lambda: dashboard_ids(client) == expected)
    job = next_job(system, integration_id, sync_now(system, integration_id))
    assert job["status"] == "succeeded", job
    assert job["trigger"] in ("manual", "scheduled")
    assert job["api_requests"] >= 3  # schedule entries + one per ticket kind
    assert 0 <= job["budget_remaining"] < 1000
    status = connector(
        system, "GET", f"/integrations/{integration_id}/sync-status", params={"tenant_id": "acme"}
    ).json()
    assert status["budget"]["limit_per_hour"] == 1000
    assert status["budget"]["used_last_hour"] >= job["api_requests"]
    assert status["state"] in ("idle", "syncing")
    # Another tenant asking for the same integration's history sees nothing.
    other = connector(
        system, "GET", f"/integrations/{integration_id}/sync-jobs", params={"tenant_id": "evil"}
    )
    assert other.json() == []


def test_closed_and_reassigned_tickets_leave_the_dashboard(
    system: EmbeddedStack, carlos: tuple[httpx.Client, str]
) -> None:
    client, _ = carlos
    expected = assigned_open_ticket_ids(system, MEMBER)
    assert eventually(lambda: dashboard_ids(client) == expected)
    closed, reassigned = sorted(expected, key=int)[:2]
    sandbox(system, "POST", f"/tickets/{closed}/close")
    sandbox(system, "PATCH", f"/tickets/{reassigned}", json={"owner": "dpatel", "resources": []})
    assert eventually(lambda: dashboard_ids(client) == expected - {closed, reassigned})


def test_429s_and_500s_are_ridden_out(
    system: EmbeddedStack, carlos: tuple[httpx.Client, str]
) -> None:
    client, integration_id = carlos
    assert eventually(lambda: dashboard_ids(client) == assigned_open_ticket_ids(system, MEMBER))
    created = sandbox(
        system, "POST", "/tickets", json={"summary": "Door badge reader", "owner": MEMBER}
    ).json()
    # Three failures in a row: the fourth attempt of the same request gets through.
    sandbox(system, "POST", "/faults", json={"status": 429, "count": 1, "retry_after": 1})
    sandbox(system, "POST", "/faults", json={"status": 500, "count": 2})
    try:
        job = next_job(system, integration_id, sync_now(system, integration_id))
    finally:
        httpx.delete(f"{system.url('sandbox')}/_sandbox/faults")
    assert job["status"] == "succeeded", job["error"]
    assert str(created["id"]) in dashboard_ids(client) or eventually(
        lambda: str(created["id"]) in dashboard_ids(client)
    )


def test_the_settings_api_shows_sync_state_and_history_and_syncs_now(
    system: EmbeddedStack, carlos: tuple[httpx.Client, str]
) -> None:
    client, integration_id = carlos
    assert eventually(lambda: dashboard_ids(client) == assigned_open_ticket_ids(system, MEMBER))

    def history() -> list[dict[str, Any]]:
        response = client.get(f"/api/v1/integrations/{integration_id}/sync-jobs?limit=50")
        assert response.status_code == 200, response.text
        jobs: list[dict[str, Any]] = response.json()
        return jobs

    before = {job["id"] for job in history()}
    queued = client.post(f"/api/v1/integrations/{integration_id}/sync")
    assert queued.status_code == 202, queued.text
    manual = eventually(
        lambda: [
            j
            for j in history()
            if j["id"] not in before and j["trigger"] == "manual" and j["status"] != "running"
        ]
    )
    assert manual, "sync now ran no sync"
    assert manual[0]["status"] == "succeeded", manual[0]

    [shown] = client.get("/api/v1/integrations").json()
    assert client.get(f"/api/v1/integrations/{integration_id}").json()["id"] == integration_id
    assert shown["id"] == integration_id
    assert shown["status"] == "active"
    assert shown["state"] in ("active", "syncing")
    sync = shown["sync"]
    assert sync["budget"]["limit_per_hour"] == 1000
    assert sync["budget"]["used_last_hour"] >= manual[0]["api_requests"]
    assert sync["last_job"]["status"] in ("succeeded", "running")
    assert sync["next_sync_at"] is not None
    assert "private_key" not in str(shown)

    unknown = "00000000-0000-0000-0000-000000000000"
    assert client.get(f"/api/v1/integrations/{unknown}/sync-jobs").status_code == 404
    assert client.post(f"/api/v1/integrations/{unknown}/sync").status_code == 404


def test_project_phases_are_turned_on_and_off_in_the_settings_api(
    system: EmbeddedStack, carlos: tuple[httpx.Client, str]
) -> None:
    client, integration_id = carlos
    integration = f"/api/v1/integrations/{integration_id}"

    def options() -> dict[str, Any]:
        shown = client.get(integration)
        assert shown.status_code == 200, shown.text
        assert shown.json()["sync"] is not None, "the connector's status is missing"
        found: dict[str, Any] = shown.json()["options"]
        return found

    # Off by default: the member's tickets, no phases.
    assert options() == {"project_phases": False, "sync_interval_minutes": None}
    assert eventually(lambda: dashboard_ids(client) == assigned_open_ticket_ids(system, MEMBER))
    assert dashboard_phase_ids(client) == set()

    turned_on = client.put(f"{integration}/sync-options", json={"project_phases": True})
    assert turned_on.status_code == 200, turned_on.text
    assert turned_on.json() == {"project_phases": True, "sync_interval_minutes": None}
    assert options() == {"project_phases": True, "sync_interval_minutes": None}
    [listed] = client.get("/api/v1/integrations").json()
    assert listed["options"] == {"project_phases": True, "sync_interval_minutes": None}
    # Synced at once: the open phases of the projects Carlos works on arrive.
    phases = assigned_open_phase_ids(system, MEMBER)
    assert phases, f"{MEMBER} works on no project with open phases: nothing to see"
    assert eventually(lambda: dashboard_phase_ids(client) == phases), (
        f"dashboard {sorted(dashboard_phase_ids(client))} != sandbox {sorted(phases)}"
    )

    turned_off = client.put(f"{integration}/sync-options", json={"project_phases": False})
    assert turned_off.status_code == 200, turned_off.text
    assert options() == {"project_phases": False, "sync_interval_minutes": None}
    assert eventually(lambda: dashboard_phase_ids(client) == set()), "the phases stayed"
    assert dashboard_ids(client) == assigned_open_ticket_ids(system, MEMBER)

    # Invalid options are a problem, and change nothing.
    invalid = client.put(f"{integration}/sync-options", json={"project_phases": True, "x": 1})
    assert invalid.status_code == 422, invalid.text
    assert invalid.headers["content-type"] == "application/problem+json"
    assert options() == {"project_phases": False, "sync_interval_minutes": None}
    unknown = "00000000-0000-0000-0000-000000000000"
    missing = client.put(
        f"/api/v1/integrations/{unknown}/sync-options", json={"project_phases": True}
    )
    assert missing.status_code == 404, missing.text


def test_a_connection_set_to_sync_daily_is_next_synced_a_day_after_its_run(
    system: EmbeddedStack, carlos: tuple[httpx.Client, str]
) -> None:
    """Its own interval replaces the stack's (seconds, here), give or take a tenth."""
    client, integration_id = carlos
    integration = f"/api/v1/integrations/{integration_id}"
    asked_at = datetime.now(UTC)
    daily = client.put(f"{integration}/sync-options", json={"sync_interval_minutes": 24 * 60})
    assert daily.status_code == 200, daily.text

    def planned_after_its_run() -> timedelta | None:
        sync = client.get(integration).json()["sync"]
        job = sync["last_job"]
        started = datetime.fromisoformat(job["started_at"])
        if job["status"] != "succeeded" or started < asked_at:
            return None  # the run the change asked for has not ended yet
        return datetime.fromisoformat(sync["next_sync_at"]) - started

    assert eventually(lambda: planned_after_its_run() is not None)
    gap = planned_after_its_run()
    assert gap is not None
    assert timedelta(hours=21.5) <= gap <= timedelta(hours=26.5), gap
    assert client.put(f"{integration}/sync-options", json={}).status_code == 200
