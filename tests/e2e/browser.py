"""The web UI in a real browser: Playwright (sync API) driving Debian's Chromium, and what
the browser tests do on the page — sign in (the development form, or the company's
account at the identity provider), connect ConnectWise, read the task list.

The tests import this module and then load it as a plugin for its fixtures, so pytest
cannot rewrite its asserts (PYTEST_DONT_REWRITE); they carry their own messages."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import TICKET_TYPES, assigned_open_ticket_ids, eventually, sandbox_keys
from playwright.sync_api import Browser, Page, Playwright, expect, sync_playwright

from syntaskio_devstack.stack import EmbeddedStack
from syntaskio_gateway.dependencies import SESSION_COOKIE

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 375, "height": 800}
# Generous: other test runs may share this machine's two cores.
WAIT_MS = 60_000
COMPANY_ID = "syntaskio"  # the sandbox's ConnectWise company
COMPANY_SIGN_IN = "Sign in with your company account"
DOCS_IMG = Path(__file__).parents[2] / "docs" / "img"
KELLY = "kbrown"  # the technician of the technician's-day browser tests
SERVICE_TICKET_IDS_BELOW = 200_000  # the sandbox numbers project tickets from 200001


# Per module, not per session: Playwright's sync API keeps an event loop running in this
# thread while it is open, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"The browser tests need Debian's Chromium at {CHROMIUM} "
            "(apt-get install chromium); Playwright's own browsers are not used."
        )
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies) per test, at desktop size."""
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def new_user() -> tuple[str, str]:
    """A fresh user in a fresh tenant: tests never see each other's tasks."""
    suffix = uuid.uuid4().hex[:8]
    return f"tech-{suffix}@acme-msp.example", f"tenant-{suffix}"


def sign_in(page: Page, system: EmbeddedStack, path: str = "/", name: str = "Alex Tech") -> str:
    """Signs in through the page's development sign-in form; returns the user id."""
    user, tenant = new_user()
    page.goto(f"{system.url('gateway')}{path}")
    form = page.locator("#login-form")
    form.get_by_label("User").fill(user)
    form.get_by_label("Tenant").fill(tenant)
    form.get_by_label("Name").fill(name)
    form.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.locator("#whoami-name")).to_contain_text(tenant)
    return user


def kellys_dashboard(page: Page, system: EmbeddedStack) -> list[str]:
    """Signed in as a technician of a new company, connected as the member `KELLY`, on
    the dashboard: the member's open service tickets, lowest number first (each test
    works on other ones)."""
    sign_in(page, system, name="Kelly Brown")
    connect_with_keys(page, system, KELLY)
    open_tasks(page)
    # The first sync over (the page shows its first tasks while it runs): what changes in
    # ConnectWise from now on comes after it.
    assert eventually(lambda: first_sync_done(page), timeout=60), "the first sync never ended"
    return sorted(
        (i for i in assigned_open_ticket_ids(system, KELLY) if int(i) < SERVICE_TICKET_IDS_BELOW),
        key=int,
    )


def authorize_at_provider(page: Page, system: EmbeddedStack, sub: str) -> None:
    """On the identity provider's (oidc-provider-mock's) login page: sign in as `sub`."""
    page.wait_for_url(f"{system.url('identity_provider')}/**")
    page.locator('input[name="sub"]').fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()


def sign_in_with_company_account(page: Page, system: EmbeddedStack, sub: str) -> None:
    """From the page's sign-in screen, through the identity provider as `sub`; returns
    once the browser is back at the gateway (signed in, or on the refusal page)."""
    page.get_by_role("link", name=COMPANY_SIGN_IN).click()
    authorize_at_provider(page, system, sub)
    page.wait_for_url(f"{system.url('gateway')}/**")


def session_cookie(page: Page) -> str | None:
    """The session cookie the page's browser profile holds (HttpOnly: not in the page)."""
    for cookie in page.context.cookies():
        if cookie.get("name") == SESSION_COOKIE:
            return cookie.get("value")
    return None


def screenshots_dir(tmp_path: Path) -> Path:
    """Where a test puts its screenshots: docs/img only when UPDATE_SCREENSHOTS=1 (make
    screenshots), otherwise the test's own temporary directory."""
    screenshots = DOCS_IMG if os.environ.get("UPDATE_SCREENSHOTS") == "1" else tmp_path
    screenshots.mkdir(parents=True, exist_ok=True)
    return screenshots


def site(system: EmbeddedStack) -> str:
    return f"http://{system.sandbox_site}"


def open_settings(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Settings").click()
    expect(page).to_have_url(f"{origin(page)}/settings")


def open_tasks(page: Page) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    expect(page.locator("#dashboard")).to_be_visible()


def origin(page: Page) -> str:
    return str(page.evaluate("window.location.origin"))


def approve_consent(
    page: Page, system: EmbeddedStack, member: str, back_to: str = "/settings"
) -> None:
    """On the sandbox's consent page: sign in as `member` and approve; back at our page
    `back_to` (the settings, or the admin console for the company's connection)."""
    page.wait_for_url(f"{system.url('sandbox')}/**")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Authorize")
    page.get_by_label("Sign in as").select_option(member)
    page.get_by_role("button", name="Approve").click()
    landing = re.escape(f"{system.url('gateway')}{back_to}")
    page.wait_for_url(re.compile(rf"^{landing}(\?|$)"))


def open_connect_forms(page: Page) -> None:
    """Unfolds "Connect ConnectWise" (the page unfolds it itself when nothing is connected)."""
    site_field = page.locator("#oauth-form").get_by_label("Site")
    if not site_field.is_visible():
        page.locator("#connect > summary").click()
    expect(site_field).to_be_visible()


def connect_with_oauth(page: Page, system: EmbeddedStack, member: str) -> None:
    """Connects through the settings page's OAuth form and the sandbox's consent page."""
    open_connect_forms(page)
    form = page.locator("#oauth-form")
    form.get_by_label("Site").fill(site(system))
    form.get_by_label("Company ID").fill(COMPANY_ID)
    form.get_by_role("button", name="Connect with ConnectWise").click()
    approve_consent(page, system, member)


def connect_with_keys(page: Page, system: EmbeddedStack, member: str) -> None:
    """Connects through the settings page's API-key form with the member's sandbox keys."""
    keys = sandbox_keys(system, member)
    open_settings(page)
    open_connect_forms(page)
    form = page.locator("#connect-form")
    form.get_by_label("Site").fill(site(system))
    form.get_by_label("Company ID").fill(keys["company_id"])
    form.get_by_label("Public key").fill(keys["public_key"])
    form.get_by_label("Private key").fill(keys["private_key"])
    form.get_by_role("button", name="Connect with API keys").click()
    expect(integration_state(page)).to_have_text("Active")
    # Nothing typed stays in the page once sent.
    expect(form.get_by_label("Private key")).to_have_value("")
    expect(form.get_by_label("Public key")).to_have_value("")


def integration_state(page: Page) -> Any:
    """The status pill of the (one) integration on the settings page."""
    return page.locator(".integration .state-pill")


def task_rows(page: Page) -> Any:
    return page.locator("#tasks > li.task")


def row_for(page: Page, external_id: str) -> Any:
    return page.locator(f'#tasks > li.task[data-external-id="{external_id}"]')


def shown_external_ids(page: Page, *source_types: str) -> set[str]:
    """The ConnectWise ids of the tasks of these types on the page."""
    ids: list[str] = page.eval_on_selector_all(
        "#tasks > li.task",
        """(rows, types) => rows
            .filter((row) => types.includes(row.dataset.sourceType))
            .map((row) => row.dataset.externalId)""",
        list(source_types),
    )
    return set(ids)


def shown_ticket_ids(page: Page) -> set[str]:
    """The ticket numbers of the service and project tickets on the page."""
    return shown_external_ids(page, *TICKET_TYPES)


def shown_task_ids(page: Page) -> set[str]:
    """The ids of every task on the page (tickets and phases)."""
    ids: list[str] = page.eval_on_selector_all(
        "#tasks > li.task", "(rows) => rows.map((row) => row.dataset.taskId)"
    )
    return set(ids)


def show_every_task(page: Page) -> None:
    """Pages through the list ("Load more") until it is all shown."""
    more = page.locator("#load-more")
    while more.is_visible():
        before = task_rows(page).count()
        more.click()
        expect(task_rows(page)).not_to_have_count(before)


def first_sync_done(page: Page) -> bool:
    """The page's user's connection has finished a sync (with the page's cookie)."""
    response = page.request.get(f"{origin(page)}/api/v1/integrations")
    assert response.ok, response.text()
    return any(
        ((i.get("sync") or {}).get("last_job") or {}).get("status") == "succeeded"
        for i in response.json()
    )


def page_tasks(page: Page, **params: str | int) -> list[dict[str, Any]]:
    """What the API says (with the page's own session cookie), for comparison."""
    response = page.request.get(f"{origin(page)}/api/v1/tasks", params={"limit": 500, **params})
    assert response.ok, response.text()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def no_horizontal_scroll(page: Page) -> bool:
    width: int = page.evaluate("document.scrollingElement.scrollWidth")
    return width <= page.viewport_size["width"] + 1 if page.viewport_size else False
