"""Schedule entries: the seeded schedule-only assignments (and the decoys beside them)
through the API, and the admin API that changes entries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from connectwise_sandbox.schedule_seed import holds
from connectwise_sandbox.seed import assignments, generate, schedule_only_ids
from connectwise_sandbox.state import SandboxState

ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)  # the conftest settings' anchor
OPEN_TICKET_ENTRIES = (
    'member/identifier = "{member}" and type/identifier = "S" and doneFlag = false'
)


async def entries(
    cw: httpx.AsyncClient, api: str, headers: dict[str, str], conditions: str | None = None
) -> list[dict[str, Any]]:
    params: dict[str, Any] = {"pageSize": 1000}
    if conditions:
        params["conditions"] = conditions
    response = await cw.get(f"{api}/schedule/entries", params=params, headers=headers)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


async def fetch_ticket(
    cw: httpx.AsyncClient, api: str, headers: dict[str, str], ticket_id: int
) -> dict[str, Any] | None:
    for path in ("service/tickets", "project/tickets"):
        response = await cw.get(f"{api}/{path}/{ticket_id}", headers=headers)
        if response.status_code == 200:
            ticket: dict[str, Any] = response.json()
            return ticket
    return None


async def test_entries_have_the_schedule_shape(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    rows = await entries(cw, api, atech)
    assert len(rows) == len(cw_state.store.schedule_entries()) > 50
    ticket_ids = {t["id"] for t in cw_state.store.tickets()} | {
        t["id"] for t in cw_state.store.project_tickets()
    }
    for row in rows:
        assert row["type"]["identifier"] in ("S", "C")
        assert set(row["member"]) == {"id", "identifier", "name"}
        assert isinstance(row["doneFlag"], bool)
        assert row["dateStart"] < row["dateEnd"]
        assert "lastUpdated" in row["_info"]
        if row["type"]["identifier"] == "S":
            assert row["objectId"] in ticket_ids
    kinds = {row["type"]["identifier"] for row in rows}
    assert kinds == {"S", "C"}
    count = await cw.get(
        f"{api}/schedule/entries/count", params={"conditions": "doneFlag = true"}, headers=atech
    )
    assert count.json() == {"count": sum(1 for row in rows if row["doneFlag"])}
    one = await cw.get(f"{api}/schedule/entries/{rows[5]['id']}", headers=atech)
    assert one.json() == rows[5]
    assert (await cw.get(f"{api}/schedule/entries/999999", headers=atech)).status_code == 404


@pytest.mark.parametrize("member", ["atech", "bjones"])
async def test_schedule_only_assignments_through_the_api(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], member: str
) -> None:
    """What a connector does: open ticket schedules for the member, minus the tickets it
    already has as owner or resource, minus closed tickets."""
    facts = assignments(generate(seed=42, tickets=300, anchor=ANCHOR), member)
    scheduled = await entries(cw, api, atech, OPEN_TICKET_ENTRIES.format(member=member))
    found: set[int] = set()
    closed_seen = 0
    for entry in scheduled:
        ticket = await fetch_ticket(cw, api, atech, entry["objectId"])
        assert ticket is not None
        if ticket["closedFlag"]:
            closed_seen += 1
        elif not holds(ticket, member):
            found.add(ticket["id"])
    assert found == facts.scheduled_only
    assert len(found) >= 6
    assert any(ticket_id >= 200_001 for ticket_id in found)  # a project ticket among them
    assert any(ticket_id < 200_001 for ticket_id in found)
    assert closed_seen >= 1  # an open entry on a closed ticket, which must not count
    assert not found & (facts.service | facts.project)


async def test_done_and_activity_entries_are_decoys(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    facts = assignments(generate(seed=42, tickets=300, anchor=ANCHOR), "atech")
    done = await entries(
        cw, api, atech, 'member/identifier = "atech" and type/identifier = "S" and doneFlag = true'
    )
    activities = await entries(
        cw, api, atech, 'member/identifier = "atech" and type/identifier = "C"'
    )
    open_ids = {t["id"] for t in cw_state.store.tickets() if not t["closedFlag"]}
    open_ids |= {t["id"] for t in cw_state.store.project_tickets() if not t["closedFlag"]}
    done_on_open_others = {e["objectId"] for e in done} & open_ids - facts.open_tickets
    assert len(done_on_open_others) >= 2
    # Activity ids that equal ids of open tickets atech does not hold.
    mistakable = {e["objectId"] for e in activities} & open_ids - facts.open_tickets
    assert len(mistakable) >= 2
    # Counting either kind as an assignment would change the answer.
    every = [*cw_state.store.tickets(), *cw_state.store.project_tickets()]
    as_open = [e | {"doneFlag": False} for e in done]
    assert schedule_only_ids(every, as_open, "atech") - facts.scheduled_only
    as_ticket = [e | {"type": {"identifier": "S"}} for e in activities]
    assert schedule_only_ids(every, as_ticket, "atech") - facts.scheduled_only


async def test_admin_schedule_entry_lifecycle(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    ticket = next(
        t for t in cw_state.store.tickets() if not t["closedFlag"] and not holds(t, "atech")
    )
    before = len(cw_state.store.schedule_entries())
    created = await cw.post(
        "/_sandbox/schedule-entries",
        json={
            "objectId": ticket["id"],
            "member": "atech",
            "dateStart": "2026-06-02T09:00:00Z",
            "dateEnd": "2026-06-02T11:30:00Z",
        },
    )
    assert created.status_code == 201, created.text
    entry = created.json()
    assert entry["id"] == before + 1
    assert entry["type"]["identifier"] == "S"
    assert entry["doneFlag"] is False
    assert entry["hours"] == 2.5
    assert entry["name"] == f"{ticket['company']['name']} / {ticket['summary']}"[:100]
    read = (await cw.get(f"{api}/schedule/entries/{entry['id']}", headers=atech)).json()
    assert read == entry
    every = [*cw_state.store.tickets(), *cw_state.store.project_tickets()]
    entries_now = cw_state.store.schedule_entries()
    assert ticket["id"] in schedule_only_ids(every, entries_now, "atech")

    done = await cw.patch(f"/_sandbox/schedule-entries/{entry['id']}", json={"doneFlag": True})
    assert done.status_code == 200
    assert done.json()["doneFlag"] is True
    assert done.json()["_info"]["lastUpdated"] > entry["_info"]["lastUpdated"]
    entries_now = cw_state.store.schedule_entries()
    assert ticket["id"] not in schedule_only_ids(every, entries_now, "atech")
    moved = await cw.patch(f"/_sandbox/schedule-entries/{entry['id']}", json={"member": "bjones"})
    assert moved.json()["member"]["identifier"] == "bjones"

    assert (await cw.delete(f"/_sandbox/schedule-entries/{entry['id']}")).status_code == 204
    missing = await cw.get(f"{api}/schedule/entries/{entry['id']}", headers=atech)
    assert missing.status_code == 404
    assert (await cw.delete(f"/_sandbox/schedule-entries/{entry['id']}")).status_code == 404
    patch_missing = await cw.patch(f"/_sandbox/schedule-entries/{entry['id']}", json={})
    assert patch_missing.status_code == 404


async def test_an_activity_may_have_any_object_id(cw: httpx.AsyncClient) -> None:
    created = await cw.post(
        "/_sandbox/schedule-entries", json={"objectId": 424242, "member": "atech", "type": "C"}
    )
    assert created.status_code == 201
    assert created.json()["type"]["identifier"] == "C"
    assert created.json()["name"] == "Activity"


@pytest.mark.parametrize(
    "body",
    [
        {"objectId": 999_999, "member": "atech"},  # no such ticket for an "S" entry
        {"objectId": 1001, "member": "nobody"},
        {"objectId": 1001, "member": "atech", "type": "X"},
        {
            "objectId": 1001,
            "member": "atech",
            "dateStart": "2026-06-02T10:00:00Z",
            "dateEnd": "2026-06-02T09:00:00Z",
        },
    ],
)
async def test_bad_schedule_entries_are_refused(
    cw: httpx.AsyncClient, cw_state: SandboxState, body: dict[str, Any]
) -> None:
    before = len(cw_state.store.schedule_entries())
    response = await cw.post("/_sandbox/schedule-entries", json=body)
    assert response.status_code == 400, response.text
    assert len(cw_state.store.schedule_entries()) == before


@pytest.mark.parametrize("body", [{"member": "atech"}, {"objectId": 0, "member": "atech"}, {}])
async def test_malformed_schedule_entries_are_422(
    cw: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    assert (await cw.post("/_sandbox/schedule-entries", json=body)).status_code == 422
