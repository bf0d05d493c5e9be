"""My day in a real browser (Chromium, headless) against the running system: from the
dashboard to My day at its own URL; a ticket pinned to today, another snoozed until
tomorrow morning, and today's order changed from the keyboard — all still so after a
reload — then the snoozed one brought back and the pinned one unpinned. And the
screenshot of it (into docs/img only with UPDATE_SCREENSHOTS=1).

Kelly's tickets are only read here: a plan is Syntaskio's, never ConnectWise's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from browser import kellys_dashboard, origin, screenshots_dir
from playwright.sync_api import Page, expect

from syntaskio_devstack.stack import EmbeddedStack

pytest_plugins = ["browser"]  # the browser and page fixtures


def day_row(page: Page, ticket: str, group: str | None = None) -> Any:
    """The ticket's row in My day (in that group)."""
    within = f'section[data-group="{group}"] ' if group else ""
    return page.locator(f'#my-day-groups {within}li[data-external-id="{ticket}"]')


def group_of(page: Page, ticket: str) -> str:
    found: str = day_row(page, ticket).evaluate("(row) => row.closest('section').dataset.group")
    return found


def todays_order(page: Page) -> list[str]:
    order: list[str] = page.eval_on_selector_all(
        '#my-day-groups section[data-group="today"] li',
        "(rows) => rows.map((row) => row.dataset.externalId)",
    )
    return order


def test_pin_and_snooze_tasks_and_see_my_day(
    system: EmbeddedStack, page: Page, tmp_path: Path
) -> None:
    tickets = kellys_dashboard(page, system)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="My day").click()
    expect(page).to_have_url(f"{origin(page)}/my-day")
    expect(page.get_by_role("heading", level=1, name="My day")).to_be_visible()
    for ticket in tickets[3:6]:
        expect(day_row(page, ticket)).to_have_count(1)
    # Three tickets that are not in Today by their due dates (nothing is planned yet).
    planned = [t for t in tickets[3:] if group_of(page, t) != "today"][:3]
    assert len(planned) == 3, "Kelly has too few tickets due after today"
    first, second, snoozed = planned

    # Pinned to today: in Today, marked so, and the keyboard stays with the task.
    for ticket in (first, second):
        day_row(page, ticket).get_by_role("button", name="Pin to today").click()
        expect(day_row(page, ticket, "today")).to_be_visible()
        expect(day_row(page, ticket, "today").get_by_role("button", name="Unpin")).to_be_focused()
    expect(day_row(page, first, "today").locator('[data-plan="pinned"]')).to_have_text(
        "Pinned to today"
    )
    # Snoozed until tomorrow morning: set aside, out of its group.
    was = group_of(page, snoozed)
    row = day_row(page, snoozed)
    row.get_by_role("button", name="Snooze").click()
    row.get_by_role("button", name="Tomorrow morning").click()
    expect(day_row(page, snoozed, "set_aside")).to_be_visible()
    expect(day_row(page, snoozed, "set_aside").locator('[data-plan="snoozed"]')).to_contain_text(
        "Snoozed until"
    )
    expect(day_row(page, snoozed, was)).to_have_count(0)

    # Today's order, from the keyboard: the lower of the two pinned moves up.
    order = todays_order(page)
    lower = max((first, second), key=order.index)
    upper = min((first, second), key=order.index)
    move_up = day_row(page, lower, "today").get_by_role("button", name="Move up")
    move_up.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#my-day-status")).to_contain_text("moved to place")
    moved = todays_order(page)
    assert moved.index(lower) == order.index(lower) - 1, (order, moved)
    if order.index(lower) - order.index(upper) == 1:
        assert moved.index(lower) < moved.index(upper), moved

    # A reload keeps it all: the page at /my-day, the pins, the snooze, the order.
    page.reload()
    expect(day_row(page, snoozed, "set_aside")).to_be_visible()
    expect(day_row(page, first, "today")).to_be_visible()
    expect(day_row(page, second, "today")).to_be_visible()
    assert todays_order(page) == moved
    page.screenshot(path=str(screenshots_dir(tmp_path) / "my-day.png"), full_page=True)

    # Brought back and unpinned: where their dates put them again.
    day_row(page, snoozed, "set_aside").get_by_role("button", name="Bring back").click()
    expect(day_row(page, snoozed, was)).to_be_visible()
    day_row(page, first, "today").get_by_role("button", name="Unpin").click()
    expect(day_row(page, first, "today")).to_have_count(0)
    expect(day_row(page, first)).to_have_count(1)
    # The dashboard's list is as it was.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tasks").click()
    expect(page.locator(f'#tasks > li.task[data-external-id="{snoozed}"]')).to_be_visible()
