"""Write-back: task commands executed against ConnectWise exactly once each.

Every command has a journal entry in `command_executions` (by command id) that records
each step — note, time entry, status — before and after its request. A redelivered
command that finished is answered from the journal. One that was cut off mid-step (the
replica died between ConnectWise's answer and the journal write) looks the step's
record up in ConnectWise before doing it again, so a note or time entry is never added
twice. Status changes are idempotent by nature (a PATCH to the target status).

Steps run note → time entry → status: a closed status may not allow time entries.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.commands import (
    CommandAction,
    CommandOutcome,
    CommandStatus,
    TaskCommand,
)
from syntaskio_common.connectwise import (
    BadRequest,
    ConnectWiseClient,
    ConnectWiseError,
    Forbidden,
    NotFound,
    ServerError,
    Unavailable,
)
from syntaskio_common.connectwise_conditions import F
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.egress import SiteRejected
from syntaskio_common.leases import Leases
from syntaskio_common.mongo import Document
from syntaskio_common.task import parse_timestamp
from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.assignment import PATHS, Entity, Member, ref_id
from syntaskio_connector.auth_client import CannotAct
from syntaskio_connector.budget import SyncDeferred
from syntaskio_connector.engine import Changed
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.sync import integration_ref
from syntaskio_connector.tracking import SyncTracking

logger = logging.getLogger(__name__)

JOURNAL_RETENTION: Final = timedelta(days=30)
# A step cut off mid-request is looked up among records created from this long before
# it started (clocks differ between us and ConnectWise).
CLOCK_SKEW: Final = timedelta(minutes=5)
CHARGE_TO_TYPES: Final = {
    Entity.SERVICE_TICKET: "ServiceTicket",
    Entity.PROJECT_TICKET: "ProjectTicket",
}

OutcomePublisher = Callable[[CommandOutcome], Awaitable[None]]
RefreshRequest = Callable[[str, Changed], Awaitable[None]]


class CommandRefused(Exception):
    """The command cannot or may not be executed; retrying would not help."""


class CommandJournal:
    """`command_executions`: one document per command id."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._journal = db["command_executions"]

    async def create_indexes(self) -> None:
        await self._journal.create_index(
            "created_at", expireAfterSeconds=int(JOURNAL_RETENTION.total_seconds()), name="expiry"
        )
        await self._journal.create_index(
            [("tenant_id", ASCENDING), ("user_id", ASCENDING)], name="by_user"
        )

    async def begin(self, command: TaskCommand) -> Document:
        """The command's entry, created on first sight (a redelivery gets the existing
        one; a different command reusing the id is not mixed in: see `execute`)."""
        doc = await self._journal.find_one_and_update(
            {"_id": command.command_id},
            {
                "$setOnInsert": {
                    "tenant_id": command.tenant_id,
                    "user_id": command.user_id,
                    "integration_id": command.integration_id,
                    "source_type": command.source_type,
                    "external_id": command.external_id,
                    "action": command.action.value,
                    "steps": {},
                    "created_at": datetime.now(UTC),
                }
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        return doc

    async def step(self, command_id: str, step: str, **fields: Any) -> None:
        await self._journal.update_one(
            {"_id": command_id},
            {"$set": {f"steps.{step}.{name}": value for name, value in fields.items()}},
        )

    async def finish(self, outcome: CommandOutcome) -> None:
        await self._journal.update_one(
            {"_id": outcome.command_id},
            {"$set": {"outcome": outcome.model_dump(mode="json")}},
        )

    async def outcome(self, tenant_id: str, user_id: str, command_id: str) -> CommandOutcome | None:
        """The outcome as its user may see it (None for anyone else's command)."""
        doc = await self._journal.find_one(
            {"_id": command_id, "tenant_id": tenant_id, "user_id": user_id}
        )
        if doc is None:
            return None
        if doc.get("outcome"):
            return CommandOutcome.model_validate(doc["outcome"])
        return CommandOutcome(
            command_id=command_id,
            tenant_id=tenant_id,
            user_id=user_id,
            integration_id=doc["integration_id"],
            source_type=doc["source_type"],
            external_id=doc["external_id"],
            action=CommandAction(doc["action"]),
            status=CommandStatus.RUNNING,
        )


@dataclass
class _Execution:
    command: TaskCommand
    lease: CredentialLease
    # The command's user's ConnectWise member: whose time it is. For a tenant connection
    # the requests are made by the connection's own (API) member on their behalf.
    member: Member
    client: ConnectWiseClient
    entity: Entity
    steps: dict[str, Any]
    outcome: CommandOutcome

    @property
    def ticket_id(self) -> int:
        return int(self.command.external_id)

    @property
    def ticket_path(self) -> str:
        return f"{PATHS[self.entity]}/{self.ticket_id}"


class CommandExecutor:
    def __init__(
        self,
        access: ConnectWiseAccess,
        tracking: SyncTracking,
        metadata: MetadataCache,
        journal: CommandJournal,
        leases: Leases,
        publish_outcome: OutcomePublisher,
        request_refresh: RefreshRequest,
    ) -> None:
        self._access = access
        self._tracking = tracking
        self._metadata = metadata
        self._journal = journal
        self._leases = leases
        self._publish_outcome = publish_outcome
        self._request_refresh = request_refresh

    async def execute(self, command: TaskCommand) -> CommandOutcome:
        """Execute `command` unless it already was; publish and return its outcome."""
        async with self._leases.hold(f"command:{command.command_id}", wait_seconds=60):
            entry = await self._journal.begin(command)
            if entry.get("outcome"):
                outcome = CommandOutcome.model_validate(entry["outcome"])
            else:
                outcome = await self._run(command, entry)
                await self._journal.finish(outcome)
        # Published again on a redelivery: same event id, so subscribers dedupe.
        await self._publish_outcome(outcome)
        if outcome.status is CommandStatus.SUCCEEDED:
            entity = Entity(command.source_type)
            await self._request_refresh(
                command.integration_id,
                Changed(tickets={entity: frozenset({int(command.external_id)})}),
            )
        return outcome

    async def _run(self, command: TaskCommand, entry: Document) -> CommandOutcome:
        outcome = CommandOutcome(
            command_id=command.command_id,
            tenant_id=command.tenant_id,
            user_id=command.user_id,
            integration_id=command.integration_id,
            source_type=command.source_type,
            external_id=command.external_id,
            action=command.action,
            status=CommandStatus.RUNNING,
        )
        try:
            if (entry["tenant_id"], entry["user_id"], entry["external_id"]) != (
                command.tenant_id,
                command.user_id,
                command.external_id,
            ):
                raise CommandRefused("this command id was used for another command")
            run = await self._authorised(command, entry, outcome)
            if command.note is not None:
                await self._add_note(run)
            if command.time_entry is not None:
                await self._add_time_entry(run)
            if command.closes or command.status_id is not None or command.status_name:
                await self._change_status(run)
            status, error = CommandStatus.SUCCEEDED, None
        except CommandRefused as refused:
            status, error = CommandStatus.REJECTED, str(refused)
        except SyncDeferred as deferred:
            status, error = CommandStatus.FAILED, f"ConnectWise is not taking requests: {deferred}"
        except (ConnectWiseError, httpx.HTTPError, SiteRejected) as failed:
            status, error = CommandStatus.FAILED, f"ConnectWise refused the change: {failed}"
        outcome.status, outcome.error = status, error
        outcome.finished_at = datetime.now(UTC)
        logger.info(
            "task command %s",
            status.value,
            extra={"command_id": command.command_id, "action": command.action.value},
        )
        return outcome

    async def _authorised(
        self, command: TaskCommand, entry: Document, outcome: CommandOutcome
    ) -> _Execution:
        """The connection is active (not paused) and syncs the command's user (their own,
        or their company's with them mapped). On a ticket we synced for that user the
        connection's credentials make the change; on any other (one they found) keys
        acting as their own member do, so ConnectWise allows exactly what that member
        may."""
        lease = await self._access.lease(command.integration_id, purpose="write-back")
        ref = integration_ref(lease) if lease is not None else None
        member = ref.member_for(command.user_id) if ref is not None else None
        if lease is None or ref is None or member is None or lease.tenant_id != command.tenant_id:
            raise CommandRefused("no such active ConnectWise connection for this user")
        entity = Entity(command.source_type)
        ticket_id = int(command.external_id)
        tracked = await self._tracking.tracked(ref, entity, [ticket_id])
        if ticket_id not in tracked or command.user_id not in ref.users_of(tracked[ticket_id].data):
            lease = await self._acting(command)
        return _Execution(
            command,
            lease,
            member,
            self._access.client(lease),
            entity,
            dict(entry["steps"]),
            outcome,
        )

    async def _acting(self, command: TaskCommand) -> CredentialLease:
        try:
            lease = await self._access.acting(command.tenant_id, command.user_id, "write-back")
        except LookupError:
            raise CommandRefused("no such active ConnectWise connection for this user") from None
        except CannotAct as refused:
            raise CommandRefused(str(refused)) from None
        if lease.integration_id != command.integration_id:
            raise CommandRefused("the user's ConnectWise connection changed; search again")
        return lease

    # -- steps ----------------------------------------------------------------------------

    async def _add_note(self, run: _Execution) -> None:
        note = run.command.note
        assert note is not None
        body = {
            "text": note.text,
            "detailDescriptionFlag": not note.internal,
            "internalAnalysisFlag": note.internal,
            "resolutionFlag": note.resolution,
        }

        async def find(since: datetime) -> int | None:
            async for page in run.client.pages(f"{run.ticket_path}/notes"):
                for existing in page:
                    created = parse_timestamp(existing.get("dateCreated"))
                    if (
                        existing.get("text") == note.text
                        and existing.get("createdBy") == run.lease.member_identifier
                        and created is not None
                        and created >= since
                    ):
                        return int(existing["id"])
            return None

        run.outcome.note_id = await self._once(run, "note", f"{run.ticket_path}/notes", body, find)

    async def _add_time_entry(self, run: _Execution) -> None:
        entry = run.command.time_entry
        assert entry is not None
        began = entry.started_at or run.command.requested_at - timedelta(hours=entry.hours)
        # Whole minutes, from the command alone: a repeat attempt looks for this value.
        started = began.astimezone(UTC).replace(second=0, microsecond=0)
        time_start = started.strftime("%Y-%m-%dT%H:%M:%SZ")
        body: dict[str, Any] = {
            "chargeToType": CHARGE_TO_TYPES[run.entity],
            "chargeToId": run.ticket_id,
            "member": {"identifier": run.member.identifier},
            "timeStart": time_start,
            "actualHours": entry.hours,
        }
        if entry.notes:
            body["notes"] = entry.notes
        if entry.work_type_id is not None:
            body["workType"] = {"id": entry.work_type_id}
        if entry.billable_option is not None:
            body["billableOption"] = entry.billable_option

        async def find(since: datetime) -> int | None:
            # timeStart comes from the command, so the entry is found exactly.
            condition = (
                (F("chargeToId") == run.ticket_id)
                & (F("chargeToType") == CHARGE_TO_TYPES[run.entity])
                & (F("member/identifier") == run.member.identifier)
                & (F("timeStart") == started)
            )
            async for page in run.client.pages("time/entries", conditions=condition):
                for existing in page:
                    return int(existing["id"])
            return None

        run.outcome.time_entry_id = await self._once(run, "time_entry", "time/entries", body, find)

    async def _once(
        self,
        run: _Execution,
        step: str,
        path: str,
        body: dict[str, Any],
        find: Callable[[datetime], Awaitable[int | None]],
    ) -> int:
        """POST `body` unless the journal (or, after a cut-off attempt, ConnectWise)
        shows it was done; the created record's id."""
        done = run.steps.get(step) or {}
        if done.get("id") is not None:
            return int(done["id"])
        if done.get("started_at") is not None:
            found = await find(done["started_at"] - CLOCK_SKEW)
            if found is not None:
                await self._journal.step(run.command.command_id, step, id=found)
                return found
        started_at = datetime.now(UTC)
        await self._journal.step(run.command.command_id, step, started_at=started_at)
        try:
            created = await run.client.post(path, body)
            record_id = int(created["id"])
        except (BadRequest, Forbidden, NotFound) as refused:
            what = step.replace("_", " ")
            raise CommandRefused(f"ConnectWise refused the {what}: {refused}") from None
        except (ServerError, Unavailable):
            # No answer, or an error after which the record may exist all the same.
            found = await find(started_at - CLOCK_SKEW)
            if found is None:
                raise
            record_id = found
        await self._journal.step(run.command.command_id, step, id=record_id)
        return record_id

    async def _change_status(self, run: _Execution) -> None:
        try:
            ticket = await run.client.get(run.ticket_path, fields="id,board,status,closedFlag")
        except NotFound:
            raise CommandRefused("the ticket no longer exists in ConnectWise") from None
        board_id = ref_id(ticket.get("board"))
        if board_id is None:
            raise CommandRefused("the ticket has no board, so no statuses to move to")
        statuses = (
            await self._metadata.board_statuses(run.client, integration_ref(run.lease), [board_id])
        ).get(board_id, {})
        target = self._target_status(run.command, statuses)
        if target is None:
            return  # no status of that name on this board: the status is left alone
        run.outcome.ticket_status = {"id": target["id"], "name": target.get("name")}
        if ref_id(ticket.get("status")) == target["id"]:
            return  # already there (or done before a redelivery)
        try:
            await run.client.patch(
                run.ticket_path, [{"op": "replace", "path": "status/id", "value": target["id"]}]
            )
        except (BadRequest, Forbidden) as refused:
            raise CommandRefused(f"ConnectWise refused the status change: {refused}") from None

    @staticmethod
    def _target_status(
        command: TaskCommand, statuses: dict[int, dict[str, Any]]
    ) -> dict[str, Any] | None:
        if command.status_name is not None:
            wanted = command.status_name.casefold()
            named = [
                s
                for s in statuses.values()
                if str(s.get("name", "")).strip().casefold() == wanted and not s.get("inactive")
            ]
            return min(named, key=lambda s: s["id"]) if named else None
        if command.status_id is not None:
            status = statuses.get(command.status_id)
            if status is None or status.get("inactive"):
                raise CommandRefused(f"status {command.status_id} is not on the ticket's board")
            return status
        closed = [s for s in statuses.values() if s.get("closedStatus") and not s.get("inactive")]
        if not closed:
            raise CommandRefused("the ticket's board has no closed status")
        return min(closed, key=lambda s: (s.get("sortOrder", 0), s["id"]))
