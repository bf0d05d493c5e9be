"""The notifier: the gateway's subscriber that turns the task feed and the integration
lifecycle into notifications (`notifications.py` has the rules).

It runs in every gateway replica in one consumer group per topic, so each event is
handled once (at least once: a repeat writes the same notification ids, so nothing is
told twice). What it remembers per task (`notifier_tasks`: the last version read and
the customer-reply flag) and per user's connection (`notifier_baselines`: since when
new tasks are news) lets it tell a new assignment and a new customer reply from a
re-sync. A connection that is connected again, disconnected or re-mapped starts a new
baseline, so its re-listed work is not news.

Inside the gateway rather than a service of its own: it only writes what the gateway
reads, and needs nothing the gateway does not already have (the broker and database).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError, WithJsonSchema
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common import events, task_events, topics
from syntaskio_common.integrations import ConnectionScope
from syntaskio_common.kafka import at_least_once, create_broker
from syntaskio_common.mongo import Document
from syntaskio_common.task import Task
from syntaskio_gateway.notifications import (
    NewNotification,
    NotificationKind,
    Notifications,
    Watched,
    customer_updated,
    on_task,
)
from syntaskio_gateway.settings import GatewaySettings

logger = logging.getLogger(__name__)

TASKS_GROUP_ID: Final = "gateway-notifier"
INTEGRATIONS_GROUP_ID: Final = "gateway-notifier-integrations"
BATCH_SIZE: Final = 200
RETRY_START_SECONDS: Final = 5.0
# A connection's work listed again after these is not news.
NEW_BASELINE: Final = frozenset(
    {
        events.INTEGRATION_CONNECTED,
        events.INTEGRATION_DISCONNECTED,
        events.INTEGRATION_RESUMED,
        events.INTEGRATION_MEMBERS_CHANGED,
    }
)

BaselineKey = tuple[str, str, str]  # tenant, user, integration


class TaskWatch:
    """What the notifier remembers: per task, and per user's connection."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tasks = db["notifier_tasks"]
        self._baselines = db["notifier_baselines"]

    async def create_indexes(self) -> None:
        await self._baselines.create_index("integration_id", name="by_integration")

    async def seen(self, task_ids: list[str]) -> dict[str, Watched]:
        cursor = self._tasks.find({"_id": {"$in": task_ids}})
        return {
            doc["_id"]: Watched(doc["version"], bool(doc.get("customer_updated")))
            async for doc in cursor
        }

    async def baselines(
        self, first_seen: dict[BaselineKey, datetime]
    ) -> dict[BaselineKey, datetime]:
        """Since when each user's connection's new tasks are news: when the task feed
        first carried its work (the earliest event's own time, so neither the notifier's
        lag nor the order partitions are read in moves it)."""
        if not first_seen:
            return {}
        await self._baselines.bulk_write(
            [
                UpdateOne(
                    {"_id": _baseline_id(key)},
                    {
                        "$setOnInsert": {
                            "tenant_id": key[0],
                            "user_id": key[1],
                            "integration_id": key[2],
                        },
                        # The earliest: a first listing's batches may come from several
                        # partitions in any order.
                        "$min": {"since": at},
                    },
                    upsert=True,
                )
                for key, at in first_seen.items()
            ],
            ordered=False,
        )
        cursor = self._baselines.find({"_id": {"$in": [_baseline_id(k) for k in first_seen]}})
        return {
            (doc["tenant_id"], doc["user_id"], doc["integration_id"]): doc["since"]
            async for doc in cursor
        }

    async def remember(self, tasks: list[tuple[Task, str]]) -> None:
        if tasks:
            await self._tasks.bulk_write(
                [
                    UpdateOne(
                        {"_id": task.id},
                        {
                            "$set": {
                                "tenant_id": task.tenant_id,
                                "user_id": task.user_id,
                                "version": version,
                                "customer_updated": customer_updated(task),
                            }
                        },
                        upsert=True,
                    )
                    for task, version in tasks
                ],
                ordered=False,
            )

    async def forget(self, task_ids: list[str]) -> None:
        if task_ids:
            await self._tasks.delete_many({"_id": {"$in": task_ids}})

    async def new_baseline(self, integration_id: str) -> None:
        """The connection's work is listed anew: the next sight of it sets the baseline."""
        await self._baselines.delete_many({"integration_id": integration_id})


def _baseline_id(key: BaselineKey) -> str:
    return "\x1f".join(key)


@dataclass(frozen=True)
class FeedChange:
    """A task feed event's data, and when the aggregator announced it."""

    change: task_events.TaskEvent
    at: datetime

    @property
    def task_id(self) -> str:
        change = self.change
        return change.task.id if isinstance(change, task_events.TaskUpserted) else change.id


async def notify_tasks(
    watch: TaskWatch, notifications: Notifications, changes: list[FeedChange]
) -> None:
    """One batch of the task feed: each task's newest event counts (a task upserted
    and then deleted in the batch is forgotten)."""
    latest: dict[str, FeedChange] = {}
    for fed in changes:
        kept = latest.get(fed.task_id)
        if kept is None or fed.change.version > kept.change.version:
            latest[fed.task_id] = fed
    upserted = [
        (fed.change, fed.at)
        for fed in latest.values()
        if isinstance(fed.change, task_events.TaskUpserted)
    ]
    seen = await watch.seen([change.task.id for change, _ in upserted])
    first_seen: dict[BaselineKey, datetime] = {}
    for change, at in upserted:
        key = (change.task.tenant_id, change.task.user_id, change.task.integration_id)
        first_seen[key] = min(at, first_seen.get(key, at))
    baselines = await watch.baselines(first_seen)
    told: list[NewNotification] = []
    remembered: list[tuple[Task, str]] = []
    for change, _ in upserted:
        task, before = change.task, seen.get(change.task.id)
        if before is not None and change.version <= before.version:
            continue  # an older version, redelivered
        baseline = baselines[(task.tenant_id, task.user_id, task.integration_id)]
        told += on_task(task, before, baseline)
        remembered.append((task, change.version))
    await notifications.add(told)
    await watch.remember(remembered)
    await watch.forget(
        [fed.task_id for fed in latest.values() if isinstance(fed.change, task_events.TaskDeleted)]
    )


async def notify_integration(
    watch: TaskWatch, notifications: Notifications, event: events.Event
) -> None:
    integration_id, tenant_id = event.data.get("id"), event.data.get("tenant_id")
    if not isinstance(integration_id, str) or not isinstance(tenant_id, str):
        return
    if event.type in NEW_BASELINE:
        await watch.new_baseline(integration_id)
    user_id = event.data.get("user_id")
    personal = event.data.get("scope", ConnectionScope.PERSONAL.value) == ConnectionScope.PERSONAL
    if event.type == events.INTEGRATION_EXPIRED and personal and isinstance(user_id, str):
        # A company connection's expiry is its admins' to mend (the admin console says so).
        await notifications.add(
            [
                NewNotification(
                    tenant_id,
                    user_id,
                    NotificationKind.CONNECTION_EXPIRED,
                    f"{integration_id}/{event.id}",
                    "Your ConnectWise connection expired: reconnect it in Settings.",
                )
            ]
        )


def _feed_records(message: Any) -> Any:
    return list(message.raw_message)


class Notifier:
    """The notifier's own connection to the broker, started in the background: joining a
    consumer group waits for its rebalance (seconds), which the gateway's readiness and
    its users need not wait for; notifications can."""

    def __init__(self, settings: GatewaySettings, db: AsyncDatabase[Document]) -> None:
        self.broker = create_broker(settings, client_id="gateway-notifier")
        self.notifications, self.watch = Notifications(db), TaskWatch(db)
        subscribe(self.broker, self.watch, self.notifications, settings.kafka_fetch_max_wait_ms)
        self._starting: asyncio.Task[None] | None = None

    async def create_indexes(self) -> None:
        await self.notifications.create_indexes()
        await self.watch.create_indexes()

    def start(self) -> None:
        self._starting = asyncio.create_task(self._start(), name="notifier-start")

    async def _start(self) -> None:
        while True:
            try:
                await self.broker.start()
                return
            except Exception:  # the broker is unreachable for now: the next try may do
                logger.exception("the notifier could not join its consumer groups; retrying")
                await self.broker.stop()
                await asyncio.sleep(RETRY_START_SECONDS)

    async def stop(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        await self.broker.stop()


def subscribe(
    broker: KafkaBroker, watch: TaskWatch, notifications: Notifications, fetch_max_wait_ms: int
) -> None:
    @at_least_once(
        broker,
        topics.TASKS,
        TASKS_GROUP_ID,
        fetch_max_wait_ms=fetch_max_wait_ms,
        batch_size=BATCH_SIZE,
        description="The task feed, for notifications: new assignments and customer replies",
        decoder=_feed_records,
    )
    async def on_task_events(records: Annotated[list[Any], WithJsonSchema({})]) -> None:
        changes: list[FeedChange] = []
        for record in records:
            try:
                event = events.decode_event(dict(record.headers or ()), record.value)
                change = task_events.parse(event)
            except (events.InvalidEvent, ValidationError) as error:
                logger.warning("task feed event skipped: %s", type(error).__name__)
                continue
            if change is not None:
                changes.append(FeedChange(change, event.time or datetime.now(UTC)))
        await notify_tasks(watch, notifications, changes)

    @at_least_once(
        broker,
        topics.INTEGRATIONS,
        INTEGRATIONS_GROUP_ID,
        fetch_max_wait_ms=fetch_max_wait_ms,
        description="Integration lifecycle, for notifications: an expired connection, and "
        "a connection listed anew (not news)",
    )
    async def on_integration_event(message: KafkaMessage) -> None:
        try:
            event = events.decode_event(message.headers, message.body)
        except events.InvalidEvent:
            return
        await notify_integration(watch, notifications, event)
