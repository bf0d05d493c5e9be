"""Task timers in the real database: time counted only while running, a stop frozen once
(a retried stop finds the same time), each user's own, and bounded."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.settings import ServiceSettings
from syntaskio_gateway.timers import (
    MOST_TIMERS,
    TaskTimers,
    TimerNotRunning,
    TimerState,
    TooLong,
    TooManyTimers,
    worked_hours,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 5, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def user(name: str = "alex", tenant: str | None = None) -> UserSession:
    return UserSession(
        user_id=f"{name}@acme.example",
        tenant_id=tenant or f"acme-{uuid.uuid4().hex[:6]}",
        roles=("technician",),
    )


@pytest.fixture
async def timers(mongo: AsyncMongoClient[Document], settings: ServiceSettings) -> TaskTimers:
    found = TaskTimers(mongo[settings.mongodb_database], clock=Clock())
    await found.create_indexes()
    return found


def clock_of(timers: TaskTimers) -> Clock:
    clock = timers._clock
    assert isinstance(clock, Clock)
    return clock


async def test_time_counts_only_while_running_and_a_stop_is_frozen_once(
    timers: TaskTimers,
) -> None:
    alex, clock = user(), clock_of(timers)
    started = await timers.start(alex, "task-1")
    assert (started.state, started.elapsed_seconds) == (TimerState.RUNNING, 0.0)
    clock.advance(minutes=20)
    paused = await timers.pause(alex, "task-1")
    assert (paused.state, paused.elapsed_seconds) == (TimerState.PAUSED, 1200.0)
    clock.advance(hours=3)  # paused: not counted
    assert (await timers.pause(alex, "task-1")).elapsed_seconds == 1200.0  # pausing twice
    resumed = await timers.start(alex, "task-1")
    assert resumed.running_since == clock.now
    clock.advance(minutes=10)
    assert (await timers.start(alex, "task-1")).running_since == resumed.running_since
    [listed] = await timers.list(alex)
    assert listed.task_id == "task-1"

    stopped = await timers.stop(alex, "task-1")
    assert stopped.worked == timedelta(minutes=30)
    assert stopped.started_at == started.started_at
    assert worked_hours(stopped.worked) == 0.5
    clock.advance(hours=1)
    assert (await timers.stop(alex, "task-1")).worked == timedelta(minutes=30)  # a retry
    assert await timers.list(alex) == []
    # Started again: a new timer, from nothing.
    again = await timers.start(alex, "task-1")
    assert (again.elapsed_seconds, again.started_at) == (0.0, clock.now)


async def test_timers_are_each_users_own(timers: TaskTimers) -> None:
    alex = user()
    beth = user("beth", alex.tenant_id)
    stranger = user("alex")  # the same name in another tenant
    await timers.start(alex, "task-1")
    assert await timers.list(beth) == []
    assert await timers.list(stranger) == []
    with pytest.raises(TimerNotRunning):
        await timers.pause(beth, "task-1")
    with pytest.raises(TimerNotRunning):
        await timers.stop(stranger, "task-1")
    assert not await timers.discard(beth, "task-1")
    assert [t.task_id for t in await timers.list(alex)] == ["task-1"]
    assert await timers.discard(alex, "task-1")
    assert await timers.list(alex) == []


async def test_timers_are_bounded_per_user_and_per_entry(timers: TaskTimers) -> None:
    alex, clock = user(), clock_of(timers)
    for n in range(MOST_TIMERS):
        await timers.start(alex, f"task-{n}")
    with pytest.raises(TooManyTimers):
        await timers.start(alex, "one-more")
    await timers.stop(alex, "task-0")
    await timers.start(alex, "one-more")  # a stopped one no longer counts

    clock.advance(hours=25)
    with pytest.raises(TooLong):
        await timers.stop(alex, "task-1")
    assert "task-1" in {t.task_id for t in await timers.list(alex)}  # not stopped
    assert worked_hours(timedelta(seconds=5)) == 0.01
