"""Find any ticket in a real browser (Chromium, headless): a technician types the number
of a ticket nobody is assigned, opens it from the results and logs time on it from its
detail; ConnectWise (the sandbox) has the time as hers, and her dashboard still does not
list the ticket."""

from __future__ import annotations

import uuid

from browser import KELLY, kellys_dashboard, shown_ticket_ids
from e2e_helpers import connectwise, unassigned_open_ticket
from playwright.sync_api import Page, expect

from syntaskio_devstack.stack import EmbeddedStack

pytest_plugins = ["browser"]  # the browser and page fixtures


def test_find_an_unassigned_ticket_by_number_and_log_time_on_it(
    system: EmbeddedStack, page: Page
) -> None:
    kellys_dashboard(page, system)
    ticket = unassigned_open_ticket(system, KELLY)
    number = str(ticket["id"])
    assert number not in shown_ticket_ids(page)

    page.get_by_text("Find any ticket in ConnectWise").click()
    page.get_by_label("Ticket number or summary words").fill(f"#{number}")  # searched as typed
    result = page.locator("#find-results a").filter(has_text=ticket["summary"])
    expect(result).to_have_count(1)
    expect(page.locator("#find-status")).to_contain_text(f"found as {KELLY}")
    result.click()

    expect(page).to_have_url(f"{system.url('gateway')}{result.get_attribute('href') or ''}")
    expect(page.locator("#ticket-title")).to_have_text(ticket["summary"])
    expect(page.locator("#ticket-found")).to_be_visible()
    marker = uuid.uuid4().hex[:6]
    form = page.locator("#log-form")
    form.get_by_label("Note").fill(f"Looked at it for the customer ({marker})")
    form.get_by_label("Hours").fill("0.75")
    form.get_by_role("button", name="Log change").click()
    expect(page.locator("#ticket-feedback")).to_have_text("Change logged")

    entries = connectwise(
        system,
        KELLY,
        "time/entries",
        conditions=f'chargeToId = {number} and member/identifier = "{KELLY}"',
    )
    assert [e["actualHours"] for e in entries] == [0.75]
    notes = connectwise(system, KELLY, f"service/tickets/{number}/notes")
    assert [n["createdBy"] for n in notes if marker in n["text"]] == [KELLY]
    expect(page.locator("#ticket-time tr").filter(has_text="0.75")).to_have_count(1)
    # Worked on, not assigned: it stays off her dashboard.
    page.get_by_role("link", name="← My tasks").click()
    expect(page.locator("#tasks-title")).to_be_visible()
    assert number not in shown_ticket_ids(page)
