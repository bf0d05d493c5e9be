"""API authentication: Basic companyId+publicKey:privateKey plus a registered clientId."""

from __future__ import annotations

import base64
from collections.abc import Callable

import httpx
import pytest

from connectwise_sandbox import DEV_CLIENT_ID
from connectwise_sandbox.state import SandboxState

HeadersFor = Callable[[str], dict[str, str]]


def basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


def assert_cw_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]


async def test_the_authenticated_member_is_the_one_whose_keys_were_used(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor
) -> None:
    for identifier in ("atech", "bjones"):
        response = await cw.get(f"{api}/system/myMembers", headers=headers_for(identifier))
        assert response.status_code == 200
        assert response.json()["identifier"] == identifier


async def test_no_credentials_is_401(cw: httpx.AsyncClient, api: str) -> None:
    response = await cw.get(f"{api}/service/tickets", headers={"clientId": DEV_CLIENT_ID})
    assert_cw_error(response, 401, "Unauthorized")


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer abc",
        "Basic !!!not-base64!!!",
        basic("syntaskio:no-plus-sign"),
        basic("syntaskio+public-without-private"),
    ],
)
async def test_malformed_credentials_are_401(
    cw: httpx.AsyncClient, api: str, authorization: str
) -> None:
    headers = {"Authorization": authorization, "clientId": DEV_CLIENT_ID}
    assert_cw_error(await cw.get(f"{api}/system/info", headers=headers), 401, "Unauthorized")


async def test_wrong_private_key_or_company_is_401(
    cw: httpx.AsyncClient, api: str, cw_state: SandboxState
) -> None:
    key = cw_state.store.api_keys[0]
    attempts = [
        f"syntaskio+{key.public_key}:{key.private_key}x",
        f"syntaskio+{key.public_key}x:{key.private_key}",
        f"othercompany+{key.public_key}:{key.private_key}",
        # Another member's private key with atech's public key.
        f"syntaskio+{key.public_key}:{cw_state.store.api_keys[1].private_key}",
    ]
    for raw in attempts:
        headers = {"Authorization": basic(raw), "clientId": DEV_CLIENT_ID}
        response = await cw.get(f"{api}/system/info", headers=headers)
        assert_cw_error(response, 401, "Unauthorized")
        assert key.private_key not in response.text


async def test_company_id_is_case_insensitive(
    cw: httpx.AsyncClient, api: str, cw_state: SandboxState
) -> None:
    key = cw_state.store.api_keys[0]
    headers = {
        "Authorization": basic(f"SyntaskIO+{key.public_key}:{key.private_key}"),
        "clientId": DEV_CLIENT_ID,
    }
    assert (await cw.get(f"{api}/system/info", headers=headers)).status_code == 200


async def test_inactive_members_cannot_authenticate(
    cw: httpx.AsyncClient, api: str, headers_for: HeadersFor
) -> None:
    response = await cw.get(f"{api}/system/info", headers=headers_for("lmartin"))
    assert_cw_error(response, 401, "Unauthorized")


async def test_missing_client_id_is_401_and_unknown_client_id_is_403(
    cw: httpx.AsyncClient, api: str, atech: dict[str, str]
) -> None:
    without = {"Authorization": atech["Authorization"]}
    assert_cw_error(await cw.get(f"{api}/system/info", headers=without), 401, "Unauthorized")
    unknown = without | {"clientId": "00000000-0000-0000-0000-000000000000"}
    assert_cw_error(await cw.get(f"{api}/system/info", headers=unknown), 403, "Forbidden")
    # Header names are case-insensitive; the GUID too.
    upper = without | {"CLIENTID": DEV_CLIENT_ID.upper()}
    assert (await cw.get(f"{api}/system/info", headers=upper)).status_code == 200


async def test_the_admin_api_and_company_lookup_need_no_credentials(cw: httpx.AsyncClient) -> None:
    assert (await cw.get("/_sandbox/health")).json() == {"status": "ok"}
    assert (await cw.get("/login/companyinfo/syntaskio")).status_code == 200


async def test_api_keys_endpoint_lists_every_member_with_the_company(
    cw: httpx.AsyncClient, cw_state: SandboxState
) -> None:
    keys = (await cw.get("/_sandbox/api-keys")).json()
    assert [k["member_identifier"] for k in keys][:2] == ["atech", "bjones"]
    assert len(keys) == len(cw_state.store.members)
    assert all(k["company_id"] == "syntaskio" for k in keys)
    assert all(len(k["public_key"]) == 16 and len(k["private_key"]) == 16 for k in keys)
    assert len({k["public_key"] for k in keys}) == len(keys)
