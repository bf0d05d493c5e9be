"""My day's grouping, pure: the user's today in their time zone, Monday-to-Sunday weeks,
pins, snoozes, hiding until an upstream change, today's manual order, and when a plan
has nothing left to say."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from syntaskio_common.task import SourceType, Task, TaskPriority, TaskSource, TaskStatus
from syntaskio_gateway.my_day import MyDay, Plan, group_day, plan_state, spent, today_in
from syntaskio_gateway.my_day_api import DayOrder, DayQuery, PlanChange

NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)  # a Wednesday afternoon in London
TODAY = date(2026, 11, 18)
LONDON = ZoneInfo("Europe/London")  # UTC in November
AUCKLAND = ZoneInfo("Pacific/Auckland")  # UTC+13 in November: already Thursday
HOUR, DAY = timedelta(hours=1), timedelta(days=1)


def task(
    name: str,
    due: datetime | None = None,
    *,
    status: TaskStatus = TaskStatus.PENDING,
    priority: TaskPriority = TaskPriority.MEDIUM,
    updated: datetime = NOW - DAY,
) -> Task:
    return Task(
        id=name,
        tenant_id="acme",
        user_id="alex",
        integration_id="i-1",
        source=TaskSource.CONNECTWISE,
        source_type=SourceType.SERVICE_TICKET,
        external_id=name,
        title=f"Ticket {name}",
        status=status,
        priority=priority,
        due_at=due,
        source_updated_at=updated,
    )


def ids(day: MyDay) -> dict[str, list[str]]:
    groups = ("overdue", "today", "this_week", "later", "no_date", "set_aside")
    return {name: [t.id for t in getattr(day, name)] for name in groups}


def test_tasks_are_grouped_by_their_due_date_in_the_users_week() -> None:
    tasks = [
        task("later-monday", datetime(2026, 11, 23, 0, 30, tzinfo=UTC)),
        task("sunday-night", datetime(2026, 11, 22, 23, 30, tzinfo=UTC)),
        task("friday", datetime(2026, 11, 20, 9, tzinfo=UTC)),
        task("tonight", datetime(2026, 11, 18, 23, tzinfo=UTC)),
        task("two-hours-ago", NOW - 2 * HOUR),
        task("last-week", NOW - 7 * DAY),
        task("done-yesterday", NOW - DAY, status=TaskStatus.COMPLETED),
        task("no-date-low", priority=TaskPriority.LOW),
        task("no-date-urgent", priority=TaskPriority.URGENT),
    ]
    day = group_day(tasks, {}, NOW, LONDON)
    assert (day.day, day.time_zone, day.truncated) == (TODAY, "Europe/London", False)
    assert ids(day) == {
        # Due before now and not done, as the task list's overdue filter has it.
        "overdue": ["last-week", "two-hours-ago"],
        # A completed task is never overdue.
        "today": ["done-yesterday", "tonight"],
        "this_week": ["friday", "sunday-night"],
        "later": ["later-monday"],
        "no_date": ["no-date-urgent", "no-date-low"],
        "set_aside": [],
    }
    assert all(not t.plan.pinned and t.plan.order is None for t in day.today)


def test_today_is_the_users_own_day() -> None:
    tonight_in_london = task("tonight", datetime(2026, 11, 18, 23, tzinfo=UTC))
    assert today_in(AUCKLAND, NOW) == date(2026, 11, 19)
    day = group_day([tonight_in_london], {}, NOW, AUCKLAND)
    # Thursday 12:00 in Auckland: today there too.
    assert ids(day)["today"] == ["tonight"]
    friday_lunch = task("friday", datetime(2026, 11, 19, 23, tzinfo=UTC))  # Fri 12:00 NZ
    assert ids(group_day([friday_lunch], {}, NOW, LONDON))["this_week"] == ["friday"]
    assert ids(group_day([friday_lunch], {}, NOW, AUCKLAND))["this_week"] == ["friday"]
    tomorrow_morning = task("thursday", datetime(2026, 11, 19, 8, tzinfo=UTC))
    assert ids(group_day([tomorrow_morning], {}, NOW, LONDON))["this_week"] == ["thursday"]
    assert ids(group_day([tomorrow_morning], {}, NOW, AUCKLAND))["today"] == ["thursday"]


def test_on_sunday_the_week_is_over() -> None:
    sunday = datetime(2026, 11, 22, 10, tzinfo=UTC)
    monday = task("monday", datetime(2026, 11, 23, 9, tzinfo=UTC))
    evening = task("evening", datetime(2026, 11, 22, 18, tzinfo=UTC))
    day = group_day([monday, evening], {}, sunday, LONDON)
    assert ids(day)["later"] == ["monday"]
    assert ids(day)["today"] == ["evening"]
    assert ids(day)["this_week"] == []


def test_a_pin_puts_a_task_in_today_for_that_day_only() -> None:
    tasks = [task("next-month", NOW + 30 * DAY), task("undated"), task("late", NOW - DAY)]
    plans = {
        "next-month": Plan("next-month", pinned_on=TODAY),
        "undated": Plan("undated", pinned_on=TODAY),
        "late": Plan("late", pinned_on=TODAY - timedelta(days=1)),  # yesterday's pin
    }
    day = group_day(tasks, plans, NOW, LONDON)
    assert sorted(ids(day)["today"]) == ["next-month", "undated"]
    assert all(t.plan.pinned for t in day.today)
    assert ids(day)["overdue"] == ["late"]
    assert not day.overdue[0].plan.pinned
    # Pinned in London on Wednesday is not pinned on Auckland's Thursday.
    assert ids(group_day(tasks, plans, NOW, AUCKLAND))["today"] == []


def test_snoozed_and_hidden_tasks_are_set_aside_until_their_time_or_a_change() -> None:
    tasks = [
        task("snoozed", NOW + HOUR),
        task("woke-up", NOW + HOUR),
        task("hidden", updated=NOW - DAY),
        task("changed", updated=NOW - HOUR),
        task("snoozed-long"),
    ]
    plans = {
        "snoozed": Plan("snoozed", snoozed_until=NOW + DAY),
        "woke-up": Plan("woke-up", snoozed_until=NOW - HOUR),
        "hidden": Plan("hidden", hidden_at=NOW - DAY),
        # Hidden at the version of two days ago; ConnectWise changed it an hour ago.
        "changed": Plan("changed", hidden_at=NOW - 2 * DAY),
        "snoozed-long": Plan("snoozed-long", snoozed_until=NOW + 10 * DAY),
    }
    day = group_day(tasks, plans, NOW, LONDON)
    assert ids(day)["set_aside"] == ["snoozed", "snoozed-long", "hidden"]
    assert ids(day)["today"] == ["woke-up"]
    assert ids(day)["no_date"] == ["changed"]
    states = {t.id: t.plan for t in day.set_aside}
    assert states["snoozed"].snoozed_until == NOW + DAY
    assert states["hidden"].hidden
    assert states["hidden"].snoozed_until is None
    assert not day.no_date[0].plan.hidden
    assert day.today[0].plan.snoozed_until is None  # an expired snooze says nothing


def test_today_follows_the_manual_order_then_the_due_time() -> None:
    tasks = [
        task("nine", datetime(2026, 11, 18, 21, tzinfo=UTC)),
        task("six", datetime(2026, 11, 18, 18, tzinfo=UTC)),
        task("pinned"),
        task("first", datetime(2026, 11, 18, 22, tzinfo=UTC)),
        task("stale-order", datetime(2026, 11, 18, 17, tzinfo=UTC)),
    ]
    plans = {
        "first": Plan("first", order=0, ordered_on=TODAY),
        "pinned": Plan("pinned", pinned_on=TODAY, order=1, ordered_on=TODAY),
        "stale-order": Plan("stale-order", order=0, ordered_on=TODAY - timedelta(days=1)),
    }
    day = group_day(tasks, plans, NOW, LONDON)
    assert ids(day)["today"] == ["first", "pinned", "stale-order", "six", "nine"]
    assert [t.plan.order for t in day.today] == [0, 1, None, None, None]


def test_a_plan_is_spent_when_nothing_of_it_holds_any_more() -> None:
    undated = task("t")
    yesterday = TODAY - timedelta(days=1)
    assert spent(Plan("t", pinned_on=TODAY), None, TODAY, NOW)  # the task is gone
    assert not spent(Plan("t", pinned_on=TODAY), undated, TODAY, NOW)
    assert not spent(Plan("t", pinned_on=TODAY + timedelta(days=1)), undated, TODAY, NOW)
    assert spent(Plan("t", pinned_on=yesterday), undated, TODAY, NOW)
    assert not spent(Plan("t", order=3, ordered_on=TODAY), undated, TODAY, NOW)
    assert spent(Plan("t", order=3, ordered_on=yesterday), undated, TODAY, NOW)
    assert not spent(Plan("t", snoozed_until=NOW + HOUR), undated, TODAY, NOW)
    assert spent(Plan("t", snoozed_until=NOW), undated, TODAY, NOW)
    assert not spent(Plan("t", hidden_at=undated.source_updated_at), undated, TODAY, NOW)
    assert spent(Plan("t", hidden_at=undated.source_updated_at - HOUR), undated, TODAY, NOW)
    assert spent(Plan("t"), undated, TODAY, NOW)
    assert plan_state(None, undated, TODAY, NOW).model_dump() == {
        "pinned": False,
        "snoozed_until": None,
        "hidden": False,
        "order": None,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"pinned": True, "hidden": True},
        {"pinned": True, "snoozed_until": "2026-11-19T08:00:00Z"},
        {"hidden": True, "snoozed_until": "2026-11-19T08:00:00Z"},
        {"snoozed_until": "2026-11-19T08:00:00"},  # no time zone: whose 8 o'clock?
        {"pinned": True, "order": 1},
    ],
)
def test_a_plan_change_is_one_thing_at_most(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PlanChange.model_validate(body)


def test_plan_changes_orders_and_time_zones_are_checked() -> None:
    assert PlanChange.model_validate({}) == PlanChange(pinned=False, hidden=False)
    with pytest.raises(ValidationError):
        DayOrder.model_validate({"task_ids": ["a", "b", "a"]})
    with pytest.raises(ValidationError):
        DayOrder.model_validate({"task_ids": ["a/../b"]})
    with pytest.raises(ValidationError):
        DayOrder.model_validate({"task_ids": [str(n) for n in range(201)]})
    assert DayQuery.model_validate({"tz": "Pacific/Auckland"}).zone == AUCKLAND
    assert DayQuery().zone == ZoneInfo("UTC")
    for zone in ("Mars/Olympus", "../../etc/passwd", "", "America", "Etc"):
        with pytest.raises(ValidationError):
            DayQuery.model_validate({"tz": zone})
