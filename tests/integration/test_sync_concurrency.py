"""The scheduler runs due integrations side by side on the real database: one whose
ConnectWise hangs holds its own slot only, the others run meanwhile; and an integration
still running is not started twice."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.leases import Leases
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.sync import SyncSchedule, SyncScheduler


class FakeAuth:
    def __init__(self, ids: list[str]) -> None:
        self.ids = ids

    async def active_integration_ids(self) -> list[str]:
        return self.ids


class FakeAccess:
    def __init__(self, ids: list[str]) -> None:
        self.auth = FakeAuth(ids)


class FakeRunner:
    """Runs finish at once, except the slow integration's, which waits for `release`."""

    def __init__(self, ids: list[str], slow: str) -> None:
        self.access = FakeAccess(ids)
        self.slow = slow
        self.release = asyncio.Event()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.others_done = asyncio.Event()
        self.slow_done = asyncio.Event()
        self._others = len(ids) - 1

    async def run(self, integration_id: str, *_: Any, **__: Any) -> None:
        self.started.append(integration_id)
        if integration_id == self.slow:
            await self.release.wait()
        self.finished.append(integration_id)
        if integration_id == self.slow:
            self.slow_done.set()
        elif len(set(self.finished) - {self.slow}) == self._others:
            self.others_done.set()


@contextlib.asynccontextmanager
async def scheduling(
    runner: FakeRunner, db: AsyncDatabase[Document], *, concurrency: int = 8
) -> AsyncIterator[None]:
    """The scheduler's loop over `runner`'s integrations (polling every 0.1 s) for the
    length of the block."""
    scheduler = SyncScheduler(
        runner,  # type: ignore[arg-type]
        SyncSchedule(db),
        Leases(db, ttl_seconds=30),
        interval=timedelta(hours=1),
        poll_seconds=0.1,
        concurrency=concurrency,
    )
    loop = asyncio.create_task(scheduler.run_forever())
    try:
        yield
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def test_a_hanging_integration_holds_only_its_own_slot(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    db = mongo[f"{settings.mongodb_database}_slots_{uuid.uuid4().hex[:6]}"]
    ids = [f"int-{n}-{uuid.uuid4().hex[:6]}" for n in range(5)]
    runner = FakeRunner(ids, slow=ids[0])
    try:
        async with scheduling(runner, db, concurrency=2):
            async with asyncio.timeout(20):
                await runner.others_done.wait()
            # The slow one still holds its slot, and was started once, not again each poll.
            assert runner.started.count(ids[0]) == 1
            assert ids[0] not in runner.finished
            runner.release.set()
            async with asyncio.timeout(10):
                await runner.slow_done.wait()
    finally:
        await mongo.drop_database(db.name)


class AuthServiceDown(FakeRunner):
    """Every run fails to lease: auth-service answers 503."""

    async def run(self, integration_id: str, *_: Any, **__: Any) -> None:
        self.started.append(integration_id)
        self.others_done.set()
        request = httpx.Request("POST", "http://auth-service/internal/v1/lease")
        response = httpx.Response(503, request=request)
        raise httpx.HTTPStatusError("503", request=request, response=response)


async def test_auth_service_down_is_one_line_per_run_not_a_traceback(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, caplog: pytest.LogCaptureFixture
) -> None:
    db = mongo[f"{settings.mongodb_database}_down_{uuid.uuid4().hex[:6]}"]
    ids = [f"int-{uuid.uuid4().hex[:6]}"]
    runner = AuthServiceDown(ids, slow="none")
    try:
        async with scheduling(runner, db):
            async with asyncio.timeout(20):
                await runner.others_done.wait()
            await asyncio.sleep(0.3)
    finally:
        await mongo.drop_database(db.name)
    said = [r for r in caplog.records if r.name == "syntaskio_connector.sync"]
    assert any(r.getMessage() == "sync not started: auth-service answered 503" for r in said)
    assert not [r for r in said if r.exc_info], "a traceback was logged"
