"""The sandbox refuses what the documented contract does not allow — undocumented fields
in conditions, orderBy and fields, undocumented query parameters, paging in a search
body, read-only or unknown fields in PATCH and POST bodies, missing required members —
each with ConnectWise's 400 shape, and counts those refusals per caller as contract
violations (business-rule refusals are not counted)."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from connectwise_sandbox.state import SandboxState
from connectwise_sandbox.stats import RECENT_VIOLATIONS

HeadersFor = Any
LINK = re.compile(r'<([^>]+)>;\s*rel="(\w+)"')


def links(response: httpx.Response) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response.headers.get("Link", ""))}


def refused(response: httpx.Response, *, field: str, code: str = "InvalidField") -> dict[str, Any]:
    """The real 400 shape, with an item naming `field`; the item."""
    assert response.status_code == 400, response.text
    body = response.json()
    assert set(body) == {"code", "message", "errors"}
    assert body["code"] == "InvalidObject"
    assert body["message"].endswith(" object is invalid")
    for item in body["errors"]:
        assert set(item) == {"code", "message", "resource", "field"}
        assert item["message"]
    matching = [item for item in body["errors"] if item["field"] == field]
    assert matching, body
    assert matching[0]["code"] == code, body
    found: dict[str, Any] = matching[0]
    return found


async def violations(cw: httpx.AsyncClient) -> dict[str, Any]:
    snapshot: dict[str, Any] = (await cw.get("/_sandbox/stats")).json()
    return snapshot


# --- conditions, orderBy, fields ----------------------------------------------------------


async def test_a_condition_on_an_undocumented_field_is_refused(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    """ProjectPhase has no closedFlag (its status does): ConnectWise answers 400."""
    url = f"{api}/project/projects/1/phases"
    response = await cw.get(url, params={"conditions": "closedFlag = false"}, headers=atech)
    item = refused(response, field="closedFlag", code="InvalidCondition")
    assert item["resource"] == "conditions"
    assert "Unknown field 'closedFlag' for ProjectPhase" in item["message"]
    documented = await cw.get(url, params={"conditions": "status/id in (1, 2)"}, headers=atech)
    assert documented.status_code == 200


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        (
            "service/tickets",
            {"conditions": "status/sort = 1 and board/location = 'x'"},
            "board/location",
        ),
        ("service/tickets", {"orderBy": "board/department"}, "board/department"),
        ("service/tickets", {"fields": "id,project/id"}, "project/id"),  # project tickets only
        ("project/tickets", {"conditions": "recordType = 'ProjectTicket'"}, "recordType"),
        ("project/tickets", {"fields": "severity"}, "severity"),
        ("schedule/entries", {"conditions": "type/name = 'Service'"}, "type/name"),
        ("service/tickets", {"conditions": "_info/nosuch = 'x'"}, "_info/nosuch"),
        ("service/tickets", {"conditions": "owner/_info/x = 'x'"}, "owner/_info/x"),
    ],
)
async def test_only_documented_paths_resolve(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], path: str, params: Any, field: str
) -> None:
    response = await cw.get(f"{api}/{path}", params=params, headers=atech)
    code = "InvalidCondition" if "conditions" in params else "InvalidField"
    refused(response, field=field, code=code)


async def test_documented_paths_resolve_through_references_case_insensitively(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    params = {
        "conditions": 'STATUS/SORT >= 0 and Owner/Identifier = "atech" and '
        "_INFO/lastupdated > [2020-01-01T00:00:00Z]",
        "orderBy": "priority/sort desc",
        "fields": "id,status/sort,_info/dateEntered",
    }
    response = await cw.get(f"{api}/service/tickets", params=params, headers=atech)
    assert response.status_code == 200, response.text
    assert response.json()
    assert set(response.json()[0]) == {"id", "status", "_info"}


# --- query parameters -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "params"),
    [
        ("GET", "service/tickets", {"limit": 5}),
        ("GET", "service/tickets/count", {"search": "x"}),
        ("GET", "service/tickets/1001", {"expand": "notes"}),
        ("GET", "project/projects/1/phases", {"closed": "false"}),
        ("POST", "service/tickets/search", {"conditions": "id = 1001"}),
        ("POST", "project/tickets/search", {"fields": "id"}),
        ("POST", "service/tickets/search", {"pageId": 1}),
        ("POST", "service/tickets/1001/notes", {"fields": "id"}),
        ("PATCH", "service/tickets/1001", {"fields": "id"}),
    ],
)
async def test_undocumented_query_parameters_are_refused(
    cw: httpx.AsyncClient,
    api: str,
    atech: dict[str, str],
    method: str,
    path: str,
    params: dict[str, Any],
) -> None:
    [name] = params
    response = await cw.request(method, f"{api}/{path}", params=params, headers=atech, json={})
    item = refused(response, field=name)
    assert item["resource"] == name


async def test_client_id_may_come_as_a_query_parameter_too(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    params = {"clientId": atech["clientId"], "pageSize": 2}
    assert (await cw.get(f"{api}/service/tickets", params=params, headers=atech)).status_code == 200
    search = await cw.post(
        f"{api}/service/tickets/search", params=params, json={"conditions": "id > 1"}, headers=atech
    )
    assert search.status_code == 200


# --- search ---------------------------------------------------------------------------------


@pytest.mark.parametrize("member", ["page", "pageSize", "pageId", "fields", "PAGESIZE", "nosuch"])
async def test_a_search_body_is_filter_values_only(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], member: str
) -> None:
    body = {"conditions": "id > 1", member: "5"}
    response = await cw.post(f"{api}/service/tickets/search", json=body, headers=atech)
    item = refused(response, field=member)
    assert "FilterValues" in item["message"]


async def test_filter_values_member_names_are_case_insensitive(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    body = {"CONDITIONS": "id < 1004", "orderby": "id desc", "childConditions": None}
    response = await cw.post(f"{api}/service/tickets/search", json=body, headers=atech)
    assert response.status_code == 200, response.text
    assert [row["id"] for row in response.json()] == [1003, 1002, 1001]


@pytest.mark.parametrize(
    ("body", "headers", "field"),
    [
        ([{"conditions": "id > 1"}], {}, "filterValues"),
        ({"conditions": 5}, {}, "conditions"),
        ({"conditions": "id > 1"}, {"pagination-type": "forward-only"}, "pagination-type"),
    ],
)
async def test_other_search_shapes_are_refused(
    cw: httpx.AsyncClient,
    api: str,
    atech: dict[str, str],
    body: Any,
    headers: dict[str, str],
    field: str,
) -> None:
    response = await cw.post(f"{api}/project/tickets/search", json=body, headers=atech | headers)
    refused(response, field=field)


async def test_search_pages_in_the_query_string_and_links_to_the_next_page(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    """A long conditions string goes in the body; paging in the query string; the next
    link is a URL the same body is POSTed to. The walk ends when no next link comes —
    never because a page was short."""
    wanted = list(range(1001, 1301, 7))
    body = {"conditions": " or ".join(f"id = {n}" for n in wanted), "orderBy": "id desc"}
    url: str | None = f"{api}/service/tickets/search"
    params: dict[str, Any] | None = {"pageSize": 10}
    seen: list[int] = []
    pages = 0
    while url is not None:
        response = await cw.post(url, params=params, json=body, headers=atech)
        assert response.status_code == 200, response.text
        seen += [row["id"] for row in response.json()]
        pages += 1
        rels = links(response)
        if "next" in rels:
            assert rels["next"].startswith(f"http://sandbox.test{api}/service/tickets/search?")
            assert "conditions" not in rels["next"]
        url, params = rels.get("next"), None
    assert seen == sorted(wanted, reverse=True)
    assert pages == -(-len(wanted) // 10) > 1
    last = await cw.post(
        f"{api}/service/tickets/search",
        params={"pageSize": 10, "page": pages},
        json=body,
        headers=atech,
    )
    assert set(links(last)) == {"first", "prev"}


# --- PATCH ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "path", "code"),
    [
        ("service", "id", "ReadOnly"),
        ("service", "/_info/lastUpdated", "ReadOnly"),
        ("service", "_info", "ReadOnly"),
        ("service", "closedDate", "ReadOnly"),
        ("service", "closedBy", "ReadOnly"),
        ("service", "recordType", "ReadOnly"),
        ("service", "actualHours", "ReadOnly"),
        ("service", "dateResolved", "ReadOnly"),
        ("service", "priority/level", "ReadOnly"),
        ("service", "owner/_info/lastUpdated", "ReadOnly"),
        ("service", "phase/id", "InvalidField"),  # a ProjectTicket field
        ("service", "nosuch", "InvalidField"),
        ("project", "closedDate", "ReadOnly"),
        ("project", "recordType", "InvalidField"),  # ProjectTicket documents none
        ("project", "severity", "InvalidField"),
    ],
)
async def test_patching_read_only_or_unknown_fields_is_refused(
    cw: httpx.AsyncClient,
    api: str,
    atech: dict[str, str],
    cw_state: SandboxState,
    kind: str,
    path: str,
    code: str,
) -> None:
    ticket_id = 1001 if kind == "service" else cw_state.store.project_tickets()[0]["id"]
    url = f"{api}/{kind}/tickets/{ticket_id}"
    before = (await cw.get(url, headers=atech)).json()
    operations = [
        {"op": "replace", "path": "summary", "value": "fine"},
        {"op": "replace", "path": path, "value": 1},
    ]
    response = await cw.patch(url, json=operations, headers=atech)
    item = refused(response, field=path.lstrip("/"), code=code)
    assert item["resource"] == "ticket"
    assert (await cw.get(url, headers=atech)).json() == before


# --- POST bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field", "code"),
    [
        ("service/tickets/1001/notes", {"text": "x", "id": 5}, "id", "ReadOnly"),
        ("service/tickets/1001/notes", {"text": "x", "_info": {}}, "_info", "ReadOnly"),
        (
            "service/tickets/1001/notes",
            {"text": "x", "dateCreated": "x"},
            "dateCreated",
            "ReadOnly",
        ),
        ("service/tickets/1001/notes", {"text": "x", "colour": "red"}, "colour", "InvalidField"),
        (
            "service/tickets/1001/notes",
            {"text": "x", "contact": {"id": 1}},
            "contact",
            "NotSupported",
        ),
        ("service/tickets/1001/notes", ["text"], "", "InvalidField"),
        (
            "time/entries",
            {"chargeToType": "ServiceTicket", "chargeToId": 1001},
            "timeStart",
            "Required",
        ),
        ("time/entries", {"timeStart": "2026-06-01T09:00:00Z", "id": 1}, "id", "ReadOnly"),
        (
            "time/entries",
            {"timeStart": "2026-06-01T09:00:00Z", "enteredBy": "x"},
            "enteredBy",
            "ReadOnly",
        ),
        (
            "time/entries",
            {"timeStart": "2026-06-01T09:00:00Z", "member": {"identifier": "atech", "nick": "a"}},
            "member/nick",
            "InvalidField",
        ),
        (
            "time/entries",
            {"timeStart": "2026-06-01T09:00:00Z", "member": {"identifier": "atech", "_info": {}}},
            "member/_info",
            "ReadOnly",
        ),
        (
            "time/entries",
            {"timeStart": "2026-06-01T09:00:00Z", "activity": {"id": 1}},
            "activity",
            "NotSupported",
        ),
        (
            "system/callbacks",
            {"url": "https://h.example", "objectId": 1, "type": "Ticket"},
            "level",
            "Required",
        ),
        (
            "system/callbacks",
            {
                "url": "https://h.example",
                "objectId": 1,
                "type": "Ticket",
                "level": "All",
                "memberId": 101,
            },
            "memberId",
            "ReadOnly",
        ),
        (
            "system/callbacks",
            {
                "url": "https://h.example",
                "objectId": 1,
                "type": "Ticket",
                "level": "All",
                "isSoapCallbackFlag": True,
            },
            "isSoapCallbackFlag",
            "NotSupported",
        ),
    ],
)
async def test_post_bodies_are_held_against_their_model(
    cw: httpx.AsyncClient,
    api: str,
    atech: dict[str, str],
    path: str,
    body: Any,
    field: str,
    code: str,
) -> None:
    response = await cw.post(f"{api}/{path}", json=body, headers=atech)
    refused(response, field=field, code=code)


async def test_every_missing_required_callback_member_is_named(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    response = await cw.post(f"{api}/system/callbacks", json={"description": "x"}, headers=atech)
    assert response.status_code == 400
    items = response.json()["errors"]
    assert [(i["field"], i["code"]) for i in items] == [
        ("level", "Required"),
        ("objectId", "Required"),
        ("type", "Required"),
        ("url", "Required"),
    ]


async def test_member_names_in_bodies_bind_case_insensitively(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    note = {"TEXT": "Loud", "DetailDescriptionFlag": True, "ticketid": 1001}
    added = await cw.post(f"{api}/service/tickets/1001/notes", json=note, headers=atech)
    assert added.status_code == 201, added.text
    assert added.json()["text"] == "Loud"
    other = await cw.post(
        f"{api}/service/tickets/1001/notes",
        json={"text": "x", "detailDescriptionFlag": True, "ticketId": 1002},
        headers=atech,
    )
    refused(other, field="ticketId")


# --- the contract-violation counter -----------------------------------------------------------


async def test_contract_violations_are_counted_per_caller_with_the_last_ones_kept(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor, cw_state: SandboxState
) -> None:
    atech, bjones = headers_for("atech"), headers_for("bjones")
    await cw.get(
        f"{api}/project/projects/1/phases", params={"conditions": "closedFlag=false"}, headers=atech
    )
    await cw.post(f"{api}/service/tickets/search", json={"pageSize": 5}, headers=atech)
    await cw.patch(
        f"{api}/service/tickets/1001",
        json=[{"op": "replace", "path": "id", "value": 9}],
        headers=atech,
    )
    await cw.get(f"{api}/service/tickets", params={"limit": 1}, headers=bjones)
    # Not contract violations: business rules, sandbox limits, unknown records, success.
    closed = next(t for t in cw_state.store.tickets() if t["closedFlag"])
    entry = {
        "chargeToType": "ServiceTicket",
        "chargeToId": closed["id"],
        "timeStart": "2026-06-01T09:00:00Z",
        "actualHours": 1,
    }
    assert (await cw.post(f"{api}/time/entries", json=entry, headers=atech)).status_code == 400
    unsupported = await cw.get(
        f"{api}/service/tickets", params={"childConditions": "x=1"}, headers=atech
    )
    assert unsupported.status_code == 400
    bad_status = [{"op": "replace", "path": "status/id", "value": 99999}]
    assert (
        await cw.patch(f"{api}/service/tickets/1001", json=bad_status, headers=atech)
    ).status_code == 400
    assert (await cw.get(f"{api}/service/tickets/5", headers=atech)).status_code == 404
    assert (await cw.get(f"{api}/service/tickets", headers=atech)).status_code == 200

    snapshot = await violations(cw)
    assert snapshot["contract_violations"] == 4
    key = next(k for k in snapshot["by_caller"] if snapshot["by_caller"][k]["member"] == "atech")
    mine = snapshot["by_caller"][key]
    assert mine["contract_violations"] == 3
    recent = mine["recent_contract_violations"]
    assert [(v["method"], v["path"]) for v in recent] == [
        ("GET", f"{api}/project/projects/1/phases"),
        ("POST", f"{api}/service/tickets/search"),
        ("PATCH", f"{api}/service/tickets/1001"),
    ]
    assert "closedFlag" in recent[0]["message"]
    assert "pageSize" in recent[1]["message"]
    assert "read-only" in recent[2]["message"]
    other = next(v for v in snapshot["by_caller"].values() if v["member"] == "bjones")
    assert other["contract_violations"] == 1
    assert [v["caller"] for v in snapshot["recent_contract_violations"]] == [key] * 3 + [
        k for k, v in snapshot["by_caller"].items() if v["member"] == "bjones"
    ]
    assert set(snapshot["recent_contract_violations"][0]) == {"method", "path", "caller", "message"}

    for index in range(RECENT_VIOLATIONS + 5):
        await cw.get(f"{api}/service/tickets", params={f"bogus{index}": 1}, headers=atech)
    mine = (await violations(cw))["by_caller"][key]
    assert mine["contract_violations"] == 3 + RECENT_VIOLATIONS + 5
    assert len(mine["recent_contract_violations"]) == RECENT_VIOLATIONS
    assert "bogus24" in mine["recent_contract_violations"][-1]["message"]

    assert (await cw.delete("/_sandbox/stats")).status_code == 204
    cleared = await violations(cw)
    assert (cleared["contract_violations"], cleared["recent_contract_violations"]) == (0, [])
    await cw.get(f"{api}/service/tickets", params={"bogus": 1}, headers=atech)
    assert (await violations(cw))["contract_violations"] == 1
    await cw.post("/_sandbox/reset")
    assert (await violations(cw))["contract_violations"] == 0


async def test_a_well_formed_session_causes_no_violations(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    await cw.get(
        f"{api}/service/tickets",
        params={"conditions": "closedFlag = false", "orderBy": "id asc", "page": 1, "pageSize": 5},
        headers=atech,
    )
    await cw.get(
        f"{api}/project/tickets",
        params={"pageSize": 5},
        headers=atech | {"pagination-type": "forward-only"},
    )
    await cw.post(
        f"{api}/project/tickets/search",
        params={"page": 1, "pageSize": 5},
        json={"conditions": "id > 1"},
        headers=atech,
    )
    await cw.get(
        f"{api}/project/phaseStatuses", params={"conditions": "closedFlag = true"}, headers=atech
    )
    await cw.patch(
        f"{api}/service/tickets/1001",
        json=[{"op": "replace", "path": "/summary", "value": "ok"}],
        headers=atech,
    )
    await cw.post(
        f"{api}/service/tickets/1001/notes",
        json={"text": "ok", "detailDescriptionFlag": True},
        headers=atech,
    )
    snapshot = await violations(cw)
    assert snapshot["contract_violations"] == 0
    assert set(snapshot["by_status"]) <= {"200", "201"}
