"""Kafka topic names: the public contracts between services (see docs/events.md)."""

from typing import Final

CONNECTWISE_RAW: Final = "syntaskio.connectwise.raw.v1"
TASKS: Final = "syntaskio.tasks.v1"
INTEGRATIONS: Final = "syntaskio.integrations.v1"
TASK_COMMANDS: Final = "syntaskio.task-commands.v1"

ALL: Final = (CONNECTWISE_RAW, TASKS, INTEGRATIONS, TASK_COMMANDS)


def dead_letter(topic: str) -> str:
    """Each topic's dead-letter queue."""
    return f"{topic}.dlq"
