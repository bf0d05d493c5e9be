"""Be told what changed: a user's notifications (`notifications`), and the rules that make
them.

Four kinds, each for the one user whose task or connection it is:

- `assigned`: a task appeared on the user's dashboard that was changed in ConnectWise
  after the notifier first saw that user's work on that connection (the *baseline*), so
  the first sync of a connection, a newly mapped technician's existing work, or a
  reconnect brings no flood of them;
- `customer_reply`: a ticket's `customerUpdatedFlag` went from false to true;
- `sla_at_risk`: an open ticket's next SLA target is within the company's
  `sla_warning_minutes` (worked out when the user's page asks, from the dashboard's own
  SLA fields: no scan of everyone's tasks);
- `connection_expired`: the user's own ConnectWise connection expired.

Each notification's id is derived from what it is about (the task and its version, the
SLA step and its due time, the expiry event), so a redelivered event or a second replica
writes the same document once: notifications are deduplicated by construction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from pydantic import AwareDatetime, BaseModel, Field
from pymongo import DESCENDING, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.task import SlaStage, Task, TaskStatus

KEPT_FOR: Final = timedelta(days=30)
MOST_LISTED: Final = 50
SLA_STEPS: Final = {
    SlaStage.RESPOND: "respond",
    SlaStage.PLAN: "plan",
    SlaStage.RESOLVE: "resolve",
}


class NotificationKind(StrEnum):
    ASSIGNED = "assigned"
    CUSTOMER_REPLY = "customer_reply"
    SLA_AT_RISK = "sla_at_risk"
    CONNECTION_EXPIRED = "connection_expired"


class Notification(BaseModel):
    id: str
    kind: NotificationKind
    title: str = Field(description="One line of plain text: show it as text")
    task_id: str | None = Field(default=None, description="Open it at /tasks/{task_id}")
    due_at: AwareDatetime | None = Field(default=None, description="sla_at_risk: when")
    created_at: AwareDatetime
    read: bool


class NotificationList(BaseModel):
    items: list[Notification] = Field(description=f"The newest {MOST_LISTED}, newest first")
    unread: int


@dataclass(frozen=True)
class NewNotification:
    """A notification to write (once) for one user."""

    tenant_id: str
    user_id: str
    kind: NotificationKind
    about: str  # what makes it this notification and no other: its id comes from it
    title: str
    task_id: str | None = None
    due_at: datetime | None = None

    @property
    def id(self) -> str:
        name = "\x1f".join((self.tenant_id, self.user_id, self.kind.value, self.about))
        return hashlib.sha256(name.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Watched:
    """What the notifier remembers of a task: the last version it read and the flag."""

    version: str
    customer_updated: bool


def ticket_label(task: Task) -> str:
    number = task.source_data.get("ticket_id") or task.external_id
    return f"#{number} {task.title}"


def customer_updated(task: Task) -> bool:
    return bool(task.source_data.get("customer_updated"))


def on_task(task: Task, seen: Watched | None, baseline: datetime) -> list[NewNotification]:
    """What one upserted task, newer than `seen` (None: never seen), is worth telling its
    user."""
    notify = _for(task)
    if seen is None:
        # New on the dashboard: news only if it changed after the baseline (an existing
        # ticket assigned later is changed by the assignment).
        if task.status is not TaskStatus.COMPLETED and task.source_updated_at > baseline:
            return [notify(NotificationKind.ASSIGNED, f"Assigned to you: {ticket_label(task)}")]
        return []
    if customer_updated(task) and not seen.customer_updated:
        return [notify(NotificationKind.CUSTOMER_REPLY, f"Customer replied: {ticket_label(task)}")]
    return []


def sla_at_risk(tasks: Iterable[Task], now: datetime, margin: timedelta) -> list[NewNotification]:
    """Open tasks whose next SLA target is due within `margin` and not yet past."""
    found: list[NewNotification] = []
    for task in tasks:
        sla = task.sla
        if sla is None or sla.due_at is None or sla.stage is None:
            continue
        if task.status is TaskStatus.COMPLETED or not now < sla.due_at <= now + margin:
            continue
        step = SLA_STEPS[sla.stage]
        found.append(
            NewNotification(
                task.tenant_id,
                task.user_id,
                NotificationKind.SLA_AT_RISK,
                f"{task.id}/{step}/{sla.due_at.isoformat()}",
                f"SLA: {step} soon on {ticket_label(task)}",
                task_id=task.id,
                due_at=sla.due_at,
            )
        )
    return found


def _for(task: Task) -> Callable[[NotificationKind, str], NewNotification]:
    def notify(kind: NotificationKind, title: str) -> NewNotification:
        about = f"{task.id}/{task.source_updated_at.isoformat()}"
        return NewNotification(task.tenant_id, task.user_id, kind, about, title, task.id)

    return notify


class Notifications:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._notifications = db["notifications"]
        self._clock = clock

    async def create_indexes(self) -> None:
        await self._notifications.create_index(
            "created_at", expireAfterSeconds=int(KEPT_FOR.total_seconds()), name="expiry"
        )
        await self._notifications.create_index(
            [("tenant_id", 1), ("user_id", 1), ("created_at", DESCENDING)], name="by_user_newest"
        )

    async def add(self, new: Iterable[NewNotification]) -> None:
        """Write each once: a repeat (another replica, a redelivery) changes nothing."""
        now = self._clock()
        writes = [
            UpdateOne(
                {"_id": n.id},
                {
                    "$setOnInsert": {
                        "tenant_id": n.tenant_id,
                        "user_id": n.user_id,
                        "kind": n.kind.value,
                        "title": n.title,
                        "task_id": n.task_id,
                        "due_at": n.due_at,
                        "created_at": now,
                        "read_at": None,
                    }
                },
                upsert=True,
            )
            for n in new
        ]
        if writes:
            await self._notifications.bulk_write(writes, ordered=False)

    async def newest(self, user: UserSession) -> NotificationList:
        mine = {"tenant_id": user.tenant_id, "user_id": user.user_id}
        cursor = self._notifications.find(mine).sort("created_at", DESCENDING).limit(MOST_LISTED)
        items = [_view(doc) async for doc in cursor]
        unread = await self._notifications.count_documents({**mine, "read_at": None})
        return NotificationList(items=items, unread=unread)

    async def mark_read(self, user: UserSession, ids: list[str] | None) -> None:
        """The user's own (any other id is left alone); all of them when `ids` is None."""
        mine: Document = {"tenant_id": user.tenant_id, "user_id": user.user_id, "read_at": None}
        if ids is not None:
            mine["_id"] = {"$in": ids}
        await self._notifications.update_many(mine, {"$set": {"read_at": self._clock()}})


def _view(doc: Document) -> Notification:
    return Notification(
        id=doc["_id"],
        kind=NotificationKind(doc["kind"]),
        title=doc["title"],
        task_id=doc.get("task_id"),
        due_at=doc.get("due_at"),
        created_at=doc["created_at"],
        read=doc.get("read_at") is not None,
    )
