"""API writes used by write-back: JSON Patch on service and project tickets, notes, and
time entries — their effects, their errors, and `lastUpdated` always moving forward."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

import httpx
import pytest

from connectwise_sandbox.state import SandboxState

HeadersFor = Any


def statuses_of(state: SandboxState, board_id: int, *, closed: bool) -> list[dict[str, Any]]:
    return [s for s in state.store.statuses_of(board_id) if s["closedStatus"] is closed]


async def patch(
    cw: httpx.AsyncClient, url: str, headers: dict[str, str], *operations: dict[str, Any]
) -> httpx.Response:
    return await cw.patch(url, json=list(operations), headers=headers)


def replace(path: str, value: Any) -> dict[str, Any]:
    return {"op": "replace", "path": path, "value": value}


async def test_status_change_closes_and_reopens_the_ticket(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    url = f"{api}/service/tickets/1001"
    before = (await cw.get(url, headers=atech)).json()
    assert before["closedFlag"] is False
    closing = statuses_of(cw_state, before["board"]["id"], closed=True)[0]
    response = await patch(cw, url, atech, replace("status/id", closing["id"]))
    assert response.status_code == 200, response.text
    closed = response.json()
    assert closed == (await cw.get(url, headers=atech)).json()
    assert closed["status"]["id"] == closing["id"]
    assert closed["closedFlag"] is True
    assert closed["closedDate"] == closed["_info"]["lastUpdated"]
    assert closed["_info"]["updatedBy"] == "atech"
    assert closed["_info"]["lastUpdated"] > before["_info"]["lastUpdated"]
    opening = statuses_of(cw_state, before["board"]["id"], closed=False)[1]
    reopened = (await patch(cw, url, atech, replace("/status", {"id": opening["id"]}))).json()
    assert reopened["closedFlag"] is False
    assert reopened["status"]["name"] == opening["name"]
    assert "closedDate" not in reopened
    by_name = (await patch(cw, url, atech, replace("status/name", closing["name"]))).json()
    assert by_name["closedFlag"] is True


async def test_one_patch_sets_every_supported_field(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor, cw_state: SandboxState
) -> None:
    bjones = headers_for("bjones")
    url = f"{api}/service/tickets/1002"
    priority = cw_state.store.priorities[0]
    response = await patch(
        cw,
        url,
        bjones,
        replace("summary", "Rebuilt profile; monitoring"),
        replace("priority/id", priority["id"]),
        replace("owner/identifier", "bjones"),
        replace("resources", "bjones, cmiller"),
        replace("requiredDate", "2026-07-01T17:00:00Z"),
    )
    assert response.status_code == 200, response.text
    ticket = response.json()
    assert ticket["summary"] == "Rebuilt profile; monitoring"
    assert ticket["priority"]["id"] == priority["id"]
    assert ticket["owner"]["identifier"] == "bjones"
    assert ticket["resources"] == "bjones, cmiller"
    assert ticket["requiredDate"] == "2026-07-01T17:00:00Z"
    assert ticket["_info"]["updatedBy"] == "bjones"
    again = await patch(
        cw,
        url,
        bjones,
        {"op": "add", "path": "owner", "value": {"id": cw_state.store.members[0]["id"]}},
        replace("priority", {"name": cw_state.store.priorities[4]["name"]}),
        replace("resources", ["atech"]),
    )
    assert again.json()["owner"]["identifier"] == "atech"
    assert again.json()["priority"]["name"] == cw_state.store.priorities[4]["name"]
    assert again.json()["resources"] == "atech"


async def test_remove_and_null_clear_optional_fields(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    url = f"{api}/service/tickets/1001"
    await patch(cw, url, atech, replace("requiredDate", "2026-07-01T00:00:00Z"))
    cleared = (
        await patch(
            cw,
            url,
            atech,
            {"op": "remove", "path": "owner"},
            {"op": "remove", "path": "requiredDate"},
            replace("resources", ""),
        )
    ).json()
    assert "owner" not in cleared
    assert "requiredDate" not in cleared
    assert "resources" not in cleared
    nulled = (await patch(cw, url, atech, replace("owner", {"identifier": "atech"}))).json()
    assert nulled["owner"]["identifier"] == "atech"
    assert "owner" not in (await patch(cw, url, atech, replace("owner", None))).json()


async def test_closed_flag_moves_to_a_closed_or_the_default_status(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    url = f"{api}/service/tickets/1001"
    closed = (await patch(cw, url, atech, replace("closedFlag", True))).json()
    first_closed = min(
        statuses_of(cw_state, closed["board"]["id"], closed=True), key=lambda s: s["sortOrder"]
    )
    assert (closed["closedFlag"], closed["status"]["id"]) == (True, first_closed["id"])
    reopened = (await patch(cw, url, atech, replace("closedFlag", False))).json()
    assert reopened["closedFlag"] is False
    assert reopened["status"]["sort"] == 0
    contradiction = await patch(
        cw, url, atech, replace("closedFlag", True), replace("status/id", reopened["status"]["id"])
    )
    assert contradiction.status_code == 400
    assert contradiction.json()["errors"][0]["field"] == "closedFlag"


async def test_project_tickets_take_patches_too(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    ticket = cw_state.store.project_tickets()[0]
    url = f"{api}/project/tickets/{ticket['id']}"
    closing = statuses_of(cw_state, ticket["board"]["id"], closed=True)[0]
    phases = cw_state.store.phases_of(ticket["project"]["id"])
    other_phase = next(p for p in phases if p["id"] != ticket["phase"]["id"])
    response = await patch(
        cw, url, atech, replace("status/id", closing["id"]), replace("phase/id", other_phase["id"])
    )
    assert response.status_code == 200, response.text
    changed = response.json()
    assert changed["closedFlag"] is True
    assert changed["phase"] == {"id": other_phase["id"], "name": other_phase["description"]}
    assert changed["wbsCode"].startswith(other_phase["wbsCode"] + ".")
    assert "recordType" not in changed  # ProjectTicket documents none
    assert changed["project"] == ticket["project"]
    # A service board status, a phase of another project, and the board are refused.
    service_status = cw_state.store.statuses_of(1)[0]
    foreign_phase = next(
        p for p in cw_state.store.phases if p["projectId"] != ticket["project"]["id"]
    )
    for operation, field in (
        (replace("status/id", service_status["id"]), "status/id"),
        (replace("phase/id", foreign_phase["id"]), "phase/id"),
        (replace("board/id", 1), "board/id"),
    ):
        refused = await patch(cw, url, atech, operation)
        assert refused.status_code == 400, operation
        assert refused.json()["errors"][0]["field"] == field
    # A service ticket id is not a project ticket, and vice versa.
    assert (
        await patch(cw, f"{api}/project/tickets/1001", atech, replace("summary", "x"))
    ).status_code == 404
    wrong_kind = await patch(
        cw, f"{api}/service/tickets/{ticket['id']}", atech, replace("summary", "x")
    )
    assert wrong_kind.status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ([{"op": "replace", "path": "status/id"}], "status/id", "Required"),
        ({"op": "replace", "path": "summary", "value": "x"}, "", "InvalidField"),
        ([], "", "InvalidField"),
        # PatchOperation documents op, path and value only: RFC 6902's `from` is not one.
        ([{"op": "move", "from": "summary", "path": "summary"}], "summary", "InvalidField"),
        ([{"op": "move", "path": "summary"}], "summary", "NotSupported"),
        ([{"op": "test", "path": "summary", "value": "x"}], "summary", "NotSupported"),
        ([replace("colour", "red")], "colour", "InvalidField"),
        ([replace("summary", "")], "summary", "InvalidField"),
        ([replace("summary", "x" * 101)], "summary", "InvalidField"),
        ([replace("status/id", "abc")], "status/id", "InvalidField"),
        ([replace("status/id", 9999)], "status/id", "NotFound"),
        ([replace("status", "Closed")], "status", "InvalidField"),
        ([replace("priority/id", 99)], "priority/id", "NotFound"),
        ([replace("owner/identifier", "nobody")], "owner/identifier", "NotFound"),
        ([replace("owner/identifier", "lmartin")], "owner/identifier", "InvalidField"),
        ([replace("resources", "atech, nobody")], "resources", "NotFound"),
        ([replace("requiredDate", "next tuesday")], "requiredDate", "InvalidField"),
        ([replace("closedFlag", "yes")], "closedFlag", "InvalidField"),
        ([{"op": "remove", "path": "summary"}], "summary", "InvalidField"),
        ([{"path": "summary", "value": "x"}], "summary", "Required"),
        ([{"op": "frob", "path": "summary", "value": "x"}], "summary", "InvalidField"),
        ([replace("contactName", "x")], "contactName", "NotSupported"),  # documented
        ([replace("id", 5)], "id", "ReadOnly"),
        ([replace("closedDate", "2026-01-01T00:00:00Z")], "closedDate", "ReadOnly"),
        ([replace("_info/lastUpdated", "2026-01-01T00:00:00Z")], "_info/lastUpdated", "ReadOnly"),
        ([replace("status/sort", 1)], "status/sort", "ReadOnly"),
        (["replace summary"], "[0]", "InvalidField"),
        ([replace("phase/id", 1)], "phase/id", "InvalidField"),  # not on a service ticket
    ],
)
async def test_bad_patches_are_invalid_object_and_change_nothing(
    cw: httpx.AsyncClient,
    api: str,
    atech: dict[str, str],
    body: Any,
    field: str,
    code: str,
) -> None:
    url = f"{api}/service/tickets/1001"
    before = (await cw.get(url, headers=atech)).json()
    response = await cw.patch(url, json=body, headers=atech)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["code"] == "InvalidObject"
    assert error["message"] == "ticket object is invalid"
    assert {"code": code, "field": field, "resource": "ticket"}.items() <= error["errors"][
        0
    ].items()
    assert error["errors"][0]["message"]
    assert (await cw.get(url, headers=atech)).json() == before


async def test_every_bad_operation_is_reported_at_once(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    response = await patch(
        cw,
        f"{api}/service/tickets/1001",
        atech,
        replace("summary", "fine"),
        replace("priority/id", 99),
        replace("nope", 1),
    )
    assert [e["field"] for e in response.json()["errors"]] == ["priority/id", "nope"]


async def test_patch_needs_auth_and_an_existing_ticket(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    unauthenticated = await cw.patch(f"{api}/service/tickets/1001", json=[replace("summary", "x")])
    assert unauthenticated.status_code == 401
    missing = await patch(cw, f"{api}/service/tickets/5", atech, replace("summary", "x"))
    assert missing.status_code == 404
    assert missing.json() == {"code": "NotFound", "message": "Ticket ID 5 not found"}


async def test_reassigning_through_the_admin_api_and_the_api(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    admin = await cw.patch("/_sandbox/tickets/1001", json={"owner": "bjones", "resources": []})
    assert admin.json()["owner"]["identifier"] == "bjones"
    mine = await cw.get(
        f"{api}/service/tickets/count",
        params={"conditions": 'id = 1001 and owner/identifier = "atech"'},
        headers=atech,
    )
    assert mine.json() == {"count": 0}
    back = await patch(
        cw, f"{api}/service/tickets/1001", atech, replace("owner/identifier", "atech")
    )
    assert back.json()["owner"]["identifier"] == "atech"


async def test_notes_are_added_by_the_caller_and_listed_after_the_description(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor
) -> None:
    bjones = headers_for("bjones")
    url = f"{api}/service/tickets/1002"
    before = (await cw.get(url, headers=bjones)).json()
    added = await cw.post(
        f"{url}/notes",
        json={"text": "Called the user; rebooting tonight.", "internalAnalysisFlag": True},
        headers=bjones,
    )
    assert added.status_code == 201, added.text
    note = added.json()
    assert note["ticketId"] == 1002
    assert note["text"] == "Called the user; rebooting tonight."
    assert (note["detailDescriptionFlag"], note["internalAnalysisFlag"]) == (False, True)
    assert note["resolutionFlag"] is False
    assert note["member"]["identifier"] == "bjones"
    assert note["createdBy"] == "bjones"
    assert note["dateCreated"].endswith("Z")
    notes = (await cw.get(f"{url}/notes", headers=bjones)).json()
    assert [n["id"] for n in notes] == [1002, note["id"]]
    assert notes[1] == note
    assert (await cw.get(f"{url}/notes/count", headers=bjones)).json() == {"count": 2}
    internal = await cw.get(
        f"{url}/notes", params={"conditions": "internalAnalysisFlag = true"}, headers=bjones
    )
    assert [n["id"] for n in internal.json()] == [note["id"]]
    after = (await cw.get(url, headers=bjones)).json()
    assert after["_info"]["lastUpdated"] > before["_info"]["lastUpdated"]
    assert after["_info"]["updatedBy"] == "bjones"
    assert {k: v for k, v in after.items() if k != "_info"} == {
        k: v for k, v in before.items() if k != "_info"
    }


async def test_project_ticket_notes(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    ticket_id = cw_state.store.project_tickets()[3]["id"]
    url = f"{api}/project/tickets/{ticket_id}/notes"
    response = await cw.post(url, json={"text": "Done", "resolutionFlag": True}, headers=atech)
    assert response.status_code == 201
    notes = (await cw.get(url, headers=atech)).json()
    assert notes[0]["detailDescriptionFlag"] is True  # the seeded description
    assert notes[-1]["resolutionFlag"] is True
    wrong_kind = await cw.post(
        f"{api}/service/tickets/{ticket_id}/notes",
        json={"text": "x", "resolutionFlag": True},
        headers=atech,
    )
    assert wrong_kind.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"text": "no flag"}, "detailDescriptionFlag"),
        ({"detailDescriptionFlag": True}, "text"),
        ({"text": "", "detailDescriptionFlag": True}, "text"),
    ],
)
async def test_bad_notes_are_invalid_object(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], body: dict[str, Any], field: str
) -> None:
    response = await cw.post(f"{api}/service/tickets/1001/notes", json=body, headers=atech)
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidObject"
    assert response.json()["errors"][0]["field"] == field
    assert len((await cw.get(f"{api}/service/tickets/1001/notes", headers=atech)).json()) == 1


async def test_note_on_a_missing_ticket_is_404(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    response = await cw.post(
        f"{api}/service/tickets/5/notes",
        json={"text": "x", "detailDescriptionFlag": True},
        headers=atech,
    )
    assert response.status_code == 404


async def test_time_entries_are_logged_and_add_to_the_ticket(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    url = f"{api}/service/tickets/1001"
    before = (await cw.get(url, headers=atech)).json()
    by_hours = await cw.post(
        f"{api}/time/entries",
        json={
            "chargeToType": "ServiceTicket",
            "chargeToId": 1001,
            "timeStart": "2026-06-01T09:00:00Z",
            "actualHours": 1.5,
            "notes": "Replaced the toner",
        },
        headers=atech,
    )
    assert by_hours.status_code == 201, by_hours.text
    entry = by_hours.json()
    assert entry["chargeToId"] == 1001
    assert entry["chargeToType"] == "ServiceTicket"
    assert entry["member"]["identifier"] == "atech"
    assert (entry["timeStart"], entry["timeEnd"]) == (
        "2026-06-01T09:00:00Z",
        "2026-06-01T10:30:00Z",
    )
    assert entry["actualHours"] == 1.5
    assert entry["billableOption"] == "Billable"  # the default work type's
    assert entry["workType"]["name"] == "Remote Support"
    assert entry["notes"] == "Replaced the toner"
    assert entry["company"] == before["company"]
    assert entry["ticket"] == {"id": 1001, "summary": before["summary"]}
    by_end = await cw.post(
        f"{api}/time/entries",
        json={
            "chargeToType": "ServiceTicket",
            "chargeToId": 1001,
            "member": {"identifier": "bjones"},
            "timeStart": "2026-06-01T13:00:00",
            "timeEnd": "2026-06-01T13:45:00Z",
            "billableOption": "DoNotBill",
        },
        headers=atech,
    )
    assert by_end.status_code == 201, by_end.text
    assert by_end.json()["actualHours"] == 0.75
    assert by_end.json()["member"]["identifier"] == "bjones"
    assert by_end.json()["enteredBy"] == "atech"
    after = (await cw.get(url, headers=atech)).json()
    assert after["actualHours"] == round(before["actualHours"] + 2.25, 2)
    assert after["_info"]["lastUpdated"] > before["_info"]["lastUpdated"]

    listed = (await cw.get(f"{api}/time/entries", headers=atech)).json()
    assert [e["id"] for e in listed] == [entry["id"], by_end.json()["id"]]
    filtered = await cw.get(
        f"{api}/time/entries",
        params={"conditions": 'member/identifier = "bjones" and chargeToId = 1001'},
        headers=atech,
    )
    assert [e["id"] for e in filtered.json()] == [by_end.json()["id"]]
    count = await cw.get(
        f"{api}/time/entries/count", params={"conditions": "actualHours > 1"}, headers=atech
    )
    assert count.json() == {"count": 1}
    one = await cw.get(f"{api}/time/entries/{entry['id']}", headers=atech)
    assert one.json() == entry
    assert (await cw.get(f"{api}/time/entries/999", headers=atech)).status_code == 404
    assert cw_state.store.time_entries()[0] == entry


async def test_work_types_are_listed_and_an_entry_takes_its_types_billing(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    types = (await cw.get(f"{api}/time/workTypes", headers=atech)).json()
    by_name = {t["name"]: t for t in types}
    assert by_name["Travel"]["billTime"] == "NoCharge"
    assert by_name["Legacy Hourly"]["inactiveFlag"] is True
    active = await cw.get(
        f"{api}/time/workTypes", params={"conditions": "inactiveFlag = false"}, headers=atech
    )
    assert "Legacy Hourly" not in {t["name"] for t in active.json()}
    travel = await cw.post(
        f"{api}/time/entries",
        json={
            "chargeToType": "ServiceTicket",
            "chargeToId": 1001,
            "timeStart": "2026-06-01T09:00:00Z",
            "actualHours": 0.5,
            "workType": {"id": by_name["Travel"]["id"]},
        },
        headers=atech,
    )
    assert travel.status_code == 201, travel.text
    assert travel.json()["workType"]["id"] == by_name["Travel"]["id"]
    assert travel.json()["billableOption"] == "NoCharge"
    billed = await cw.post(
        f"{api}/time/entries",
        json={
            "chargeToType": "ServiceTicket",
            "chargeToId": 1001,
            "timeStart": "2026-06-01T11:00:00Z",
            "actualHours": 0.5,
            "workType": {"id": by_name["Travel"]["id"]},
            "billableOption": "Billable",
        },
        headers=atech,
    )
    assert billed.json()["billableOption"] == "Billable"  # said so: the type's is a default


async def test_time_on_a_project_ticket_names_its_project_and_phase(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    ticket = next(t for t in cw_state.store.project_tickets() if not t["closedFlag"])
    response = await cw.post(
        f"{api}/time/entries",
        json={
            "chargeToType": "ProjectTicket",
            "chargeToId": ticket["id"],
            "timeStart": "2026-06-01T09:00:00Z",
            "actualHours": 2,
        },
        headers=atech,
    )
    assert response.status_code == 201, response.text
    assert response.json()["project"] == ticket["project"]
    assert response.json()["phase"] == ticket["phase"]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"chargeToType": "ProjectTicket"}, "chargeToId"),  # 1001 is a service ticket
        ({"chargeToId": 5}, "chargeToId"),
        ({"chargeToType": "Activity"}, "chargeToType"),
        ({"actualHours": None}, "timeEnd"),
        ({"actualHours": None, "timeEnd": "2026-06-01T08:00:00Z"}, "timeEnd"),
        ({"actualHours": 0}, "actualHours"),
        ({"actualHours": 30}, "actualHours"),
        ({"member": {"identifier": "nobody"}}, "member"),
        ({"member": {"identifier": "lmartin"}}, "member"),
        ({"timeStart": "yesterday"}, "timeStart"),
        ({"workType": {"id": 99}}, "workType/id"),
        ({"workType": {"id": 5}}, "workType/id"),  # inactive
        ({"billableOption": "Sometimes"}, "billableOption"),
    ],
)
async def test_bad_time_entries_are_invalid_object(
    cw: httpx.AsyncClient,
    api: str,
    atech: dict[str, str],
    cw_state: SandboxState,
    changes: dict[str, Any],
    field: str,
) -> None:
    body: dict[str, Any] = {
        "chargeToType": "ServiceTicket",
        "chargeToId": 1001,
        "timeStart": "2026-06-01T09:00:00Z",
        "actualHours": 1,
    } | changes
    body = {k: v for k, v in body.items() if v is not None}
    response = await cw.post(f"{api}/time/entries", json=body, headers=atech)
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "InvalidObject"
    assert response.json()["errors"][0]["field"] == field
    assert cw_state.store.time_entries() == []


async def test_no_time_on_a_ticket_in_a_closed_status(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    closed = next(t for t in cw_state.store.tickets() if t["closedFlag"])
    response = await cw.post(
        f"{api}/time/entries",
        json={
            "chargeToType": "ServiceTicket",
            "chargeToId": closed["id"],
            "timeStart": "2026-06-01T09:00:00Z",
            "actualHours": 1,
        },
        headers=atech,
    )
    assert response.status_code == 400
    assert "not allowed" in response.json()["errors"][0]["message"]


async def test_every_kind_of_write_moves_last_updated_strictly_forward(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    url = f"{api}/service/tickets/1001"
    stamps = [(await cw.get(url, headers=atech)).json()["_info"]["lastUpdated"]]
    for index in range(3):  # well within one second
        stamps.append(
            (await patch(cw, url, atech, replace("summary", f"edit {index}"))).json()["_info"][
                "lastUpdated"
            ]
        )
        await cw.post(
            f"{url}/notes", json={"text": "n", "detailDescriptionFlag": True}, headers=atech
        )
        stamps.append((await cw.get(url, headers=atech)).json()["_info"]["lastUpdated"])
        await cw.post(
            f"{api}/time/entries",
            json={
                "chargeToType": "ServiceTicket",
                "chargeToId": 1001,
                "timeStart": "2026-06-01T09:00:00Z",
                "actualHours": 0.25,
            },
            headers=atech,
        )
        stamps.append((await cw.get(url, headers=atech)).json()["_info"]["lastUpdated"])
    moments = [datetime.fromisoformat(stamp) for stamp in stamps]
    assert all(a < b for a, b in itertools.pairwise(moments))
