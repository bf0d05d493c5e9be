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
# Integration events after which a connection syncs at once, and why.
SYNC_AT_ONCE: Final = {
    events.INTEGRATION_CONNECTED: Trigger.CONNECTED,
    events.INTEGRATION_RESUMED: Trigger.RESUMED,
    events.INTEGRATION_MEMBERS_CHANGED: Trigger.MEMBERS_CHANGED,
}


def subscribe(broker: KafkaBroker, parts: Components) -> None:
    scheduler, executor = parts.scheduler, parts.executor

    @at_least_once(
        broker,
        topics.INTEGRATIONS,
        LIFECYCLE_GROUP_ID,
        description="`integration.connected.v1`, `.resumed.v1` and `.members_changed.v1` "
        "start a sync at once",
    )
    async def on_integration_event(message: KafkaMessage) -> None:
        """A new or renewed connection, a resumed one, or a tenant connection whose
        members changed syncs at once instead of waiting for the schedule."""
        try:
            event = events.decode_event(message.headers, message.body)
        except events.InvalidEvent:
            return
        trigger = SYNC_AT_ONCE.get(event.type)
        if trigger is not None and "id" in event.data:
            await scheduler.request(str(event.data["id"]), trigger)

    @at_least_once(
        broker,
        topics.TASK_COMMANDS,
        COMMANDS_GROUP_ID,
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
