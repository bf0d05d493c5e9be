"""A sync run that never ends, and one whose connector died, on the real database and
broker (ConnectWise and auth-service behind fakes of the runner's ports): the first is
stopped at the run time limit and recorded as interrupted, with where it hung in the log;
the second is marked interrupted by the next run of its integration, which reconciles —
a full run listing every id — even when it was asked only to fetch named records."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from credential_leases import api_key_lease
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from syntaskio_common import topics
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.integrations import JobStatus, Trigger
from syntaskio_common.kafka import create_broker, ensure_topics
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.budget import ApiBudget
from syntaskio_connector.engine import NOTHING_CHANGED, RunCounts
from syntaskio_connector.jobs import SyncJobs
from syntaskio_connector.options import SyncOptionsStore
from syntaskio_connector.sync import SyncRunner


class FakeClient:
    requests_made = 0


class FakeAccess:
    """The runner's access port: a lease for one tenant's integration, a real budget."""

    def __init__(self, budget: ApiBudget, tenant_id: str) -> None:
        self.budget = budget
        self.tenant_id = tenant_id

    async def lease(
        self,
        integration_id: str,
        rejected_version: int | None = None,
        *,
        reuse_epoch: int | None = None,
    ) -> Any:
        return api_key_lease(integration_id, self.tenant_id)

    def forget(self, integration_id: str) -> None:
        pass

    def client(self, lease: CredentialLease, spent: int = 0, **_: Any) -> FakeClient:
        return FakeClient()


class FakeWebhooks:
    async def ensure(self, client: Any, ref: Any) -> None:
        return None


class FakeEngine:
    """Records how it was asked to run; `hang` makes every run wait for ever."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.runs: list[dict[str, Any]] = []

    async def run(self, client: Any, ref: Any, **how: Any) -> RunCounts:
        self.runs.append({"full": True, **how})
        if self.hang:
            await asyncio.Event().wait()
        return RunCounts(
            modes={"service_ticket": "reconcile" if how["reconcile"] else "incremental"}
        )

    async def refresh(self, client: Any, ref: Any, changed: Any, options: Any) -> RunCounts:
        self.runs.append({"full": False})
        return RunCounts()


@pytest.fixture
async def broker(settings: ServiceSettings) -> AsyncIterator[KafkaBroker]:
    await ensure_topics(settings, [topics.INTEGRATIONS])
    broker = create_broker(settings, client_id="interruptions-test")
    await broker.connect()
    yield broker
    await broker.stop()


def runner(
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    broker: KafkaBroker,
    engine: FakeEngine,
    tenant_id: str,
    run_timeout: timedelta = timedelta(minutes=15),
) -> SyncRunner:
    db = mongo[settings.mongodb_database]
    return SyncRunner(
        access=FakeAccess(ApiBudget(db), tenant_id),  # type: ignore[arg-type]
        engine=engine,  # type: ignore[arg-type]
        jobs=SyncJobs(db, broker),
        webhooks=FakeWebhooks(),  # type: ignore[arg-type]
        options=SyncOptionsStore(db),
        run_timeout=run_timeout,
    )


async def test_a_run_that_hangs_is_stopped_at_the_limit_and_recorded_as_interrupted(
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    broker: KafkaBroker,
    tenant: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sync = runner(mongo, settings, broker, FakeEngine(hang=True), tenant, timedelta(seconds=1))
    started = asyncio.get_running_loop().time()
    with caplog.at_level(logging.WARNING, logger="syntaskio_connector.sync"):
        job = await sync.run(str(uuid.uuid4()), Trigger.SCHEDULED)
    assert asyncio.get_running_loop().time() - started < 5
    assert job is not None
    assert job.status is JobStatus.INTERRUPTED
    assert job.error == "timed out after 1 s"
    [record] = [r for r in caplog.records if r.message == "sync timed out"]
    # Where it hung: the await the time limit cancelled.
    assert record.exc_info is not None
    stuck = logging.Formatter().formatException(record.exc_info)
    assert "await asyncio.Event().wait()" in stuck, stuck


async def test_the_next_run_marks_a_dead_connectors_job_interrupted_and_reconciles(
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    broker: KafkaBroker,
    tenant: str,
) -> None:
    db = mongo[settings.mongodb_database]
    integration_id = str(uuid.uuid4())
    # What a connector killed mid-run leaves behind.
    abandoned = await SyncJobs(db, broker).start(tenant, integration_id, Trigger.SCHEDULED)
    engine = FakeEngine()
    sync = runner(mongo, settings, broker, engine, tenant)

    # Asked only to fetch records a webhook named: it reconciles instead.
    job = await sync.run(integration_id, Trigger.WEBHOOK, NOTHING_CHANGED, full=False)
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED
    [ran] = engine.runs
    assert (ran["full"], ran["reconcile"], ran["resync"]) == (True, True, False)
    history = await SyncJobs(db, broker).history(tenant, integration_id, 10)
    [marked] = [j for j in history if j.id == abandoned.id]
    assert marked.status is JobStatus.INTERRUPTED
    assert marked.finished_at is not None
    assert marked.finished_at <= datetime.now(UTC)

    # Found once: the run after that is an ordinary one.
    await sync.run(integration_id, Trigger.WEBHOOK, NOTHING_CHANGED, full=False)
    assert engine.runs[-1] == {"full": False}
