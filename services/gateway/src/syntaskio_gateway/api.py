"""The dashboard API under /api/v1: tasks and write-back commands (signing in and out
is in `session_api`, integration settings in `integrations_api`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Depends, Header, Query, Request, Response, status
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field, model_validator

from syntaskio_common.commands import CommandAction, CommandStatus, NoteInput, TimeEntryInput
from syntaskio_common.problems import UNAVAILABLE_RETRY_AFTER, Problem
from syntaskio_common.task import Task
from syntaskio_common.tenant_settings import TenantSettings
from syntaskio_common.ticket_detail import TicketDetail
from syntaskio_gateway.auth_proxy import forward
from syntaskio_gateway.commands import (
    WRITABLE_SOURCE_TYPES,
    CommandAccepted,
    CommandRequests,
    CommandView,
    IdempotencyKey,
    IdempotencyKeyReused,
    NotWritable,
)
from syntaskio_gateway.connector import ConnectorRefused, ConnectorUnavailable
from syntaskio_gateway.dependencies import (
    AuthenticatedUser,
    Connector,
    CurrentUser,
    ResourceId,
)
from syntaskio_gateway.found_tickets import FOUND_BY_SEARCH, FoundTickets
from syntaskio_gateway.live import TaskFeed, stream
from syntaskio_gateway.task_query import InvalidQuery, TaskFilters, TaskListQuery
from syntaskio_gateway.tasks import TaskFacets, TaskPage, TaskReader

router = APIRouter(prefix="/api/v1")


def _reader(request: Request) -> TaskReader:
    reader: TaskReader = request.app.state.tasks
    return reader


Reader = Annotated[TaskReader, Depends(_reader)]


def _found_tickets(request: Request) -> FoundTickets:
    found: FoundTickets = request.app.state.found_tickets
    return found


Found = Annotated[FoundTickets, Depends(_found_tickets)]


@contextmanager
def connector_problems(unavailable: str) -> Iterator[None]:
    """The connector's refusals passed on to the user; its absence as a 503."""
    try:
        yield
    except ConnectorRefused as refused:
        headers = {"Retry-After": refused.retry_after} if refused.retry_after else None
        raise Problem(refused.status, refused.detail, headers=headers) from None
    except ConnectorUnavailable as error:
        raise Problem(503, unavailable, headers={"Retry-After": UNAVAILABLE_RETRY_AFTER}) from error


@router.get("/tasks", tags=["tasks"], responses={400: {"description": "Not a cursor of ours"}})
async def list_tasks(
    user: CurrentUser, reader: Reader, query: Annotated[TaskListQuery, Query()]
) -> TaskPage:
    """The signed-in user's tasks: filtered, searched, sorted, one page at a time."""
    try:
        return await reader.page(user, query)
    except InvalidQuery as error:
        raise Problem(400, str(error)) from None


@router.get("/tasks/facets", tags=["tasks"])
async def task_facets(
    user: CurrentUser, reader: Reader, filters: Annotated[TaskFilters, Query()]
) -> TaskFacets:
    """How many of the user's tasks each filter value would show: "Board: Service (12)"."""
    return await reader.facets(user, filters)


async def _a_free_stream(request: Request, user: CurrentUser) -> AsyncIterator[None]:
    """A place among the user's streams, held until the stream ends (a dependency with
    `yield` ends after the response); refused before the stream starts when they hold
    the most allowed."""
    feed: TaskFeed = request.app.state.feed
    most = request.app.state.settings.live_streams_per_user
    with feed.buffer.admitted(user.tenant_id, user.user_id, most) as admitted:
        if not admitted:
            raise Problem(
                429,
                f"At most {most} live streams may be open at once; close another tab.",
                headers={"Retry-After": "30"},
            )
        yield


@router.get(
    "/tasks/stream",
    tags=["tasks"],
    response_class=EventSourceResponse,
    dependencies=[Depends(_a_free_stream)],
    responses={429: {"description": "Too many requests, or too many streams open"}},
)
async def task_stream(
    request: Request,
    user: CurrentUser,
    last_event_id: Annotated[str | None, Header(max_length=200)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """The user's task changes as Server-Sent Events: `task.upserted` (data: `version`,
    `task`) and `task.deleted` (the task's ids and `version`); keep per task the greatest
    `version`. `ready` once caught up. Reconnecting with `Last-Event-ID` resumes after that
    event; `reset` means changes were missed: load the tasks again."""
    feed: TaskFeed = request.app.state.feed
    with feed.buffer.subscribe(user.tenant_id, user.user_id, last_event_id) as subscription:
        async for message in stream(subscription):
            yield message


async def _users_task(task_id: ResourceId, user: CurrentUser, reader: Reader, found: Found) -> Task:
    """One of the user's tasks, or a ticket they found by searching (`found_tickets`)."""
    task = await reader.get(user, task_id) or await found.get(user, task_id)
    if task is None:
        raise Problem(404, "No such task.")
    return task


UsersTask = Annotated[Task, Depends(_users_task)]


@router.get(
    "/tasks/{task_id}",
    tags=["tasks"],
    responses={404: {"description": "Not one of the user's tasks"}},
)
async def get_task(task: UsersTask) -> Task:
    """One of the user's tasks, with its source details and deep link."""
    return task


@router.get(
    "/tasks/{task_id}/detail",
    tags=["tasks"],
    responses={
        404: {"description": "Not one of the user's tasks, or gone from ConnectWise"},
        409: {"description": "Not a ticket, or its connection is not active"},
        502: {"description": "ConnectWise did not answer as expected"},
        503: {"description": "ConnectWise or its budget is unavailable; see Retry-After"},
    },
)
async def task_detail(task: UsersTask, connector: Connector) -> TicketDetail:
    """The ticket behind one of the user's tasks (or a ticket they found), read in
    ConnectWise: its description, notes, time entries, contact, schedule and the board's
    statuses. Cached by the connector; never older than the task itself. A found ticket
    is read as the user's own ConnectWise member. Text is plain text: show it as text."""
    if task.source_type not in WRITABLE_SOURCE_TYPES:
        raise Problem(409, "Only tickets have a detail; open the project in ConnectWise.")
    found = bool(task.source_data.get(FOUND_BY_SEARCH))
    with connector_problems("Ticket details are unavailable right now."):
        detail = await connector.ticket_detail(
            task.tenant_id,
            task.integration_id,
            task.source_type.value,
            task.external_id,
            task.source_updated_at,
            acting_for=task.user_id if found else None,
        )
    detail.on_dashboard = not found
    mine = _schedule_ids(task)
    for entry in detail.schedule_entries:
        entry.mine = entry.id in mine
    detail.sla = task.sla
    return detail


def _schedule_ids(task: Task) -> set[int]:
    """The user's own schedule entries on the ticket (the task carries them)."""
    entries = task.source_data.get("schedule")
    if not isinstance(entries, list):
        return set()
    return {e["id"] for e in entries if isinstance(e, dict) and isinstance(e.get("id"), int)}


def _commands(request: Request) -> CommandRequests:
    commands: CommandRequests = request.app.state.commands
    return commands


Commands = Annotated[CommandRequests, Depends(_commands)]
IdempotencyKeyHeader = Annotated[
    IdempotencyKey,
    Header(
        description="A fresh random value per intended change (a UUID); send the same one "
        "when retrying, and the change is made once."
    ),
]
COMMAND_ANSWERS: dict[int | str, dict[str, str]] = {
    404: {"description": "Not one of the user's tasks"},
    409: {
        "description": "The task's source record cannot be changed from here, or the "
        "company turned ConnectWise off"
    },
    422: {"description": "Invalid input, or the Idempotency-Key was used for another request"},
    503: {"description": "Write-back is unavailable; retry with the same Idempotency-Key"},
}


@dataclass(frozen=True)
class _WriteBack:
    """A write-back request on one of the user's tasks, under its Idempotency-Key."""

    response: Response
    user: AuthenticatedUser
    task: Task
    commands: CommandRequests
    idempotency_key: str
    company: TenantSettings  # the company's settings (the defaults if they were unavailable)

    async def request(self, action: CommandAction, **changes: Any) -> CommandAccepted:
        """`changes`: what `CommandRequests.request` takes (note, time entry, status)."""
        try:
            command = await self.commands.request(
                self.user, self.task, action, self.idempotency_key, **changes
            )
        except NotWritable as error:
            raise Problem(409, str(error)) from None
        except IdempotencyKeyReused:
            raise Problem(
                422, "This Idempotency-Key was already used for a different request."
            ) from None
        except KafkaError as error:
            raise Problem(
                503, "Write-back is unavailable right now; retry with the same Idempotency-Key."
            ) from error
        status_url = f"/api/v1/commands/{command.command_id}"
        self.response.headers["Location"] = status_url
        return CommandAccepted(
            command_id=command.command_id, status=CommandStatus.PENDING, status_url=status_url
        )


async def _write_back(
    task: UsersTask,
    request: Request,
    response: Response,
    user: CurrentUser,
    commands: Commands,
    idempotency_key: IdempotencyKeyHeader,
) -> _WriteBack:
    company = await company_settings_for(request, user)
    if not company.connectwise_enabled:
        # Told before anything is queued (the connector would refuse it: the company's
        # connections lease nothing while it is off).
        raise Problem(
            409,
            "ConnectWise is turned off for your company; an admin can turn it on again.",
            title="ConnectWise is off",
        )
    return _WriteBack(response, user, task, commands, idempotency_key, company)


async def company_settings_for(request: Request, user: AuthenticatedUser) -> TenantSettings:
    """The company's settings; the defaults when auth-service cannot say (the connector
    still refuses a turned-off company's commands, so nothing is written that should not)."""
    try:
        upstream = await forward(request, "GET", "/v1/settings", user.token)
    except Problem:
        return TenantSettings()
    if upstream.status_code != status.HTTP_200_OK:
        return TenantSettings()
    return TenantSettings.model_validate_json(upstream.content)


WriteBack = Annotated[_WriteBack, Depends(_write_back)]
_WRITE_BACK_ROUTE: dict[str, Any] = {
    "tags": ["write-back"],
    "status_code": status.HTTP_202_ACCEPTED,
    "responses": COMMAND_ANSWERS,
}


@router.post("/tasks/{task_id}/complete", **_WRITE_BACK_ROUTE)
async def complete_task(write_back: WriteBack) -> CommandAccepted:
    """Close the task in its source (the board's closed status). Follow `status_url`."""
    return await write_back.request(CommandAction.COMPLETE)


@router.post("/tasks/{task_id}/notes", **_WRITE_BACK_ROUTE)
async def add_note(note: NoteInput, write_back: WriteBack) -> CommandAccepted:
    """Add a note to the ticket (internal, or discussion the customer can see)."""
    return await write_back.request(CommandAction.ADD_NOTE, note=note)


@router.post("/tasks/{task_id}/time-entries", **_WRITE_BACK_ROUTE)
async def log_time(time_entry: TimeEntryInput, write_back: WriteBack) -> CommandAccepted:
    """Log time against the ticket, as the signed-in member."""
    return await write_back.request(CommandAction.ADD_TIME_ENTRY, time_entry=time_entry)


class StatusInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status_id: int = Field(ge=1, le=2**31 - 1, description="A status of the ticket's board")


@router.post("/tasks/{task_id}/status", **_WRITE_BACK_ROUTE)
async def change_status(change: StatusInput, write_back: WriteBack) -> CommandAccepted:
    """Move the ticket to another status of its board (the detail lists them); a closed
    one completes the task."""
    return await write_back.request(CommandAction.UPDATE_STATUS, status_id=change.status_id)


class LogChangeInput(BaseModel):
    """A note and/or time entry at once, and optionally a status change."""

    model_config = ConfigDict(extra="forbid")

    note: NoteInput | None = None
    time_entry: TimeEntryInput | None = None
    close: bool = Field(default=False, description="Also complete the task")
    status_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="A status of the ticket's board"
    )
    keep_status: bool = Field(
        default=False, description="Leave the status as it is, whatever the company's default"
    )

    @model_validator(mode="after")
    def _something_and_one_status(self) -> LogChangeInput:
        if self.note is None and self.time_entry is None:
            raise ValueError("a change needs a note, a time entry or both")
        if sum((self.close, self.status_id is not None, self.keep_status)) > 1:
            raise ValueError("close, status_id and keep_status are exclusive")
        return self


@router.post("/tasks/{task_id}/log-change", **_WRITE_BACK_ROUTE)
async def log_change(change: LogChangeInput, write_back: WriteBack) -> CommandAccepted:
    """Log a change: the note, then the time entry, then the status — `close`, a
    `status_id`, `keep_status`, or when none is given the company's log-change status
    (Company settings) if the ticket's board has a status of that name."""
    chose = change.close or change.status_id is not None or change.keep_status
    status_name = write_back.company.log_change_status if not chose else None
    return await write_back.request(
        CommandAction.LOG_CHANGE,
        note=change.note,
        time_entry=change.time_entry,
        close=change.close,
        status_id=change.status_id,
        status_name=status_name,
        keep_status=change.keep_status,
    )


@router.get(
    "/commands/{command_id}",
    tags=["write-back"],
    responses={404: {"description": "Not one of the user's commands"}, 503: {}},
)
async def get_command(
    command_id: ResourceId, user: CurrentUser, commands: Commands, connector: Connector
) -> CommandView:
    """How a write-back command went: pending, running, succeeded, failed or rejected."""
    requested = await commands.find(user, command_id)
    if requested is None:
        raise Problem(404, "No such command.")
    try:
        outcome = await connector.command_outcome(user.tenant_id, user.user_id, command_id)
    except ConnectorUnavailable as error:
        raise Problem(503, "Command status is unavailable right now.") from error
    return requested.view(outcome)
