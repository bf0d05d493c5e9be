"""Who syncs what, when: every replica runs a `SyncScheduler`; an integration is synced
by whichever replica takes its lease (`sync:{id}`), when it is due or someone asked.

`sync_schedule` (one document per integration, shared by the replicas) holds when the
next run is due and whether a run was requested ("sync now", a new connection), so a
request that reached one replica is served by whichever one gets the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.connectwise import (
    ConnectWiseClient,
    ConnectWiseError,
    RateLimited,
    Unauthorized,
    api_base_url,
    fetch_codebase,
)
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.egress import SiteRejected
from syntaskio_common.leases import Leases
from syntaskio_common.mongo import Document
from syntaskio_connector.assignment import IntegrationRef
from syntaskio_connector.auth_client import AuthServiceClient
from syntaskio_connector.budget import ApiBudget, SyncDeferred
from syntaskio_connector.engine import IntegrationSync, RunCounts
from syntaskio_connector.jobs import JobStatus, SyncJob, SyncJobs, Trigger

logger = logging.getLogger(__name__)


@dataclass
class SyncRunner:
    """Runs one sync job for one integration, start to finish."""

    auth: AuthServiceClient
    http: httpx.AsyncClient
    engine: IntegrationSync
    budget: ApiBudget
    jobs: SyncJobs

    async def run(self, integration_id: str, trigger: Trigger) -> SyncJob | None:
        """The finished job, or None when the integration is no longer active."""
        lease = await self.auth.lease(integration_id)
        if lease is None:
            return None
        job = await self.jobs.start(lease.tenant_id, integration_id, trigger)
        client = self._client(lease)
        try:
            try:
                counts = await self.engine.run(client, _ref(lease))
            except Unauthorized:
                # Rejected credentials: have auth-service renew them (once, however many
                # replicas report the same version) and go on where the run stopped.
                lease = await self.auth.lease(integration_id, rejected_version=lease.version)
                if lease is None:
                    return await self._finish(job, client, JobStatus.FAILED, error="expired")
                client = self._client(lease, spent=client.requests_made)
                counts = await self.engine.run(client, _ref(lease))
        except SyncDeferred as deferred:
            return await self._finish(
                job, client, JobStatus.DEFERRED, error=deferred.reason, retry_at=deferred.until
            )
        except RateLimited as limited:
            # A long Retry-After: the budget has paused the integration; come back then.
            wait = timedelta(seconds=limited.retry_after or 60)
            return await self._finish(
                job,
                client,
                JobStatus.DEFERRED,
                error=str(limited),
                retry_at=datetime.now(UTC) + wait,
            )
        except (ConnectWiseError, httpx.HTTPError, SiteRejected) as error:
            logger.warning(
                "sync failed", extra={"integration_id": integration_id, "error": str(error)}
            )
            return await self._finish(job, client, JobStatus.FAILED, error=str(error))
        return await self._finish(job, client, JobStatus.SUCCEEDED, counts=counts)

    async def _finish(
        self,
        job: SyncJob,
        client: ConnectWiseClient,
        status: JobStatus,
        *,
        counts: RunCounts | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> SyncJob:
        budget = await self.budget.status(job.integration_id)
        outcome: dict[str, Any] = {
            "api_requests": client.requests_made,
            "budget_remaining": budget.remaining,
            "error": error,
            "retry_at": retry_at,
        }
        if counts is not None:
            outcome |= {
                "fetched": counts.fetched,
                "published": counts.published,
                "tombstoned": counts.tombstoned,
                "modes": counts.modes,
            }
        return await self.jobs.finish(job, status, **outcome)

    def _client(self, lease: CredentialLease, spent: int = 0) -> ConnectWiseClient:
        async def rediscover() -> str:
            codebase = await fetch_codebase(self.http, lease.site_url, lease.company_id)
            if codebase is None:
                raise ConnectWiseError(404, "UnknownCompany", "the company is gone")
            return api_base_url(lease.site_url, codebase)

        client = ConnectWiseClient(
            self.http,
            lease.api_base_url,
            lease.credentials(),
            lease.client_id,
            gate=self.budget.gate(lease.integration_id, lease.tenant_id),
            rediscover=rediscover,
        )
        client.requests_made = spent
        return client


def _ref(lease: CredentialLease) -> IntegrationRef:
    return IntegrationRef(
        integration_id=lease.integration_id,
        tenant_id=lease.tenant_id,
        user_id=lease.user_id,
        member_identifier=lease.member_identifier,
        api_base_url=lease.api_base_url,
        company_id=lease.company_id,
        generation=lease.generation,
    )


class SyncSchedule:
    """When each integration is next due, and pending requests (`sync_schedule`)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._schedule = db["sync_schedule"]

    async def request(self, integration_id: str, trigger: Trigger) -> None:
        await self._schedule.update_one(
            {"_id": integration_id},
            {"$set": {"requested": trigger.value, "requested_at": datetime.now(UTC)}},
            upsert=True,
        )

    async def due(self, integration_ids: list[str], now: datetime) -> list[tuple[str, Trigger]]:
        """Requested ones first, then those whose time has come (or never ran)."""
        docs = {
            doc["_id"]: doc async for doc in self._schedule.find({"_id": {"$in": integration_ids}})
        }
        requested, scheduled = [], []
        for integration_id in integration_ids:
            doc = docs.get(integration_id, {})
            if doc.get("requested"):
                requested.append((integration_id, Trigger(doc["requested"])))
            elif doc.get("next_sync_at") is None or doc["next_sync_at"] <= now:
                scheduled.append((integration_id, Trigger.SCHEDULED))
        return requested + scheduled

    async def ran(self, integration_id: str, next_sync_at: datetime, started: datetime) -> None:
        """Clear a request only if it was made before this run started (a newer one
        still needs a run)."""
        await self._schedule.update_one(
            {"_id": integration_id},
            {"$set": {"next_sync_at": next_sync_at, "last_run_at": started}},
            upsert=True,
        )
        await self._schedule.update_one(
            {"_id": integration_id, "requested_at": {"$lte": started}},
            {"$set": {"requested": None}},
        )

    async def get(self, integration_id: str) -> Document | None:
        return await self._schedule.find_one({"_id": integration_id})


class SyncScheduler:
    """Each replica's loop: find due integrations, take their lease, run them."""

    def __init__(
        self,
        runner: SyncRunner,
        schedule: SyncSchedule,
        leases: Leases,
        *,
        interval: timedelta,
        poll_seconds: float = 5.0,
    ) -> None:
        self._runner = runner
        self._schedule = schedule
        self._leases = leases
        self._interval = interval
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self.running: set[str] = set()

    async def request(self, integration_id: str, trigger: Trigger) -> None:
        await self._schedule.request(integration_id, trigger)
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.run_due()
            except Exception:
                logger.exception("sync scheduling failed; trying again")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll)

    async def run_due(self) -> None:
        try:
            active = await self._runner.auth.active_integration_ids()
        except httpx.HTTPError as error:
            logger.warning("cannot list integrations: %s", error)
            return
        for integration_id, trigger in await self._schedule.due(active, datetime.now(UTC)):
            async with self._leased(integration_id) as ours:
                if ours:
                    await self._run_one(integration_id, trigger)

    @contextlib.asynccontextmanager
    async def _leased(self, integration_id: str) -> AsyncIterator[bool]:
        """Hold `sync:{id}` for the run, extending it while the run goes on."""
        name = f"sync:{integration_id}"
        owner = await self._leases.try_acquire(name)
        if owner is None:
            yield False  # another replica is syncing it
            return

        async def keep() -> None:
            while True:
                await asyncio.sleep(self._leases.ttl_seconds / 3)
                await self._leases.extend(name, owner)

        keeper = asyncio.create_task(keep())
        try:
            yield True
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            await self._leases.release(name, owner)

    async def _run_one(self, integration_id: str, trigger: Trigger) -> None:
        started = datetime.now(UTC)
        next_sync_at = started + self._interval
        self.running.add(integration_id)
        try:
            job = await self._runner.run(integration_id, trigger)
        except Exception:
            logger.exception("sync crashed", extra={"integration_id": integration_id})
            job = None
        finally:
            self.running.discard(integration_id)
        if job is not None and job.retry_at is not None:
            next_sync_at = job.retry_at
        await self._schedule.ran(integration_id, next_sync_at, started)
        if job is not None:
            logger.info(
                "sync %s", job.status.value, extra=job.model_dump(mode="json", exclude={"modes"})
            )
