"""The public feed's contract: readers tolerate additions, new majors are new types."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from syntaskio_common import events, task_events
from syntaskio_common.task import SourceType, Task, TaskPriority, TaskSource, TaskStatus

TASK = Task(
    id="t-1",
    tenant_id="tenant",
    user_id="user",
    integration_id="i-1",
    source=TaskSource.CONNECTWISE,
    source_type=SourceType.SERVICE_TICKET,
    external_id="42",
    title="Printer on fire",
    status=TaskStatus.PENDING,
    priority=TaskPriority.URGENT,
    source_updated_at=datetime(2026, 11, 1, tzinfo=UTC),
)


def read(record: events.KafkaRecord) -> events.Event:
    return events.decode_event(record.headers, record.value)


def test_an_upsert_carries_the_whole_task_keyed_by_task_with_one_id_per_version() -> None:
    record = task_events.upserted_event(TASK, "v1")
    event = read(record)
    assert record.key == b"t-1"
    assert event.id == "t-1/v1"
    assert event.type == events.TASK_UPSERTED
    parsed = task_events.parse(event)
    assert isinstance(parsed, task_events.TaskUpserted)
    assert Task.model_validate(parsed.task.model_dump()) == TASK
    # Exactly what the feed's schema makes of it.
    assert event.data == parsed.model_dump(mode="json")


def test_a_deletion_names_the_task_and_nothing_more() -> None:
    event = read(task_events.deleted_event(TASK, "v2"))
    assert set(event.data) == {
        "version", "id", "tenant_id", "user_id", "integration_id", "source", "source_type",
        "external_id",
    }  # fmt: skip
    parsed = task_events.parse(event)
    assert isinstance(parsed, task_events.TaskDeleted)
    assert (parsed.id, parsed.version) == ("t-1", "v2")


def test_fields_added_later_are_ignored_by_todays_readers() -> None:
    event = read(task_events.upserted_event(TASK, "v1"))
    data = {**event.data, "added_later": 1}
    data["task"] = {**data["task"], "estimate_hours": 3}
    parsed = task_events.parse(replace(event, data=data))
    assert isinstance(parsed, task_events.TaskUpserted)
    assert parsed.task.title == "Printer on fire"


def test_a_new_major_version_is_a_type_old_readers_skip() -> None:
    event = read(task_events.upserted_event(TASK, "v1"))
    assert task_events.parse(replace(event, type="io.syntaskio.task.upserted.v2")) is None


def test_malformed_feed_data_is_refused() -> None:
    event = read(task_events.upserted_event(TASK, "v1"))
    with pytest.raises(ValidationError):
        task_events.parse(replace(event, data={"version": "v1"}))
