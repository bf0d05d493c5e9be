"""Short leases in MongoDB, so one replica at a time does a given piece of work (renews a
credential, syncs an integration).

A lease is a document `{_id: name, owner, expires_at}`: taken by insert (the unique `_id`
makes it exclusive), taken over once expired (its holder crashed), and released by
compare-and-delete on the random owner token, so a slow holder can never release a lease
someone else has since taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError
from tenacity import AsyncRetrying, RetryError, retry_if_result, stop_after_delay
from tenacity.wait import wait_random_exponential

from syntaskio_common.mongo import Document

logger = logging.getLogger(__name__)


class LeaseBusy(Exception):
    """Another holder kept the lease for longer than we were willing to wait."""


class Leases:
    def __init__(self, db: AsyncDatabase[Document], *, ttl_seconds: float = 60.0) -> None:
        self._leases = db["leases"]
        self._ttl = timedelta(seconds=ttl_seconds)

    @property
    def ttl_seconds(self) -> float:
        return self._ttl.total_seconds()

    async def try_acquire(self, name: str) -> str | None:
        """The owner token if the lease is now ours, else None."""
        owner = secrets.token_hex(16)
        now = datetime.now(UTC)
        try:
            await self._leases.insert_one(
                {"_id": name, "owner": owner, "expires_at": now + self._ttl}
            )
            return owner
        except DuplicateKeyError:
            taken_over = await self._leases.update_one(
                {"_id": name, "expires_at": {"$lt": now}},
                {"$set": {"owner": owner, "expires_at": now + self._ttl}},
            )
            return owner if taken_over.modified_count == 1 else None

    async def extend(self, name: str, owner: str) -> bool:
        """Keep a lease we hold for another ttl; False if it was lost (taken over)."""
        result = await self._leases.update_one(
            {"_id": name, "owner": owner},
            {"$set": {"expires_at": datetime.now(UTC) + self._ttl}},
        )
        return result.matched_count == 1

    async def release(self, name: str, owner: str) -> None:
        await self._leases.delete_one({"_id": name, "owner": owner})

    @asynccontextmanager
    async def hold(self, name: str, *, wait_seconds: float = 20.0) -> AsyncIterator[None]:
        """Wait (with jittered backoff) until the lease is ours; release it afterwards."""
        retrying = AsyncRetrying(
            retry=retry_if_result(lambda owner: owner is None),
            wait=wait_random_exponential(multiplier=0.05, max=0.5),
            stop=stop_after_delay(wait_seconds),
        )
        try:
            owner: str | None = await retrying(self.try_acquire, name)
        except RetryError as error:
            raise LeaseBusy(name) from error
        assert owner is not None
        try:
            yield
        finally:
            await self.release(name, owner)

    @asynccontextmanager
    async def kept(self, name: str) -> AsyncIterator[bool]:
        """Take the lease if it is free (True), and extend it every third of its ttl for
        as long as the body runs; False, and nothing held, if another holder has it.

        The extender is told to stop, and awaited, never cancelled: a task cancelled
        inside a PyMongo async operation can leave the client's topology lock broken
        ("Lock is not acquired"), after which every operation of the process waits for
        ever (the chaos suite's database outage did so)."""
        owner = await self.try_acquire(name)
        if owner is None:
            yield False
            return
        done = asyncio.Event()

        async def keep() -> None:
            while not await set_within(done, self.ttl_seconds / 3):
                try:
                    await self.extend(name, owner)
                except PyMongoError as error:  # tried again a third of a ttl later
                    logger.warning("lease not extended: %s", type(error).__name__)

        keeper = asyncio.create_task(keep(), name=f"keep {name}")
        try:
            yield True
        finally:
            done.set()
            await keeper
            await self.release(name, owner)


async def set_within(event: asyncio.Event, seconds: float) -> bool:
    """Whether `event` is set within `seconds` (only the wait is cancelled on time-out).
    `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` drops a cancellation that
    comes as the event is set, and a loop waiting on it then never stops."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await event.wait()
    return event.is_set()
