"""Notifications, end to end: a ticket assigned in ConnectWise (the sandbox) after the
technician's dashboard synced is told to them once, a customer's reply on it too, their
first sync's work is not, and they mark them read. (What others may see of them:
tests/e2e/test_cross_tenant.py; the rules: tests/unit/test_notification_rules.py.)"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from e2e_helpers import connect, dashboard_tasks, eventually, sandbox, signed_in

from syntaskio_devstack.stack import EmbeddedStack

MEMBER = "dpatel"


def notifications(client: httpx.Client) -> dict[str, Any]:
    listed = client.get("/api/v1/notifications")
    assert listed.status_code == 200, listed.text
    found: dict[str, Any] = listed.json()
    return found


def test_an_assignment_and_a_customer_reply_are_told_once(system: EmbeddedStack) -> None:
    tenant = f"notify-{uuid.uuid4().hex[:6]}"
    with signed_in(system, f"divya-{uuid.uuid4().hex[:6]}", tenant) as client:

        def told(kind: str) -> list[dict[str, Any]]:
            return [n for n in notifications(client)["items"] if n["kind"] == kind]

        def unread() -> int:
            return sum(not n["read"] for n in told("assigned") + told("customer_reply"))

        assert connect(client, system, MEMBER).status_code == 201
        assert eventually(lambda: dashboard_tasks(client))
        # The first sync over: a ticket made while it runs is part of it, not news.
        assert eventually(
            lambda: [
                i
                for i in client.get("/api/v1/integrations").json()
                if ((i.get("sync") or {}).get("last_job") or {}).get("status") == "succeeded"
            ]
        )
        # What changes from the next second on is news (ConnectWise's times are whole
        # seconds, and the notifier's baseline is when the feed first carried her work).
        time.sleep(1.5)
        # The first sync's work is hers already: nothing to tell (her SLA targets coming
        # due may be, from the seed's times).
        assert told("assigned") == []

        summary = f"Label printer jammed {uuid.uuid4().hex[:6]}"
        made = sandbox(system, "POST", "/tickets", json={"summary": summary, "owner": MEMBER})
        number = made.json()["id"]
        task = eventually(
            lambda: next((t for t in dashboard_tasks(client) if t["title"] == summary), None)
        )

        [assigned] = eventually(lambda: told("assigned"))
        assert assigned["task_id"] == task["id"]
        assert assigned["title"] == f"Assigned to you: #{number} {summary}"
        assert assigned["read"] is False

        sandbox(system, "POST", f"/tickets/{number}/customer-reply", json={"text": "Still jammed"})
        [reply] = eventually(lambda: told("customer_reply"))
        assert reply["task_id"] == task["id"]
        assert unread() == 2
        assert len(told("assigned") + told("customer_reply")) == 2  # each once

        refused = client.post("/api/v1/notifications/read", json={})
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        read = client.post("/api/v1/notifications/read", json={"ids": [assigned["id"]]})
        assert read.status_code == 204
        assert unread() == 1
        assert client.post("/api/v1/notifications/read", json={"all": True}).status_code == 204
        listed = notifications(client)
        assert listed["unread"] == 0
        assert {n["read"] for n in listed["items"]} == {True}
