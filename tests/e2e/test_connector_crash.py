"""The connector killed with SIGKILL in the middle of a sync, while ConnectWise changes
and deletes the member's tickets and no callback reaches us (ConnectWise gives up on a
receiver that is down): after a restart the interrupted job is marked so, the run that
finds it reconciles, and the dashboard equals ConnectWise — the deleted ticket included,
which only a reconciliation can notice — within the lease's lapse plus a run or two."""

from __future__ import annotations

import time
import uuid
from typing import Any

from e2e_helpers import (
    assigned_open_ticket_ids,
    connect,
    dashboard_ids,
    dashboard_tasks,
    eventually,
    jobs,
    sandbox,
    signed_in,
    sync_now,
)

from syntaskio_devstack.stack import EmbeddedStack

MEMBER = "dpatel"  # no other end-to-end test uses Divya's tickets


def new_ticket(system: EmbeddedStack, summary: str) -> str:
    created = sandbox(system, "POST", "/tickets", json={"summary": summary, "owner": MEMBER})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


def running_job(system: EmbeddedStack, integration_id: str, after: str) -> dict[str, Any] | None:
    for job in jobs(system, integration_id):
        if job["id"] == after:
            return None
        if job["status"] == "running":
            return job
    return None


def test_a_connector_killed_mid_sync_recovers_to_connectwises_truth(
    system: EmbeddedStack,
) -> None:
    doomed, closing, reassigned, renamed = (
        new_ticket(system, f"Crash test {what}")
        for what in ("deleted", "closed", "reassigned", "renamed")
    )
    with signed_in(system, f"divya-{uuid.uuid4().hex[:6]}@acme-msp.example", "acme") as client:
        assert connect(client, system, MEMBER).status_code == 201
        [integration] = client.get("/api/v1/integrations").json()
        integration_id = integration["id"]
        assert eventually(
            lambda: dashboard_ids(client) == assigned_open_ticket_ids(system, MEMBER), timeout=120
        )
        connector = system.processes["connector"]
        assert sandbox(system, "POST", "/callbacks/pause").is_success
        try:
            # Every ConnectWise answer is slow for a while, so a run is surely under way.
            slow = {"delay_seconds": 2, "duration_seconds": 30}
            assert sandbox(system, "POST", "/faults", json=slow).status_code == 201
            before = sync_now(system, integration_id)
            interrupted = eventually(lambda: running_job(system, integration_id, before), 30)
            assert interrupted, jobs(system, integration_id)[:3]
            connector.kill()
            killed = time.monotonic()
            assert sandbox(system, "DELETE", "/faults").is_success

            # While it is down: deleted, closed, given to someone else, renamed.
            assert sandbox(system, "DELETE", f"/tickets/{doomed}").is_success
            assert sandbox(system, "POST", f"/tickets/{closing}/close").is_success
            moved = {"owner": "jsmith", "resources": []}
            assert sandbox(system, "PATCH", f"/tickets/{reassigned}", json=moved).is_success
            rename = {"summary": "Crash test renamed while the connector was down"}
            assert sandbox(system, "PATCH", f"/tickets/{renamed}", json=rename).is_success

            connector.start()
            connector.wait_ready(90.0)
            restarted = time.monotonic() - killed
            expected = assigned_open_ticket_ids(system, MEMBER)
            assert {doomed, closing, reassigned}.isdisjoint(expected)
            assert renamed in expected

            def truth() -> bool:
                tasks = {t["external_id"]: t for t in dashboard_tasks(client)}
                return tasks.keys() == expected and tasks[renamed]["title"] == rename["summary"]

            def runs() -> list[tuple[str, str, Any]]:
                return [
                    (j["trigger"], j["status"], j.get("modes"))
                    for j in jobs(system, integration_id)
                ]

            assert eventually(truth, timeout=90), (
                f"shown but gone: {sorted(dashboard_ids(client) - expected)}; "
                f"missing: {sorted(expected - dashboard_ids(client))}; runs: {runs()[:4]}"
            )
            recovered = time.monotonic() - killed
        finally:
            sandbox(system, "DELETE", "/faults")
            sandbox(system, "POST", "/callbacks/resume")

    history = jobs(system, integration_id)
    [marked] = [j for j in history if j["id"] == interrupted["id"]]
    assert marked["status"] == "interrupted", marked
    assert "stopped" in marked["error"]
    assert not [
        j for j in history if j["status"] == "running" and j["started_at"] < marked["finished_at"]
    ]
    # The run that found it listed every ticket id: a reconciliation.
    after = [j for j in history if j["started_at"] > interrupted["started_at"]]
    assert any("reconcile" in (j.get("modes") or {}).values() for j in after), after
    print(
        f"\nconnector back {restarted:.1f} s and the dashboard true {recovered:.1f} s after SIGKILL"
    )
