"""A timer per task: started, paused, resumed and stopped by its user, kept in the
gateway's database (`task_timers`) so it survives a reload and shows in every tab. A
stop freezes the time worked; that is logged as a time entry by the write-back path
(once per Idempotency-Key: a retried stop finds the frozen timer and asks for the same
entry). Syntaskio-side state only: nothing reaches ConnectWise until the stop.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from pydantic import AwareDatetime, BaseModel, Field
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession

_TIMER_NAMESPACE: Final = uuid.UUID("9b0e3b7a-61c4-4d8e-b7a2-2f4c8e1d5a60")
MOST_TIMERS: Final = 20  # per user, running or paused
# A stopped timer is kept this long: a retried stop still finds what it froze.
STOPPED_RETENTION: Final = timedelta(days=1)
LONGEST_ENTRY: Final = timedelta(hours=24)  # what one ConnectWise time entry may hold


class TimerState(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"


class TimerView(BaseModel):
    task_id: str
    state: TimerState
    started_at: AwareDatetime = Field(description="When it was first started")
    running_since: AwareDatetime | None = Field(
        default=None, description="When it was last started or resumed (null: paused)"
    )
    elapsed_seconds: float = Field(
        description="Time counted until `running_since` (add the time since, if running)"
    )


class TooManyTimers(Exception):
    pass


class TimerNotRunning(Exception):
    """Stopped, or never started."""


class TooLong(Exception):
    """More time than one time entry may hold: stop it earlier, log the rest by hand."""


def _timer_id(user: UserSession, task_id: str) -> str:
    return str(uuid.uuid5(_TIMER_NAMESPACE, "\x1f".join((user.tenant_id, user.user_id, task_id))))


def _view(doc: Document) -> TimerView:
    running = doc.get("running_since")
    return TimerView(
        task_id=doc["task_id"],
        state=TimerState.RUNNING if running else TimerState.PAUSED,
        started_at=doc["started_at"],
        running_since=running,
        elapsed_seconds=doc["elapsed_seconds"],
    )


class StoppedTimer(BaseModel):
    started_at: AwareDatetime
    worked: timedelta


class TaskTimers:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._timers = db["task_timers"]
        self._clock = clock

    async def create_indexes(self) -> None:
        await self._timers.create_index(
            [("tenant_id", ASCENDING), ("user_id", ASCENDING)], name="by_user"
        )
        await self._timers.create_index(
            "stopped_at",
            expireAfterSeconds=int(STOPPED_RETENTION.total_seconds()),
            name="stopped",
        )

    async def list(self, user: UserSession) -> list[TimerView]:
        """The user's running and paused timers, the latest started first."""
        cursor = self._timers.find(
            {"tenant_id": user.tenant_id, "user_id": user.user_id, "stopped_at": None}
        ).sort("started_at", -1)
        return [_view(doc) async for doc in cursor]

    async def start(self, user: UserSession, task_id: str) -> TimerView:
        """Start (or resume) the task's timer; one already running stays as it is. A
        stopped one is replaced by a new one."""
        now = self._clock()
        key = {"_id": _timer_id(user, task_id)}
        existing = await self._timers.find_one(key)
        if existing is None or existing.get("stopped_at") is not None:
            if await self._count(user) >= MOST_TIMERS:
                raise TooManyTimers
            doc: Document = {
                **key,
                "tenant_id": user.tenant_id,
                "user_id": user.user_id,
                "task_id": task_id,
                "started_at": now,
                "running_since": now,
                "elapsed_seconds": 0.0,
                "stopped_at": None,
            }
            await self._timers.replace_one(key, doc, upsert=True)
            return _view(doc)
        resumed = await self._timers.find_one_and_update(
            {**key, "stopped_at": None, "running_since": None},
            {"$set": {"running_since": now}},
            return_document=ReturnDocument.AFTER,
        )
        return _view(resumed or existing)

    async def pause(self, user: UserSession, task_id: str) -> TimerView:
        """Pause the running timer: the time since it ran is counted in."""
        key = {"_id": _timer_id(user, task_id), "stopped_at": None}
        doc = await self._timers.find_one(key)
        if doc is None:
            raise TimerNotRunning
        running = doc.get("running_since")
        if running is None:
            return _view(doc)  # already paused
        elapsed = doc["elapsed_seconds"] + max(0.0, (self._clock() - running).total_seconds())
        paused = await self._timers.find_one_and_update(
            {**key, "running_since": running},
            {"$set": {"running_since": None, "elapsed_seconds": elapsed}},
            return_document=ReturnDocument.AFTER,
        )
        return _view(paused or await self._timers.find_one(key) or doc)

    async def stop(self, user: UserSession, task_id: str) -> StoppedTimer:
        """Freeze the time worked (once: a second stop finds it frozen)."""
        key = {"_id": _timer_id(user, task_id)}
        doc = await self._timers.find_one(key)
        if doc is None:
            raise TimerNotRunning
        if doc.get("stopped_at") is None:
            now = self._clock()
            running = doc.get("running_since")
            elapsed = doc["elapsed_seconds"] + (
                max(0.0, (now - running).total_seconds()) if running else 0.0
            )
            if elapsed > LONGEST_ENTRY.total_seconds():
                raise TooLong
            frozen = await self._timers.find_one_and_update(
                {**key, "stopped_at": None},
                {"$set": {"stopped_at": now, "running_since": None, "elapsed_seconds": elapsed}},
                return_document=ReturnDocument.AFTER,
            )
            doc = frozen or await self._timers.find_one(key) or doc
        return StoppedTimer(
            started_at=doc["started_at"], worked=timedelta(seconds=doc["elapsed_seconds"])
        )

    async def discard(self, user: UserSession, task_id: str) -> bool:
        """Throw the timer away without logging anything."""
        deleted = await self._timers.delete_one({"_id": _timer_id(user, task_id)})
        return deleted.deleted_count == 1

    async def _count(self, user: UserSession) -> int:
        return await self._timers.count_documents(
            {"tenant_id": user.tenant_id, "user_id": user.user_id, "stopped_at": None}
        )


def worked_hours(worked: timedelta) -> float:
    """ConnectWise time in hours, to the hundredth; at least 0.01 (a timer stopped at
    once still logs something)."""
    return max(0.01, round(worked.total_seconds() / 3600, 2))
