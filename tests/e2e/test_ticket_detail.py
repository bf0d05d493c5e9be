"""A ticket's detail in the running system: read from the sandbox through the connector
on first opening (one round-trip set), served from the cache after, fresh again once a
write-back names the ticket, and nobody else's to read."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_helpers import connect, connectwise, dashboard_tasks, eventually, signed_in

from syntaskio_devstack.stack import EmbeddedStack

MEMBER = "iokafor"
TENANT = "detail-msp"
# What one cold detail read asks ConnectWise (the board's statuses are already cached
# by the sync). Syncs never read a ticket by id or its notes; they do list time and
# schedule entries, so those are counted as at least one here (`bench/ticket_detail.py`
# itemises a read on a quiet stack).
DETAIL_ONLY = ("GET /service/tickets/{id}", "GET /service/tickets/{id}/notes")
SHARED = ("GET /time/entries", "GET /schedule/entries")


@pytest.fixture(scope="module")
def ifeoma(system: EmbeddedStack) -> Iterator[tuple[httpx.Client, dict[str, Any]]]:
    with signed_in(system, f"ifeoma-{uuid.uuid4().hex[:6]}", TENANT) as client:
        assert connect(client, system, MEMBER).status_code == 201
        tasks = eventually(
            lambda: [t for t in dashboard_tasks(client) if t["source_type"] == "service_ticket"]
        )
        assert tasks, "no service ticket synced"
        yield client, min(tasks, key=lambda t: int(t["external_id"]))


def requests_by_endpoint(system: EmbeddedStack) -> dict[str, int]:
    stats = httpx.get(f"{system.url('sandbox')}/_sandbox/stats", timeout=10).json()
    found: dict[str, int] = stats["by_endpoint"]
    return found


def asked(before: dict[str, int], after: dict[str, int], endpoint: str) -> int:
    """Requests to `endpoint` (method and path after the API root) between the two."""
    method, path = endpoint.split(" ")
    return sum(
        n - before.get(seen, 0)
        for seen, n in after.items()
        if seen.startswith(f"{method} ") and seen.endswith(f"apis/3.0{path}")
    )


def test_a_ticket_detail_is_read_once_then_cached(
    system: EmbeddedStack, ifeoma: tuple[httpx.Client, dict[str, Any]]
) -> None:
    client, task = ifeoma
    ticket_id = int(task["external_id"])
    ticket = connectwise(system, MEMBER, f"service/tickets/{ticket_id}")
    notes = connectwise(system, MEMBER, f"service/tickets/{ticket_id}/notes")
    statuses = connectwise(system, MEMBER, f"service/boards/{ticket['board']['id']}/statuses")

    before = requests_by_endpoint(system)
    response = client.get(f"/api/v1/tasks/{task['id']}/detail")
    assert response.status_code == 200, response.text
    detail = response.json()
    cold = requests_by_endpoint(system)
    for endpoint in DETAIL_ONLY:
        assert asked(before, cold, endpoint) == 1, endpoint
    for endpoint in SHARED:
        assert asked(before, cold, endpoint) >= 1, endpoint

    # What ConnectWise holds, as the technician reads it.
    assert detail["summary"] == ticket["summary"]
    assert detail["description"] == notes[0]["text"]
    assert [n["id"] for n in detail["notes"]] == [n["id"] for n in notes[1:]]
    assert detail["contact"]["name"] == ticket["contactName"]
    assert detail["contact"]["phone"] == ticket["contactPhoneNumber"]
    assert detail["contact"]["email"] == ticket["contactEmailAddress"]
    assert "recordType=ContactFV" in detail["contact"]["url"]
    assert detail["status"]["id"] == ticket["status"]["id"]
    assert {s["id"] for s in detail["statuses"]} == {s["id"] for s in statuses}
    assert {s["id"] for s in detail["statuses"] if s["closed"]} == {
        s["id"] for s in statuses if s["closedStatus"]
    }
    assert detail["url"] == task["url"]

    # Opened again: from the cache, no ConnectWise request.
    again = client.get(f"/api/v1/tasks/{task['id']}/detail")
    assert again.status_code == 200
    assert again.json() == detail
    warm = requests_by_endpoint(system)
    for endpoint in DETAIL_ONLY:
        assert asked(cold, warm, endpoint) == 0, endpoint


def test_a_write_back_note_shows_in_the_detail(
    system: EmbeddedStack, ifeoma: tuple[httpx.Client, dict[str, Any]]
) -> None:
    client, task = ifeoma
    assert client.get(f"/api/v1/tasks/{task['id']}/detail").status_code == 200  # cached
    text = f"Checked the switch config ({uuid.uuid4().hex[:6]})"
    accepted = client.post(
        f"/api/v1/tasks/{task['id']}/notes",
        json={"text": text, "internal": True},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert accepted.status_code == 202, accepted.text
    status_url = accepted.json()["status_url"]
    assert eventually(lambda: client.get(status_url).json()["status"] == "succeeded")

    def note_shown() -> dict[str, Any] | None:
        detail = client.get(f"/api/v1/tasks/{task['id']}/detail").json()
        return next((n for n in detail["notes"] if n["text"] == text), None)

    note = eventually(note_shown, timeout=10)
    assert note is not None
    assert note["internal"]
    assert not note["discussion"]
    assert note["author"] == "Ifeoma Okafor"


def test_another_users_task_has_no_detail_for_them(
    system: EmbeddedStack, ifeoma: tuple[httpx.Client, dict[str, Any]]
) -> None:
    _, task = ifeoma
    with signed_in(system, "mallory", TENANT) as mallory:
        answer = mallory.get(f"/api/v1/tasks/{task['id']}/detail")
    assert answer.status_code == 404
    assert answer.headers["content-type"] == "application/problem+json"
    with signed_in(system, f"ifeoma-{uuid.uuid4().hex[:6]}", "other-msp") as stranger:
        assert stranger.get(f"/api/v1/tasks/{task['id']}/detail").status_code == 404
