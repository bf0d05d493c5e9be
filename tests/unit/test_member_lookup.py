"""auth-service's member lookups for mapping technicians (`ConnectWiseAccounts`), against
`httpx.MockTransport`: the conditions they send, chunking, and which answers count."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from syntaskio_auth.accounts import EMAILS_PER_QUERY, ConnectWiseAccounts, Site
from syntaskio_common.connectwise import ApiKeyCredentials
from syntaskio_common.egress import SitePolicy

SITE = Site(
    "cw.example", "https://cw.example", "acme", "v2025_1/", "https://cw.example/v2025_1/apis/3.0/"
)
KEYS = ApiKeyCredentials("acme", "pub", "priv")


def member(identifier: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": hash(identifier) % 1000,
        "identifier": identifier,
        "inactiveFlag": False,
        **fields,
    }


def accounts(answer: list[dict[str, Any]], asked: list[httpx.Request]) -> ConnectWiseAccounts:
    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(request)
        return httpx.Response(200, json=answer)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return ConnectWiseAccounts(http, SitePolicy(frozenset()), "client-id")


async def test_members_are_found_by_office_or_primary_email_ignoring_case() -> None:
    asked: list[httpx.Request] = []
    answer = [
        member("atech", officeEmail="Alex.Tech@MSP.example"),
        member("bjones", officeEmail="beth@msp.example", primaryEmail="beth.jones@msp.example"),
        member("twin1", officeEmail="shared@msp.example"),
        member("twin2", primaryEmail="SHARED@msp.example"),
        member("gone", officeEmail="gone@msp.example", inactiveFlag=True),
        # Not an exact match: ConnectWise would not send it, and it would not count.
        member("near", officeEmail="alex.tech@msp.example.evil"),
    ]
    found = await accounts(answer, asked).members_by_email(
        SITE,
        KEYS,
        [
            "alex.tech@msp.example",
            "Beth.Jones@msp.example",
            "shared@msp.example",
            "gone@msp.example",
        ],
    )
    assert {email: [m["identifier"] for m in ms] for email, ms in found.items()} == {
        "alex.tech@msp.example": ["atech"],
        "beth.jones@msp.example": ["bjones"],
        "shared@msp.example": ["twin1", "twin2"],
    }
    [request] = asked
    assert request.url.path == "/v2025_1/apis/3.0/system/members"
    conditions = request.url.params["conditions"]
    assert conditions == (
        '(officeEmail in ("alex.tech@msp.example", "beth.jones@msp.example", '
        '"gone@msp.example", "shared@msp.example") or primaryEmail in ('
        '"alex.tech@msp.example", "beth.jones@msp.example", "gone@msp.example", '
        '"shared@msp.example")) and inactiveFlag = false'
    )
    assert "primaryEmail" in request.url.params["fields"].split(",")


async def test_many_emails_are_asked_in_chunks() -> None:
    asked: list[httpx.Request] = []
    emails = [f"tech{n}@msp.example" for n in range(EMAILS_PER_QUERY * 2 + 1)]
    await accounts([], asked).members_by_email(SITE, KEYS, emails)
    assert len(asked) == 3
    assert all(len(r.url.params["conditions"]) < 4000 for r in asked)


@pytest.mark.parametrize("hostile", ['x" or identifier != "', "a\\", 'a") or (1=1'])
async def test_an_email_never_changes_the_conditions_structure(hostile: str) -> None:
    asked: list[httpx.Request] = []
    await accounts([], asked).members_by_email(SITE, KEYS, [hostile])
    conditions = asked[0].url.params["conditions"]
    escaped = json.dumps(hostile.casefold())  # the same escapes: backslash and quote
    assert conditions == (
        f"(officeEmail in ({escaped}) or primaryEmail in ({escaped})) and inactiveFlag = false"
    )


async def test_a_member_is_looked_up_by_identifier() -> None:
    asked: list[httpx.Request] = []
    found = await accounts([member("atech")], asked).member_by_identifier(SITE, KEYS, "ATech")
    assert found is not None
    assert found["identifier"] == "atech"
    assert asked[0].url.params["conditions"] == 'identifier = "ATech"'
    assert await accounts([], []).member_by_identifier(SITE, KEYS, "nobody") is None
