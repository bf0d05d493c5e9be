"""Live task changes for open dashboards (`GET /api/v1/tasks/stream`).

Every gateway replica reads the whole public feed (`syntaskio.tasks.v1`) from its end,
without a consumer group (each replica needs every event), keeps the most recent events
in memory, and hands each to the open streams of the task's user.

An event's SSE id is the feed position just after it (the next offset of every
partition), the same in every replica. A browser that reconnects sends it back as
`Last-Event-ID`, and gets the user's events after it from memory; when they are no
longer all there (or the id is not one of ours), a `reset` event tells it to load its
tasks again instead. Subscribers keep, per task, the event with the greatest `version`,
so an event seen twice (a replay that overlaps) changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final

from aiokafka import AIOKafkaConsumer
from fastapi.sse import ServerSentEvent
from opentelemetry.metrics import Observation
from opentelemetry.trace import SpanKind
from pydantic import ValidationError
from pymongo.errors import PyMongoError

from syntaskio_common import events, task_events, topics
from syntaskio_common.kafka import topic_partitions
from syntaskio_common.task_events import TaskDeleted, TaskEvent, TaskUpserted
from syntaskio_common.telemetry import context_of, meter, tracer

logger = logging.getLogger(__name__)
RESET: Final = "reset"  # the SSE event that tells a client to load its tasks again
Positions = dict[int, int]  # partition → next offset
# What else the gateway does when tasks leave their users' dashboards (their plans go).
OnRemoved = Callable[[list[TaskDeleted]], Awaitable[None]]


@dataclass(frozen=True)
class Change:
    """One feed event for one user, and where the feed is once it has been read."""

    tenant_id: str
    user_id: str
    event: TaskEvent
    partition: int
    offset: int
    position: str  # the SSE id

    @property
    def name(self) -> str:
        return "task.upserted" if isinstance(self.event, TaskUpserted) else "task.deleted"


def encode_position(positions: Positions) -> str:
    return ".".join(f"{partition}-{offset}" for partition, offset in sorted(positions.items()))


def _number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def decode_position(text: str) -> Positions | None:
    """None when `text` is not a position this API gives out."""
    positions: Positions = {}
    for part in text.split(".") if text else ():
        partition, _, offset = part.partition("-")
        if not (_number(partition) and _number(offset)) or len(part) > 40:
            return None
        positions[int(partition)] = int(offset)
    return positions or None


@dataclass(eq=False)  # each open stream is its own, however alike
class Subscription:
    """One open stream: the changes to replay first, then the live ones."""

    tenant_id: str
    user_id: str
    queue: asyncio.Queue[Change | None]
    replay: list[Change] = field(default_factory=list)
    reset: bool = False  # the client must load its tasks again first
    position: str = ""  # where the feed is now (an id to send before any change)


class FeedBuffer:
    """The most recent feed events and the open subscriptions. Not thread-safe: used
    from the event loop only, so subscribing (snapshot + registration) is atomic."""

    def __init__(self, size: int, queue_size: int = 1000) -> None:
        self._changes: deque[Change] = deque()
        self._size = size
        self._queue_size = queue_size
        self._next: Positions = {}
        self._oldest: Positions = {}  # per partition, the oldest offset still held
        self._subscriptions: dict[tuple[str, str], set[Subscription]] = {}
        self._admitted: dict[tuple[str, str], int] = {}  # streams admitted, per user

    def begin(self, positions: Positions) -> None:
        """Where reading starts: nothing before it can be replayed."""
        self._next = dict(positions)
        self._oldest = dict(positions)

    @property
    def position(self) -> str:
        return encode_position(self._next)

    def passed(self, partition: int, offset: int) -> None:
        """A record that is not a task event of ours moves the position on too."""
        self._next[partition] = offset + 1

    def append(self, partition: int, offset: int, event: TaskEvent) -> int:
        """Keep the change and queue it for its user's streams; how many there are."""
        self.passed(partition, offset)
        ref = event.task if isinstance(event, TaskUpserted) else event
        change = Change(ref.tenant_id, ref.user_id, event, partition, offset, self.position)
        self._changes.append(change)
        if len(self._changes) > self._size:
            dropped = self._changes.popleft()
            self._oldest[dropped.partition] = dropped.offset + 1
        subscriptions = self._subscriptions.get((ref.tenant_id, ref.user_id), set())
        for subscription in subscriptions:
            try:
                subscription.queue.put_nowait(change)
            except asyncio.QueueFull:
                # Too slow a reader: it starts again from a fresh load.
                _drain(subscription.queue)
                subscription.queue.put_nowait(None)
        return len(subscriptions)

    @contextlib.contextmanager
    def subscribe(
        self, tenant_id: str, user_id: str, last_event_id: str | None
    ) -> Iterator[Subscription]:
        subscription = Subscription(
            tenant_id, user_id, asyncio.Queue(self._queue_size), position=self.position
        )
        if last_event_id:
            after = decode_position(last_event_id)
            if after is None or any(
                after.get(partition, 0) < oldest for partition, oldest in self._oldest.items()
            ):
                subscription.reset = True
            else:
                subscription.replay = [
                    change
                    for change in self._changes
                    if change.tenant_id == tenant_id
                    and change.user_id == user_id
                    and change.offset >= after.get(change.partition, 0)
                ]
        key = (tenant_id, user_id)
        self._subscriptions.setdefault(key, set()).add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions[key].discard(subscription)
            if not self._subscriptions[key]:
                del self._subscriptions[key]

    def subscribers(self) -> int:
        return sum(len(s) for s in self._subscriptions.values())

    @contextlib.contextmanager
    def admitted(self, tenant_id: str, user_id: str, most: int) -> Iterator[bool]:
        """A place for one more of the user's streams, if they hold fewer than `most`:
        taken here, at once (no await between the count and the taking, so streams
        asked for together cannot all slip in), and given back when the stream ends."""
        key = (tenant_id, user_id)
        held = self._admitted.get(key, 0)
        if held >= most:
            yield False
            return
        self._admitted[key] = held + 1
        try:
            yield True
        finally:
            self._admitted[key] -= 1
            if not self._admitted[key]:
                del self._admitted[key]


def _drain(queue: asyncio.Queue[Change | None]) -> None:
    while not queue.empty():
        queue.get_nowait()


class TaskFeed:
    """Reads `syntaskio.tasks.v1` into a `FeedBuffer` in the background."""

    def __init__(
        self, options: dict[str, Any], buffer: FeedBuffer, on_removed: OnRemoved | None = None
    ) -> None:
        """`options`: how to connect (`syntaskio_common.kafka.consumer_options`);
        `on_removed`: called with each batch's `task.deleted` events."""
        self.buffer = buffer
        self._on_removed = on_removed
        self._options = options
        self._consumer: AIOKafkaConsumer | None = None
        self._reader: asyncio.Task[None] | None = None
        meter.create_observable_gauge(
            "syntaskio.live.streams",
            callbacks=[lambda _: [Observation(buffer.subscribers())]],
            unit="{stream}",
            description="Open live task streams (dashboards) on this replica",
        )

    async def start(self) -> None:
        # No group: every replica reads every partition, and commits nothing.
        self._consumer = consumer = AIOKafkaConsumer(**self._options, enable_auto_commit=False)
        await consumer.start()
        partitions = await topic_partitions(consumer, topics.TASKS)
        consumer.assign(partitions)
        await consumer.seek_to_end(*partitions)
        self.buffer.begin({p.partition: await consumer.position(p) for p in partitions})
        self._reader = asyncio.create_task(self._read(), name="task-feed")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def running(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def _read(self) -> None:
        assert self._consumer is not None, "started"
        while True:
            batches = await self._consumer.getmany(timeout_ms=1000, max_records=500)
            removed: list[TaskDeleted] = []
            for part, records in batches.items():
                for record in records:
                    read = _task_event(record)
                    if read is None:
                        self.buffer.passed(part.partition, record.offset)
                        continue
                    event, traceparent = read
                    started = time.time_ns()
                    streams = self.buffer.append(part.partition, record.offset, event)
                    if streams:
                        _traced_delivery(traceparent, streams, started)
                    if isinstance(event, TaskDeleted):
                        removed.append(event)
            if removed:
                await self._removed(removed)

    async def _removed(self, removed: list[TaskDeleted]) -> None:
        if self._on_removed is None:
            return
        try:
            await self._on_removed(removed)
        except PyMongoError:
            # Not worth stopping live updates for: reading My day removes them too.
            logger.warning("could not remove the plans of %d removed tasks", len(removed))


async def stream(subscription: Subscription) -> AsyncIterator[ServerSentEvent]:
    """What an open stream sends: the changes missed since `Last-Event-ID` (or `reset`),
    then `ready` (its id is the feed position when the stream opened, so a reconnect
    that comes before any change still resumes there), then live changes as they come."""
    for change in subscription.replay:
        yield _message(change)
    yield ServerSentEvent(
        event=RESET if subscription.reset else "ready", id=subscription.position, data={}
    )
    while True:
        live = await subscription.queue.get()
        yield ServerSentEvent(event=RESET, data={}) if live is None else _message(live)


def _message(change: Change) -> ServerSentEvent:
    return ServerSentEvent(
        event=change.name, id=change.position, data=change.event.model_dump(mode="json")
    )


def _task_event(record: object) -> tuple[TaskEvent, str | None] | None:
    """The feed record's task event and the trace it belongs to; None if it is none."""
    headers = {name: value for name, value in getattr(record, "headers", ()) or ()}
    try:
        event = events.decode_event(headers, getattr(record, "value", b""))
        parsed = task_events.parse(event)
    except (events.InvalidEvent, ValidationError):
        logger.warning("skipped a malformed task feed record")
        return None
    return None if parsed is None else (parsed, event.traceparent)


def _traced_delivery(traceparent: str | None, streams: int, started: int) -> None:
    """The last step of a change's trace: handed to the user's open streams. (Only
    then: every replica reads every company's feed, most of it for nobody here.)"""
    span = tracer.start_span(
        f"{topics.TASKS} deliver",
        context=context_of(traceparent),
        kind=SpanKind.CONSUMER,
        start_time=started,
        attributes={
            "messaging.system": "kafka",
            "messaging.destination.name": topics.TASKS,
            "syntaskio.live_streams": streams,
        },
    )
    span.end()
