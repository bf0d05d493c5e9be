"""A lease held for a sync run is extended while the run goes on, and the extender is
stopped by a signal, never cancelled mid-operation: a task cancelled inside a PyMongo
async operation can break the client for the whole process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymongo.errors import ServerSelectionTimeoutError

from syntaskio_common.leases import Leases, set_within

TTL = 0.3


class RecordedLeases(Leases):
    """The lease operations, recorded instead of stored; an extend takes `extend_seconds`
    (a database that is slow to answer) and may fail."""

    def __init__(self, *, free: bool = True, extend_seconds: float = 0.0) -> None:
        super().__init__({"leases": None}, ttl_seconds=TTL)  # type: ignore[arg-type]
        self.free = free
        self.extend_seconds = extend_seconds
        self.failing = False
        self.calls: list[str] = []

    async def try_acquire(self, name: str) -> str | None:
        self.calls.append("acquire")
        return "owner" if self.free else None

    async def extend(self, name: str, owner: str) -> bool:
        self.calls.append("extend")
        try:
            await asyncio.sleep(self.extend_seconds)
        except asyncio.CancelledError:
            self.calls.append("extend cancelled")
            raise
        if self.failing:
            raise ServerSelectionTimeoutError("no server")
        self.calls.append("extended")
        return True

    async def release(self, name: str, owner: str) -> None:
        self.calls.append("release")


async def test_the_lease_is_extended_while_the_body_runs_then_released() -> None:
    leases = RecordedLeases()
    async with leases.kept("sync:int-1") as ours:
        assert ours
        await asyncio.sleep(TTL * 1.2)  # past two thirds of a ttl: extended twice or more
    assert leases.calls.count("extended") >= 2
    assert leases.calls[0] == "acquire"
    assert leases.calls[-1] == "release"


async def test_an_extend_under_way_when_the_body_ends_is_finished_not_cancelled() -> None:
    leases = RecordedLeases(extend_seconds=0.3)
    async with leases.kept("sync:int-1"):
        await asyncio.sleep(TTL / 3 + 0.05)  # an extend has just begun
    assert "extend cancelled" not in leases.calls
    assert leases.calls[-3:] == ["extend", "extended", "release"]


async def test_a_failed_extend_is_tried_again_and_does_not_end_the_body() -> None:
    leases = RecordedLeases()
    leases.failing = True
    async with leases.kept("sync:int-1"):
        await asyncio.sleep(TTL * 1.2)
    assert leases.calls.count("extend") >= 2
    assert leases.calls[-1] == "release"


async def test_a_lease_held_elsewhere_is_neither_kept_nor_released() -> None:
    leases = RecordedLeases(free=False)
    ran: list[Any] = []
    async with leases.kept("sync:int-1") as ours:
        ran.append(ours)
        await asyncio.sleep(TTL)
    assert ran == [False]
    assert leases.calls == ["acquire"]


async def test_a_wait_cancelled_as_its_event_is_set_is_cancelled() -> None:
    """The scheduler's loop and every lease keeper wait this way: a cancellation that
    comes as the event is set must still stop them (Python 3.11's `wait_for` returned
    instead, and a replica's loop then never stopped)."""
    event = asyncio.Event()
    waiting = asyncio.create_task(set_within(event, 10))
    await asyncio.sleep(0)
    event.set()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting


async def test_a_wait_says_whether_its_event_was_set_in_time() -> None:
    event = asyncio.Event()
    assert await set_within(event, 0.01) is False
    asyncio.get_running_loop().call_later(0.01, event.set)
    assert await set_within(event, 5) is True
