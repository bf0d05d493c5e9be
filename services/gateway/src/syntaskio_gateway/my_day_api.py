"""My day under /api/v1: the user's day grouped by their plans, a task's plan (pin,
snooze, hide, or clear) and today's manual order. Plans are the gateway's (`my_day.py`):
nothing here writes to ConnectWise. Writes are PUT and DELETE, so a retry changes nothing."""

from __future__ import annotations

from typing import Annotated, Self
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from syntaskio_common.problems import Problem
from syntaskio_common.task import Task
from syntaskio_gateway.api import Reader
from syntaskio_gateway.dependencies import CurrentUser, ResourceId
from syntaskio_gateway.my_day import (
    LONGEST_SNOOZE,
    MOST_ORDERED,
    MOST_PLANS,
    MyDay,
    PlanState,
    TaskPlans,
    TooManyPlans,
    read_day,
    today_in,
)
from syntaskio_gateway.task_query import time_zone

router = APIRouter(prefix="/api/v1", tags=["my-day"])
_TOO_MANY = f"At most {MOST_PLANS} tasks can be planned; clear some first."


def _plans(request: Request) -> TaskPlans:
    plans: TaskPlans = request.app.state.plans
    return plans


Plans = Annotated[TaskPlans, Depends(_plans)]


async def _dashboard_task(task_id: ResourceId, user: CurrentUser, reader: Reader) -> Task:
    """One of the tasks on the user's dashboard. (Not `api.UsersTask`, which also finds a
    ticket found by searching: that is on no dashboard, so it has no day to be planned in.)"""
    task = await reader.get(user, task_id)
    if task is None:
        raise Problem(404, "No such task.")
    return task


DashboardTask = Annotated[Task, Depends(_dashboard_task)]


class DayQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tz: str = Field(
        default="UTC",
        max_length=64,
        description="The user's IANA time zone: whose today",
        examples=["Europe/London"],
    )

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        time_zone(value)
        return value

    @property
    def zone(self) -> ZoneInfo:
        return time_zone(self.tz)


Day = Annotated[DayQuery, Query()]


class PlanChange(BaseModel):
    """At most one of: pinned to today, snoozed until a time, hidden until the task
    changes upstream. None of them clears the plan (today's order stays)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"pinned": True}]})

    pinned: bool = False
    snoozed_until: AwareDatetime | None = Field(
        default=None, description="In the future, at most 365 days ahead"
    )
    hidden: bool = False

    @model_validator(mode="after")
    def _one_at_most(self) -> Self:
        if sum((self.pinned, self.snoozed_until is not None, self.hidden)) > 1:
            raise ValueError("pinned, snoozed_until and hidden are exclusive")
        return self


TaskIds = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]],
    Field(max_length=MOST_ORDERED),
]


class DayOrder(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"task_ids": []}]})

    task_ids: TaskIds = Field(
        description="Tasks of today, first to last (the others follow by due time)"
    )

    @field_validator("task_ids")
    @classmethod
    def _once_each(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each task at most once")
        return value


@router.get("/my-day")
async def my_day(user: CurrentUser, reader: Reader, plans: Plans, day: Day) -> MyDay:
    """The user's tasks for planning the day: Overdue, Today (pinned or due today, in
    the user's order), This week, Later, No date, and those set aside (snoozed, hidden)."""
    return await read_day(user, reader, plans, day.zone)


@router.put(
    "/tasks/{task_id}/plan",
    responses={
        404: {"description": "Not one of the tasks on the user's dashboard"},
        409: {"description": "Too many tasks planned"},
    },
)
async def put_plan(
    change: PlanChange, task: DashboardTask, user: CurrentUser, plans: Plans, day: Day
) -> PlanState:
    """Pin the task to today, snooze it, hide it until it changes in ConnectWise, or
    (none of them) bring it back."""
    now = plans.now()
    until = change.snoozed_until
    if until is not None and not now < until <= now + LONGEST_SNOOZE:
        raise Problem(422, "A task is snoozed until a time in the next 365 days.")
    try:
        return await plans.put(
            user,
            task,
            today_in(day.zone, now),
            pinned=change.pinned,
            snoozed_until=until,
            hidden=change.hidden,
        )
    except TooManyPlans:
        raise Problem(409, _TOO_MANY) from None


@router.delete(
    "/tasks/{task_id}/plan",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "Not one of the user's tasks"}},
)
async def clear_plan(task: DashboardTask, user: CurrentUser, plans: Plans) -> Response:
    """Forget the task's plan, its place in today's order included."""
    await plans.clear(user, task.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.put(
    "/my-day/order",
    responses={
        404: {"description": "Not one of the user's tasks"},
        409: {"description": "Too many tasks planned"},
        422: {"description": "Invalid input, or a task that is not in today's group"},
    },
)
async def put_order(
    order: DayOrder, user: CurrentUser, reader: Reader, plans: Plans, day: Day
) -> MyDay:
    """Today's manual order: these tasks of today first, in this order. Answers with
    the day as it now is."""
    zone = day.zone
    today = await read_day(user, reader, plans, zone)
    in_today = {task.id for task in today.today}
    elsewhere = [task_id for task_id in order.task_ids if task_id not in in_today]
    if elsewhere:
        found = await reader.among(user, elsewhere)
        if len(found) < len(elsewhere):
            raise Problem(404, "No such task.")
        raise Problem(422, "Only tasks of today are ordered; pin the others first.")
    try:
        await plans.put_order(user, today_in(zone, plans.now()), order.task_ids)
    except TooManyPlans:
        raise Problem(409, _TOO_MANY) from None
    return await read_day(user, reader, plans, zone)
