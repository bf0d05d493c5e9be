"""A technician's day in a real browser (Chromium, headless) against the running system:
open a ticket's detail from the dashboard and read it as ConnectWise has it — the
description, the notes and their flags, the time logged, the contact — with text from
ConnectWise shown as text; the detail follows a change made in ConnectWise while it is
open; the status changed (shown at once, taken back when refused) and a change logged
— note, time of a work type, status — from it; a timer across a reload and a second
tab; SLA targets sorted soonest first, flagged and filtered; and the screenshot of it (into docs/img
only with UPDATE_SCREENSHOTS=1).

The member is `kbrown`, whose tickets the other tests only read; this one adds notes
and time to one of them, which changes nobody's assignment."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from browser import (
    KELLY,
    kellys_dashboard,
    page_tasks,
    row_for,
    screenshots_dir,
    task_rows,
)
from e2e_helpers import connectwise, eventually
from playwright.sync_api import Page, Route, expect

from syntaskio_devstack.stack import EmbeddedStack

pytest_plugins = ["browser"]  # the browser and page fixtures

MEMBER = KELLY


def test_open_a_ticket_and_read_its_notes_and_time(
    system: EmbeddedStack, page: Page, tmp_path: Path
) -> None:
    ticket = kellys_dashboard(page, system)[0]
    # Something to read: a note with markup and a link (shown as text, the link made
    # safe), and time logged, both made in ConnectWise by the member.
    marker = uuid.uuid4().hex[:6]
    hostile = f"<img src=x onerror=alert(1)> Rebooted, see https://status.example/{marker}"
    connectwise(
        system,
        MEMBER,
        f"service/tickets/{ticket}/notes",
        post={"text": hostile, "internalAnalysisFlag": True},
    )
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    connectwise(
        system,
        MEMBER,
        "time/entries",
        post={
            "chargeToType": "ServiceTicket",
            "chargeToId": int(ticket),
            "timeStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "actualHours": 1.5,
        },
    )
    record = connectwise(system, MEMBER, f"service/tickets/{ticket}")
    notes = connectwise(system, MEMBER, f"service/tickets/{ticket}/notes")

    row = row_for(page, ticket)
    expect(row).to_be_visible()
    row.locator(".task-title a").click()
    expect(page).to_have_url(re.compile(rf"/tasks/{row.get_attribute('data-task-id')}$"))
    detail = page.locator("#ticket-body")
    expect(detail).to_be_visible()
    expect(page.locator("#ticket-title")).to_have_text(record["summary"])
    expect(page.locator("#ticket-description")).to_have_text(notes[0]["text"])
    shown_note = page.locator("#ticket-notes .note").filter(has_text=marker)
    expect(shown_note.locator(".note-text")).to_have_text(hostile)  # as text, not markup
    expect(shown_note.locator("img")).to_have_count(0)
    link = shown_note.locator(".note-text a")
    expect(link).to_have_attribute("href", f"https://status.example/{marker}")
    expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))
    expect(shown_note.locator(".note-internal")).to_have_text("Internal")
    expect(shown_note.locator(".note-author")).to_have_text("Kelly Brown")
    expect(page.locator("#ticket-time tr").filter(has_text="1.5 h")).to_have_count(1)
    facts = page.locator("#ticket-facts")
    expect(facts).to_contain_text(record["contactName"])
    expect(facts.locator(f'a[href^="mailto:{record["contactEmailAddress"]}"]')).to_have_count(1)
    expect(page.locator("#ticket-link")).to_have_attribute("target", "_blank")

    # Changed in ConnectWise while open: the detail follows (the sync names the task).
    later = f"Customer called back ({uuid.uuid4().hex[:6]})"
    connectwise(
        system,
        MEMBER,
        f"service/tickets/{ticket}/notes",
        post={"text": later, "detailDescriptionFlag": True},
    )
    expect(page.locator("#ticket-notes .note").filter(has_text=later)).to_be_visible(timeout=60_000)

    # Its own URL: a reload shows it again; back leads to the list.
    page.reload()
    expect(page.locator("#ticket-title")).to_have_text(record["summary"])
    page.screenshot(path=screenshots_dir(tmp_path) / "ticket-detail.png", full_page=True)
    page.get_by_role("link", name="← My tasks").click()
    expect(page).to_have_url(re.compile(r"/$"))
    expect(row_for(page, ticket)).to_be_visible()


def test_change_the_status_and_log_a_change_from_the_detail(
    system: EmbeddedStack, page: Page
) -> None:
    ticket = kellys_dashboard(page, system)[1]
    record = connectwise(system, MEMBER, f"service/tickets/{ticket}")
    statuses = connectwise(system, MEMBER, f"service/boards/{record['board']['id']}/statuses")
    target = next(
        s for s in statuses if not s["closedStatus"] and s["id"] != record["status"]["id"]
    )
    row_for(page, ticket).locator(".task-title a").click()
    expect(page.locator("#ticket-body")).to_be_visible()
    pill = page.locator("#ticket-status")
    expect(pill).to_have_text(record["status"]["name"])

    # Refused: the new status shows at once, then goes back, and the page says why.
    def refused(route: Route) -> None:
        route.fulfill(
            status=409,
            content_type="application/problem+json",
            body=json.dumps(
                {"title": "Conflict", "status": 409, "detail": "ConnectWise is turned off."}
            ),
        )

    page.route("**/api/v1/tasks/*/status", refused)
    page.locator("#status-select").select_option(str(target["id"]))
    page.get_by_role("button", name="Change status").click()
    expect(page.locator("#ticket-alert")).to_contain_text("ConnectWise is turned off.")
    expect(pill).to_have_text(record["status"]["name"])
    page.unroute("**/api/v1/tasks/*/status")

    page.get_by_role("button", name="Change status").click()
    expect(page.locator("#ticket-feedback")).to_have_text(f"Status changed to {target['name']}")
    moved = connectwise(system, MEMBER, f"service/tickets/{ticket}")
    assert moved["status"]["id"] == target["id"]
    expect(pill).to_have_text(target["name"])

    # Log a change: a customer-visible resolution note and half an hour of travel; the
    # status is left as it is.
    text = f"Replaced the dock ({uuid.uuid4().hex[:6]})"
    form = page.locator("#log-form")
    form.get_by_label("Note").fill(text)
    form.get_by_label("Discussion (the customer sees it)").check()
    form.get_by_label("Resolution").check()
    form.get_by_label("Hours").fill("0.5")
    form.get_by_label("Work type").select_option(label="Travel · no charge")
    expect(form.get_by_label("Then the status")).to_have_value("")  # leave it as it is
    form.get_by_role("button", name="Log change").click()
    expect(page.locator("#ticket-feedback")).to_have_text("Change logged")

    [note] = [
        n
        for n in connectwise(system, MEMBER, f"service/tickets/{ticket}/notes")
        if n["text"] == text
    ]
    assert (
        note["detailDescriptionFlag"],
        note["internalAnalysisFlag"],
        note["resolutionFlag"],
    ) == (
        True,
        False,
        True,
    )
    [entry] = connectwise(system, MEMBER, "time/entries", conditions=f"chargeToId = {ticket}")
    assert (entry["actualHours"], entry["workType"]["name"], entry["billableOption"]) == (
        0.5,
        "Travel",
        "NoCharge",
    )
    assert connectwise(system, MEMBER, f"service/tickets/{ticket}")["status"]["id"] == target["id"]
    shown = page.locator("#ticket-notes .note").filter(has_text=text)
    expect(shown.locator(".note-resolution")).to_have_text("Resolution")
    expect(page.locator("#ticket-time tr").filter(has_text="Travel")).to_have_count(1)
    expect(form.get_by_label("Note")).to_have_value("")


def test_a_timer_runs_across_a_reload_and_a_second_tab_and_logs_its_time(
    system: EmbeddedStack, page: Page
) -> None:
    ticket = kellys_dashboard(page, system)[2]
    timer = row_for(page, ticket).locator(".timer")
    timer.get_by_role("button", name="Start timer").click()
    expect(timer).to_have_attribute("data-state", "running")
    expect(timer.locator(".timer-clock")).to_have_text(re.compile(r"^0:00:0[1-9]$"))

    # A second tab shows it running, and hears at once when the first pauses it.
    other = page.context.new_page()
    other.goto(page.url)
    other_timer = row_for(other, ticket).locator(".timer")
    expect(other_timer).to_have_attribute("data-state", "running")
    timer.get_by_role("button", name="Pause").click()
    expect(other_timer).to_have_attribute("data-state", "paused")
    paused_at = timer.locator(".timer-clock").inner_text()
    other.close()

    # A reload keeps it, paused where it was; resumed, it runs on from there.
    page.reload()
    expect(timer).to_have_attribute("data-state", "paused")
    expect(timer.locator(".timer-clock")).to_have_text(paused_at)
    timer.get_by_role("button", name="Resume").click()
    expect(timer).to_have_attribute("data-state", "running")
    timer.get_by_role("button", name="Stop and log").click()
    expect(timer.locator(".timer-status")).to_have_text("Time logged")
    expect(timer.get_by_role("button", name="Start timer")).to_be_visible()

    [entry] = connectwise(system, MEMBER, "time/entries", conditions=f"chargeToId = {ticket}")
    assert entry["actualHours"] == 0.01  # a few seconds: the least ConnectWise keeps
    assert entry["member"]["identifier"] == MEMBER


def test_sla_at_a_glance_sorted_soonest_flagged_and_filtered(
    system: EmbeddedStack, page: Page
) -> None:
    kellys_dashboard(page, system)
    expect(task_rows(page).first).to_be_visible()
    page.get_by_label("Sort by").select_option("sla")
    expect(page).to_have_url(re.compile(r"[?&]sort=sla(&|$)"))
    expect(page.locator("#tasks")).to_have_attribute("aria-busy", "false")

    # The API's order is the soonest target first (those without one last); the page's is
    # the API's, each row flagged by how near its target is.
    # (Tickets of the member's that other tests made may still be arriving: the page
    # follows them live, so the two agree once the sync is over.)
    def agreeing() -> list[dict[str, Any]] | None:
        shown = task_rows(page).evaluate_all("(rows) => rows.map((r) => r.dataset.taskId)")
        by_api = page_tasks(page, sort="sla")
        return by_api if [t["id"] for t in by_api][: len(shown)] == shown else None

    by_api = eventually(agreeing, timeout=20)
    assert by_api, "the page never showed the API's order"
    dues = [t["sla"]["due_at"] for t in by_api if t["sla"]]
    assert dues == sorted(dues, key=lambda d: datetime.fromisoformat(d))
    assert all(t["sla"] is None for t in by_api[len(dues) :])
    assert dues, "no task of the member has an SLA target"
    now = datetime.now(UTC)
    breached = [t for t in by_api if t["sla"] and datetime.fromisoformat(t["sla"]["due_at"]) < now]
    assert breached, "the seed leaves some of the member's tickets late"
    first = row_for(page, breached[0]["external_id"]).locator(".sla")
    expect(first).to_have_attribute("data-state", "breached")
    expect(first).to_contain_text("overdue")

    # Only the late ones.
    facet = page.locator('details[data-facet="sla"]')
    facet.locator("summary").click()
    facet.get_by_label(re.compile(r"^Breached")).check()
    expect(page).to_have_url(re.compile(r"[?&]sla=breached(&|$)"))
    expect(task_rows(page)).to_have_count(len(breached))
    expect(task_rows(page).locator('.sla[data-state="breached"]')).to_have_count(len(breached))
