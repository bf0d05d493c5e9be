"""Be told, in a real browser (Chromium, headless): a ticket assigned to the technician
in ConnectWise (the sandbox) while her dashboard is open shows on the bell, in the
notification centre and as a desktop notification (the Notification API, permission
granted), and opens the ticket; marking all read clears the bell; and the screenshot of
it (into docs/img only with UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

from browser import KELLY, kellys_dashboard, screenshots_dir
from e2e_helpers import sandbox
from playwright.sync_api import Page, expect

from syntaskio_devstack.stack import EmbeddedStack

pytest_plugins = ["browser"]  # the browser and page fixtures

# The browser's Notification API, as granted: each desktop notification is recorded.
DESKTOP = """
window.__desktop = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.__desktop.push({ title, ...options }); }
};
"""


def test_a_ticket_assigned_in_connectwise_is_told_at_once(
    system: EmbeddedStack, page: Page, tmp_path: Path
) -> None:
    page.add_init_script(DESKTOP)
    kellys_dashboard(page, system)
    bell = page.locator("#notify-count")
    assigned = page.locator('#notify-list [data-kind="assigned"]')
    expect(page.locator("#notify-toggle")).to_be_visible()
    expect(assigned).to_have_count(0)  # her first sync's work is not news
    time.sleep(1.5)  # ConnectWise's times are whole seconds: a change from the next one

    summary = f"Laptop will not dock {uuid.uuid4().hex[:6]}"
    made = sandbox(system, "POST", "/tickets", json={"summary": summary, "owner": KELLY})
    number = made.json()["id"]
    title = f"Assigned to you: #{number} {summary}"
    # Told by the live stream (not the half-minute poll), on the bell and the desktop;
    # her SLA targets coming due may be told beside it.
    expect(assigned).to_have_count(1, timeout=20_000)
    expect(bell).to_be_visible()
    desktop = page.evaluate("window.__desktop")
    assert ("Syntaskio", title) in [(d["title"], d["body"]) for d in desktop], desktop
    assert len({d["tag"] for d in desktop}) == len(desktop)  # each once

    page.locator("#notify-toggle").click()
    expect(assigned).to_have_class("notify-item notify-unread")
    expect(assigned.get_by_role("link")).to_have_text(title)
    page.screenshot(path=screenshots_dir(tmp_path) / "notifications.png")
    page.get_by_role("button", name="Mark all read").click()
    expect(bell).to_be_hidden()
    expect(page.locator("#notify-list .notify-unread")).to_have_count(0)

    page.locator("#notify-list").get_by_role("link", name=title).click()
    expect(page.locator("#ticket-title")).to_have_text(summary)
    expect(page.locator("#notify-panel")).to_be_hidden()
