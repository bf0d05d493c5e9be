"""The connector's Kafka subscribers: integration lifecycle events that call for a sync at
once, and write-back commands to run in ConnectWise."""

from __future__ import annotations

import logging
from typing import Final

from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError

from syntaskio_common import events, topics
from syntaskio_common.commands import TaskCommand
from syntaskio_common.integrations import Trigger
from syntaskio_common.kafka import at_least_once
from syntaskio_connector.components import Components

logger = logging.getLogger(__name__)

# The connector's consumer groups: integration lifecycle events, write-back commands.
LIFECYCLE_GROUP_ID: Final = "connector-connectwise"
COMMANDS_GROUP_ID: Final = "connector-connectwise-commands"
# Integration events after which a connection is synced (again), at once, and why.
SYNCED_FROM_NOW: Final = {
    events.INTEGRATION_CONNECTED: Trigger.CONNECTED,
    events.INTEGRATION_RESUMED: Trigger.RESUMED,
}
# ... after which an active connection syncs at once.
SYNC_AT_ONCE: Final = {events.INTEGRATION_MEMBERS_CHANGED: Trigger.MEMBERS_CHANGED}
# ... after which it is no longer synced.
NOT_SYNCED: Final = {
    events.INTEGRATION_DISCONNECTED,
    events.INTEGRATION_EXPIRED,
    events.INTEGRATION_PAUSED,
}


def subscribe(broker: KafkaBroker, parts: Components, fetch_max_wait_ms: int) -> None:
    scheduler, executor = parts.scheduler, parts.executor

    @at_least_once(
        broker,
        topics.INTEGRATIONS,
        LIFECYCLE_GROUP_ID,
        fetch_max_wait_ms=fetch_max_wait_ms,
        description="Integration lifecycle events keep the sync schedule's active "
        "connections: `integration.connected.v1` and `.resumed.v1` start syncing (at once), "
        "`.members_changed.v1` syncs at once, `.disconnected.v1`, `.expired.v1` and "
        "`.paused.v1` stop it",
    )
    async def on_integration_event(message: KafkaMessage) -> None:
        """A new or renewed connection, a resumed one, or a tenant connection whose
        members changed syncs at once instead of waiting for the schedule; one that
        stopped is no longer claimed. (Each replica asks auth-service for the
        credentials at every run, so an event that arrives late costs one refused
        lease, after which the run parks the connection itself.)"""
        try:
            event = events.decode_event(message.headers, message.body)
        except events.InvalidEvent:
            return
        if "id" not in event.data:
            return
        integration_id = str(event.data["id"])
        if event.type in SYNCED_FROM_NOW:
            await scheduler.activate(integration_id, SYNCED_FROM_NOW[event.type])
        elif event.type in SYNC_AT_ONCE:
            await scheduler.request(integration_id, SYNC_AT_ONCE[event.type])
        elif event.type in NOT_SYNCED:
            await scheduler.deactivate(integration_id)

    @at_least_once(
        broker,
        topics.TASK_COMMANDS,
        COMMANDS_GROUP_ID,
        fetch_max_wait_ms=fetch_max_wait_ms,
        description="Write-back commands (`task.command.requested.v1`) to run in ConnectWise",
    )
    async def on_task_command(message: KafkaMessage) -> None:
        """Write-back: execute ConnectWise commands (others are not ours; outcomes,
        also on this topic, are skipped)."""
        try:
            event = events.decode_event(message.headers, message.body)
        except events.InvalidEvent as error:
            logger.warning("not a task command: %s", error)
            return
        if event.type != events.TASK_COMMAND_REQUESTED or event.data.get("source") not in (
            None,
            "connectwise",
        ):
            return
        try:
            command = TaskCommand.model_validate(event.data)
        except ValidationError as error:
            logger.warning(
                "invalid task command refused",
                extra={"event_id": event.id, "errors": error.error_count()},
            )
            return
        await executor.execute(command)
