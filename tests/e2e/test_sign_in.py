"""Signing in through a real OpenID Connect provider (oidc-provider-mock, its own
process) to the running system: the session it gives, signing out, and every refusal —
a tampered or replayed `state`, a callback in another browser, a denial, an unknown or
missing tenant, a `return_to` off the site. (Tokens the provider would never send —
wrong nonce, issuer or audience, expired — are refused in tests/unit/test_sign_in_tokens.py.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from syntaskio_devstack.stack import EmbeddedStack

SESSION_COOKIE = "syntaskio_session"


def provider_user(system: EmbeddedStack, **claims: Any) -> str:
    """A user at the identity provider with these claims; their `sub`."""
    sub = f"user-{uuid.uuid4().hex[:8]}@acme.example"
    url = f"{system.url('identity_provider')}/users/{quote(sub, safe='')}"
    response = httpx.put(url, json={"email": sub, **claims})
    assert response.status_code == 204, response.text
    return sub


@pytest.fixture
def browser(system: EmbeddedStack) -> Iterator[httpx.Client]:
    """A browser's cookie jar, talking to the gateway."""
    with httpx.Client(base_url=system.url("gateway"), timeout=30) as client:
        yield client


def start(browser: httpx.Client, return_to: str = "/") -> str:
    """Click "sign in": where the gateway sends the browser (the provider's page)."""
    response = browser.get("/api/v1/session/login", params={"return_to": return_to})
    assert response.status_code == 303, response.text
    return response.headers["location"]


def authorize(authorization_url: str, sub: str | None, **form: str) -> str:
    """The user at the provider's login page; where it sends the browser back."""
    response = httpx.post(authorization_url, data={"sub": sub, **form} if sub else form)
    assert response.status_code in (302, 303), response.text
    return response.headers["location"]


def sign_in(browser: httpx.Client, sub: str, return_to: str = "/") -> httpx.Response:
    return browser.get(authorize(start(browser, return_to), sub))


def test_signing_in_through_the_provider_gives_the_systems_session(
    system: EmbeddedStack, browser: httpx.Client
) -> None:
    sub = provider_user(system, org="acme", groups=["syntaskio-technicians"], name="Tina Tech")
    authorization_url = start(browser, "/settings?tab=1")
    assert authorization_url.startswith(system.url("identity_provider"))
    query = httpx.URL(authorization_url).params
    assert query["code_challenge_method"] == "S256"
    assert all(query[name] for name in ("state", "nonce", "code_challenge"))
    assert "openid" in query["scope"].split()

    landed = browser.get(authorize(authorization_url, sub))
    assert landed.status_code == 303, landed.text
    assert landed.headers["location"] == "/settings?tab=1"
    assert SESSION_COOKIE in browser.cookies
    me = browser.get("/api/v1/me").json()
    lifetimes = {name: me.pop(name) for name in ("expires_at", "ends_at")}
    assert me == {
        "user_id": sub,
        "tenant_id": "acme-msp",
        "name": "Tina Tech",
        "email": sub,  # the provider's users' e-mails are verified
        "roles": ["technician"],
        "access_token": None,
        "expires_in": None,
    }
    assert lifetimes["expires_at"] < lifetimes["ends_at"]  # short-lived, renewable


def test_a_session_is_renewed_and_signing_out_ends_every_token_of_it(
    system: EmbeddedStack, browser: httpx.Client
) -> None:
    sub = provider_user(system, org="acme")
    assert sign_in(browser, sub).status_code == 303
    first = browser.cookies[SESSION_COOKIE]
    before = browser.get("/api/v1/me").json()
    time.sleep(1.1)  # a token's times are whole seconds
    renewed = browser.post("/api/v1/session/renew")
    assert renewed.status_code == 200, renewed.text
    second = browser.cookies[SESSION_COOKIE]
    assert second != first
    assert renewed.json()["access_token"] == second
    after = browser.get("/api/v1/me").json()
    assert after["expires_at"] > before["expires_at"]
    assert after["ends_at"] == before["ends_at"]  # the same session, no longer
    assert {k: v for k, v in after.items() if k not in ("expires_at",)} == {
        k: v for k, v in before.items() if k not in ("expires_at",)
    }
    # Signing out with the renewed token ends the first one too.
    assert browser.post("/api/v1/session/logout").status_code == 200
    for token in (first, second):
        reused = httpx.get(f"{system.url('gateway')}/api/v1/me", cookies={SESSION_COOKIE: token})
        assert reused.status_code == 401
        again = httpx.post(
            f"{system.url('gateway')}/api/v1/session/renew", cookies={SESSION_COOKIE: token}
        )
        assert again.status_code == 401


def test_an_admin_group_makes_an_admin(system: EmbeddedStack, browser: httpx.Client) -> None:
    sub = provider_user(system, org="globex", groups=["syntaskio-admins"])
    assert sign_in(browser, sub).status_code == 303
    me = browser.get("/api/v1/me").json()
    assert (me["tenant_id"], me["roles"]) == ("globex", ["admin"])


def test_signing_out_ends_the_session_everywhere(
    system: EmbeddedStack, browser: httpx.Client
) -> None:
    sub = provider_user(system, org="acme")
    assert sign_in(browser, sub).status_code == 303
    old = browser.cookies[SESSION_COOKIE]
    signed_out = browser.post("/api/v1/session/logout")
    assert signed_out.status_code == 200, signed_out.text
    end_session = httpx.URL(signed_out.json()["end_session_url"])
    assert str(end_session).startswith(f"{system.url('identity_provider')}/oauth2/end_session")
    assert end_session.params["post_logout_redirect_uri"] == f"{system.url('gateway')}/"
    assert SESSION_COOKIE not in browser.cookies
    # The old cookie, kept by someone, is refused by the gateway and by auth-service.
    reused = httpx.get(f"{system.url('gateway')}/api/v1/me", cookies={SESSION_COOKIE: old})
    assert reused.status_code == 401
    direct = httpx.get(
        f"{system.url('auth')}/v1/integrations", headers={"Authorization": f"Bearer {old}"}
    )
    assert direct.status_code == 401


def refused(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert words in response.text
    assert SESSION_COOKIE not in response.cookies


def test_a_tampered_state_is_refused(system: EmbeddedStack, browser: httpx.Client) -> None:
    callback = httpx.URL(authorize(start(browser), provider_user(system, org="acme")))
    tampered = callback.copy_set_param("state", callback.params["state"] + "x")
    refused(browser.get(tampered), 400, "expired or was already used")


def test_a_replayed_callback_is_refused(system: EmbeddedStack, browser: httpx.Client) -> None:
    callback = authorize(start(browser), provider_user(system, org="acme"))
    assert browser.get(callback).status_code == 303
    browser.cookies.clear()
    refused(browser.get(callback), 400, "expired or was already used")


def test_a_sign_in_finished_in_another_browser_is_refused(
    system: EmbeddedStack, browser: httpx.Client
) -> None:
    callback = authorize(start(browser), provider_user(system, org="acme"))
    with httpx.Client(timeout=30) as other_browser:
        refused(other_browser.get(callback), 400, "started in another browser")


def test_a_denial_at_the_provider_is_refused(system: EmbeddedStack, browser: httpx.Client) -> None:
    callback = authorize(start(browser), None, action="deny")
    assert "error=" in callback
    refused(browser.get(callback), 400, "cancelled")


@pytest.mark.parametrize(
    ("claims", "words"),
    [({"org": "initech"}, "not set up in Syntaskio"), ({}, "does not say which company")],
)
def test_a_user_without_a_known_tenant_gets_a_page_not_a_session(
    system: EmbeddedStack, browser: httpx.Client, claims: dict[str, Any], words: str
) -> None:
    refused(sign_in(browser, provider_user(system, **claims)), 403, words)
    assert browser.get("/api/v1/me").status_code == 401


@pytest.mark.parametrize("return_to", ["https://evil.example/", "//evil.example/x", "settings"])
def test_sign_in_only_returns_to_our_own_pages(browser: httpx.Client, return_to: str) -> None:
    response = browser.get("/api/v1/session/login", params={"return_to": return_to})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_the_sign_in_page_knows_which_methods_are_on(browser: httpx.Client) -> None:
    assert browser.get("/api/v1/session/methods").json() == {
        "identity_provider": True,
        "dev_login": True,
    }
