"""Signing in with the company's account in a real browser (Chromium, headless): the
sign-in screen's button, the identity provider's own login page (oidc-provider-mock, a
third-party OpenID Connect provider the test stack runs), back on the dashboard with the
tenant and roles the account's claims map to; signing out there and at the provider,
after which the old session cookie is refused; and a company Syntaskio does not know
being turned away with a page that says why.

Each test signs in as a fresh provider user (a new `sub`), whose claims it sets first."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from browser import (
    COMPANY_SIGN_IN,
    screenshots_dir,
    session_cookie,
    sign_in_with_company_account,
)
from playwright.sync_api import Page, expect

from syntaskio_devstack.stack import EmbeddedStack
from syntaskio_gateway.dependencies import SESSION_COOKIE

pytest_plugins = ["browser"]  # the browser and page fixtures


def provider_user(system: EmbeddedStack, **claims: Any) -> str:
    """A fresh user at the identity provider with these claims; returns its `sub`."""
    sub = f"person-{uuid.uuid4().hex[:8]}"
    idp = system.url("identity_provider")
    response = httpx.put(f"{idp}/users/{quote(sub, safe='')}", json=claims, timeout=30)
    assert response.status_code == 204, (response.status_code, response.text)
    return sub


def gateway_page(system: EmbeddedStack, path: str = "/") -> re.Pattern[str]:
    """The gateway's page at `path`, whatever its query string."""
    return re.compile(rf"^{re.escape(system.url('gateway') + path)}(\?.*)?$")


def expect_sign_in_screen(page: Page) -> None:
    expect(page.locator("#login")).to_be_visible()
    expect(page.get_by_role("link", name=COMPANY_SIGN_IN)).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    expect(page.locator("#whoami")).to_be_hidden()


def test_sign_in_with_the_company_account_and_sign_out(
    system: EmbeddedStack, page: Page, tmp_path: Path
) -> None:
    gateway = system.url("gateway")
    sub = provider_user(
        system,
        org="acme",
        groups=["syntaskio-technicians"],
        name="Dana Whitfield",
        email="dana.whitfield@acme.example",
    )
    page.goto(f"{gateway}/")
    expect_sign_in_screen(page)
    # A plain link (a top-level navigation) that comes back to this page.
    link = page.get_by_role("link", name=COMPANY_SIGN_IN)
    expect(link).to_have_attribute("href", "/api/v1/session/login?return_to=%2F")
    expect(link).to_have_class(re.compile(r"\bbutton-primary\b"))
    # The test stack also has the development login, as the second choice.
    expect(page.locator("#login-form")).to_be_visible()
    page.mouse.move(0, 0)
    page.screenshot(path=screenshots_dir(tmp_path) / "sign-in.png")

    sign_in_with_company_account(page, system, sub)
    expect(page).to_have_url(gateway_page(system, "/"))
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.locator("#dashboard")).to_be_visible()
    expect(page.locator("#whoami-name")).to_have_text("Dana Whitfield · acme-msp")
    expect(page.locator("#login")).to_be_hidden()
    me = page.request.get(f"{gateway}/api/v1/me")
    assert me.status == 200, (me.status, me.text())
    assert me.json()["tenant_id"] == "acme-msp", me.json()
    assert me.json()["name"] == "Dana Whitfield", me.json()
    assert me.json()["roles"] == ["technician"], me.json()
    old = session_cookie(page)
    assert old, f"no {SESSION_COOKIE} cookie after signing in: {page.context.cookies()}"

    # Signing out ends the provider's session too: its page, then back to the gateway.
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{system.url('identity_provider')}/oauth2/end_session**")
    page.get_by_role("button", name="End session").click()
    page.wait_for_url(gateway_page(system, "/"))
    expect_sign_in_screen(page)
    assert session_cookie(page) is None, page.context.cookies()

    # The old cookie is refused: the session was ended on the server, not just forgotten.
    refused = httpx.get(f"{gateway}/api/v1/me", cookies={SESSION_COOKIE: old}, timeout=30)
    assert refused.status_code == 401, (refused.status_code, refused.text)


def test_signing_in_from_settings_comes_back_there_with_the_admin_role(
    system: EmbeddedStack, page: Page
) -> None:
    sub = provider_user(system, org="globex", groups=["syntaskio-admins"], name="Ola Admin")
    page.goto(f"{system.url('gateway')}/settings")
    expect(page.get_by_role("link", name=COMPANY_SIGN_IN)).to_have_attribute(
        "href", "/api/v1/session/login?return_to=%2Fsettings"
    )
    sign_in_with_company_account(page, system, sub)
    expect(page).to_have_url(gateway_page(system, "/settings"))
    expect(page.get_by_role("heading", name="Integrations")).to_be_visible()
    expect(page.locator("#whoami-name")).to_have_text("Ola Admin · globex")
    me = page.request.get(f"{system.url('gateway')}/api/v1/me")
    assert me.status == 200, (me.status, me.text())
    assert (me.json()["tenant_id"], me.json()["roles"]) == ("globex", ["admin"]), me.json()


def test_a_company_syntaskio_does_not_know_is_turned_away(
    system: EmbeddedStack, page: Page
) -> None:
    sub = provider_user(
        system, org="initech", groups=["syntaskio-technicians"], name="Peter Gibbons"
    )
    page.goto(f"{system.url('gateway')}/")
    with page.expect_response(re.compile(r"/api/v1/session/callback\?")) as callback:
        sign_in_with_company_account(page, system, sub)
    assert callback.value.status == 403, (callback.value.status, callback.value.url)
    refusal = page.locator("#sign-in-refused")
    expect(refusal).to_have_text("Your company is not set up in Syntaskio. Ask your administrator.")
    assert session_cookie(page) is None, page.context.cookies()
    me = page.request.get(f"{system.url('gateway')}/api/v1/me")
    assert me.status == 401, (me.status, me.text())

    # The way back: the sign-in screen.
    page.get_by_role("link", name="Back to the sign-in page").click()
    expect(page).to_have_url(gateway_page(system, "/"))
    expect_sign_in_screen(page)


def test_an_open_page_renews_its_session_before_it_expires(
    system: EmbeddedStack, page: Page
) -> None:
    """The session's token lives an hour; the page renews it half way through (the
    page's clock is moved on, not waited for), and the renewed cookie is a working
    session of the same person."""
    sub = provider_user(system, org="acme", groups=["syntaskio-technicians"], name="Rae Renew")
    page.clock.install()
    page.goto(f"{system.url('gateway')}/")
    sign_in_with_company_account(page, system, sub)
    expect(page.locator("#whoami-name")).to_have_text("Rae Renew · acme-msp")
    first = session_cookie(page)
    assert first

    with page.expect_response(re.compile(r"/api/v1/session/renew$")) as renewal:
        page.clock.run_for("31:00")
    assert renewal.value.status == 200, (renewal.value.status, renewal.value.text())
    second = session_cookie(page)
    assert second
    assert second != first
    me = httpx.get(
        f"{system.url('gateway')}/api/v1/me", cookies={SESSION_COOKIE: second}, timeout=30
    )
    assert me.status_code == 200, me.text
    assert (me.json()["user_id"], me.json()["name"]) == (sub, "Rae Renew")
    expect(page.locator("#whoami-name")).to_have_text("Rae Renew · acme-msp")
