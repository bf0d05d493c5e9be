"""The company's journey in a real browser (Chromium, headless), end to end: everyone
signs in through the identity provider's own login page (oidc-provider-mock, with the
claims the test gives each person); the company's admin connects the company to the
sandbox with its API member's keys in the admin console, has its technicians proposed by
e-mail and confirms them; each technician then sees exactly their own ConnectWise work on
their dashboard, and not the other's; the admin pauses the connection and syncing stops
(no run, whatever is asked; a new ticket stays away); resumed, it syncs again.

The company is "hooli" (org claim "hooli"): it exists for this journey only, so its
connection disturbs no other test. It is disconnected at the end."""

from __future__ import annotations

import itertools
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
from browser import (
    WAIT_MS,
    origin,
    row_for,
    show_every_task,
    shown_ticket_ids,
    sign_in_with_company_account,
    site,
    task_rows,
)
from e2e_helpers import TICKET_TYPES, assigned_open_ticket_ids, connector, sandbox, sandbox_keys
from playwright.sync_api import Browser, Locator, Page, ViewportSize, expect

from syntaskio_devstack.stack import EmbeddedStack

pytest_plugins = ["browser"]  # the browser and page fixtures

TENANT = "hooli"
ORG = "hooli"  # the provider's org claim the auth-service maps to the tenant "hooli"
ADMINS, TECHNICIANS = "syntaskio-admins", "syntaskio-technicians"
API_MEMBER = "syntaskio-api"  # the sandbox's integration (API) member
LIVE = re.compile(r"^(Active|Syncing)$")
DESKTOP = ViewportSize(width=1280, height=800)
POLL_SECONDS = 5.0  # the connector's SYNC_POLL_SECONDS in the test stack (its default)
# Sign-ins are limited per address; each browser profile here comes from one of its own
# (the gateway trusts a loopback proxy's X-Forwarded-For).
_ADDRESSES = (f"198.51.100.{n}" for n in itertools.count(10))


def provider_user(system: EmbeddedStack, first: str, **claims: Any) -> str:
    """A fresh user at the identity provider with these claims; returns its `sub`."""
    sub = f"{first}-{uuid.uuid4().hex[:8]}"
    idp = system.url("identity_provider")
    response = httpx.put(f"{idp}/users/{quote(sub, safe='')}", json=claims, timeout=30)
    assert response.status_code == 204, (response.status_code, response.text)
    return sub


def technician_at_provider(system: EmbeddedStack, name: str) -> str:
    """A technician of hooli whose verified e-mail is a sandbox member's office e-mail."""
    email = f"{name.lower().replace(' ', '.')}@msp.example"
    return provider_user(
        system,
        name.split()[0].lower(),
        org=ORG,
        groups=[TECHNICIANS],
        name=name,
        email=email,
        email_verified=True,
    )


@contextmanager
def own_browser_profile(chromium: Browser) -> Iterator[Page]:
    """A page in a browser profile of its own (its own cookies), as the `page` fixture."""
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def sign_in_at_provider(page: Page, system: EmbeddedStack, sub: str, name: str) -> None:
    """From the gateway's sign-in screen through the provider's login page as `sub`, back
    on the dashboard as `name` of hooli."""
    page.context.set_extra_http_headers({"X-Forwarded-For": next(_ADDRESSES)})
    page.goto(f"{system.url('gateway')}/")
    sign_in_with_company_account(page, system, sub)
    expect(page.locator("#whoami-name")).to_have_text(f"{name} · {TENANT}")
    expect(page.locator("#dashboard")).to_be_visible()


def every_ticket_id(page: Page) -> set[str]:
    """The tickets on the dashboard as the gateway's API gives them to the page's own
    session (its cookie), page after page."""
    ids: set[str] = set()
    params: dict[str, str | float | bool] = {"limit": 500}
    while True:
        response = page.request.get(f"{origin(page)}/api/v1/tasks", params=params)
        assert response.ok, (response.status, response.text())
        found = response.json()
        ids |= {t["external_id"] for t in found["items"] if t["source_type"] in TICKET_TYPES}
        if not found.get("next_cursor"):
            return ids
        params["cursor"] = found["next_cursor"]


def wait_for_exactly(page: Page, expected: Any, timeout: float = 60.0) -> set[str]:
    """Waits until the dashboard (every page of it, "Load more" pressed) shows exactly the
    tickets `expected()` says; returns them. The list follows live updates by itself."""
    deadline = time.monotonic() + timeout
    while True:
        show_every_task(page)
        wanted: set[str] = expected()
        shown = shown_ticket_ids(page)
        if shown == wanted:
            return shown
        if time.monotonic() > deadline:
            raise AssertionError(
                f"the dashboard shows {sorted(shown, key=int)}, "
                f"ConnectWise says {sorted(wanted, key=int)}: "
                f"missing {sorted(wanted - shown, key=int)}, "
                f"extra {sorted(shown - wanted, key=int)}"
            )
        time.sleep(1)


def company_card(page: Page) -> Locator:
    return page.locator('#admin-connections > li[data-scope="tenant"]')


def mapping_row(page: Page, user_id: str) -> Locator:
    return page.locator(f'#admin-mapping-wrap tr[data-user-id="{user_id}"]')


def console_history(page: Page) -> list[dict[str, Any]]:
    """The company connection's sync history as the console loads it afresh (its panel
    folded and unfolded again); waits until the page shows every run it loaded."""
    card = company_card(page)
    history = card.locator(".history")
    summary = history.locator("summary")
    if history.get_attribute("open") is not None:
        summary.click()
        expect(history).not_to_have_attribute("open", re.compile(".*"))
    with page.expect_response(re.compile(r"/api/v1/admin/integrations/[^/]+/sync-jobs")) as loaded:
        summary.click()
    assert loaded.value.ok, (loaded.value.status, loaded.value.text())
    jobs: list[dict[str, Any]] = loaded.value.json()
    expect(card.locator(".history-table tbody tr")).to_have_count(len(jobs))
    return jobs


def finished_history(page: Page, timeout: float = 60.0) -> list[dict[str, Any]]:
    """The console's sync history once no run of it is running."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = console_history(page)
        if all(job["status"] != "running" for job in jobs):
            return jobs
        assert time.monotonic() < deadline, f"a run never finished: {jobs}"
        time.sleep(1)


def test_an_admin_connects_the_company_and_each_technician_sees_exactly_their_work(
    system: EmbeddedStack, page: Page, chromium: Browser
) -> None:
    gateway = system.url("gateway")
    admin_sub = provider_user(system, "hana", org=ORG, groups=[ADMINS], name="Hana Admin")
    alex_sub = technician_at_provider(system, "Alex Tech")  # atech's office e-mail
    beth_sub = technician_at_provider(system, "Beth Jones")  # bjones's
    atech_only = assigned_open_ticket_ids(system, "atech") - assigned_open_ticket_ids(
        system, "bjones"
    )
    bjones_only = assigned_open_ticket_ids(system, "bjones") - assigned_open_ticket_ids(
        system, "atech"
    )
    assert atech_only, "the sandbox gives atech work of his own"
    assert bjones_only, "the sandbox gives bjones work of her own"

    with own_browser_profile(chromium) as alex, own_browser_profile(chromium) as beth:
        # Alex signs in before the company is connected: nothing to see yet.
        sign_in_at_provider(alex, system, alex_sub, "Alex Tech")
        expect(alex.locator("#tasks-empty-title")).to_have_text(
            "Connect ConnectWise to see your work"
        )
        me = alex.request.get(f"{gateway}/api/v1/me")
        assert me.ok, me.text()
        assert (me.json()["tenant_id"], me.json()["roles"]) == (TENANT, ["technician"])

        # The admin signs in at the provider and opens the console.
        sign_in_at_provider(page, system, admin_sub, "Hana Admin")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
        expect(page).to_have_url(f"{gateway}/admin")
        expect(page.get_by_role("heading", name="Admin console", level=1)).to_be_visible()
        expect(page.locator("#admin-connections-empty")).to_be_visible()

        # Connect the company with its API member's keys.
        keys = sandbox_keys(system, API_MEMBER)
        form = page.locator("#admin-connect-form")
        expect(form).to_be_visible()
        form.get_by_label("Site").fill(site(system))
        form.get_by_label("Company ID").fill(keys["company_id"])
        form.get_by_label("Public key").fill(keys["public_key"])
        form.get_by_label("Private key").fill(keys["private_key"])
        form.get_by_role("button", name="Connect the company").click()
        expect(page.locator("#admin-status")).to_contain_text("The company is connected")
        card = company_card(page)
        expect(card.locator(".state-pill")).to_have_text(LIVE)
        expect(card.locator(".card-sub")).to_contain_text("Connected by Hana Admin with API keys")
        integration_id = card.get_attribute("data-integration-id")
        assert integration_id
        new_ticket: str | None = None
        try:
            # Alex had signed in: proposed by his e-mail as the company was connected.
            alex_row = mapping_row(page, alex_sub)
            expect(alex_row).to_have_attribute("data-state", "proposed")
            expect(alex_row.get_by_label("ConnectWise member of Alex Tech")).to_have_value("atech")

            # Beth signs in afterwards: "Propose by e-mail" finds her.
            sign_in_at_provider(beth, system, beth_sub, "Beth Jones")
            page.locator("#admin-refresh").click()
            beth_row = mapping_row(page, beth_sub)
            expect(beth_row).to_have_attribute("data-state", "none")
            page.get_by_role("button", name="Propose by e-mail").click()
            expect(page.locator("#admin-mapping-feedback")).to_have_text(
                "Proposed 1 mapping by e-mail. Confirm them to start syncing."
            )
            expect(beth_row).to_have_attribute("data-state", "proposed")
            expect(beth_row.get_by_label("ConnectWise member of Beth Jones")).to_have_value(
                "bjones"
            )
            # Proposed is not synced: her dashboard says she waits for the admin.
            beth.reload()
            expect(beth.locator("#tasks-empty-title")).to_have_text(
                "Your ConnectWise member is not confirmed yet"
            )
            expect(task_rows(beth)).to_have_count(0)

            # The admin confirms both.
            for row, name, member in (
                (alex_row, "Alex Tech", "atech"),
                (beth_row, "Beth Jones", "bjones"),
            ):
                row.get_by_role("button", name="Confirm").click()
                expect(row).to_have_attribute("data-state", "confirmed")
                expect(page.locator("#admin-mapping-feedback")).to_have_text(
                    f"Confirmed: {name} is {member} in ConnectWise."
                )

            # Each technician's dashboard: exactly their own work, not the other's.
            alex.goto(f"{gateway}/")
            beth.goto(f"{gateway}/")
            alexs = wait_for_exactly(alex, lambda: assigned_open_ticket_ids(system, "atech"))
            bethes = wait_for_exactly(beth, lambda: assigned_open_ticket_ids(system, "bjones"))
            assert alexs.isdisjoint(bjones_only), alexs & bjones_only
            assert bethes.isdisjoint(atech_only), bethes & atech_only
            # What the page shows is what the API gives each of them, every page of it.
            assert every_ticket_id(alex) == alexs
            assert every_ticket_id(beth) == bethes
            expect(row_for(alex, min(atech_only, key=int))).to_be_visible()
            expect(row_for(beth, min(atech_only, key=int))).to_have_count(0)

            # Paused: within one scheduler poll no run starts, whatever is asked.
            card.get_by_role("button", name="Pause").click()
            expect(card.locator(".state-pill")).to_have_text("Paused")
            expect(card).to_contain_text("Not until resumed")
            expect(card.get_by_role("button", name="Sync now")).to_be_hidden()
            time.sleep(POLL_SECONDS + 1)  # a run that had started finishes; none starts after
            before = finished_history(page)
            created = sandbox(
                system,
                "POST",
                "/tickets",
                json={"summary": "New work while the company is paused", "owner": "atech"},
            ).json()
            new_ticket = str(created["id"])
            assert new_ticket in assigned_open_ticket_ids(system, "atech")
            refused = page.request.post(
                f"{gateway}/api/v1/admin/integrations/{integration_id}/sync"
            )
            assert refused.status == 409, (refused.status, refused.text())
            # Asked of the connector itself too, as if the gateway had let it through.
            connector(system, "POST", f"/integrations/{integration_id}/sync")
            time.sleep(2 * POLL_SECONDS)
            after = console_history(page)
            assert [j["id"] for j in after] == [j["id"] for j in before], (before, after)
            assert new_ticket not in every_ticket_id(alex)
            # Reloaded, Alex's dashboard is all his work but the new ticket.
            alex.reload()
            wait_for_exactly(alex, lambda: assigned_open_ticket_ids(system, "atech") - {new_ticket})
            expect(row_for(alex, new_ticket)).to_have_count(0)
            expect(card.locator(".state-pill")).to_have_text("Paused")

            # Resumed: it syncs again at once, and the new ticket reaches Alex only.
            card.get_by_role("button", name="Resume").click()
            expect(card.locator(".state-pill")).to_have_text(LIVE)
            expect(card.locator(".card-feedback")).to_have_text("Resumed. It syncs again now.")
            wait_for_exactly(alex, lambda: assigned_open_ticket_ids(system, "atech"))
            expect(row_for(alex, new_ticket)).to_be_visible()
            expect(card.locator('.history-table tbody tr[data-trigger="resumed"]')).to_have_count(1)
            assert new_ticket not in every_ticket_id(beth)
            expect(row_for(beth, new_ticket)).to_have_count(0)
        finally:
            # Not synced for the rest of the session; the new ticket closed again.
            page.request.delete(f"{gateway}/api/v1/admin/integrations/{integration_id}")
            if new_ticket is not None:
                sandbox(system, "POST", f"/tickets/{new_ticket}/close")
