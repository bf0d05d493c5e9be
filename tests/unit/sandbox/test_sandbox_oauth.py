"""The OAuth2 authorization server: authorization code + PKCE, rotation with reuse
detection, revocation, and Bearer access to the REST API."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.oauth import s256
from connectwise_sandbox.settings import DEV_OAUTH_CLIENT_SECRET
from connectwise_sandbox.state import SandboxState

ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)
REDIRECT = "http://localhost:8081/api/v1/integrations/connectwise/oauth/callback"
OTHER_REDIRECT = "http://app.test/callback?tenant=acme"
SCOPES = "ConnectWiseManageCallback ServiceTicket ProjectTask"
CLIENT = (DEV_CLIENT_ID, DEV_OAUTH_CLIENT_SECRET)


@pytest.fixture
def cw_settings() -> Settings:
    return Settings(
        tickets=50,
        seed=42,
        anchor=ANCHOR,
        client_ids=DEV_CLIENT_ID,
        oauth_redirect_uris=[REDIRECT, OTHER_REDIRECT],
    )


@pytest.fixture
def oauth(api: str) -> str:
    return f"{api}/system/oauth"


def new_verifier() -> str:
    return secrets.token_urlsafe(48)  # 64 characters of the unreserved set


def authorize_params(verifier: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": DEV_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "scope": SCOPES,
        "state": "st-123",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return {name: value for name, value in params.items() if value is not None}


def location_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def approve(
    cw: httpx.AsyncClient,
    oauth: str,
    verifier: str,
    member: str = "atech",
    **overrides: str | None,
) -> str:
    """Submit the consent form with Approve; the authorization code."""
    form = authorize_params(verifier, **overrides) | {"member": member, "decision": "approve"}
    response = await cw.post(f"{oauth}/authorize", data=form)
    params = location_params(response)
    assert params["state"] == "st-123"
    return params["code"]


async def exchange(
    cw: httpx.AsyncClient,
    oauth: str,
    code: str,
    verifier: str,
    redirect_uri: str = REDIRECT,
) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    return await cw.post(f"{oauth}/token", data=form, auth=CLIENT)


async def refresh(cw: httpx.AsyncClient, oauth: str, refresh_token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return await cw.post(f"{oauth}/token", data=form, auth=CLIENT)


async def grant_tokens(cw: httpx.AsyncClient, oauth: str, member: str = "atech") -> Any:
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier, member=member)
    response = await exchange(cw, oauth, code, verifier)
    assert response.status_code == 200, response.text
    return response.json()


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}", "clientId": DEV_CLIENT_ID}


async def me(cw: httpx.AsyncClient, api: str, access_token: str) -> httpx.Response:
    return await cw.get(f"{api}/system/myMembers", headers=bearer(access_token))


def assert_oauth_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert isinstance(body["error_description"], str)
    assert "code" not in body  # RFC 6749 §5.2, not ConnectWise's error shape
    assert response.headers["cache-control"] == "no-store"


# --- the consent page -------------------------------------------------------------------


async def test_consent_page_lists_scopes_members_and_both_decisions(
    cw: httpx.AsyncClient, oauth: str
) -> None:
    verifier = new_verifier()
    params = authorize_params(verifier, login_hint="bjones")
    response = await cw.get(f"{oauth}/authorize", params=params)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page = response.text
    assert "Syntaskio" in page
    for scope in SCOPES.split():
        assert scope in page
    assert '<label for="member">Sign in as</label>' in page
    assert '<select id="member" name="member" required>' in page
    assert '<option value="bjones" selected>Beth Jones (bjones)</option>' in page
    assert '<option value="atech">Alex Tech (atech)</option>' in page
    # Neither the inactive member nor the API member can sign in.
    assert 'value="lmartin"' not in page
    assert 'value="syntaskio-api"' not in page
    assert '<button type="submit" name="decision" value="approve">Approve</button>' in page
    assert '<button type="submit" name="decision" value="deny">Deny</button>' in page
    assert f'<form method="post" action="{oauth}/authorize">' in page
    assert f'<input type="hidden" name="code_challenge" value="{s256(verifier)}">' in page
    assert '<input type="hidden" name="state" value="st-123">' in page
    assert "<script" not in page
    assert "<link" not in page
    assert "src=" not in page


async def test_consent_page_escapes_every_value(cw: httpx.AsyncClient, oauth: str) -> None:
    hostile = '"><script>alert(1)</script>'
    params = authorize_params(new_verifier(), state=hostile, login_hint=hostile)
    response = await cw.get(f"{oauth}/authorize", params=params)
    assert response.status_code == 200
    assert "<script>" not in response.text
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"' in response.text


async def test_consent_page_is_served_under_the_legacy_prefix_too(cw: httpx.AsyncClient) -> None:
    params = authorize_params(new_verifier())
    response = await cw.get("/v4_6_release/apis/3.0/system/oauth/authorize", params=params)
    assert response.status_code == 200
    assert 'action="/v4_6_release/apis/3.0/system/oauth/authorize"' in response.text


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, "not a registered application"),
        ({"client_id": None}, "client_id is missing"),
        ({"redirect_uri": "http://evil.test/callback"}, "redirect_uri is not registered"),
        ({"redirect_uri": REDIRECT + "/"}, "redirect_uri is not registered"),  # exact match
        ({"redirect_uri": None}, "redirect_uri is missing"),
    ],
)
async def test_bad_client_or_redirect_uri_is_a_400_page_never_a_redirect(
    cw: httpx.AsyncClient, oauth: str, overrides: dict[str, str | None], message: str
) -> None:
    params = authorize_params(new_verifier(), **overrides)
    for response in (
        await cw.get(f"{oauth}/authorize", params=params),
        await cw.post(f"{oauth}/authorize", data=params | {"decision": "approve"}),
    ):
        assert response.status_code == 400
        assert "location" not in response.headers
        assert message in response.text
        assert response.headers["content-type"].startswith("text/html")


async def test_with_no_registered_redirect_uri_every_request_is_refused() -> None:
    app = create_app(Settings(tickets=0, anchor=ANCHOR))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        response = await client.get(
            "/v2025_1/apis/3.0/system/oauth/authorize", params=authorize_params(new_verifier())
        )
    assert response.status_code == 400
    assert "redirect_uri is not registered" in response.text


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),  # would default to plain
        ({"code_challenge": "too-short"}, "invalid_request"),
        ({"scope": "ServiceTicket Everything"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
    ],
)
async def test_other_authorization_errors_are_redirected_with_state(
    cw: httpx.AsyncClient, oauth: str, overrides: dict[str, str | None], error: str
) -> None:
    params = authorize_params(new_verifier(), **overrides)
    for response in (
        await cw.get(f"{oauth}/authorize", params=params),
        await cw.post(
            f"{oauth}/authorize", data=params | {"member": "atech", "decision": "approve"}
        ),
    ):
        assert response.headers["location"].startswith(REDIRECT + "?")
        query = location_params(response)
        assert query["error"] == error
        assert query["error_description"]
        assert query["state"] == "st-123"
        assert "code" not in query


async def test_deny_redirects_access_denied_with_state(cw: httpx.AsyncClient, oauth: str) -> None:
    form = authorize_params(new_verifier()) | {"member": "atech", "decision": "deny"}
    query = location_params(await cw.post(f"{oauth}/authorize", data=form))
    assert query["error"] == "access_denied"
    assert query["state"] == "st-123"
    assert "code" not in query


@pytest.mark.parametrize(
    "choice", [{"member": "syntaskio-api"}, {"member": "lmartin"}, {"member": "nobody"}, {}]
)
async def test_approve_needs_an_active_member_that_can_sign_in(
    cw: httpx.AsyncClient, oauth: str, choice: dict[str, str]
) -> None:
    form = authorize_params(new_verifier()) | {"decision": "approve"} | choice
    query = location_params(await cw.post(f"{oauth}/authorize", data=form))
    assert query["error"] == "invalid_request"
    assert "code" not in query


async def test_approve_redirects_a_fresh_code_keeping_the_redirect_uris_query(
    cw: httpx.AsyncClient, oauth: str
) -> None:
    verifier = new_verifier()
    first = await approve(cw, oauth, verifier)
    second = await approve(cw, oauth, verifier)
    assert first != second
    assert len(first) >= 40
    form = authorize_params(verifier, redirect_uri=OTHER_REDIRECT)
    response = await cw.post(
        f"{oauth}/authorize", data=form | {"member": "atech", "decision": "approve"}
    )
    assert response.headers["location"].startswith("http://app.test/callback?tenant=acme&code=")


# --- the token endpoint -----------------------------------------------------------------


async def test_code_exchange_gives_tokens_that_act_as_the_member(
    cw: httpx.AsyncClient, oauth: str, api: str
) -> None:
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier, member="bjones")
    response = await exchange(cw, oauth, code, verifier)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 3600
    assert body["scope"] == SCOPES
    assert body["access_token"] != body["refresh_token"]
    mine = await me(cw, api, body["access_token"])
    assert mine.status_code == 200
    assert mine.json()["identifier"] == "bjones"
    tickets = await cw.get(f"{api}/service/tickets", headers=bearer(body["access_token"]))
    assert tickets.status_code == 200


async def test_client_secret_post_works_too(cw: httpx.AsyncClient, oauth: str) -> None:
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
        "client_id": DEV_CLIENT_ID,
        "client_secret": DEV_OAUTH_CLIENT_SECRET,
    }
    response = await cw.post(f"{oauth}/token", data=form)
    assert response.status_code == 200
    assert response.json()["token_type"] == "Bearer"


async def test_a_wrong_verifier_fails_and_spends_the_code(
    cw: httpx.AsyncClient, oauth: str
) -> None:
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier)
    assert_oauth_error(await exchange(cw, oauth, code, new_verifier()), 400, "invalid_grant")
    assert_oauth_error(await exchange(cw, oauth, code, verifier), 400, "invalid_grant")


@pytest.mark.parametrize("verifier", ["short", "x" * 129, "a" * 42 + "!", ""])
async def test_a_malformed_verifier_is_invalid_grant(
    cw: httpx.AsyncClient, oauth: str, verifier: str
) -> None:
    code = await approve(cw, oauth, new_verifier())
    assert_oauth_error(await exchange(cw, oauth, code, verifier), 400, "invalid_grant")


async def test_the_verifier_is_checked_against_the_s256_challenge(
    cw: httpx.AsyncClient, oauth: str
) -> None:
    # The "plain" mistake: sending the challenge itself as the verifier.
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier)
    assert_oauth_error(await exchange(cw, oauth, code, s256(verifier)), 400, "invalid_grant")


async def test_redirect_uri_must_match_the_authorization_request(
    cw: httpx.AsyncClient, oauth: str
) -> None:
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier)
    response = await exchange(cw, oauth, code, verifier, redirect_uri=OTHER_REDIRECT)
    assert_oauth_error(response, 400, "invalid_grant")
    assert "redirect_uri" in response.json()["error_description"]


async def test_unknown_code_is_invalid_grant(cw: httpx.AsyncClient, oauth: str) -> None:
    assert_oauth_error(await exchange(cw, oauth, "made-up", new_verifier()), 400, "invalid_grant")


async def test_code_reuse_is_refused_and_revokes_the_tokens_it_gave(
    cw: httpx.AsyncClient, oauth: str, api: str
) -> None:
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier)
    tokens = (await exchange(cw, oauth, code, verifier)).json()
    assert (await me(cw, api, tokens["access_token"])).status_code == 200
    assert_oauth_error(await exchange(cw, oauth, code, verifier), 400, "invalid_grant")
    assert (await me(cw, api, tokens["access_token"])).status_code == 401
    assert_oauth_error(await refresh(cw, oauth, tokens["refresh_token"]), 400, "invalid_grant")
    counters = (await cw.get("/_sandbox/oauth")).json()
    assert counters["reuse_detected"] == 1
    assert counters["revoked_families"] == 1
    assert counters["active_families"] == 0


async def test_an_expired_code_is_invalid_grant(
    cw: httpx.AsyncClient, oauth: str, cw_state: SandboxState
) -> None:
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier)
    later = datetime.now(UTC) + timedelta(seconds=61)
    cw_state.oauth.clock = lambda: later
    response = await exchange(cw, oauth, code, verifier)
    assert_oauth_error(response, 400, "invalid_grant")
    assert "expired" in response.json()["error_description"]


@pytest.mark.parametrize(
    "auth",
    [
        (DEV_CLIENT_ID, "wrong-secret"),
        ("00000000-0000-0000-0000-000000000000", DEV_OAUTH_CLIENT_SECRET),
        None,
    ],
)
async def test_bad_client_authentication_is_401_invalid_client(
    cw: httpx.AsyncClient, oauth: str, auth: tuple[str, str] | None
) -> None:
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier)
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    response = await cw.post(f"{oauth}/token", data=form, auth=auth)
    assert_oauth_error(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")
    assert DEV_OAUTH_CLIENT_SECRET not in response.text


async def test_a_wrong_secret_in_the_form_is_invalid_client(
    cw: httpx.AsyncClient, oauth: str
) -> None:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "x",
        "client_id": DEV_CLIENT_ID,
        "client_secret": "nope",
    }
    assert_oauth_error(await cw.post(f"{oauth}/token", data=form), 401, "invalid_client")


async def test_two_client_authentication_methods_at_once_are_refused(
    cw: httpx.AsyncClient, oauth: str
) -> None:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "x",
        "client_secret": DEV_OAUTH_CLIENT_SECRET,
    }
    response = await cw.post(f"{oauth}/token", data=form, auth=CLIENT)
    assert_oauth_error(response, 400, "invalid_request")


@pytest.mark.parametrize(
    ("form", "error"),
    [
        ({"grant_type": "password", "username": "a", "password": "b"}, "unsupported_grant_type"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
    ],
)
async def test_unsupported_or_incomplete_grants(
    cw: httpx.AsyncClient, oauth: str, form: dict[str, str], error: str
) -> None:
    assert_oauth_error(await cw.post(f"{oauth}/token", data=form, auth=CLIENT), 400, error)


async def test_the_token_endpoint_takes_only_form_bodies(cw: httpx.AsyncClient, oauth: str) -> None:
    response = await cw.post(f"{oauth}/token", json={"grant_type": "refresh_token"}, auth=CLIENT)
    assert_oauth_error(response, 400, "invalid_request")


# --- refresh rotation and reuse detection -----------------------------------------------


async def test_refresh_rotates_both_tokens(cw: httpx.AsyncClient, oauth: str, api: str) -> None:
    first = await grant_tokens(cw, oauth)
    response = await refresh(cw, oauth, first["refresh_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    second = response.json()
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == SCOPES
    assert (await me(cw, api, second["access_token"])).json()["identifier"] == "atech"
    third = await refresh(cw, oauth, second["refresh_token"])
    assert third.status_code == 200


async def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(
    cw: httpx.AsyncClient, oauth: str, api: str
) -> None:
    first = await grant_tokens(cw, oauth)
    other = await grant_tokens(cw, oauth, member="bjones")  # another family, untouched
    second = (await refresh(cw, oauth, first["refresh_token"])).json()
    reused = await refresh(cw, oauth, first["refresh_token"])
    assert_oauth_error(reused, 400, "invalid_grant")
    response = await me(cw, api, second["access_token"])
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"
    assert second["access_token"] not in response.text
    assert (await me(cw, api, first["access_token"])).status_code == 401
    assert_oauth_error(await refresh(cw, oauth, second["refresh_token"]), 400, "invalid_grant")
    assert (await me(cw, api, other["access_token"])).status_code == 200
    counters = (await cw.get("/_sandbox/oauth")).json()
    assert counters["reuse_detected"] == 1
    assert (counters["active_families"], counters["revoked_families"]) == (1, 1)


async def test_refresh_may_narrow_the_scope_but_not_widen_it(
    cw: httpx.AsyncClient, oauth: str
) -> None:
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier, scope="ServiceTicket ProjectTask")
    tokens = (await exchange(cw, oauth, code, verifier)).json()
    assert tokens["scope"] == "ServiceTicket ProjectTask"
    form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "scope": "ServiceTicket ConnectWiseManageCallback",
    }
    wider = await cw.post(f"{oauth}/token", data=form, auth=CLIENT)
    assert_oauth_error(wider, 400, "invalid_scope")
    narrower = await cw.post(f"{oauth}/token", data=form | {"scope": "ServiceTicket"}, auth=CLIENT)
    assert narrower.json()["scope"] == "ServiceTicket"


async def test_an_expired_refresh_token_is_invalid_grant(
    cw: httpx.AsyncClient, oauth: str, cw_state: SandboxState
) -> None:
    tokens = await grant_tokens(cw, oauth)
    later = datetime.now(UTC) + timedelta(days=30, seconds=1)
    cw_state.oauth.clock = lambda: later
    assert_oauth_error(await refresh(cw, oauth, tokens["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize("token", ["", "never-issued"])
async def test_an_unknown_refresh_token_is_invalid_grant(
    cw: httpx.AsyncClient, oauth: str, token: str
) -> None:
    expected = "invalid_request" if not token else "invalid_grant"
    assert_oauth_error(await refresh(cw, oauth, token), 400, expected)


# --- access tokens on the REST API ------------------------------------------------------


async def test_an_expired_access_token_is_401_until_refreshed(
    cw: httpx.AsyncClient, oauth: str, api: str
) -> None:
    tokens = await grant_tokens(cw, oauth)
    assert (await cw.post("/_sandbox/oauth/expire-access-tokens")).status_code == 204
    response = await me(cw, api, tokens["access_token"])
    assert response.status_code == 401
    assert response.json()["code"] == "Unauthorized"
    assert "expired" in response.json()["message"]
    assert tokens["access_token"] not in response.text
    renewed = (await refresh(cw, oauth, tokens["refresh_token"])).json()
    assert (await me(cw, api, renewed["access_token"])).status_code == 200


async def test_access_tokens_expire_after_their_ttl(
    cw: httpx.AsyncClient, oauth: str, api: str, cw_state: SandboxState
) -> None:
    tokens = await grant_tokens(cw, oauth)
    start = datetime.now(UTC)
    cw_state.oauth.clock = lambda: start + timedelta(seconds=3500)
    assert (await me(cw, api, tokens["access_token"])).status_code == 200
    cw_state.oauth.clock = lambda: start + timedelta(seconds=3601)
    response = await me(cw, api, tokens["access_token"])
    assert response.status_code == 401
    assert "expired" in response.json()["message"]


async def test_unknown_bearer_tokens_are_401_without_echo(cw: httpx.AsyncClient, api: str) -> None:
    response = await me(cw, api, "not-a-token-at-all")
    assert response.status_code == 401
    assert "invalid" in response.json()["message"]
    assert "not-a-token-at-all" not in response.text


async def test_bearer_still_needs_the_client_id_header(
    cw: httpx.AsyncClient, oauth: str, api: str
) -> None:
    tokens = await grant_tokens(cw, oauth)
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    response = await cw.get(f"{api}/system/myMembers", headers=headers)
    assert response.status_code == 401
    unknown = headers | {"clientId": "00000000-0000-0000-0000-000000000000"}
    assert (await cw.get(f"{api}/system/myMembers", headers=unknown)).status_code == 403


async def test_revoke_all_simulates_the_user_removing_the_app(
    cw: httpx.AsyncClient, oauth: str, api: str
) -> None:
    tokens = await grant_tokens(cw, oauth)
    assert (await cw.post("/_sandbox/oauth/revoke-all")).status_code == 204
    response = await me(cw, api, tokens["access_token"])
    assert response.status_code == 401
    assert "revoked" in response.json()["message"]
    assert_oauth_error(await refresh(cw, oauth, tokens["refresh_token"]), 400, "invalid_grant")
    counters = (await cw.get("/_sandbox/oauth")).json()
    assert (counters["active_families"], counters["revoked_families"]) == (0, 1)


# --- revocation (RFC 7009) --------------------------------------------------------------


@pytest.mark.parametrize("which", ["refresh_token", "access_token"])
async def test_revoking_either_token_revokes_the_family(
    cw: httpx.AsyncClient, oauth: str, api: str, which: str
) -> None:
    tokens = await grant_tokens(cw, oauth)
    response = await cw.post(
        f"{oauth}/revoke", data={"token": tokens[which], "token_type_hint": which}, auth=CLIENT
    )
    assert response.status_code == 200
    assert response.content == b""
    assert (await me(cw, api, tokens["access_token"])).status_code == 401
    assert_oauth_error(await refresh(cw, oauth, tokens["refresh_token"]), 400, "invalid_grant")


async def test_revoke_answers_200_for_unknown_tokens_but_needs_the_client(
    cw: httpx.AsyncClient, oauth: str
) -> None:
    unknown = await cw.post(f"{oauth}/revoke", data={"token": "never-issued"}, auth=CLIENT)
    assert unknown.status_code == 200
    anonymous = await cw.post(f"{oauth}/revoke", data={"token": "never-issued"})
    assert_oauth_error(anonymous, 401, "invalid_client")
    wrong = await cw.post(
        f"{oauth}/revoke", data={"token": "x"}, auth=(DEV_CLIENT_ID, "wrong-secret")
    )
    assert_oauth_error(wrong, 401, "invalid_client")
    assert_oauth_error(
        await cw.post(f"{oauth}/revoke", data={}, auth=CLIENT), 400, "invalid_request"
    )


# --- sandbox controls and plumbing ------------------------------------------------------


async def test_admin_counters_follow_the_traffic(cw: httpx.AsyncClient, oauth: str) -> None:
    empty = (await cw.get("/_sandbox/oauth")).json()
    assert empty == {
        "grants": {"authorization_code": 0, "refresh_token": 0},
        "token_requests": 0,
        "reuse_detected": 0,
        "active_families": 0,
        "revoked_families": 0,
        "member_tokens_minted": 0,
    }
    first = await grant_tokens(cw, oauth)  # 1 token request
    await grant_tokens(cw, oauth)  # 2
    await refresh(cw, oauth, first["refresh_token"])  # 3
    await refresh(cw, oauth, "never-issued")  # 4, failed
    await cw.post(f"{oauth}/token", data={"grant_type": "password"}, auth=CLIENT)  # 5
    counters = (await cw.get("/_sandbox/oauth")).json()
    assert counters["grants"] == {"authorization_code": 2, "refresh_token": 1}
    assert counters["token_requests"] == 5
    assert counters["active_families"] == 2
    assert counters["reuse_detected"] == 0


async def test_reset_forgets_every_grant_and_token(
    cw: httpx.AsyncClient, oauth: str, api: str
) -> None:
    tokens = await grant_tokens(cw, oauth)
    verifier = new_verifier()
    code = await approve(cw, oauth, verifier)
    assert (await cw.post("/_sandbox/reset")).status_code == 200
    assert (await me(cw, api, tokens["access_token"])).status_code == 401
    assert_oauth_error(await refresh(cw, oauth, tokens["refresh_token"]), 400, "invalid_grant")
    assert_oauth_error(await exchange(cw, oauth, code, verifier), 400, "invalid_grant")
    counters = (await cw.get("/_sandbox/oauth")).json()
    assert counters["active_families"] == 0
    assert counters["grants"] == {"authorization_code": 0, "refresh_token": 0}
    assert counters["token_requests"] == 2  # the two failed attempts after the reset


async def test_oauth_calls_are_counted_and_take_injected_faults(
    cw: httpx.AsyncClient, oauth: str
) -> None:
    fault = {"status": 503, "count": 1, "path_contains": "/system/oauth/token"}
    assert (await cw.post("/_sandbox/faults", json=fault)).status_code == 201
    response = await refresh(cw, oauth, "x")
    assert response.status_code == 503
    assert_oauth_error(await refresh(cw, oauth, "x"), 400, "invalid_grant")
    stats = (await cw.get("/_sandbox/stats")).json()
    assert stats["by_endpoint"][f"POST {oauth}/token"] == 2
    assert stats["by_status"] == {"400": 1, "503": 1}


async def test_config_shows_the_oauth_client_but_never_its_secret(cw: httpx.AsyncClient) -> None:
    config = (await cw.get("/_sandbox/config")).json()
    assert config["oauth_client_id"] == DEV_CLIENT_ID
    assert config["oauth_redirect_uris"] == [REDIRECT, OTHER_REDIRECT]
    assert config["oauth_access_token_ttl"] == 3600
    assert config["oauth_refresh_token_ttl"] == 30 * 24 * 3600
    assert config["oauth_code_ttl"] == 60
    assert config["member_token_ttl"] == 3600
    assert DEV_OAUTH_CLIENT_SECRET not in str(config)
    assert "secret" not in str(config).lower()


async def test_a_custom_secret_and_ttl_are_honoured() -> None:
    settings = Settings(
        tickets=0,
        anchor=ANCHOR,
        oauth_redirect_uris=REDIRECT,
        oauth_client_secret="another-secret",
        oauth_access_token_ttl=120,
    )
    app: FastAPI = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    oauth = f"{settings.api_prefix}/system/oauth"
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        verifier = new_verifier()
        code = await approve(client, oauth, verifier)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "code_verifier": verifier,
        }
        refused = await client.post(f"{oauth}/token", data=form, auth=CLIENT)
        assert_oauth_error(refused, 401, "invalid_client")
        code = await approve(client, oauth, verifier)
        accepted = await client.post(
            f"{oauth}/token", data=form | {"code": code}, auth=(DEV_CLIENT_ID, "another-secret")
        )
        assert accepted.json()["expires_in"] == 120
