"""The read endpoints and their record shapes."""

from __future__ import annotations

import httpx

from connectwise_sandbox.state import SandboxState


async def test_company_info_for_the_known_company(cw: httpx.AsyncClient) -> None:
    response = await cw.get("/login/companyinfo/SYNTASKIO")
    assert response.status_code == 200
    info = response.json()
    assert info["CompanyID"] == "syntaskio"
    assert info["Codebase"] == "v2025_1/"
    assert info["VersionCode"] == "v2025.1"
    assert info["VersionNumber"].startswith("v4.6.")
    assert info["IsCloud"] is False
    assert info["SiteUrl"] == "sandbox.test"
    assert info["CompanyName"]


async def test_company_info_for_an_unknown_company_is_json_null(cw: httpx.AsyncClient) -> None:
    response = await cw.get("/login/companyinfo/nosuchco")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.text == "null"


async def test_system_info(cw: httpx.AsyncClient, api: str, atech: dict[str, str]) -> None:
    info = (await cw.get(f"{api}/system/info", headers=atech)).json()
    assert info["version"].startswith("v2025.1.")
    assert info["isCloud"] is False
    assert info["serverTimeZone"]


async def test_my_member_and_its_info(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    me = (await cw.get(f"{api}/system/myMembers", headers=atech)).json()
    assert me["identifier"] == "atech"
    assert (me["firstName"], me["lastName"]) == ("Alex", "Tech")
    assert me["inactiveFlag"] is False
    info = (await cw.get(f"{api}/system/myMembers/info", headers=atech)).json()
    assert info["id"] == me["id"]
    assert info["fullName"] == "Alex Tech"


async def test_members_list_get_and_missing(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    members = (await cw.get(f"{api}/system/members", headers=atech)).json()
    assert len(members) == 13  # 12 technicians + the API member, seeded last
    assert members[-1]["identifier"] == "syntaskio-api"
    assert members[-1]["licenseClass"] == "A"
    for member in members:
        assert {"id", "identifier", "firstName", "lastName", "officeEmail", "inactiveFlag"} <= set(
            member
        )
    inactive = await cw.get(
        f"{api}/system/members", params={"conditions": "inactiveFlag = true"}, headers=atech
    )
    assert [m["identifier"] for m in inactive.json()] == ["lmartin"]
    one = (await cw.get(f"{api}/system/members/{members[1]['id']}", headers=atech)).json()
    assert one["identifier"] == "bjones"
    missing = await cw.get(f"{api}/system/members/999999", headers=atech)
    assert missing.status_code == 404
    assert missing.json()["code"] == "NotFound"


async def test_boards_have_open_and_closed_statuses(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    boards = (await cw.get(f"{api}/service/boards", headers=atech)).json()
    names = [board["name"] for board in boards]
    assert {"Service Desk", "Network Operations", "Projects"} <= set(names)
    for board in boards:
        statuses = (
            await cw.get(f"{api}/service/boards/{board['id']}/statuses", headers=atech)
        ).json()
        assert all(status["board"]["id"] == board["id"] for status in statuses)
        assert any(status["closedStatus"] for status in statuses)
        assert any(not status["closedStatus"] for status in statuses)
    desk = boards[names.index("Service Desk")]
    statuses = await cw.get(
        f"{api}/service/boards/{desk['id']}/statuses",
        params={"conditions": "closedStatus = true"},
        headers=atech,
    )
    assert {s["name"] for s in statuses.json()} == {"Completed", "Closed"}
    in_progress = [
        s
        for s in (await cw.get(f"{api}/service/boards/{desk['id']}/statuses", headers=atech)).json()
        if s["name"] == "In Progress"
    ]
    assert in_progress
    assert in_progress[0]["closedStatus"] is False
    missing = await cw.get(f"{api}/service/boards/999/statuses", headers=atech)
    assert missing.status_code == 404


async def test_priorities_use_the_real_shape(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    priorities = (
        await cw.get(f"{api}/service/priorities", params={"orderBy": "sortOrder"}, headers=atech)
    ).json()
    assert priorities[0]["name"] == "Priority 1 - Emergency Response"
    assert priorities[0]["level"] == "Urgent"
    assert [p["sortOrder"] for p in priorities] == [1, 2, 3, 4, 5]
    assert sum(p["defaultFlag"] for p in priorities) == 1
    assert all(p["color"].startswith("#") for p in priorities)


async def test_companies(cw: httpx.AsyncClient, api: str, atech: dict[str, str]) -> None:
    companies = (
        await cw.get(f"{api}/company/companies", params={"pageSize": 100}, headers=atech)
    ).json()
    assert len(companies) >= 20
    assert "AcmeCorp" in {c["identifier"] for c in companies}
    count = (await cw.get(f"{api}/company/companies/count", headers=atech)).json()
    assert count == {"count": len(companies)}


async def test_ticket_shape(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    ticket = (await cw.get(f"{api}/service/tickets/1001", headers=atech)).json()
    assert ticket["id"] == 1001
    assert ticket["recordType"] == "ServiceTicket"
    for reference in ("board", "status", "priority", "company"):
        assert isinstance(ticket[reference]["id"], int)
        assert ticket[reference]["name"]
    assert ticket["owner"]["identifier"] == "atech"
    members = {m["identifier"] for m in cw_state.store.members}
    assert set(ticket["resources"].split(", ")) <= members
    assert set(ticket["_info"]) >= {"lastUpdated", "dateEntered", "enteredBy", "updatedBy"}
    assert ticket["_info"]["lastUpdated"].endswith("Z")
    # Like the real API: nulls are left out, and the description is write-only.
    assert "initialDescription" not in ticket
    assert all(value is not None for value in ticket.values())
    statuses = {s["id"]: s for s in cw_state.store.statuses}
    for stored in cw_state.store.tickets():
        assert stored["closedFlag"] is statuses[stored["status"]["id"]]["closedStatus"]


async def test_the_description_is_the_first_note(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    ticket = (await cw.get(f"{api}/service/tickets/1002", headers=atech)).json()
    notes = (await cw.get(f"{api}/service/tickets/1002/notes", headers=atech)).json()
    assert len(notes) == 1
    assert notes[0]["ticketId"] == 1002
    assert notes[0]["detailDescriptionFlag"] is True
    assert notes[0]["text"].startswith(ticket["summary"])


async def test_missing_ticket_and_malformed_id(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    missing = await cw.get(f"{api}/service/tickets/5", headers=atech)
    assert missing.status_code == 404
    assert missing.json() == {"code": "NotFound", "message": "Ticket ID 5 not found"}
    malformed = await cw.get(f"{api}/service/tickets/abc", headers=atech)
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "InvalidObject"
    unknown_route = await cw.get(f"{api}/service/nothing-here", headers=atech)
    assert unknown_route.status_code == 404
    assert unknown_route.json()["code"] == "NotFound"


async def test_legacy_codebase_path_answers_too(
    cw: httpx.AsyncClient, atech: dict[str, str]
) -> None:
    response = await cw.get("/v4_6_release/apis/3.0/service/tickets/count", headers=atech)
    assert response.json() == {"count": 300}


async def test_responses_carry_the_api_version_header(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    response = await cw.get(f"{api}/system/info", headers=atech)
    assert response.headers["api-current-version"] == "2025.1"
