"""List endpoints: paging with Link headers, forward-only paging, fields, orderBy, count,
search, and the 400s for bad parameters."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from connectwise_sandbox.state import SandboxState

Params = dict[str, str | int]
LINK = re.compile(r'<([^>]+)>;\s*rel="(\w+)"')


def links(response: httpx.Response) -> dict[str, str]:
    return {rel: url for url, rel in LINK.findall(response.headers.get("Link", ""))}


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


async def test_walking_next_links_returns_every_ticket_once(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    url: str | None = f"{api}/service/tickets"
    params: dict[str, Any] | None = {"pageSize": 40, "orderBy": "id asc", "fields": "id"}
    seen: list[int] = []
    pages = 0
    while url is not None:
        response = await cw.get(url, params=params, headers=atech)
        assert response.status_code == 200
        seen += [row["id"] for row in response.json()]
        pages += 1
        url, params = links(response).get("next"), None
    expected = [ticket["id"] for ticket in cw_state.store.tickets()]
    assert seen == expected
    assert len(set(seen)) == 300
    assert pages == 8  # ceil(300 / 40)


async def test_link_header_relations_and_absolute_urls_that_keep_parameters(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    params: Params = {"conditions": "closedFlag = false", "pageSize": 25, "orderBy": "id desc"}
    first = await cw.get(f"{api}/service/tickets", params=params | {"page": 1}, headers=atech)
    first_links = links(first)
    assert set(first_links) == {"next", "last"}
    next_url = first_links["next"]
    assert next_url.startswith(f"http://sandbox.test{api}/service/tickets?")
    assert query_of(next_url) == {
        "conditions": ["closedFlag = false"],
        "pageSize": ["25"],
        "orderBy": ["id desc"],
        "page": ["2"],
    }
    count = (await cw.get(f"{api}/service/tickets/count", params=params, headers=atech)).json()
    last_page = -(-count["count"] // 25)
    assert query_of(first_links["last"])["page"] == [str(last_page)]

    middle = await cw.get(f"{api}/service/tickets", params=params | {"page": 2}, headers=atech)
    assert {rel: query_of(url)["page"][0] for rel, url in links(middle).items()} == {
        "first": "1",
        "prev": "1",
        "next": "3",
        "last": str(last_page),
    }
    final = await cw.get(
        f"{api}/service/tickets", params=params | {"page": last_page}, headers=atech
    )
    assert set(links(final)) == {"first", "prev"}
    assert 0 < len(final.json()) <= 25


async def test_a_single_page_has_no_link_header(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    response = await cw.get(f"{api}/service/priorities", headers=atech)
    assert len(response.json()) == 5
    assert "Link" not in response.headers


async def test_default_page_size_is_25_in_id_order(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    rows = (await cw.get(f"{api}/service/tickets", headers=atech)).json()
    assert len(rows) == 25
    assert [row["id"] for row in rows] == sorted(row["id"] for row in rows)


async def test_forward_only_paging_walks_by_id(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    headers = atech | {"pagination-type": "forward-only"}
    url: str | None = f"{api}/service/tickets"
    params: dict[str, Any] | None = {
        "pageSize": 30,
        "conditions": "closedFlag = false",
        "fields": "id,closedFlag",
    }
    seen: list[int] = []
    while url is not None:
        response = await cw.get(url, params=params, headers=headers)
        assert response.status_code == 200
        rows = response.json()
        seen += [row["id"] for row in rows]
        next_link = links(response).get("next")
        if next_link is not None:
            assert set(links(response)) == {"next"}
            assert query_of(next_link)["pageId"] == [str(rows[-1]["id"])]
        url, params = next_link, None
    expected = [t["id"] for t in cw_state.store.tickets() if not t["closedFlag"]]
    assert seen == expected


async def test_forward_only_starts_after_page_id(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    headers = atech | {"pagination-type": "forward-only"}
    params: Params = {"pageId": 1250, "pageSize": 5}
    response = await cw.get(f"{api}/service/tickets", params=params, headers=headers)
    assert [row["id"] for row in response.json()] == [1251, 1252, 1253, 1254, 1255]


@pytest.mark.parametrize(
    ("params", "forward_only", "resource"),
    [
        ({"orderBy": "id desc"}, True, "orderBy"),  # forward-only is in id order
        ({"page": 2}, True, "page"),
        ({"pageId": 1250}, False, "pageId"),  # pageId belongs to forward-only paging
    ],
)
async def test_paging_modes_do_not_mix(
    cw: httpx.AsyncClient,
    api: str,
    atech: dict[str, str],
    params: dict[str, Any],
    forward_only: bool,
    resource: str,
) -> None:
    headers = atech | ({"pagination-type": "forward-only"} if forward_only else {})
    response = await cw.get(f"{api}/service/tickets", params=params, headers=headers)
    assert response.status_code == 400
    assert response.json()["errors"][0]["resource"] == resource


async def test_fields_returns_only_those_fields_keeping_nesting(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    params: Params = {"fields": "id,summary,_info/lastUpdated,board/name", "pageSize": 5}
    rows = (await cw.get(f"{api}/service/tickets", params=params, headers=atech)).json()
    for row in rows:
        assert set(row) == {"id", "summary", "_info", "board"}
        assert set(row["_info"]) == {"lastUpdated"}
        assert set(row["board"]) == {"name"}
    one = await cw.get(f"{api}/service/tickets/1001", params={"fields": "id,owner"}, headers=atech)
    assert one.json() == {
        "id": 1001,
        "owner": {"id": 101, "identifier": "atech", "name": "Alex Tech"},
    }


async def test_order_by_several_keys(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    params: Params = {
        "orderBy": "priority/sort asc, _info/lastUpdated desc",
        "pageSize": 1000,
        "fields": "id,priority/sort,_info/lastUpdated",
    }
    rows = (await cw.get(f"{api}/service/tickets", params=params, headers=atech)).json()
    keys = [(row["priority"]["sort"], row["_info"]["lastUpdated"]) for row in rows]
    expected = sorted(keys, key=lambda key: key[1], reverse=True)
    expected.sort(key=lambda key: key[0])
    assert keys == expected
    assert len(rows) == 300

    by_summary = await cw.get(
        f"{api}/service/tickets",
        params={"orderBy": "summary desc", "pageSize": 1000, "fields": "summary"},
        headers=atech,
    )
    summaries = [row["summary"].lower() for row in by_summary.json()]
    assert summaries == sorted(summaries, reverse=True)


async def test_null_values_sort_first_ascending(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    params: Params = {"orderBy": "requiredDate asc", "pageSize": 1000, "fields": "id,requiredDate"}
    rows = (await cw.get(f"{api}/service/tickets", params=params, headers=atech)).json()
    dates = [row.get("requiredDate") for row in rows]
    nulls = dates.count(None)
    assert 0 < nulls < len(dates)
    assert dates[:nulls] == [None] * nulls
    assert dates[nulls:] == sorted(d for d in dates if d is not None)


async def test_parameter_names_are_case_insensitive(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    params: Params = {"PAGESIZE": 3, "orderby": "id desc", "Conditions": "id < 1010"}
    rows = (await cw.get(f"{api}/service/tickets", params=params, headers=atech)).json()
    assert [row["id"] for row in rows] == [1009, 1008, 1007]


async def test_conditions_filter_the_list_and_the_count(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    conditions = 'closedFlag = false and (owner/identifier = "atech" or resources contains "atech")'
    rows = (
        await cw.get(
            f"{api}/service/tickets",
            params={"conditions": conditions, "pageSize": 1000},
            headers=atech,
        )
    ).json()
    count = await cw.get(
        f"{api}/service/tickets/count", params={"conditions": conditions}, headers=atech
    )
    assert count.json() == {"count": len(rows)}
    assert len(rows) >= 25
    for row in rows:
        assert row["closedFlag"] is False
        assert row.get("owner", {}).get("identifier") == "atech" or "atech" in row["resources"]


async def test_search_takes_a_long_conditions_string_in_the_body(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    wanted = list(range(1001, 1301, 3))
    conditions = " or ".join(f"id = {ticket_id}" for ticket_id in wanted)
    assert len(conditions) > 1000
    response = await cw.post(
        f"{api}/service/tickets/search",
        params={"page": 2, "pageSize": 50},
        json={"conditions": conditions, "orderBy": "id asc"},
        headers=atech,
    )
    assert response.status_code == 200
    assert [row["id"] for row in response.json()] == wanted[50:]
    assert set(links(response)) == {"first", "prev"}


@pytest.mark.parametrize(
    ("params", "resource"),
    [
        ({"pageSize": 1001}, "pageSize"),
        ({"pageSize": 0}, "pageSize"),
        ({"page": 0}, "page"),
        ({"page": "two"}, "page"),
        ({"orderBy": "nosuch asc"}, "orderBy"),
        ({"orderBy": "id sideways"}, "orderBy"),
        ({"fields": "id,nosuch"}, "fields"),
        ({"conditions": "nosuch = 1"}, "conditions"),
        ({"conditions": "id = = 1"}, "conditions"),
        ({"childConditions": "teams/id = 1"}, "childconditions"),
    ],
)
async def test_bad_parameters_are_400_in_connectwise_shape(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], params: dict[str, Any], resource: str
) -> None:
    response = await cw.get(f"{api}/service/tickets", params=params, headers=atech)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "InvalidObject"
    assert body["message"] == f"{resource} object is invalid"
    [item] = body["errors"]
    assert set(item) == {"code", "message", "resource", "field"}
    assert item["resource"] == resource
    assert item["message"]


async def test_page_size_bounds_message_matches_the_real_one(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    response = await cw.get(f"{api}/service/tickets", params={"pageSize": 5000}, headers=atech)
    assert response.json()["errors"][0] == {
        "code": "OutOfRange",
        "message": "The field pageSize must be between 1 and 1000.",
        "resource": "pageSize",
        "field": "pageSize",
    }


async def test_unknown_condition_field_is_named_in_the_error(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    response = await cw.get(
        f"{api}/service/tickets", params={"conditions": 'owner/nick = "x"'}, headers=atech
    )
    item = response.json()["errors"][0]
    assert item["field"] == "owner/nick"
    assert "Unknown field 'owner/nick'" in item["message"]
