"""The public task feed, `syntaskio.tasks.v1`: what other services subscribe to.

Each event carries the whole task (or, when it is deleted, which task went) and the
task's `version`, a string that sorts in the order the aggregator applied versions. The
record key is the task id, so one task's events stay in one partition, in order.
Delivery is at least once: after a crash an event can come again with the same id; a
subscriber keeps, per task, the event with the greatest `version` and ignores the rest.
Readers ignore fields they do not know (additive changes stay in v1).
"""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from syntaskio_common import events
from syntaskio_common.events import Event, KafkaRecord
from syntaskio_common.task import Task, TaskRef
from syntaskio_common.telemetry import context_of

SOURCE: Final = "/syntaskio/aggregator"


class FeedTask(Task):
    """A task as the feed carries it: tolerant of fields added later."""

    model_config = ConfigDict(frozen=True, extra="ignore")


class TaskUpserted(BaseModel):
    """Data of `io.syntaskio.task.upserted.v1`: the task is new or changed."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: str = Field(description="Sorts in the order versions were applied")
    task: FeedTask


class TaskDeleted(TaskRef):
    """Data of `io.syntaskio.task.deleted.v1`: the task left the user's dashboard."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    version: str = Field(description="Sorts in the order versions were applied")


TaskEvent = TaskUpserted | TaskDeleted


def upserted_event(task: Task, version: str, traceparent: str | None = None) -> KafkaRecord:
    """`traceparent`: the trace the change belongs to (the current one by default)."""
    # `TaskUpserted` as the task's own dump: a `FeedTask` has exactly a `Task`'s fields,
    # and validating a copy of every announced task cost a third of its announcement.
    data = {"version": version, "task": task.model_dump(mode="json")}
    return _record(task.id, events.TASK_UPSERTED, version, data, traceparent)


def deleted_event(task: TaskRef, version: str, traceparent: str | None = None) -> KafkaRecord:
    deleted = TaskDeleted.model_validate({**TaskRef.of(task).model_dump(), "version": version})
    data = deleted.model_dump(mode="json")
    return _record(task.id, events.TASK_DELETED, version, data, traceparent)


def _record(
    task_id: str,
    event_type: str,
    version: str,
    data: dict[str, Any],
    traceparent: str | None,
) -> KafkaRecord:
    return events.encode_event(
        # One id per task version: a repeat after a crash is recognisable as one.
        event_id=f"{task_id}/{version}",
        source=SOURCE,
        event_type=event_type,
        subject=task_id,
        key=task_id,
        data=data,
        trace_context=context_of(traceparent),
    )


def parse(event: Event) -> TaskEvent | None:
    """The feed event's data, or None for a type this reader does not know (a new major
    version is a new type). Raises pydantic's ValidationError for malformed data."""
    if event.type == events.TASK_UPSERTED:
        return TaskUpserted.model_validate(event.data)
    if event.type == events.TASK_DELETED:
        return TaskDeleted.model_validate(event.data)
    return None
