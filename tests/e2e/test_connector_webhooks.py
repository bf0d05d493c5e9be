"""ConnectWise callbacks in the running system: registered once per connection, real
signed deliveries from the sandbox trigger a fetch, forged and unsigned ones are
refused and counted, and a disconnect removes the callbacks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_helpers import (
    EventStream,
    assigned_open_ticket_ids,
    connect,
    connector,
    dashboard_ids,
    eventually,
    next_job,
    sandbox,
    sandbox_keys,
    signed_in,
    sync_now,
)
from prometheus_client.parser import text_string_to_metric_families
from pymongo import MongoClient

from syntaskio_devstack.stack import EmbeddedStack

MEMBER = "ewong"  # no other test uses Emily's tickets


@pytest.fixture(scope="module")
def emily(system: EmbeddedStack) -> Iterator[tuple[httpx.Client, str]]:
    sandbox(system, "POST", "/tickets", json={"summary": "Laptop dock flickers", "owner": MEMBER})
    with signed_in(system, f"emily-{uuid.uuid4().hex[:6]}@acme-msp.example", "acme") as client:
        assert connect(client, system, MEMBER).status_code == 201
        [integration] = client.get("/api/v1/integrations").json()
        yield client, integration["id"]


def callbacks_of(system: EmbeddedStack, integration_id: str) -> list[dict[str, Any]]:
    listed = sandbox(system, "GET", "/callbacks").json()["callbacks"]
    return [c for c in listed if c["url"].endswith(f"/webhooks/connectwise/{integration_id}")]


def webhook_status(system: EmbeddedStack, integration_id: str) -> dict[str, Any]:
    response = connector(
        system, "GET", f"/integrations/{integration_id}/sync-status", params={"tenant_id": "acme"}
    )
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["webhooks"]
    return found


def listening_and_synced(
    system: EmbeddedStack, client: httpx.Client, integration_id: str
) -> set[str]:
    """Once the callbacks are registered and the dashboard shows every assigned open
    ticket: their ids."""
    assert eventually(lambda: len(callbacks_of(system, integration_id)) == 4)
    expected = assigned_open_ticket_ids(system, MEMBER)
    assert eventually(lambda: dashboard_ids(client) == expected)
    return expected


def deliver(
    system: EmbeddedStack, integration_id: str, body: bytes, signature: str | None
) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signature is not None:
        headers["x-content-signature"] = signature
    return httpx.post(
        f"{system.url('connector')}/webhooks/connectwise/{integration_id}",
        content=body,
        headers=headers,
    )


def sign(body: bytes, signing_key: str) -> str:
    key = hashlib.sha256(signing_key.encode()).digest()
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def test_callbacks_are_registered_once_per_connection(
    system: EmbeddedStack, emily: tuple[httpx.Client, str]
) -> None:
    _, integration_id = emily
    registered = eventually(lambda: len(callbacks_of(system, integration_id)) == 4)
    assert registered, callbacks_of(system, integration_id)
    callbacks = callbacks_of(system, integration_id)
    assert {c["type"] for c in callbacks} == {"Ticket", "ProjectTicket", "Schedule", "Project"}
    assert {c["owner"] for c in callbacks} == {MEMBER}
    # Later runs find them registered and add none.
    job = next_job(system, integration_id, sync_now(system, integration_id))
    assert job["status"] == "succeeded", job
    assert sorted(c["id"] for c in callbacks_of(system, integration_id)) == sorted(
        c["id"] for c in callbacks
    )
    status = webhook_status(system, integration_id)
    assert status["enabled"]
    assert status["registered"]
    assert status["error"] is None


def test_a_signed_delivery_brings_the_change_to_the_dashboard(
    system: EmbeddedStack, emily: tuple[httpx.Client, str]
) -> None:
    client, integration_id = emily
    expected = listening_and_synced(system, client, integration_id)
    accepted_before = webhook_status(system, integration_id)["accepted"]
    ticket = sorted(expected, key=int)[0]
    title = f"Renamed in ConnectWise {uuid.uuid4().hex[:6]}"
    sandbox(system, "PATCH", f"/tickets/{ticket}", json={"summary": title})

    def delivered() -> bool:
        log = sandbox(system, "GET", "/callbacks/deliveries").json()
        ours = [d for d in log if d["url"].endswith(integration_id) and d["id"] == int(ticket)]
        return any(d["delivered"] for d in ours)

    assert eventually(delivered), sandbox(system, "GET", "/callbacks/deliveries").json()[-5:]
    assert webhook_status(system, integration_id)["accepted"] > accepted_before

    def shown_title() -> str | None:
        items = client.get("/api/v1/tasks", params={"limit": 500}).json()["items"]
        return next((t["title"] for t in items if t["external_id"] == ticket), None)

    assert eventually(lambda: shown_title() == title), shown_title()


def test_an_open_dashboard_stream_shows_the_change_and_resumes_after_a_reconnect(
    system: EmbeddedStack, emily: tuple[httpx.Client, str]
) -> None:
    client, integration_id = emily
    expected = listening_and_synced(system, client, integration_id)
    ticket = sorted(expected, key=int)[1]
    title = f"Changed while watching {uuid.uuid4().hex[:6]}"
    with EventStream(client) as stream:
        assert stream.next("status")["data"] == 200
        opened = stream.next("ready")["id"]
        sandbox(system, "PATCH", f"/tickets/{ticket}", json={"summary": title})
        while (change := stream.next("task.upserted"))["data"]["task"]["external_id"] != ticket:
            pass
    assert change["data"]["task"]["title"] == title
    assert change["data"]["task"]["user_id"] == client.get("/api/v1/me").json()["user_id"]

    # The browser reconnects with the last id it saw: what came after it is sent again.
    with EventStream(client, last_event_id=opened) as resumed:
        replayed = resumed.next("task.upserted", "ready")
        assert replayed["id"] == change["id"]
        assert replayed["data"] == change["data"]
    # An id that is not ours: load everything again.
    with EventStream(client, last_event_id="not-an-id") as lost:
        assert lost.next("reset", "ready")["event"] == "reset"
    # Another user's stream never carries it.
    with (
        signed_in(system, "someone-else@acme-msp.example", "acme-msp") as other,
        EventStream(other, last_event_id=opened) as theirs,
    ):
        assert theirs.next("task.upserted", "ready")["event"] == "ready"


def test_a_ticket_deleted_in_connectwise_leaves_the_dashboard(
    system: EmbeddedStack, emily: tuple[httpx.Client, str]
) -> None:
    """Deletions are invisible to "what changed since": the deletion's callback names
    the ticket, the targeted fetch finds it gone, and the task is tombstoned."""
    client, integration_id = emily
    expected = listening_and_synced(system, client, integration_id)
    deleted = sorted(expected, key=int)[-1]
    kind = "project-tickets" if deleted not in service_ticket_ids(client) else "tickets"
    sandbox(system, "DELETE", f"/{kind}/{deleted}")
    assert eventually(lambda: dashboard_ids(client) == expected - {deleted})


def service_ticket_ids(client: httpx.Client) -> set[str]:
    items = client.get("/api/v1/tasks", params={"limit": 500}).json()["items"]
    return {t["external_id"] for t in items if t["source_type"] == "service_ticket"}


def test_forged_and_unsigned_deliveries_are_refused_and_counted(
    system: EmbeddedStack, emily: tuple[httpx.Client, str]
) -> None:
    _, integration_id = emily
    assert eventually(lambda: len(callbacks_of(system, integration_id)) == 4)
    keys = sandbox_keys(system, MEMBER)
    info = httpx.get(f"{system.url('sandbox')}/login/companyinfo/{keys['company_id']}").json()
    api_base = f"{system.url('sandbox')}/{info['Codebase']}apis/3.0"
    key_id = callbacks_of(system, integration_id)[0]["key_id"]  # Emily's real key

    def delivery(key_url: str) -> bytes:
        body = {
            "Action": "updated",
            "Type": "Ticket",
            "ID": 1,
            "CompanyId": keys["company_id"],
            "MemberId": MEMBER,
            "Entity": None,
            "Metadata": {"key_url": key_url},
        }
        return json.dumps(body).encode()

    before = webhook_status(system, integration_id)["rejected"]
    own_key_url = f"{api_base}/system/callbackKeys/{key_id}"
    forged = deliver(
        system, integration_id, delivery(own_key_url), sign(delivery(own_key_url), "guess")
    )
    assert forged.status_code == 401, forged.text
    unsigned = deliver(system, integration_id, delivery(own_key_url), None)
    assert unsigned.status_code == 401, unsigned.text
    # A key_url elsewhere is refused without fetching it (whatever the signature).
    elsewhere = delivery("http://169.254.169.254/latest/meta-data/key")
    off_host = deliver(system, integration_id, elsewhere, sign(elsewhere, "anything"))
    assert off_host.status_code == 401, off_host.text
    assert "host" in off_host.json()["detail"]
    not_json = deliver(system, integration_id, b"<xml/>", sign(b"<xml/>", "guess"))
    assert not_json.status_code == 400, not_json.text
    not_a_signature = deliver(system, integration_id, delivery(own_key_url), "c2ln")
    assert not_a_signature.status_code == 401, not_a_signature.text
    unknown = deliver(system, "no-such-integration", delivery(own_key_url), sign(b"x", "y"))
    assert unknown.status_code == 404, unknown.text

    # Forgeries that got as far as the signature are counted for the connection; what
    # the request alone refutes (no or no well-formed signature, not a callback) is
    # refused before anything is stored: only the metrics count it.
    rejected = webhook_status(system, integration_id)["rejected"]
    assert rejected.get("forged", 0) - before.get("forged", 0) == 2
    assert rejected.get("unsigned", 0) == before.get("unsigned", 0)
    assert rejected.get("malformed", 0) == before.get("malformed", 0)


def test_an_unsigned_flood_leases_nothing_and_stores_nothing(
    system: EmbeddedStack, emily: tuple[httpx.Client, str]
) -> None:
    """Each refused before any credential lease (whose audit record auth-service keeps
    400 days), database write or ConnectWise request."""
    _, integration_id = emily
    db: MongoClient[dict[str, Any]] = MongoClient(system.mongodb_url)
    audit = db[system.config.database_name]["audit_log"]
    stats = db[system.config.database_name]["webhook_stats"]
    # The receiver's leases are audited as such (syncs go on leasing meanwhile).
    by_receiver = {"integration_id": integration_id, "caller": "connector-connectwise/webhook"}
    leases_before = audit.count_documents(by_receiver)
    stats_before = stats.find_one({"_id": integration_id})
    outcomes_before = delivery_outcomes(system)
    body = json.dumps({"Action": "updated", "Type": "Ticket", "ID": 1}).encode()
    refused = [deliver(system, integration_id, body, None).status_code for _ in range(150)] + [
        deliver(system, integration_id, body, "not-base64!").status_code for _ in range(50)
    ]
    assert set(refused) == {401}
    assert audit.count_documents(by_receiver) == leases_before
    assert stats.find_one({"_id": integration_id}) == stats_before
    assert eventually(
        lambda: (
            delivery_outcomes(system).get("unsigned", 0) - outcomes_before.get("unsigned", 0) == 200
        )
    )
    db.close()


def delivery_outcomes(system: EmbeddedStack) -> dict[str, float]:
    """syntaskio_webhook_deliveries_total by outcome, from the connector's /metrics."""
    scraped = httpx.get(system.metrics_url("connector")).text
    found: dict[str, float] = {}
    for family in text_string_to_metric_families(scraped):
        for sample in family.samples:
            if sample.name == "syntaskio_webhook_deliveries_total":
                found[sample.labels["outcome"]] = sample.value
    return found


def test_disconnecting_removes_the_callbacks(
    system: EmbeddedStack, emily: tuple[httpx.Client, str]
) -> None:
    client, integration_id = emily
    assert eventually(lambda: len(callbacks_of(system, integration_id)) == 4)
    assert client.delete(f"/api/v1/integrations/{integration_id}").status_code == 200
    # A sync that was registering at that moment takes back what it made.
    assert eventually(lambda: callbacks_of(system, integration_id) == [])
