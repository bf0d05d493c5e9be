"""The sandbox admin API: live ticket changes (seen by the real API), reset and stats."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from connectwise_sandbox.state import SandboxState


async def get_ticket(
    cw: httpx.AsyncClient, api: str, headers: dict[str, str], ticket_id: int
) -> httpx.Response:
    return await cw.get(f"{api}/service/tickets/{ticket_id}", headers=headers)


async def test_create_then_read_through_the_api(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    body = {
        "summary": "VPN drops every hour for remote staff",
        "owner": "atech",
        "resources": "atech, bjones",
        "board": "Network Operations",
        "status": "In Progress",
        "priority": "Priority 2 - Quick Response",
        "company": "AcmeCorp",
        "requiredDate": "2026-07-01T17:00:00Z",
        "description": "Started after the firewall update.",
    }
    created = await cw.post("/_sandbox/tickets", json=body)
    assert created.status_code == 201
    ticket = created.json()
    assert ticket["id"] == 1301  # after the 300 seeded tickets
    read = (await get_ticket(cw, api, atech, ticket["id"])).json()
    assert read == ticket
    assert read["summary"] == body["summary"]
    assert read["owner"]["identifier"] == "atech"
    assert read["resources"] == "atech, bjones"
    assert read["board"]["name"] == "Network Operations"
    assert read["status"]["name"] == "In Progress"
    assert read["priority"]["name"] == "Priority 2 - Quick Response"
    assert read["company"]["identifier"] == "AcmeCorp"
    assert read["requiredDate"] == "2026-07-01T17:00:00Z"
    assert read["closedFlag"] is False
    assert read["_info"]["dateEntered"] == read["_info"]["lastUpdated"]
    notes = (await cw.get(f"{api}/service/tickets/1301/notes", headers=atech)).json()
    assert notes[0]["text"] == body["description"]
    count = (await cw.get(f"{api}/service/tickets/count", headers=atech)).json()
    assert count == {"count": 301}


async def test_a_minimal_ticket_gets_sensible_defaults(cw: httpx.AsyncClient) -> None:
    ticket = (await cw.post("/_sandbox/tickets", json={"summary": "Toner low"})).json()
    assert ticket["board"]["name"] == "Service Desk"
    assert ticket["status"]["name"] == "New"
    assert ticket["priority"]["name"] == "Priority 3 - Normal Response"
    assert "owner" not in ticket
    assert "resources" not in ticket
    assert "requiredDate" not in ticket


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({}, 422),
        ({"summary": ""}, 422),
        ({"summary": "x" * 101}, 422),
        ({"summary": "x", "owner": "nobody"}, 400),
        ({"summary": "x", "board": "No Such Board"}, 400),
        ({"summary": "x", "status": "Monitoring"}, 400),  # a Network Operations status
        ({"summary": "x", "company": "NoSuchCo"}, 400),
        ({"summary": "x", "colour": "red"}, 422),
    ],
)
async def test_bad_admin_input_is_refused_and_changes_nothing(
    cw: httpx.AsyncClient, cw_state: SandboxState, body: dict[str, Any], status: int
) -> None:
    response = await cw.post("/_sandbox/tickets", json=body)
    assert response.status_code == status
    assert len(cw_state.store.tickets()) == 300


async def test_update_changes_only_what_was_sent(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    before = (await get_ticket(cw, api, atech, 1002)).json()
    patched = await cw.patch(
        "/_sandbox/tickets/1002", json={"summary": "Renamed", "owner": None, "resources": []}
    )
    assert patched.status_code == 200
    after = (await get_ticket(cw, api, atech, 1002)).json()
    assert after["summary"] == "Renamed"
    assert "owner" not in after
    assert "resources" not in after
    for unchanged in ("board", "status", "priority", "company", "contactName"):
        assert after[unchanged] == before[unchanged]
    assert after["_info"]["dateEntered"] == before["_info"]["dateEntered"]
    assert after["_info"]["lastUpdated"] > before["_info"]["lastUpdated"]


async def test_moving_board_keeps_a_same_named_status_or_takes_the_default(
    cw: httpx.AsyncClient,
) -> None:
    ticket = (
        await cw.post("/_sandbox/tickets", json={"summary": "x", "status": "In Progress"})
    ).json()
    moved = (await cw.patch(f"/_sandbox/tickets/{ticket['id']}", json={"board": "Projects"})).json()
    assert (moved["board"]["name"], moved["status"]["name"]) == ("Projects", "In Progress")
    moved = (
        await cw.patch(f"/_sandbox/tickets/{ticket['id']}", json={"board": "Security Operations"})
    ).json()
    assert moved["status"]["name"] == "New"


async def test_close_sets_the_boards_closed_status(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    closed = await cw.post("/_sandbox/tickets/1001/close")
    assert closed.status_code == 200
    ticket = (await get_ticket(cw, api, atech, 1001)).json()
    assert ticket["closedFlag"] is True
    assert ticket["closedDate"] == ticket["_info"]["lastUpdated"]
    board_id = ticket["board"]["id"]
    statuses = (await cw.get(f"{api}/service/boards/{board_id}/statuses", headers=atech)).json()
    closed_names = {s["name"] for s in statuses if s["closedStatus"]}
    assert ticket["status"]["name"] in closed_names
    reopened = (await cw.patch("/_sandbox/tickets/1001", json={"status": "New"})).json()
    assert reopened["closedFlag"] is False
    assert "closedDate" not in reopened


async def test_delete_removes_the_ticket(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    assert (await cw.delete("/_sandbox/tickets/1003")).status_code == 204
    assert (await get_ticket(cw, api, atech, 1003)).status_code == 404
    assert (await cw.delete("/_sandbox/tickets/1003")).status_code == 404
    assert (await cw.patch("/_sandbox/tickets/1003", json={"summary": "x"})).status_code == 404
    assert (await cw.post("/_sandbox/tickets/1003/close")).status_code == 404


async def test_every_change_moves_last_updated_strictly_forward(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    stamps = [(await get_ticket(cw, api, atech, 1004)).json()["_info"]["lastUpdated"]]
    for index in range(5):  # well within one second
        ticket = (
            await cw.patch("/_sandbox/tickets/1004", json={"summary": f"edit {index}"})
        ).json()
        stamps.append(ticket["_info"]["lastUpdated"])
    stamps.append((await cw.post("/_sandbox/tickets/1004/close")).json()["_info"]["lastUpdated"])
    moments = [datetime.fromisoformat(stamp) for stamp in stamps]
    assert all(a < b for a, b in itertools.pairwise(moments))
    # Changes are stamped "now" (bumped past the previous stamp when within one second).
    assert moments[1] >= datetime.now(UTC) - timedelta(seconds=30)


async def test_incremental_sync_by_last_updated_sees_exactly_the_changes(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    watermark = max(t["_info"]["lastUpdated"] for t in cw_state.store.tickets())
    await cw.patch("/_sandbox/tickets/1010", json={"priority": "Priority 1 - Emergency Response"})
    await cw.post("/_sandbox/tickets/1011/close")
    created = (await cw.post("/_sandbox/tickets", json={"summary": "New one"})).json()
    rows = (
        await cw.get(
            f"{api}/service/tickets",
            params={"conditions": f"_info/lastUpdated > [{watermark}]", "fields": "id"},
            headers=atech,
        )
    ).json()
    assert sorted(row["id"] for row in rows) == [1010, 1011, created["id"]]


async def test_reset_regenerates_the_seeded_data(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    original = cw_state.store.tickets()
    await cw.patch("/_sandbox/tickets/1001", json={"summary": "changed"})
    await cw.delete("/_sandbox/tickets/1002")
    await cw.post("/_sandbox/tickets", json={"summary": "extra"})
    response = await cw.post("/_sandbox/reset")
    assert response.json() == {"status": "ok", "seed": 42, "tickets": 300}
    assert cw_state.store.tickets() == original
    resized = await cw.post("/_sandbox/reset", json={"tickets": 50})
    assert resized.json()["tickets"] == 50
    assert (await cw.get(f"{api}/service/tickets/count", headers=atech)).json() == {"count": 50}


async def test_stats_count_api_requests_by_status(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    await cw.get(f"{api}/service/tickets", headers=atech)
    await cw.get(f"{api}/service/tickets/1001", headers=atech)
    await cw.get(f"{api}/service/tickets", headers={})
    await cw.get("/login/companyinfo/syntaskio")
    await cw.get("/_sandbox/health")  # the admin API is not counted
    stats = (await cw.get("/_sandbox/stats")).json()
    assert stats["total"] == 4
    assert stats["by_status"] == {"200": 3, "401": 1}
    assert stats["by_endpoint"][f"GET {api}/service/tickets"] == 2
    assert stats["by_endpoint"][f"GET {api}/service/tickets/{{id}}"] == 1
    assert (await cw.delete("/_sandbox/stats")).status_code == 204
    assert (await cw.get("/_sandbox/stats")).json()["total"] == 0


async def test_config_names_the_api_without_secrets(cw: httpx.AsyncClient) -> None:
    config = (await cw.get("/_sandbox/config")).json()
    assert config["api_prefix"] == "/v2025_1/apis/3.0/"
    assert config["company_id"] == "syntaskio"
    assert "private" not in str(config).lower()


async def test_a_customer_reply_is_their_note_and_flags_the_ticket(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    ticket = next(t for t in cw_state.store.tickets() if "contact" in t)
    before = ticket["_info"]["lastUpdated"]
    assert ticket["customerUpdatedFlag"] is False
    replied = await cw.post(
        f"/_sandbox/tickets/{ticket['id']}/customer-reply", json={"text": "Still broken"}
    )
    assert replied.status_code == 201, replied.text
    read = (await get_ticket(cw, api, atech, ticket["id"])).json()
    assert read["customerUpdatedFlag"] is True
    assert read["_info"]["lastUpdated"] > before
    notes = (await cw.get(f"{api}/service/tickets/{ticket['id']}/notes", headers=atech)).json()
    [note] = [n for n in notes if n["text"] == "Still broken"]
    assert note["contact"] == ticket["contact"]
    assert "member" not in note
    assert (note["customerUpdatedFlag"], note["detailDescriptionFlag"]) == (True, True)
    assert note["createdBy"] == ticket["contactName"]
    missing = await cw.post("/_sandbox/tickets/999999/customer-reply", json={"text": "Hello"})
    assert missing.status_code == 404
    empty = await cw.post(f"/_sandbox/tickets/{ticket['id']}/customer-reply", json={"text": ""})
    assert empty.status_code == 422
