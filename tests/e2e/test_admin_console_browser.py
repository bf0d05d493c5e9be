"""The admin console (/admin) in a real browser (Chromium, headless) against the whole
running system: an admin connects the company to the sandbox with its API member's keys,
has technicians proposed by e-mail (the sandbox's members have `first.last@msp.example`
office e-mails), confirms a mapping, is told why a member ConnectWise does not have is
refused, removes a mapping; pauses and resumes, syncs now and fully, disconnects (after
confirming); filters the audit log. A technician asks for their mapping on the settings
page, and is told the console is for admins.

Each test has a company (tenant) of its own. Only reads happen in ConnectWise."""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import approve_consent, screenshots_dir, site
from e2e_helpers import eventually, sandbox_keys
from playwright.sync_api import Browser, Locator, Page, expect

from syntaskio_devstack.stack import EmbeddedStack

pytest_plugins = ["browser"]  # the browser and page fixtures

API_MEMBER = "syntaskio-api"  # the sandbox's integration (API) member
MSP_DOMAIN = "msp.example"
ADMIN_ROLE_NEEDED = "This needs the admin role in your company."
LIVE = re.compile(r"^(Active|Syncing)$")
TECHNICIAN = ("technician",)
ADMIN = ("technician", "admin")
# Sign-ins are limited per address (20 a minute) and the other tests of the session sign in
# from 127.0.0.1: each sign-in here comes from an address of its own (the gateway trusts a
# loopback proxy's X-Forwarded-For).
_ADDRESSES = (f"203.0.113.{n}" for n in itertools.cycle(range(1, 240)))


@dataclass(frozen=True)
class Person:
    user_id: str
    name: str
    email: str | None = None

    @property
    def first(self) -> str:
        return self.name.split()[0]


def person(name: str, email: str | None = None) -> Person:
    first = name.split()[0].lower()
    return Person(f"{first}-{uuid.uuid4().hex[:6]}@acme-msp.example", name, email)


def technician(name: str) -> Person:
    """Someone whose e-mail is a sandbox member's office e-mail."""
    return person(name, f"{name.lower().replace(' ', '.')}@{MSP_DOMAIN}")


@dataclass
class Company:
    tenant_id: str
    admin: Person


@pytest.fixture
def company() -> Company:
    return Company(f"company-{uuid.uuid4().hex[:10]}", person("Ada Admin"))


@contextmanager
def session_of(
    system: EmbeddedStack, tenant_id: str, someone: Person, roles: tuple[str, ...] = TECHNICIAN
) -> Iterator[httpx.Client]:
    """`someone` signed in at the gateway's API, as they are named (a sign-in renames)."""
    with httpx.Client(
        base_url=system.url("gateway"),
        timeout=30,
        headers={"X-Forwarded-For": next(_ADDRESSES)},
    ) as client:
        body = {
            "user_id": someone.user_id,
            "tenant_id": tenant_id,
            "name": someone.name,
            "roles": list(roles),
            **({"email": someone.email} if someone.email else {}),
        }
        response = client.post("/api/v1/session/dev-login", json=body)
        assert response.status_code == 201, response.text
        yield client


def has_signed_in(system: EmbeddedStack, company: Company, *people: Person) -> None:
    """The people sign in once (so the admin can map them), outside the browser."""
    for someone in people:
        with session_of(system, company.tenant_id, someone):
            pass


def sign_in_as(
    page: Page, system: EmbeddedStack, tenant_id: str, someone: Person, role: str, path: str
) -> None:
    """Signs in through the page's development form: name, e-mail and role."""
    page.context.set_extra_http_headers({"X-Forwarded-For": next(_ADDRESSES)})
    page.goto(f"{system.url('gateway')}{path}")
    form = page.locator("#login-form")
    form.get_by_label("User").fill(someone.user_id)
    form.get_by_label("Tenant").fill(tenant_id)
    form.get_by_label("Name").fill(someone.name)
    form.get_by_label("E-mail").fill(someone.email or "")
    form.get_by_label("Role").select_option(role)
    form.get_by_role("button", name="Sign in").click()
    expect(page.locator("#whoami-name")).to_contain_text(tenant_id)


def open_console(page: Page, system: EmbeddedStack, company: Company) -> None:
    sign_in_as(page, system, company.tenant_id, company.admin, "admin", "/")
    nav = page.get_by_role("navigation", name="Main")
    nav.get_by_role("link", name="Admin").click()
    expect(page).to_have_url(f"{system.url('gateway')}/admin")
    expect(page.get_by_role("heading", name="Admin console", level=1)).to_be_visible()
    expect(page.locator("#admin-body")).to_be_visible()


def api_member_keys(system: EmbeddedStack) -> dict[str, Any]:
    keys = sandbox_keys(system, API_MEMBER)
    return {
        "site": site(system),
        "company_id": keys["company_id"],
        "public_key": keys["public_key"],
        "private_key": keys["private_key"],
    }


@pytest.fixture
def admin_api(system: EmbeddedStack, company: Company) -> Iterator[httpx.Client]:
    """The company's admin at the gateway's API (to set the scene, and to check)."""
    with session_of(system, company.tenant_id, company.admin, ADMIN) as client:
        yield client


def connect_company(admin_api: httpx.Client, system: EmbeddedStack) -> dict[str, Any]:
    connected = admin_api.post(
        "/api/v1/admin/integrations/connectwise/api-key", json=api_member_keys(system)
    )
    assert connected.status_code == 201, connected.text
    integration: dict[str, Any] = connected.json()
    return integration


@pytest.fixture
def connected(system: EmbeddedStack, admin_api: httpx.Client) -> Iterator[dict[str, Any]]:
    """The company, connected (and disconnected afterwards: not synced for the rest of the
    session)."""
    integration = connect_company(admin_api, system)
    yield integration
    admin_api.delete(f"/api/v1/admin/integrations/{integration['id']}")


def company_card(page: Page) -> Locator:
    return page.locator('#admin-connections > li[data-scope="tenant"]')


def mapping_row(page: Page, someone: Person) -> Locator:
    return page.locator(f'#admin-mapping-wrap tr[data-user-id="{someone.user_id}"]')


def filter_audit(page: Page, label: str, value: str) -> None:
    """Chooses a filter of the audit log; returns once the log is shown with it."""
    page.locator("#audit-filters").get_by_label(label).select_option(value)
    expect(page.locator("#audit-wrap")).to_have_attribute("aria-busy", "false")


def audit_actions(page: Page) -> list[str]:
    """The actions the audit log shows, newest first, but the connector's credential
    leases (one per sync: they come and go between the others)."""
    actions: list[str] = page.eval_on_selector_all(
        "#audit-wrap tbody tr", "(rows) => rows.map((row) => row.dataset.action)"
    )
    return [action for action in actions if not action.startswith("credentials.")]


def test_an_admin_connects_the_company_and_maps_its_technicians(
    system: EmbeddedStack, page: Page, company: Company, admin_api: httpx.Client, tmp_path: Path
) -> None:
    alex, beth = technician("Alex Tech"), technician("Beth Jones")
    nobody = person("Noel Outsider", "noel@elsewhere.example")  # no member has this e-mail
    has_signed_in(system, company, alex, beth, nobody)
    open_console(page, system, company)
    expect(page.locator("#admin-connections-empty")).to_be_visible()
    expect(mapping_row(page, alex)).to_have_count(0)
    expect(page.locator("#admin-mapping-wrap")).to_contain_text("Connect the company first")

    # Connect the company with its API member's keys; they do not stay in the page.
    keys = api_member_keys(system)
    form = page.locator("#admin-connect-form")
    expect(form).to_be_visible()  # unfolded: nothing is connected
    form.get_by_label("Site").fill(keys["site"])
    form.get_by_label("Company ID").fill(keys["company_id"])
    form.get_by_label("Public key").fill(keys["public_key"])
    form.get_by_label("Private key").fill(keys["private_key"])
    form.get_by_role("button", name="Connect the company").click()
    expect(page.locator("#admin-status")).to_contain_text("The company is connected")
    card = company_card(page)
    expect(card.locator(".state-pill")).to_have_text(LIVE)
    expect(card.locator(".badge-scope")).to_have_text("Company")
    expect(card.locator(".card-sub")).to_contain_text("Connected by Ada Admin with API keys")
    expect(card).to_contain_text(re.compile(r"used \d+ of 1000 this hour"))
    expect(page.locator("#admin-connect")).to_be_hidden()  # one company connection
    expect(form.get_by_label("Private key")).to_have_value("")

    # Connecting proposed members by e-mail to those who had signed in.
    for someone, member in ((alex, "atech"), (beth, "bjones")):
        row = mapping_row(page, someone)
        expect(row).to_have_attribute("data-state", "proposed")
        expect(row.get_by_label(f"ConnectWise member of {someone.name}")).to_have_value(member)
    expect(mapping_row(page, nobody)).to_have_attribute("data-state", "none")

    # Someone signs in afterwards: "Propose by e-mail" finds them.
    carlos = technician("Carlos Miller")
    has_signed_in(system, company, carlos)
    page.locator("#admin-refresh").click()
    expect(mapping_row(page, carlos)).to_have_attribute("data-state", "none")
    page.get_by_role("button", name="Propose by e-mail").click()
    expect(page.locator("#admin-mapping-feedback")).to_have_text(
        "Proposed 1 mapping by e-mail. Confirm them to start syncing."
    )
    expect(mapping_row(page, carlos)).to_have_attribute("data-state", "proposed")
    expect(mapping_row(page, nobody)).to_have_attribute("data-state", "none")

    # Confirm Alex's proposal.
    row = mapping_row(page, alex)
    row.get_by_role("button", name="Confirm").click()
    expect(mapping_row(page, alex)).to_have_attribute("data-state", "confirmed")
    expect(page.locator("#admin-mapping-feedback")).to_have_text(
        f"Confirmed: {alex.name} is atech in ConnectWise."
    )
    expect(mapping_row(page, alex).get_by_role("button", name="Confirm")).to_be_hidden()

    # Change Beth's to a member ConnectWise does not have: refused, in words, nothing changed.
    row = mapping_row(page, beth)
    row.get_by_label(f"ConnectWise member of {beth.name}").fill("nobody-zz")
    row.get_by_role("button", name="Change").click()
    expect(row.locator(".row-error")).to_have_text("ConnectWise has no member 'nobody-zz'.")
    expect(row).to_have_attribute("data-state", "proposed")
    # Nor a member already mapped to Alex.
    row.get_by_label(f"ConnectWise member of {beth.name}").fill("atech")
    row.get_by_role("button", name="Change").click()
    expect(row.locator(".row-error")).to_contain_text("already mapped to someone else")
    # Map the outsider by hand to a member of their own.
    row = mapping_row(page, nobody)
    row.get_by_label(f"ConnectWise member of {nobody.name}").fill("ewong")
    row.get_by_role("button", name="Map").click()
    expect(mapping_row(page, nobody)).to_have_attribute("data-state", "confirmed")
    mappings = admin_api.get(
        f"/api/v1/admin/integrations/{card.get_attribute('data-integration-id')}/mappings"
    ).json()
    assert {(m["user_id"], m["member_identifier"], m["state"]) for m in mappings} == {
        (alex.user_id, "atech", "confirmed"),
        (beth.user_id, "bjones", "proposed"),
        (carlos.user_id, "cmiller", "proposed"),
        (nobody.user_id, "ewong", "confirmed"),
    }

    # Remove Alex's mapping.
    mapping_row(page, alex).get_by_role("button", name="Remove").click()
    expect(mapping_row(page, alex)).to_have_attribute("data-state", "none")
    expect(mapping_row(page, alex).get_by_role("button", name="Remove")).to_be_hidden()
    expect(page.locator("#admin-mapping-feedback")).to_have_text(f"Removed {alex.name}'s mapping.")

    # Every action is in the audit log, newest first.
    expect(page.locator('#audit-wrap tbody tr[data-action="mapping.removed"]')).to_have_count(1)
    actions = audit_actions(page)
    assert actions[0] == "mapping.removed", actions
    for action in ("connected", "mapping.proposed", "mapping.confirmed"):
        assert action in actions, actions
    page.mouse.move(0, 0)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=screenshots_dir(tmp_path) / "admin-console.png", full_page=True)


def test_pause_resume_sync_now_and_full_resync(
    system: EmbeddedStack, page: Page, company: Company, connected: dict[str, Any]
) -> None:
    open_console(page, system, company)
    card = company_card(page)
    expect(card.locator(".state-pill")).to_have_text(LIVE)

    card.get_by_role("button", name="Pause").click()
    expect(card.locator(".state-pill")).to_have_text("Paused")
    expect(card.locator(".card-feedback")).to_contain_text("Paused. Nothing syncs")
    expect(card.locator(".card-reason")).to_contain_text("nothing is synced or written back")
    expect(card).to_contain_text("Not until resumed")
    for hidden in ("Pause", "Sync now", "Full resync"):
        expect(card.get_by_role("button", name=hidden)).to_be_hidden()
    refused = page.request.post(
        f"{system.url('gateway')}/api/v1/admin/integrations/{connected['id']}/sync"
    )
    assert refused.status == 409, refused.text()

    card.get_by_role("button", name="Resume").click()
    expect(card.locator(".state-pill")).to_have_text(LIVE)
    expect(card.locator(".card-feedback")).to_have_text("Resumed. It syncs again now.")
    expect(card.get_by_role("button", name="Resume")).to_be_hidden()

    # Sync now, then a full resync: each a manual run in the history.
    card.locator(".history > summary").click()
    history = card.locator(".history-table tbody tr")
    expect(history.first).to_be_visible()
    card.get_by_role("button", name="Sync now").click()
    expect(card.locator(".card-feedback")).to_have_text(
        "Sync requested. It runs as soon as the API budget allows."
    )
    manual = card.locator('.history-table tbody tr[data-trigger="manual"]')
    expect(manual.first).to_be_visible()
    before = manual.count()
    card.get_by_role("button", name="Full resync").click()
    expect(card.locator(".card-feedback")).to_contain_text("Full resync requested")
    expect(manual).not_to_have_count(before)
    # The newest manual run listed everything again.
    expect(manual.first.locator(".job-listing")).to_have_text("Full")

    expect(page.locator('#audit-wrap tbody tr[data-action="resumed"]')).to_have_count(1)
    actions = audit_actions(page)
    assert actions[:2] == ["resumed", "paused"], actions


def test_disconnecting_asks_first(
    system: EmbeddedStack, page: Page, company: Company, connected: dict[str, Any]
) -> None:
    open_console(page, system, company)
    card = company_card(page)
    expect(card.locator(".state-pill")).to_have_text(LIVE)

    card.get_by_role("button", name="Disconnect").click()
    dialog = page.locator("#admin-disconnect-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("every mapped technician's company tasks leave their dashboards")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(card.locator(".state-pill")).to_have_text(LIVE)

    card.get_by_role("button", name="Disconnect").click()
    dialog.get_by_role("button", name="Disconnect").click()
    expect(card.locator(".state-pill")).to_have_text("Disconnected")
    expect(page.locator("#admin-status")).to_contain_text("Disconnected")
    for gone in ("Pause", "Sync now", "Full resync", "Disconnect"):
        expect(card.get_by_role("button", name=gone)).to_be_hidden()
    # The company can be connected again; there is nothing to map under a disconnected one.
    expect(page.locator("#admin-connect")).to_be_visible()
    expect(page.locator("#admin-mapping-wrap")).to_contain_text("Connect the company first")
    expect(page.locator('#audit-wrap tbody tr[data-action="disconnected"]')).to_have_count(1)
    assert audit_actions(page)[0] == "disconnected", audit_actions(page)


def test_the_audit_log_is_filtered_by_action_user_and_connection(
    system: EmbeddedStack,
    page: Page,
    company: Company,
    admin_api: httpx.Client,
    connected: dict[str, Any],
) -> None:
    alex, beth = technician("Alex Tech"), person("Beth Jones")  # Beth: no member e-mail
    has_signed_in(system, company, alex)
    mappings = f"/api/v1/admin/integrations/{connected['id']}/mappings"
    assert admin_api.post(f"{mappings}/propose").status_code == 200
    confirmed = admin_api.put(f"{mappings}/{alex.user_id}", json={"member_identifier": "atech"})
    assert confirmed.status_code == 200, confirmed.text
    # A technician's own connection in the same company (Beth's: the company's does not
    # sync her), for the connection filter.
    with session_of(system, company.tenant_id, beth) as beths:
        keys = sandbox_keys(system, "bjones")
        own = beths.post(
            "/api/v1/integrations/connectwise/api-key",
            json={
                **{k: keys[k] for k in ("company_id", "public_key", "private_key")},
                "site": site(system),
            },
        )
        assert own.status_code == 201, own.text
    try:
        open_console(page, system, company)
        filters = page.locator("#audit-filters")
        rows = page.locator("#audit-wrap tbody tr")
        expect(rows.first).to_be_visible()
        assert {"connected", "mapping.proposed", "mapping.confirmed"} <= set(audit_actions(page))

        filter_audit(page, "Action", "mapping.confirmed")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text("Mapping confirmed")
        expect(rows.first).to_contain_text("for: Alex Tech · member: atech")
        expect(rows.first).to_contain_text("Ada Admin")

        filters.get_by_role("button", name="Clear filters").click()
        expect(page.locator("#audit-wrap")).to_have_attribute("aria-busy", "false")
        expect(filters.get_by_label("Action")).to_have_value("")
        filter_audit(page, "User", beth.user_id)
        # What she did: connect her own connection.
        assert audit_actions(page) == ["connected"], audit_actions(page)
        expect(rows.first).to_contain_text("Beth Jones")

        filter_audit(page, "User", "")
        filter_audit(page, "Connection", own.json()["id"])
        assert audit_actions(page) == ["connected"], audit_actions(page)
        filter_audit(page, "Connection", connected["id"])
        actions = audit_actions(page)
        assert {"connected", "mapping.proposed", "mapping.confirmed"} <= set(actions), actions

        # Both: nothing was mapped on her own connection.
        filter_audit(page, "Connection", own.json()["id"])
        filter_audit(page, "Action", "mapping.confirmed")
        expect(page.locator("#audit-wrap")).to_have_text(
            "Nothing in the audit log matches these filters."
        )
    finally:
        admin_api.delete(f"/api/v1/admin/integrations/{own.json()['id']}")


def test_a_technician_requests_a_mapping_on_the_settings_page(
    system: EmbeddedStack,
    page: Page,
    company: Company,
    admin_api: httpx.Client,
    connected: dict[str, Any],
) -> None:
    beth = technician("Beth Jones")
    sign_in_as(page, system, company.tenant_id, beth, "technician", "/settings")
    panel = page.locator("#company")
    expect(panel).to_be_visible()
    expect(panel.locator("#company-state")).to_have_text("Active")
    expect(panel.locator("#company-site")).to_contain_text(connected["company_id"])
    expect(panel.locator("#company-mapping")).to_have_attribute("data-state", "none")
    expect(panel.locator("#company-mapping")).to_contain_text("not mapped")
    form = panel.locator("#mapping-request-form")
    expect(form.locator("#mapping-request-hint")).to_have_text(
        f"Leave it blank to be matched by your e-mail ({beth.email})."
    )
    # Her own connection's forms are not pressed on her: the company's brings her work.
    expect(page.locator("#connect-form")).to_be_hidden()

    # A member ConnectWise does not have: refused, in words.
    form.get_by_label("ConnectWise member").fill("nobody-zz")
    form.get_by_role("button", name="Request mapping").click()
    expect(form.locator("#mapping-request-error")).to_have_text(
        "ConnectWise has no member 'nobody-zz'."
    )
    expect(panel.locator("#company-mapping")).to_have_attribute("data-state", "none")

    # Blank: by her e-mail.
    form.get_by_label("ConnectWise member").fill("")
    form.get_by_role("button", name="Request mapping").click()
    expect(panel.locator("#company-mapping")).to_have_attribute("data-state", "requested")
    expect(panel.locator("#company-mapping")).to_contain_text("Requested: Beth Jones (bjones)")
    expect(form.locator("#mapping-request-feedback")).to_have_text(
        "Mapping to bjones requested. An admin confirms it."
    )
    expect(form.locator("#mapping-request-error")).to_have_text("")

    # The admin sees it requested, and confirms it; her page follows.
    mappings = f"/api/v1/admin/integrations/{connected['id']}/mappings"

    def requested() -> bool:
        listed = admin_api.get(mappings).json()
        return any(
            m["user_id"] == beth.user_id
            and m["state"] == "requested"
            and m["origin"] == "technician"
            for m in listed
        )

    assert eventually(requested, timeout=10)
    confirmed = admin_api.put(f"{mappings}/{beth.user_id}", json={"member_identifier": "bjones"})
    assert confirmed.status_code == 200, confirmed.text
    expect(panel.locator("#company-mapping")).to_have_attribute("data-state", "confirmed")
    expect(panel.locator("#company-mapping")).to_contain_text(
        "Confirmed: you are Beth Jones (bjones) in ConnectWise."
    )


def test_the_console_is_for_admins(
    system: EmbeddedStack, page: Page, company: Company, connected: dict[str, Any]
) -> None:
    tom = technician("Tom Tech")
    sign_in_as(page, system, company.tenant_id, tom, "technician", "/")
    nav = page.get_by_role("navigation", name="Main")
    expect(nav.get_by_role("link", name="Settings")).to_be_visible()
    expect(nav.get_by_role("link", name="Admin")).to_be_hidden()

    page.goto(f"{system.url('gateway')}/admin")
    expect(page.locator("#admin-refused")).to_be_visible()
    expect(page.locator("#admin-refused-text")).to_have_text(ADMIN_ROLE_NEEDED)
    expect(page.locator("#admin-body")).to_be_hidden()
    expect(page.locator("#admin-connections > li")).to_have_count(0)


def test_company_settings_are_kept_and_used_by_the_companys_technicians(
    system: EmbeddedStack,
    page: Page,
    chromium: Browser,
    company: Company,
    admin_api: httpx.Client,
    connected: dict[str, Any],
) -> None:
    alex = technician("Alex Tech")  # atech's office e-mail
    has_signed_in(system, company, alex)
    mapped = admin_api.put(
        f"/api/v1/admin/integrations/{connected['id']}/mappings/{alex.user_id}",
        json={"member_identifier": "atech"},
    )
    assert mapped.status_code == 200, mapped.text

    open_console(page, system, company)
    form = page.locator("#company-settings-form")
    enabled = form.get_by_label("ConnectWise is on for the company")
    expect(enabled).to_be_checked()
    minutes = form.get_by_label("Time entries default to (minutes)")
    expect(minutes).to_have_value("15")
    minutes.fill("30")
    form.get_by_label(re.compile("Logging a change moves the ticket to status")).fill(
        "Waiting on Client"
    )
    form.get_by_role("button", name="Save settings").click()
    expect(page.locator("#company-settings-feedback")).to_have_text("Settings saved.")
    filter_audit(page, "Action", "settings.changed")
    assert audit_actions(page) == ["settings.changed"]

    # Alex's time entries now default to half an hour.
    context = chromium.new_context()
    try:
        tech = context.new_page()
        sign_in_as(tech, system, company.tenant_id, alex, "technician", "/")
        first = tech.locator("li.task").first
        expect(first).to_be_visible(timeout=60_000)
        first.get_by_role("button", name="Log time").click()
        expect(first.get_by_label("Hours")).to_have_value("0.5")
    finally:
        context.close()

    # Logging a change moves the ticket to the company's status where its board has one
    # ("Service Desk" has "Waiting on Client").
    with session_of(system, company.tenant_id, alex) as alex_api:
        tasks = alex_api.get("/api/v1/tasks", params={"limit": 200}).json()["items"]
        task = next(
            t
            for t in tasks
            if t["source_type"] == "service_ticket"
            and (t["source_data"].get("board") or {}).get("name") == "Service Desk"
            and t["status"] != "done"
        )
        logged = alex_api.post(
            f"/api/v1/tasks/{task['id']}/log-change",
            json={"note": {"text": "Asked the customer for the serial number."}},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert logged.status_code == 202, logged.text

        def outcome() -> dict[str, Any] | None:
            seen: dict[str, Any] = alex_api.get(logged.json()["status_url"]).json()
            return seen if seen["status"] not in ("pending", "running") else None

        finished = eventually(outcome)
        assert finished, "the logged change did not finish"
        assert finished["status"] == "succeeded", finished
        assert finished["ticket_status"]["name"] == "Waiting on Client", finished

        # Unless the technician leaves the status as it is (with nothing else besides).
        both = {"note": {"text": "Left a voicemail."}, "keep_status": True, "close": True}
        refused = alex_api.post(
            f"/api/v1/tasks/{task['id']}/log-change",
            json=both,
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert refused.status_code == 422, refused.text
        logged = alex_api.post(
            f"/api/v1/tasks/{task['id']}/log-change",
            json={"note": {"text": "Left a voicemail."}, "keep_status": True},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert logged.status_code == 202, logged.text
        kept = eventually(outcome)
        assert kept, "the second logged change did not finish"
        assert kept["status"] == "succeeded", kept
        assert kept["ticket_status"] is None, kept  # no status step at all

    # Turned off: said so when saved; the settings show it on the next visit.
    enabled.uncheck()
    form.get_by_role("button", name="Save settings").click()
    expect(page.locator("#company-settings-feedback")).to_contain_text("ConnectWise is off")
    page.reload()
    expect(page.locator("#admin-body")).to_be_visible()
    expect(form.get_by_label("ConnectWise is on for the company")).not_to_be_checked()
    expect(form.get_by_label("Time entries default to (minutes)")).to_have_value("30")
    assert admin_api.get("/api/v1/settings").json()["connectwise_enabled"] is False
    # While it is off, a technician's change is refused before anything is queued.
    with session_of(system, company.tenant_id, alex) as alex_api:
        task = alex_api.get("/api/v1/tasks", params={"limit": 1}).json()["items"][0]
        refused = alex_api.post(
            f"/api/v1/tasks/{task['id']}/notes",
            json={"text": "Called the customer"},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert refused.status_code == 409, refused.text
        assert "turned off" in refused.json()["detail"]
    # Turned on again for the rest of the session's tests of this company (none share it).
    assert (
        admin_api.put(
            "/api/v1/admin/settings",
            json={
                "connectwise_enabled": True,
                "default_time_minutes": 30,
                "log_change_status": None,
            },
        ).status_code
        == 200
    )


def test_an_admin_connects_the_company_with_a_connectwise_sign_in(
    system: EmbeddedStack, page: Page, company: Company, admin_api: httpx.Client
) -> None:
    open_console(page, system, company)
    form = page.locator("#admin-connect-form")
    form.get_by_label("Site").fill(site(system))
    form.get_by_label("Company ID").fill(api_member_keys(system)["company_id"])
    form.get_by_role("button", name="Connect with ConnectWise sign-in").click()
    # An API member cannot sign in interactively: the company's account is a member's.
    approve_consent(page, system, "jsmith", back_to="/admin")
    expect(page).to_have_url(f"{system.url('gateway')}/admin")  # the outcome is taken out
    expect(page.locator("#connectwise-banner-text")).to_have_text(
        "The company is connected. Map its technicians to their ConnectWise members below."
    )
    card = company_card(page)
    expect(card).to_contain_text("with OAuth")
    expect(card.locator(".state-pill")).to_have_text(LIVE)
    [integration] = [
        i for i in admin_api.get("/api/v1/admin/integrations").json() if i["scope"] == "tenant"
    ]
    assert integration["auth_method"] == "oauth2"
    assert admin_api.delete(f"/api/v1/admin/integrations/{integration['id']}").status_code == 200
