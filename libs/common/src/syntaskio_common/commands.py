"""Write-back commands (`syntaskio.task-commands.v1`): what a user asks to change in the
source system, and how it ended.

The gateway publishes `task.command.requested` (keyed by the task, so commands on one
task are executed in order); the connector that owns the source executes it once per
`command_id`, however often it is delivered, and publishes `task.command.succeeded` or
`task.command.failed` on the same topic.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from syntaskio_common import events
from syntaskio_common.tenant_settings import StatusName

COMMAND_SOURCE = "/syntaskio/gateway"
OUTCOME_SOURCE = "/syntaskio/connector-connectwise"

# Our own ids (commands, integrations): they also go into URL paths and event ids.
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:@-]{1,128}$")]
# Tenants and users as the identity provider names them (`alex+ops@…`, `auth0|…`): any
# visible characters; they are compared and stored, never put into a path.
PrincipalId = Annotated[str, StringConstraints(pattern=r"^[^\s\x00-\x1f\x7f]{1,128}$")]


def _no_control_characters(text: str) -> str:
    if any(ord(c) < 32 and c not in "\n\r\t" for c in text):
        raise ValueError("text must not contain control characters")
    return text


Text = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=4000),
    AfterValidator(_no_control_characters),
]


def task_key(integration_id: str, source_type: str, external_id: str) -> str:
    """The Kafka key of a task's commands and outcomes: one task stays in one
    partition, in order."""
    return f"{integration_id}/{source_type}/{external_id}"


class CommandAction(StrEnum):
    COMPLETE = "complete"  # move to the board's closed status
    UPDATE_STATUS = "update_status"
    ADD_NOTE = "add_note"
    ADD_TIME_ENTRY = "add_time_entry"
    LOG_CHANGE = "log_change"  # a note and/or time entry, and maybe a status, at once


class NoteInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text
    # Internal notes are for the team (internal analysis); the others are discussion the
    # customer can see. A resolution note is also shown as the ticket's resolution.
    internal: bool = False
    resolution: bool = False


# ConnectWise's `TimeEntry.billableOption` values.
BillableOption = Literal["Billable", "DoNotBill", "NoCharge", "NoDefault"]


class TimeEntryInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hours: float = Field(gt=0, le=24, multiple_of=0.01)
    notes: Text | None = None
    # When the work started; the connector uses the command's `requested_at` minus the
    # hours when absent.
    started_at: AwareDatetime | None = None
    work_type_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1, description="A work type of the ticket's detail"
    )
    billable_option: BillableOption | None = Field(
        default=None, description="Unset: the work type's own"
    )


class TaskCommand(BaseModel):
    """The `data` of a `task.command.requested` event."""

    model_config = ConfigDict(extra="ignore")

    command_id: Identifier
    tenant_id: PrincipalId
    user_id: PrincipalId
    integration_id: Identifier
    source: Literal["connectwise"] = "connectwise"
    source_type: Literal["service_ticket", "project_ticket"]
    external_id: Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{0,17}$")]
    action: CommandAction
    status_id: int | None = Field(default=None, ge=1)
    close: bool = False  # log_change: also complete the task
    # log_change: the status of this name on the ticket's board, if it has one (the
    # company's `TenantSettings.log_change_status`, when the user chose none).
    status_name: StatusName | None = None
    note: NoteInput | None = None
    time_entry: TimeEntryInput | None = None
    requested_at: AwareDatetime

    @model_validator(mode="after")
    def _fits_the_action(self) -> Self:
        needs: dict[CommandAction, bool] = {
            CommandAction.COMPLETE: True,
            CommandAction.UPDATE_STATUS: self.status_id is not None,
            CommandAction.ADD_NOTE: self.note is not None,
            CommandAction.ADD_TIME_ENTRY: self.time_entry is not None,
            CommandAction.LOG_CHANGE: self.note is not None or self.time_entry is not None,
        }
        if not needs[self.action]:
            raise ValueError(f"{self.action.value} is missing what it changes")
        if sum((self.close, self.status_id is not None, self.status_name is not None)) > 1:
            raise ValueError("close, status_id and status_name are exclusive")
        if self.status_name is not None and self.action is not CommandAction.LOG_CHANGE:
            raise ValueError("status_name is for log_change only")
        extra = {
            CommandAction.COMPLETE: (self.note, self.time_entry, self.status_id),
            CommandAction.UPDATE_STATUS: (self.note, self.time_entry),
            CommandAction.ADD_NOTE: (self.time_entry, self.status_id),
            CommandAction.ADD_TIME_ENTRY: (self.note, self.status_id),
            CommandAction.LOG_CHANGE: (),
        }[self.action]
        if any(value is not None for value in extra) or (
            self.close and self.action is not CommandAction.LOG_CHANGE
        ):
            raise ValueError(f"{self.action.value} takes only its own fields")
        return self

    @property
    def closes(self) -> bool:
        return self.action is CommandAction.COMPLETE or self.close

    @property
    def task_key(self) -> str:
        return task_key(self.integration_id, self.source_type, self.external_id)


class CommandStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # ConnectWise refused it or could not be reached; may be retried
    REJECTED = "rejected"  # not allowed or not possible (not your task, unknown status)


class CommandOutcome(BaseModel):
    """The `data` of `task.command.succeeded` / `task.command.failed`, and what the
    connector's command API answers."""

    command_id: str
    tenant_id: str
    user_id: str
    integration_id: str
    source_type: str
    external_id: str
    action: CommandAction
    status: CommandStatus
    error: str | None = None
    note_id: int | None = None
    time_entry_id: int | None = None
    ticket_status: dict[str, Any] | None = None  # {id, name} after a status change
    finished_at: datetime | None = None


def requested_event(command: TaskCommand) -> events.KafkaRecord:
    return events.encode_event(
        event_id=command.command_id,
        source=COMMAND_SOURCE,
        event_type=events.TASK_COMMAND_REQUESTED,
        data=command.model_dump(mode="json"),
        key=command.task_key,
        subject=f"{command.source_type}/{command.external_id}",
        time=command.requested_at,
    )


def outcome_event(outcome: CommandOutcome) -> events.KafkaRecord:
    succeeded = outcome.status is CommandStatus.SUCCEEDED
    return events.encode_event(
        event_id=f"{outcome.command_id}/outcome",
        source=OUTCOME_SOURCE,
        event_type=events.TASK_COMMAND_SUCCEEDED if succeeded else events.TASK_COMMAND_FAILED,
        data=outcome.model_dump(mode="json"),
        key=task_key(outcome.integration_id, outcome.source_type, outcome.external_id),
        subject=f"{outcome.source_type}/{outcome.external_id}",
        time=outcome.finished_at,
    )
