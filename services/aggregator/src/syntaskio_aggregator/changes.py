"""Raw events → changes to tasks, and which change wins. Pure: no I/O.

Every change has a `version`, a string that sorts like the tuple

    (connection generation, upstream lastUpdated, observed at, event id)

A newer connection outranks everything an older one sent; within one, ConnectWise's
`lastUpdated` decides; a tie (the record did not change but why it is the member's did,
e.g. a schedule entry) goes to the later observation, and a tie there to the event id,
so every order of delivery ends in the same state. A removal ranks at the record's last
known `lastUpdated`. A disconnect outranks everything of its generation (`~` sorts after
every digit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from typing import Any, Final

from syntaskio_aggregator.normalize import (
    NormalizationError,
    integration_generation,
    normalize,
    removal,
)
from syntaskio_common import events
from syntaskio_common.task import Task, TaskRef, TaskSource, parse_timestamp, task_id

DELETED: Final = "deleted"  # the content hash of a removed task


@dataclass(frozen=True)
class Change:
    """One raw event's effect: the task as it now is, or None when it was removed.
    `position` is where the event was read (topic/partition/offset): a batch redone after
    a crash has the same positions, a duplicate published again has new ones."""

    identity: TaskRef
    task: Task | None
    generation: int
    version: str
    position: str
    # The trace the change belongs to (W3C traceparent): its announcement continues it.
    traceparent: str | None = None

    @cached_property
    def content_hash(self) -> str:
        return content_hash(self.task)


def content_hash(task: Task | None) -> str:
    """Equal exactly when the task as stored and published would be equal."""
    if task is None:
        return DELETED
    payload = json.dumps(task.model_dump(mode="json"), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _stamp(moment: datetime) -> str:
    # Fixed width (isoformat pads the year), so strings sort like the instants.
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def version_key(
    generation: int, last_updated: datetime, observed_at: datetime, event_id: str
) -> str:
    return f"{generation:010d}/{_stamp(last_updated)}/{_stamp(observed_at)}/{event_id}"


def disconnected_version(generation: int) -> str:
    """Outranks every version of this generation and none of the next."""
    return f"{generation:010d}/~"


def _observed_at(event: events.Event) -> datetime:
    observed = parse_timestamp(event.data.get("observed_at")) or event.time
    if observed is None or observed.tzinfo is None:
        raise NormalizationError("missing or invalid observed_at")
    return observed


def change_of(event: events.Event, position: str) -> Change:
    """A raw ConnectWise event → the change it makes; NormalizationError if it is not one
    (it goes to the dead-letter queue)."""
    data: Mapping[str, Any] = event.data
    generation = integration_generation(data)
    observed = _observed_at(event)
    if event.type == events.CONNECTWISE_RECORD_UPSERTED:
        task = normalize(data)
        return Change(
            TaskRef.of(task),
            task,
            generation,
            version_key(generation, task.source_updated_at, observed, event.id),
            position,
        )
    if event.type == events.CONNECTWISE_RECORD_REMOVED:
        gone = removal(data)
        integration_id = data.get("integration_id")
        if not isinstance(integration_id, str) or not integration_id:
            raise NormalizationError("missing integration_id")
        # The record as last read; without it, as of the removal.
        last_updated = parse_timestamp(data.get("last_updated")) or gone.observed_at
        source = TaskSource.CONNECTWISE
        identity = TaskRef(
            id=task_id(gone.tenant_id, gone.user_id, source, gone.source_type, gone.external_id),
            tenant_id=gone.tenant_id,
            user_id=gone.user_id,
            integration_id=integration_id,
            source=source,
            source_type=gone.source_type,
            external_id=gone.external_id,
        )
        return Change(
            identity,
            None,
            generation,
            version_key(generation, last_updated, gone.observed_at, event.id),
            position,
        )
    raise NormalizationError(f"unknown event type {event.type!r}")


@dataclass(frozen=True)
class Latest:
    """The winning change for one task in a batch, and the positions of every event of
    the batch that concerned the task (a redone batch may have written one already)."""

    change: Change
    positions: frozenset[str]


def latest_per_task(changes: Iterable[Change]) -> list[Latest]:
    """Per task, the change with the greatest version (arrival order does not matter)."""
    best: dict[str, Change] = {}
    seen: dict[str, set[str]] = {}
    for change in changes:
        key = change.identity.id
        seen.setdefault(key, set()).add(change.position)
        if key not in best or change.version > best[key].version:
            best[key] = change
    return [Latest(change, frozenset(seen[key])) for key, change in best.items()]


@dataclass(frozen=True)
class Stored:
    """What the store holds for a task, as far as deciding a write goes. `changed_by` is
    the position of the event whose write last changed the task's content."""

    version: str
    content_hash: str
    changed_by: str


@dataclass(frozen=True)
class Decision:
    write: bool  # store the change (its version at least moves on)
    announce: bool  # publish it: the task changed, or a crash kept it from being announced


def decide(latest: Latest, stored: Stored | None) -> Decision:
    """What to do with a task's winning change, given what is stored."""
    change = latest.change
    if stored is None:
        # A removal of a task never stored is kept (older stragglers must not bring it
        # in) but there is nothing to announce.
        return Decision(write=True, announce=change.task is not None)
    # This batch's earlier attempt changed it, and a crash came before the announcement.
    unannounced = stored.changed_by in latest.positions
    if stored.version >= change.version:
        return Decision(write=False, announce=unannounced)
    return Decision(write=True, announce=unannounced or stored.content_hash != change.content_hash)
