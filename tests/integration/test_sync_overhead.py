"""What an idle sync no longer pays for, and that nothing is lost by it (issue 19, item
3): a sync's credential lease reused while it lasts and dropped when the connection is
reconnected or its team changes; a budget gate that admits by compare-and-set on the
document it last wrote, never past the limit when replicas interleave; a job finished
without being read back, equal to the stored one."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from credential_leases import api_key_lease
from pymongo import AsyncMongoClient

from syntaskio_common.integrations import JobStatus, Trigger
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.budget import ApiBudget, BudgetExhausted, BudgetPolicy
from syntaskio_connector.jobs import SyncJobs


class CountingAuth:
    """auth-service's lease endpoint: each call a new version of the credentials."""

    def __init__(self, expires_in: timedelta = timedelta(minutes=15)) -> None:
        self.calls: list[dict[str, Any]] = []
        self.expires_in = expires_in
        self.refuse = False

    async def lease(
        self, integration_id: str, rejected_version: int | None = None, **kw: Any
    ) -> Any:
        self.calls.append({"rejected_version": rejected_version, **kw})
        if self.refuse:
            return None
        expires_at = datetime.now(UTC) + self.expires_in
        return api_key_lease(integration_id, version=len(self.calls), expires_at=expires_at)


def access_with(auth: CountingAuth, budget: ApiBudget) -> ConnectWiseAccess:
    return ConnectWiseAccess(auth, httpx.AsyncClient(), budget)  # type: ignore[arg-type]


async def test_a_sync_lease_is_reused_at_the_same_epoch_and_dropped_at_a_new_one(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    auth = CountingAuth()
    access = access_with(auth, ApiBudget(mongo[settings.mongodb_database]))
    integration = str(uuid.uuid4())

    first = await access.lease(integration, reuse_epoch=3)
    assert first is not None
    assert await access.lease(integration, reuse_epoch=3) == first
    assert len(auth.calls) == 1
    # A reconnect (or a new team) moved the schedule's epoch: new credentials.
    renewed = await access.lease(integration, reuse_epoch=4)
    assert renewed is not None
    assert renewed.version == 2
    # Not a scheduled run's (no epoch), a rejected version, a cleanup: always asked.
    await access.lease(integration)
    await access.lease(integration, rejected_version=2, reuse_epoch=4)
    await access.lease(integration, cleanup=True, purpose="cleanup", reuse_epoch=4)
    assert len(auth.calls) == 5
    # Rejected by ConnectWise: forgotten, asked again.
    access.forget(integration)
    await access.lease(integration, reuse_epoch=4)
    assert len(auth.calls) == 6
    # Refused (disconnected): nothing is kept.
    auth.refuse = True
    assert await access.lease(integration, reuse_epoch=5) is None
    auth.refuse = False
    await access.lease(integration, reuse_epoch=5)
    await access.lease(integration, reuse_epoch=5)
    assert len(auth.calls) == 8


async def test_a_lease_near_its_expiry_is_not_reused(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    auth = CountingAuth(expires_in=timedelta(seconds=30))
    access = access_with(auth, ApiBudget(mongo[settings.mongodb_database]))
    integration = str(uuid.uuid4())
    await access.lease(integration, reuse_epoch=0)
    await access.lease(integration, reuse_epoch=0)
    assert len(auth.calls) == 2


async def test_gates_of_replicas_interleaving_never_exceed_the_budget(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    """Each gate admits on the document it last wrote: the others' admissions make it
    stale, and the compare-and-set on the revision catches that every time."""
    db = mongo[settings.mongodb_database]
    integration = str(uuid.uuid4())
    gates = [
        ApiBudget(db, BudgetPolicy(requests_per_hour=40)).gate(integration, "t") for _ in "abc"
    ]

    async def send(gate: Any, n: int) -> int:
        admitted = 0
        for _ in range(n):
            try:
                await gate.before_request()
            except BudgetExhausted:
                continue
            admitted += 1
            await gate.after_response(200, None)
        return admitted

    counts = await asyncio.gather(*(send(g, 20) for g in gates))
    assert sum(counts) == 40
    status = await ApiBudget(db).status(integration)
    assert status.used_last_hour == 40


async def test_a_gate_reports_failures_and_a_success_after_them(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    db = mongo[settings.mongodb_database]
    integration = str(uuid.uuid4())
    budget = ApiBudget(db, BudgetPolicy(failures_to_open=3))
    gate, other = budget.gate(integration, "t"), budget.gate(integration, "t")
    for _ in range(2):
        await gate.before_request()
        await gate.after_response(503, None)
    doc = await db["connectwise_budgets"].find_one({"_id": integration}) or {}
    assert doc["circuit"]["failures"] == 2
    # Admitted with failures counted: its success closes the count again.
    await other.before_request()
    await other.after_response(200, None)
    doc = await db["connectwise_budgets"].find_one({"_id": integration}) or {}
    assert doc["circuit"]["failures"] == 0
    assert len(doc["stamps"]) == 3


async def test_a_finished_job_is_the_one_stored(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    from syntaskio_common.kafka import create_broker

    db = mongo[settings.mongodb_database]
    broker = create_broker(settings, client_id="overhead-test")
    await broker.start()
    try:
        jobs = SyncJobs(db, broker)
        tenant, integration = "t-overhead", str(uuid.uuid4())
        job = await jobs.start(tenant, integration, Trigger.SCHEDULED)
        done = await jobs.finish(job, JobStatus.SUCCEEDED, api_requests=3, fetched=0, error=None)
        [stored] = await jobs.history(tenant, integration, 5)
        assert done == stored
        assert (done.status, done.api_requests) == (JobStatus.SUCCEEDED, 3)
    finally:
        await broker.stop()
