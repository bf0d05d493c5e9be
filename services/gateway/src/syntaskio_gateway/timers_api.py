"""A timer per task under /api/v1: start, pause, resume, stop (logged as a time entry)
and discard. The state is the gateway's (`timers.py`); only a stop writes back."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from syntaskio_common.commands import BillableOption, CommandAction, Text, TimeEntryInput
from syntaskio_common.problems import Problem
from syntaskio_gateway.api import COMMAND_ANSWERS, UsersTask, WriteBack
from syntaskio_gateway.commands import WRITABLE_SOURCE_TYPES, CommandAccepted
from syntaskio_gateway.dependencies import CurrentUser, ResourceId
from syntaskio_gateway.timers import (
    MOST_TIMERS,
    TaskTimers,
    TimerNotRunning,
    TimerState,
    TimerView,
    TooLong,
    TooManyTimers,
    worked_hours,
)

router = APIRouter(prefix="/api/v1", tags=["timers"])


def _timers(request: Request) -> TaskTimers:
    timers: TaskTimers = request.app.state.timers
    return timers


Timers = Annotated[TaskTimers, Depends(_timers)]


class TimerChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: TimerState


class TimerStop(BaseModel):
    """What the time entry also says (the hours are the timer's)."""

    model_config = ConfigDict(extra="forbid")

    notes: Text | None = None
    work_type_id: int | None = Field(default=None, ge=1, le=2**31 - 1)
    billable_option: BillableOption | None = None


@router.get("/timers")
async def list_timers(user: CurrentUser, timers: Timers) -> list[TimerView]:
    """The user's running and paused timers."""
    return await timers.list(user)


@router.put(
    "/tasks/{task_id}/timer",
    responses={
        404: {"description": "Not one of the user's tasks"},
        409: {"description": "Not a ticket, or too many timers"},
    },
)
async def set_timer(
    change: TimerChange, task: UsersTask, user: CurrentUser, timers: Timers
) -> TimerView:
    """Start or resume (`running`), or pause (`paused`) the task's timer."""
    if task.source_type not in WRITABLE_SOURCE_TYPES:
        raise Problem(409, "Time is logged on tickets only.")
    if change.state is TimerState.PAUSED:
        try:
            return await timers.pause(user, task.id)
        except TimerNotRunning:
            raise Problem(404, "This task has no timer.") from None
    try:
        return await timers.start(user, task.id)
    except TooManyTimers:
        raise Problem(409, f"At most {MOST_TIMERS} timers at once; stop one first.") from None


@router.post(
    "/tasks/{task_id}/timer/stop", status_code=status.HTTP_202_ACCEPTED, responses=COMMAND_ANSWERS
)
async def stop_timer(
    write_back: WriteBack, user: CurrentUser, timers: Timers, stop: TimerStop | None = None
) -> CommandAccepted:
    """Stop the timer and log its time (since it was first started, pauses left out) as
    a time entry. Retried with the same Idempotency-Key, the same entry is asked for."""
    try:
        stopped = await timers.stop(user, write_back.task.id)
    except TimerNotRunning:
        raise Problem(404, "This task has no timer.") from None
    except TooLong:
        raise Problem(
            409, "More than 24 hours: a time entry holds at most 24; discard it and log by hand."
        ) from None
    extra = stop or TimerStop()
    entry = TimeEntryInput(
        hours=worked_hours(stopped.worked),
        started_at=stopped.started_at,
        notes=extra.notes,
        work_type_id=extra.work_type_id,
        billable_option=extra.billable_option,
    )
    return await write_back.request(CommandAction.ADD_TIME_ENTRY, time_entry=entry)


@router.delete(
    "/tasks/{task_id}/timer",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"description": "No timer for this task"}},
)
async def discard_timer(task_id: ResourceId, user: CurrentUser, timers: Timers) -> Response:
    """Throw the timer away, logging nothing (also for a task that left the dashboard)."""
    if not await timers.discard(user, task_id):
        raise Problem(404, "This task has no timer.")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
