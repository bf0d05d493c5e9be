"""Request accounting per caller: the story's budget is per integration, so every API
request is counted against the credential that made it (and its member)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from typing import Any

import httpx

from connectwise_sandbox import DEV_CLIENT_ID
from connectwise_sandbox.oauth import SCOPES, s256
from connectwise_sandbox.state import SandboxState

HeadersFor = Callable[[str], dict[str, str]]


def public_key_of(state: SandboxState, identifier: str) -> str:
    return next(k.public_key for k in state.store.api_keys if k.member_identifier == identifier)


def bearer_token(state: SandboxState, identifier: str) -> str:
    """An access token for the member, straight from the authorization server."""
    member = state.store.member_by_identifier(identifier)
    assert member is not None
    verifier = secrets.token_urlsafe(48)
    code = state.oauth.issue_code(
        client_id=DEV_CLIENT_ID,
        redirect_uri="http://app.test/cb",
        code_challenge=s256(verifier),
        member_id=member["id"],
        scopes=tuple(SCOPES),
    )
    tokens = state.oauth.exchange_code(
        client_id=DEV_CLIENT_ID,
        code=code,
        redirect_uri="http://app.test/cb",
        code_verifier=verifier,
    )
    return tokens.access_token


def basic(public_key: str, private_key: str) -> dict[str, str]:
    token = base64.b64encode(f"syntaskio+{public_key}:{private_key}".encode()).decode()
    return {"Authorization": f"Basic {token}", "clientId": DEV_CLIENT_ID}


async def stats(cw: httpx.AsyncClient) -> dict[str, Any]:
    snapshot: dict[str, Any] = (await cw.get("/_sandbox/stats")).json()
    return snapshot


async def test_requests_are_counted_per_api_key(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor, cw_state: SandboxState
) -> None:
    atech, bjones = headers_for("atech"), headers_for("bjones")
    for _ in range(3):
        await cw.get(f"{api}/service/tickets", headers=atech)
    await cw.get(f"{api}/service/tickets/1001", headers=atech)
    await cw.get(f"{api}/project/tickets/count", headers=bjones)
    await cw.get("/login/companyinfo/syntaskio")  # counted in the total, owned by nobody
    await cw.get("/_sandbox/health")  # not counted at all
    snapshot = await stats(cw)
    assert snapshot["total"] == 6
    atech_key = f"syntaskio+{public_key_of(cw_state, 'atech')}"
    bjones_key = f"syntaskio+{public_key_of(cw_state, 'bjones')}"
    assert set(snapshot["by_caller"]) == {atech_key, bjones_key}
    mine = snapshot["by_caller"][atech_key]
    assert (mine["member"], mine["auth"], mine["requests"]) == ("atech", "api-key", 4)
    assert mine["by_path"] == {
        f"GET {api}/service/tickets": 3,
        f"GET {api}/service/tickets/{{id}}": 1,
    }
    assert mine["by_status"] == {"200": 4}
    assert snapshot["by_caller"][bjones_key]["requests"] == 1


async def test_bearer_tokens_and_member_tokens_count_as_their_member(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor, cw_state: SandboxState
) -> None:
    token = bearer_token(cw_state, "atech")
    bearer = {"Authorization": f"Bearer {token}", "clientId": DEV_CLIENT_ID}
    assert (await cw.get(f"{api}/system/info", headers=bearer)).status_code == 200
    assert (await cw.get(f"{api}/system/info", headers=bearer)).status_code == 200
    minted = await cw.post(
        f"{api}/system/members/bjones/tokens", headers=headers_for("syntaskio-api")
    )
    keys = minted.json()
    as_bjones = basic(keys["publicKey"], keys["privateKey"])
    assert (await cw.get(f"{api}/system/myMembers", headers=as_bjones)).json()["identifier"] == (
        "bjones"
    )
    by_caller = (await stats(cw))["by_caller"]
    assert by_caller["bearer:atech"]["requests"] == 2
    assert by_caller["bearer:atech"]["auth"] == "bearer"
    assert by_caller["member-token:bjones"]["member"] == "bjones"
    assert by_caller["member-token:bjones"]["requests"] == 1
    api_member = f"syntaskio+{public_key_of(cw_state, 'syntaskio-api')}"
    assert by_caller[api_member]["by_status"] == {"201": 1}


async def test_throttled_and_failed_requests_are_counted_per_caller(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str], cw_state: SandboxState
) -> None:
    await cw.post("/_sandbox/faults", json={"status": 429, "count": 2})
    await cw.post("/_sandbox/faults", json={"status": 503})
    for _ in range(4):
        await cw.get(f"{api}/service/tickets", headers=atech)
    await cw.get(f"{api}/service/tickets", headers={"clientId": DEV_CLIENT_ID})
    snapshot = await stats(cw)
    assert (snapshot["rate_limited"], snapshot["server_errors"]) == (2, 1)
    mine = snapshot["by_caller"][f"syntaskio+{public_key_of(cw_state, 'atech')}"]
    assert mine["requests"] == 4
    assert (mine["rate_limited"], mine["server_errors"]) == (2, 1)
    assert mine["by_status"] == {"200": 1, "429": 2, "503": 1}
    anonymous = snapshot["by_caller"]["anonymous"]
    assert (anonymous["requests"], anonymous["by_status"]) == (1, {"401": 1})
    assert (await cw.delete("/_sandbox/stats")).status_code == 204
    assert (await stats(cw))["by_caller"] == {}


async def test_a_wrong_private_key_still_counts_against_its_public_key(
    cw: httpx.AsyncClient, api: str, cw_state: SandboxState
) -> None:
    public_key = public_key_of(cw_state, "atech")
    wrong = basic(public_key, "wrong")
    assert (await cw.get(f"{api}/system/info", headers=wrong)).status_code == 401
    counts = (await stats(cw))["by_caller"][f"syntaskio+{public_key}"]
    assert (counts["member"], counts["by_status"]) == ("atech", {"401": 1})
