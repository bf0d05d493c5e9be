"""A company's connection, end to end: an admin connects the company's API member once
and maps two technicians; each then sees exactly their own ConnectWise work on their
dashboard (and nobody else's), a ticket handed from one to the other moves between
their dashboards, pausing stops syncing within one scheduler poll, and resuming syncs
at once."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack

from e2e_helpers import (
    assigned_open_ticket_ids,
    auth_service,
    connect_company,
    connector,
    dashboard_ids,
    eventually,
    sandbox,
    signed_in,
)

from syntaskio_devstack.stack import EmbeddedStack

POLL_SECONDS = 5.0  # the connector's SYNC_POLL_SECONDS in the test stack (its default)


def company_jobs(system: EmbeddedStack, tenant: str, integration_id: str) -> list[dict[str, str]]:
    response = connector(
        system, "GET", f"/integrations/{integration_id}/sync-jobs", params={"tenant_id": tenant}
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, str]] = response.json()
    return found


def test_each_mapped_technician_sees_exactly_their_work_until_the_company_pauses(
    system: EmbeddedStack,
) -> None:
    tenant = f"company-{uuid.uuid4().hex[:10]}"
    alex_id, beth_id = f"alex-{uuid.uuid4().hex[:6]}", f"beth-{uuid.uuid4().hex[:6]}"
    with ExitStack() as stack:
        alex = stack.enter_context(
            signed_in(system, alex_id, tenant, email="alex.tech@msp.example")
        )
        beth = stack.enter_context(
            signed_in(system, beth_id, tenant, email="beth.jones@msp.example")
        )
        nina = stack.enter_context(signed_in(system, f"nina-{uuid.uuid4().hex[:6]}", tenant))
        admin = stack.enter_context(
            auth_service(system, f"admin-{uuid.uuid4().hex[:6]}", tenant, roles=("admin",))
        )
        integration_id = connect_company(system, admin, {alex_id: "atech", beth_id: "bjones"})

        # Each sees exactly their own work; shared tickets are on both dashboards.
        assert eventually(lambda: dashboard_ids(alex) == assigned_open_ticket_ids(system, "atech"))
        assert eventually(lambda: dashboard_ids(beth) == assigned_open_ticket_ids(system, "bjones"))
        assert dashboard_ids(nina) == set()  # signed in, not mapped

        # A ticket handed from one to the other moves between their dashboards.
        moved = min(
            assigned_open_ticket_ids(system, "atech") - assigned_open_ticket_ids(system, "bjones"),
            key=int,
        )
        handed = {"owner": "bjones", "resources": ["bjones"]}
        patched = sandbox(system, "PATCH", f"/tickets/{moved}", json=handed)
        assert patched.is_success
        if moved in assigned_open_ticket_ids(system, "atech"):
            raise AssertionError(f"ticket {moved} is still atech's (scheduled for them?)")
        connector(system, "POST", f"/integrations/{integration_id}/sync")
        assert eventually(lambda: moved in dashboard_ids(beth) and moved not in dashboard_ids(alex))

        # Paused: within one scheduler poll no run starts, whatever is asked.
        paused = admin.post(f"/v1/admin/integrations/{integration_id}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["status"] == "paused"
        time.sleep(POLL_SECONDS + 1)  # a run that had started finishes; none starts after
        assert eventually(
            lambda: all(
                j["status"] != "running" for j in company_jobs(system, tenant, integration_id)
            )
        )
        before = company_jobs(system, tenant, integration_id)
        new = sandbox(
            system,
            "POST",
            "/tickets",
            json={"summary": "Paused company's new work", "owner": "atech"},
        ).json()
        connector(system, "POST", f"/integrations/{integration_id}/sync")
        time.sleep(2 * POLL_SECONDS)
        assert company_jobs(system, tenant, integration_id) == before
        assert str(new["id"]) not in dashboard_ids(alex)

        # Resumed: synced at once. The "sync now" asked while paused was kept, so the
        # scheduler may run it before the resume event arrives; the resume's own run
        # follows (it was requested after that run read the schedule).
        resumed = admin.post(f"/v1/admin/integrations/{integration_id}/resume")
        assert resumed.status_code == 200, resumed.text
        assert eventually(lambda: str(new["id"]) in dashboard_ids(alex))

        def triggers_since_resume() -> list[str]:
            jobs = company_jobs(system, tenant, integration_id)
            return [j["trigger"] for j in jobs[: len(jobs) - len(before)]]

        assert eventually(lambda: "resumed" in triggers_since_resume())
        assert str(new["id"]) not in dashboard_ids(beth)
