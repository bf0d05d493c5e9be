"""The API member and the impersonation keys it mints with
`POST /system/members/{identifier}/tokens`."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectwise_sandbox import DEV_CLIENT_ID
from connectwise_sandbox.state import SandboxState

HeadersFor = Callable[[str], dict[str, str]]
API_MEMBER = "syntaskio-api"


def minted_headers(public_key: str, private_key: str) -> dict[str, str]:
    token = base64.b64encode(f"syntaskio+{public_key}:{private_key}".encode()).decode()
    return {"Authorization": f"Basic {token}", "clientId": DEV_CLIENT_ID}


def parse_expiration(text: str) -> datetime:
    assert text.endswith("Z")
    return datetime.fromisoformat(text)


async def mint(
    cw: httpx.AsyncClient,
    api: str,
    headers: dict[str, str],
    identifier: str = "atech",
    body: object = None,
) -> httpx.Response:
    return await cw.post(f"{api}/system/members/{identifier}/tokens", headers=headers, json=body)


async def test_the_api_member_is_seeded_last_with_keys_and_no_tickets(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor, cw_state: SandboxState
) -> None:
    keys = (await cw.get("/_sandbox/api-keys")).json()
    assert keys[-1]["member_identifier"] == API_MEMBER
    assert keys[-1]["license_class"] == "A"
    assert {k["license_class"] for k in keys[:-1]} == {"F"}
    me = (await cw.get(f"{api}/system/myMembers", headers=headers_for(API_MEMBER))).json()
    assert (me["firstName"], me["lastName"], me["licenseClass"]) == (
        "Syntaskio",
        "Integration",
        "A",
    )
    assert me["inactiveFlag"] is False
    for ticket in cw_state.store.tickets():
        assert ticket.get("owner", {}).get("identifier") != API_MEMBER
        assert API_MEMBER not in ticket.get("resources", "")


async def test_the_api_member_mints_keys_that_act_as_the_member(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    response = await mint(cw, api, headers_for(API_MEMBER), "bjones")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"publicKey", "privateKey", "expiration"}
    expiration = parse_expiration(body["expiration"])
    assert before + timedelta(seconds=3590) <= expiration <= before + timedelta(seconds=3601)
    headers = minted_headers(body["publicKey"], body["privateKey"])
    me = await cw.get(f"{api}/system/myMembers", headers=headers)
    assert me.status_code == 200
    assert me.json()["identifier"] == "bjones"
    again = (await mint(cw, api, headers_for(API_MEMBER), "bjones")).json()
    assert again["publicKey"] != body["publicKey"]
    counters = (await cw.get("/_sandbox/oauth")).json()
    assert counters["member_tokens_minted"] == 2


async def test_identifiers_are_case_insensitive(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor
) -> None:
    body = (await mint(cw, api, headers_for(API_MEMBER), "ATech")).json()
    headers = minted_headers(body["publicKey"], body["privateKey"])
    me = await cw.get(f"{api}/system/myMembers", headers=headers)
    assert me.json()["identifier"] == "atech"


async def test_only_api_members_may_mint(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    response = await mint(cw, api, atech, "bjones")
    assert response.status_code == 403
    assert response.json()["code"] == "Forbidden"
    counters = (await cw.get("/_sandbox/oauth")).json()
    assert counters["member_tokens_minted"] == 0


async def test_minted_keys_cannot_mint_further_keys(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor
) -> None:
    body = (await mint(cw, api, headers_for(API_MEMBER), "atech")).json()
    headers = minted_headers(body["publicKey"], body["privateKey"])
    assert (await mint(cw, api, headers, "bjones")).status_code == 403


async def test_minting_needs_authentication(cw: httpx.AsyncClient, api: str) -> None:
    response = await mint(cw, api, {"clientId": DEV_CLIENT_ID}, "atech")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("identifier", "status", "code"),
    [("nobody", 404, "NotFound"), ("lmartin", 400, "InvalidObject")],
)
async def test_unknown_or_inactive_members_get_no_keys(
    cw: httpx.AsyncClient,
    api: str,
    headers_for: HeadersFor,
    identifier: str,
    status: int,
    code: str,
) -> None:
    response = await mint(cw, api, headers_for(API_MEMBER), identifier)
    assert response.status_code == status
    assert response.json()["code"] == code


async def test_a_requested_expiration_is_kept_when_shorter_and_capped_when_longer(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    soon = now + timedelta(minutes=5)
    body = {"expiration": soon.isoformat().replace("+00:00", "Z")}
    short = (await mint(cw, api, headers_for(API_MEMBER), body=body)).json()
    assert parse_expiration(short["expiration"]) == soon
    far = {"expiration": (now + timedelta(days=2)).isoformat()}
    capped = (await mint(cw, api, headers_for(API_MEMBER), body=far)).json()
    assert parse_expiration(capped["expiration"]) <= now + timedelta(seconds=3601)


@pytest.mark.parametrize("expiration", ["2000-01-01T00:00:00Z", "next tuesday", 12])
async def test_a_past_or_malformed_expiration_is_400(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor, expiration: object
) -> None:
    body = {"expiration": expiration}
    response = await mint(cw, api, headers_for(API_MEMBER), body=body)
    assert response.status_code == 400
    assert response.json()["code"] == "InvalidObject"
    assert response.json()["errors"][0]["field"] == "expiration"


async def test_minted_keys_stop_working_once_expired(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor
) -> None:
    body = (await mint(cw, api, headers_for(API_MEMBER))).json()
    headers = minted_headers(body["publicKey"], body["privateKey"])
    assert (await cw.get(f"{api}/system/info", headers=headers)).status_code == 200
    assert (await cw.post("/_sandbox/member-tokens/expire")).status_code == 204
    response = await cw.get(f"{api}/system/info", headers=headers)
    assert response.status_code == 401
    assert "expired" in response.json()["message"]
    assert body["privateKey"] not in response.text
    # The API member's own keys are not minted keys: they keep working.
    mine = await cw.get(f"{api}/system/info", headers=headers_for(API_MEMBER))
    assert mine.status_code == 200


async def test_minted_keys_expire_on_the_clock(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor, cw_state: SandboxState
) -> None:
    body = (await mint(cw, api, headers_for(API_MEMBER))).json()
    headers = minted_headers(body["publicKey"], body["privateKey"])
    expiration = parse_expiration(body["expiration"])
    cw_state.member_tokens.clock = lambda: expiration - timedelta(seconds=1)
    assert (await cw.get(f"{api}/system/info", headers=headers)).status_code == 200
    cw_state.member_tokens.clock = lambda: expiration
    assert (await cw.get(f"{api}/system/info", headers=headers)).status_code == 401


async def test_a_wrong_private_key_for_a_minted_public_key_is_401(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor
) -> None:
    body = (await mint(cw, api, headers_for(API_MEMBER))).json()
    headers = minted_headers(body["publicKey"], body["privateKey"] + "x")
    response = await cw.get(f"{api}/system/info", headers=headers)
    assert response.status_code == 401
    assert "Incorrect" in response.json()["message"]


async def test_reset_forgets_minted_keys(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor
) -> None:
    body = (await mint(cw, api, headers_for(API_MEMBER))).json()
    headers = minted_headers(body["publicKey"], body["privateKey"])
    assert (await cw.post("/_sandbox/reset")).status_code == 200
    assert (await cw.get(f"{api}/system/info", headers=headers)).status_code == 401
    assert (await cw.get("/_sandbox/oauth")).json()["member_tokens_minted"] == 0
