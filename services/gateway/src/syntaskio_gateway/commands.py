"""Write-back requests: the gateway turns "complete / add a note / log time on my task"
into a `task.command.requested` event, once per Idempotency-Key.

Each request is recorded before it is published (`command_requests`, kept a day). A retry
with the same key finds the record and publishes the same command again: the connector
executes a `command_id` once, so a retry after a lost answer or a crash between the
record and the publish changes ConnectWise once. The same key with a different request is
refused rather than answered with the first request's command.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from syntaskio_common.commands import (
    CommandAction,
    CommandOutcome,
    CommandStatus,
    NoteInput,
    TaskCommand,
    TimeEntryInput,
    requested_event,
)
from syntaskio_common.events import KafkaRecord
from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.task import SourceType, Task

# Fixed namespace: the same user and key name the same request on every replica.
_REQUEST_NAMESPACE: Final = uuid.UUID("5d1b6f0e-2c7a-4b8e-9f3d-8a6e4c2b1f07")
REQUEST_RETENTION_SECONDS = 24 * 3600
# The source records write-back can change (a project phase has no notes or status).
WRITABLE_SOURCE_TYPES = frozenset({SourceType.SERVICE_TICKET, SourceType.PROJECT_TICKET})

IdempotencyKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{8,128}$")]


class IdempotencyKeyReused(Exception):
    """The key was already used for a different request."""


class NotWritable(Exception):
    """The task's source record cannot be changed from here."""


class CommandAccepted(BaseModel):
    command_id: str
    status: CommandStatus
    status_url: str


class RequestedCommand(BaseModel):
    task_id: str
    command: TaskCommand

    def view(self, outcome: CommandOutcome | None) -> CommandView:
        """As its requester sees it: pending until the connector has an outcome."""
        return CommandView(
            command_id=self.command.command_id,
            task_id=self.task_id,
            action=self.command.action,
            status=outcome.status if outcome else CommandStatus.PENDING,
            error=outcome.error if outcome else None,
            requested_at=self.command.requested_at,
            finished_at=outcome.finished_at if outcome else None,
            ticket_status=outcome.ticket_status if outcome else None,
        )


class CommandView(BaseModel):
    """A write-back command as its requester sees it."""

    command_id: str
    task_id: str
    action: CommandAction
    status: CommandStatus
    error: str | None = None
    requested_at: AwareDatetime
    finished_at: AwareDatetime | None = None
    ticket_status: dict[str, Any] | None = Field(
        default=None, description="The ticket's status (`id`, `name`) after a status change"
    )


def _request_id(user: UserSession, idempotency_key: str) -> str:
    name = "\x1f".join((user.tenant_id, user.user_id, idempotency_key))
    return str(uuid.uuid5(_REQUEST_NAMESPACE, name))


def _fingerprint(task_id: str, action: CommandAction, changes: dict[str, Any]) -> str:
    request = json.dumps(
        {"task_id": task_id, "action": action.value, **changes}, sort_keys=True, default=str
    )
    return hashlib.sha256(request.encode()).hexdigest()


class CommandRequests:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        publish: Callable[[KafkaRecord], Awaitable[None]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._requests = db["command_requests"]
        self._publish = publish
        self._clock = clock

    async def create_indexes(self) -> None:
        await self._requests.create_index(
            "requested_at", expireAfterSeconds=REQUEST_RETENTION_SECONDS, name="retention"
        )
        await self._requests.create_index("command_id", unique=True, name="command")

    async def request(
        self,
        user: UserSession,
        task: Task,
        action: CommandAction,
        idempotency_key: str,
        *,
        note: NoteInput | None = None,
        time_entry: TimeEntryInput | None = None,
        close: bool = False,
        status_id: int | None = None,
        status_name: str | None = None,
        keep_status: bool = False,
    ) -> TaskCommand:
        """Record and publish the command (again, for a retry with the same key).
        `status_name` comes from the company's settings, not the request: a retry is the
        same request whatever the settings say meanwhile."""
        if task.source_type not in WRITABLE_SOURCE_TYPES:
            raise NotWritable(
                f"A {task.source_type.value.replace('_', ' ')} can't be changed here."
            )
        changes: dict[str, Any] = {
            "note": note.model_dump(mode="json") if note else None,
            "time_entry": time_entry.model_dump(mode="json") if time_entry else None,
        }
        if close:
            changes["close"] = True
        if status_id is not None:
            changes["status_id"] = status_id
        if keep_status:
            changes["keep_status"] = True  # the request's, not the command's (it has none)
        fingerprint = _fingerprint(task.id, action, changes)
        command = TaskCommand.model_validate(
            {
                # A new id, not one derived from the key: a key used again after its
                # record expired is a new request, not the old command's replay.
                "command_id": str(uuid.uuid4()),
                "tenant_id": user.tenant_id,
                "user_id": user.user_id,
                "integration_id": task.integration_id,
                "source": task.source.value,
                "source_type": task.source_type.value,
                "external_id": task.external_id,
                "action": action,
                "requested_at": self._clock(),
                **changes,
                **({"status_name": status_name} if status_name else {}),
            }
        )
        try:
            await self._requests.insert_one(
                {
                    "_id": _request_id(user, idempotency_key),
                    "command_id": command.command_id,
                    "tenant_id": user.tenant_id,
                    "user_id": user.user_id,
                    "task_id": task.id,
                    "fingerprint": fingerprint,
                    "requested_at": command.requested_at,
                    "command": command.model_dump(mode="json"),
                }
            )
        except DuplicateKeyError:
            earlier = await self._requests.find_one({"_id": _request_id(user, idempotency_key)})
            if earlier is None or earlier["fingerprint"] != fingerprint:
                raise IdempotencyKeyReused from None
            command = TaskCommand.model_validate(earlier["command"])
        await self._publish(requested_event(command))
        return command

    async def find(self, user: UserSession, command_id: str) -> RequestedCommand | None:
        record = await self._requests.find_one(
            {"command_id": command_id, "tenant_id": user.tenant_id, "user_id": user.user_id}
        )
        if record is None:
            return None
        return RequestedCommand(
            task_id=record["task_id"], command=TaskCommand.model_validate(record["command"])
        )
