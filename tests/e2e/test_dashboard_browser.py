"""The web UI in a real browser (Chromium, headless) against the whole running system:
sign in, connect ConnectWise (OAuth consent and API keys), see the member's tickets,
turn project phases on in Integration Settings, filter and search (kept in the URL), live
updates, completing a task, reconnecting an expired connection; and the screenshots
(into docs/img only when UPDATE_SCREENSHOTS=1, so a test run leaves them be).

Each test signs in as a fresh user in a fresh tenant and connects its own sandbox member
(dpatel, gkim, hnguyen, iokafor, jsmith, kbrown: members no other test uses), so changing
their tickets disturbs nobody. The expiry test revokes every OAuth grant in the sandbox:
connections other tests made with OAuth expire too (none of them is used afterwards)."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

from browser import (
    PHONE,
    approve_consent,
    connect_with_keys,
    connect_with_oauth,
    integration_state,
    no_horizontal_scroll,
    open_settings,
    open_tasks,
    page_tasks,
    row_for,
    show_every_task,
    shown_external_ids,
    shown_task_ids,
    shown_ticket_ids,
    sign_in,
    site,
    task_rows,
)
from e2e_helpers import (
    assigned_open_phase_ids,
    assigned_open_ticket_ids,
    connectwise,
    eventually,
    sandbox,
)
from playwright.sync_api import Locator, Page, Request, Route, expect

from syntaskio_devstack.stack import EmbeddedStack

pytest_plugins = ["browser"]  # the browser and page fixtures

DOCS_IMG = Path(__file__).parents[2] / "docs" / "img"
# The screenshots in docs/img are replaced only when asked for: UPDATE_SCREENSHOTS=1.
UPDATE_SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS") == "1"
PHASES_SWITCH = "Show project phases as tasks"
SERVICE_TICKET_IDS_BELOW = 200_000  # the sandbox numbers project tickets from 200001
PRIORITIES = ["Urgent", "High", "Medium", "Low"]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def service_ticket(ids: set[str]) -> str:
    return min((i for i in ids if int(i) < SERVICE_TICKET_IDS_BELOW), key=int)


def wait_for_the_members_tasks(
    page: Page, system: EmbeddedStack, member: str, *, phases_on: bool = False
) -> set[str]:
    """The dashboard shows exactly the tickets the sandbox says are the member's, and
    with project phases on the phases of their projects; returns the ticket numbers."""
    expected = assigned_open_ticket_ids(system, member)
    phases = assigned_open_phase_ids(system, member) if phases_on else set()
    assert len(expected) >= 10

    def everything_shown() -> bool:
        show_every_task(page)
        return shown_ticket_ids(page) == expected and shown_phase_ids(page) == phases

    assert eventually(everything_shown), (
        f"page {sorted(shown_ticket_ids(page), key=int)} != sandbox {sorted(expected, key=int)}"
        f" or phases {sorted(shown_phase_ids(page))} != {sorted(phases)}"
    )
    return expected


def shown_phase_ids(page: Page) -> set[str]:
    return shown_external_ids(page, "project_phase")


def facet_options(page: Page, facet: str) -> dict[str, tuple[Locator, int]]:
    """A facet's choices as shown ("Service Desk (12)"): name → (checkbox, count)."""
    details = page.locator(f'details[data-facet="{facet}"]')
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    options: dict[str, tuple[Locator, int]] = {}
    labels = details.locator("label.option")
    for index in range(labels.count()):
        label = labels.nth(index)
        shown = re.fullmatch(r"(.+) \((\d+)\)", label.inner_text().strip())
        assert shown, f"not 'Name (count)': {label.inner_text()!r}"
        options[shown[1]] = (label.locator("input[type=checkbox]"), int(shown[2]))
    return options


def test_sign_in_connect_with_oauth_and_see_the_members_tickets(
    system: EmbeddedStack, page: Page
) -> None:
    member = "dpatel"
    sign_in(page, system)
    # Nothing connected yet: the dashboard says so and leads to the settings.
    empty = page.locator("#tasks-empty")
    expect(empty).to_contain_text("Connect ConnectWise")
    empty.get_by_role("link", name="Connect ConnectWise").click()
    expect(page).to_have_url(re.compile(r"/settings$"))

    connect_with_oauth(page, system, member)
    expect(page.locator("#connectwise-banner")).to_contain_text("ConnectWise is connected")
    expect(integration_state(page)).to_have_text("Active")
    card = page.locator(".integration")
    expect(card).to_contain_text(f"({member})")
    expect(card).to_contain_text("Connected with OAuth")

    page.locator("#connectwise-banner").get_by_role("link", name="View your tasks").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expected = wait_for_the_members_tasks(page, system, member)  # phases are off

    # Every row is marked as coming from ConnectWise.
    rows = task_rows(page)
    expect(rows.locator(".badge-connectwise")).to_have_count(rows.count())
    expect(rows.first.locator(".badge-connectwise")).to_have_text("ConnectWise")
    # A service ticket as ConnectWise has it: number, title, company, board, deep link.
    ticket = service_ticket(expected)
    record = connectwise(system, member, f"service/tickets/{ticket}")
    row = row_for(page, ticket)
    expect(row.locator(".task-number")).to_contain_text(f"#{ticket}")
    expect(row.locator(".task-title")).to_contain_text(record["summary"])
    expect(row.locator('[data-meta="company"] dd')).to_have_text(record["company"]["name"])
    expect(row.locator('[data-meta="board"] dd')).to_have_text(record["board"]["name"])
    # The title opens the ticket's detail here; ConnectWise opens beside it.
    expect(row.locator(".task-title a")).to_have_attribute(
        "href", f"/tasks/{row.get_attribute('data-task-id')}"
    )
    link = row.locator(".task-source-link")
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
    assert (link.get_attribute("href") or "").startswith(f"{site(system)}/")
    expect(row.get_by_role("button", name="Complete")).to_be_visible()

    # Project phases: turned on in Integration Settings, kept across a reload.
    open_settings(page)
    turn_on_project_phases(page)
    open_tasks(page)
    wait_for_the_members_tasks(page, system, member, phases_on=True)
    # Project phases are shown, but there is nothing to write back to them.
    phases = page.locator('#tasks > li.task[data-source-type="project_phase"]')
    expect(phases.first).to_be_visible()
    expect(phases.get_by_role("button")).to_have_count(0)


def turn_on_project_phases(page: Page) -> None:
    """On the settings page: the switch is off, says what it costs, and turns on at once;
    a failed save puts it back; the page shows it on after a reload."""
    card = page.locator(".integration")
    switch = card.get_by_role("checkbox", name=PHASES_SWITCH)
    expect(switch).not_to_be_checked()
    expect(switch).to_be_enabled()
    cost = card.locator(".option-cost")
    expect(cost).to_contain_text("about one ConnectWise request per project each hour")
    expect(switch).to_have_attribute("aria-describedby", cost.get_attribute("id") or "")

    # The connector cannot be reached: the switch shows the change while it is saved,
    # then goes back, and the card says why.
    while_saving: list[bool] = []

    def unavailable(route: Route) -> None:
        while_saving.append(switch.is_checked())
        problem = {"type": "about:blank", "title": "Service Unavailable", "status": 503}
        detail = "Sync options are unavailable right now; try again shortly."
        route.fulfill(
            status=503,
            content_type="application/problem+json",
            body=json.dumps({**problem, "detail": detail}),
        )

    page.route("**/api/v1/integrations/*/sync-options", unavailable)
    switch.click()  # not check(): that would insist it stays checked
    expect(card.locator(".card-error")).to_contain_text("Could not change project phases")
    assert while_saving == [True], while_saving
    expect(switch).not_to_be_checked()
    expect(switch).to_be_enabled()
    page.unroute("**/api/v1/integrations/*/sync-options")

    with page.expect_response("**/api/v1/integrations/*/sync-options") as saved:
        switch.click()
    assert saved.value.ok, saved.value.text()
    assert saved.value.request.method == "PUT"
    assert saved.value.request.post_data_json == {
        "project_phases": True,
        "sync_interval_minutes": None,
    }
    expect(switch).to_be_checked()
    expect(card.locator(".card-feedback")).to_contain_text("Project phases are on")
    expect(card.locator(".card-error")).to_be_empty()

    page.reload()
    switch = page.locator(".integration").get_by_role("checkbox", name=PHASES_SWITCH)
    expect(switch).to_be_checked()
    expect(switch).to_be_enabled()

    # How often: a schedule of its own, kept with the other options.
    schedule = page.locator(".integration").get_by_label("Sync on a schedule")
    expect(schedule).to_have_value("")
    with page.expect_response("**/api/v1/integrations/*/sync-options") as saved:
        schedule.select_option(label="Every hour")
    assert saved.value.ok, saved.value.text()
    assert saved.value.request.post_data_json == {
        "project_phases": True,
        "sync_interval_minutes": 60,
    }
    expect(page.locator(".integration .card-feedback")).to_contain_text("Syncs every hour")
    page.reload()
    expect(page.locator(".integration").get_by_label("Sync on a schedule")).to_have_value("60")


def test_filters_and_search_narrow_the_list_and_live_in_the_url(
    system: EmbeddedStack, page: Page
) -> None:
    sign_in(page, system)
    connect_with_keys(page, system, "gkim")
    open_tasks(page)
    wait_for_the_members_tasks(page, system, "gkim")
    everything = page_tasks(page)
    assert eventually(lambda: shown_task_ids(page) == {t["id"] for t in everything})

    # A board: the one with the most tasks, so a company can narrow it further.
    boards = facet_options(page, "board")
    board, (board_box, board_count) = max(boards.items(), key=lambda item: item[1][1])
    on_board = [t for t in everything if t["source_data"].get("board", {}).get("name") == board]
    assert len(on_board) == board_count
    board_box.check()
    board_id = on_board[0]["source_data"]["board"]["id"]
    expect(page).to_have_url(re.compile(rf"[?&]board={board_id}(&|$)"))
    assert eventually(lambda: shown_task_ids(page) == {t["id"] for t in on_board})
    page.keyboard.press("Escape")

    # And a company on that board (its count is within the board).
    companies = facet_options(page, "company")
    company, (company_box, company_count) = min(companies.items(), key=lambda item: item[1][1])
    both = [t for t in on_board if t["source_data"]["company"]["name"] == company]
    assert len(both) == company_count >= 1
    company_box.check()
    company_id = both[0]["source_data"]["company"]["id"]
    expect(page).to_have_url(re.compile(rf"[?&]company={company_id}(&|$)"))
    assert eventually(lambda: shown_task_ids(page) == {t["id"] for t in both})
    page.keyboard.press("Escape")

    # A reload (or a bookmark) brings the same view back.
    page.reload()
    expect(task_rows(page)).to_have_count(company_count)
    assert shown_task_ids(page) == {t["id"] for t in both}
    chips = page.get_by_role("list", name="Active filters")
    expect(chips).to_contain_text(f"Board: {board}")
    expect(chips).to_contain_text(f"Company: {company}")
    expect(page.locator('details[data-facet="board"] input:checked')).to_have_count(1)

    page.get_by_role("button", name="Clear filters").first.click()
    assert eventually(lambda: shown_task_ids(page) == {t["id"] for t in everything})
    assert "board=" not in page.url
    assert "company=" not in page.url

    # Search by ticket number…
    ticket = next(t for t in everything if t["source_type"] == "service_ticket")
    search = page.get_by_role("searchbox", name="Search")
    search.fill(f"#{ticket['external_id']}")
    assert eventually(lambda: shown_task_ids(page) == {ticket["id"]})
    assert f"q=%23{ticket['external_id']}" in page.url
    # …and by words of a title: the rows the API finds for them, all of them.
    words = next(t for t in everything if t["id"] != ticket["id"])["title"].split(" — ")[0]
    search.fill(words)
    matching = {t["id"] for t in page_tasks(page, q=words)}
    assert matching
    assert eventually(lambda: shown_task_ids(page) == matching)
    page.reload()
    expect(page.get_by_role("searchbox", name="Search")).to_have_value(words)
    expect(task_rows(page)).to_have_count(len(matching))
    assert shown_task_ids(page) == matching


def test_a_ticket_changed_in_connectwise_updates_the_open_page(
    system: EmbeddedStack, page: Page
) -> None:
    sign_in(page, system)
    connect_with_keys(page, system, "hnguyen")
    open_tasks(page)
    expected = wait_for_the_members_tasks(page, system, "hnguyen")
    ticket = service_ticket(expected)
    # The user is typing a note on another ticket meanwhile.
    other = row_for(page, service_ticket(expected - {ticket}))
    other.get_by_role("button", name="Add note").click()
    draft = other.get_by_role("textbox", name="Note")
    draft.fill("Half-written note")
    page.evaluate("window.__sameDocument = true")

    title = f"UPS battery alarm in the server room {uuid.uuid4().hex[:6]}"
    sandbox(system, "PATCH", f"/tickets/{ticket}", json={"summary": title})

    expect(row_for(page, ticket).locator(".task-title")).to_contain_text(title)
    assert page.evaluate("window.__sameDocument") is True, "the page was reloaded"
    expect(draft).to_have_value("Half-written note")
    expect(draft).to_be_focused()


def test_completing_a_task_closes_the_ticket_in_connectwise(
    system: EmbeddedStack, page: Page
) -> None:
    member = "iokafor"
    sign_in(page, system)
    connect_with_keys(page, system, member)
    open_tasks(page)
    expected = wait_for_the_members_tasks(page, system, member)
    ticket = service_ticket(expected)
    writes: list[Request] = []
    page.on("request", lambda r: writes.append(r) if r.method == "POST" else None)

    row = row_for(page, ticket)
    row.get_by_role("button", name="Complete").click()
    # At once: the row shows it is being closed (then closed).
    expect(row).to_have_class(re.compile(r"\bis-(closing|completed)\b"))
    expect(row.get_by_role("status")).to_have_text(re.compile(r"Closing…|Completed"))

    def closed() -> bool:
        return connectwise(system, member, f"service/tickets/{ticket}")["closedFlag"]

    assert eventually(closed), "the ticket is still open in ConnectWise"
    expect(row).to_have_count(0)  # fetched back as closed, so it left the list
    assert eventually(lambda: shown_ticket_ids(page) == expected - {ticket})
    [complete] = [r for r in writes if r.url.endswith("/complete")]
    assert UUID.match(complete.headers["idempotency-key"])


def test_an_expired_connection_is_shown_and_reconnected(system: EmbeddedStack, page: Page) -> None:
    member = "jsmith"
    sign_in(page, system, "/settings")
    expect(page.get_by_role("heading", name="Integrations")).to_be_visible()
    connect_with_oauth(page, system, member)
    expect(integration_state(page)).to_have_text("Active")

    # The user removes the app in ConnectWise: its tokens stop working.
    sandbox(system, "POST", "/oauth/revoke-all")
    card = page.locator(".integration")
    expect(integration_state(page)).to_have_text("Expired")  # the page refreshes itself
    expect(card.locator(".card-reason")).to_contain_text("Reconnect")
    expect(card.get_by_role("button", name="Sync now")).to_be_hidden()

    card.get_by_role("button", name="Reconnect").click()
    approve_consent(page, system, member)
    expect(integration_state(page)).to_have_text("Active")
    expect(page.locator(".integration")).to_have_count(1)  # the same connection, not a twin
    expect(card.get_by_role("button", name="Reconnect")).to_be_hidden()


def test_screenshots_and_the_phone_layout(
    system: EmbeddedStack, page: Page, tmp_path: Path
) -> None:
    sign_in(page, system, name="Kelly Brown")
    connect_with_keys(page, system, "kbrown")
    open_tasks(page)
    wait_for_the_members_tasks(page, system, "kbrown")
    page.get_by_label("Sort by").select_option("priority")
    expect(page).to_have_url(re.compile(r"[?&]sort=priority(&|$)"))
    expect(page.locator("#tasks")).to_have_attribute("aria-busy", "false")
    shown = task_rows(page).locator('[data-meta="priority"] dd').all_inner_texts()
    ranks = [PRIORITIES.index(priority) for priority in shown]
    assert ranks == sorted(ranks), f"not most urgent first: {shown}"
    screenshots = DOCS_IMG if UPDATE_SCREENSHOTS else tmp_path
    screenshots.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 0)
    page.screenshot(path=screenshots / "dashboard.png")

    # The settings once a sync or two have run: state, budget, history.
    open_settings(page)
    card = page.locator(".integration")
    expect(card.locator(".stats")).to_contain_text(re.compile(r"used [1-9]\d* of 1000 this hour"))
    card.locator(".history summary").click()
    # The history follows while open: the first sync, then a scheduled one.
    expect(card.locator('.history-table tbody tr[data-status="succeeded"]').nth(1)).to_be_visible()
    page.mouse.move(0, 0)
    page.screenshot(path=screenshots / "settings.png")

    # 375 px wide: nothing scrolls sideways; the filters fold away behind a button.
    page.set_viewport_size(PHONE)
    assert no_horizontal_scroll(page)  # the history table scrolls within its box
    open_tasks(page)
    assert no_horizontal_scroll(page)
    facets = page.locator("#facets")
    expect(facets).to_be_hidden()
    filters = page.get_by_role("button", name="Filters")
    filters.click()
    expect(facets).to_be_visible()
    assert no_horizontal_scroll(page)
    filters.click()
    expect(facets).to_be_hidden()
    page.mouse.move(0, 0)
    page.screenshot(path=screenshots / "dashboard-phone.png")
