"""Wiring: the one place the connector's parts are put together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import Depends, FastAPI, Query, status
from faststream.kafka import KafkaMessage
from pydantic import BaseModel

from syntaskio_common import events, topics
from syntaskio_common.egress import create_guarded_http_client
from syntaskio_common.health import health_router
from syntaskio_common.http import create_http_client
from syntaskio_common.kafka import at_least_once, create_broker, ensure_topics
from syntaskio_common.leases import Leases
from syntaskio_common.mongo import create_mongo_client, get_database, ping
from syntaskio_common.problems import install_problem_handlers
from syntaskio_common.service_auth import internal_caller
from syntaskio_connector.auth_client import AuthServiceClient
from syntaskio_connector.budget import ApiBudget, BudgetPolicy
from syntaskio_connector.engine import IntegrationSync, KafkaSink, SyncPolicy
from syntaskio_connector.jobs import SyncJob, SyncJobs, Trigger
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.settings import ConnectorSettings
from syntaskio_connector.sync import SyncRunner, SyncSchedule, SyncScheduler
from syntaskio_connector.tracking import SyncTracking

IntegrationId = Annotated[str, Query(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
TenantId = Annotated[str, Query(min_length=1, max_length=64)]


class SyncBudget(BaseModel):
    limit_per_hour: int
    used_last_hour: int
    remaining: int
    paused_until: datetime | None


class SyncStatus(BaseModel):
    """What the settings page shows about an integration's syncing."""

    state: str  # syncing | idle | degraded | paused
    reason: str | None
    last_job: SyncJob | None
    next_sync_at: datetime | None
    budget: SyncBudget


def create_app(settings: ConnectorSettings) -> FastAPI:
    mongo = create_mongo_client(settings)
    db = get_database(mongo, settings)
    broker = create_broker(settings, client_id="connector-connectwise")
    internal_token = settings.internal_api_token.get_secret_value()
    http = create_http_client()
    # Sites were checked when connected; the guard checks again on every connection
    # (a DNS answer can change to a private address after the fact).
    connectwise = create_guarded_http_client(settings.site_policy())
    tracking = SyncTracking(db)
    metadata = MetadataCache(db, timedelta(seconds=settings.metadata_ttl_seconds))
    budget = ApiBudget(db, BudgetPolicy(requests_per_hour=settings.connectwise_requests_per_hour))
    jobs = SyncJobs(db, broker)
    schedule = SyncSchedule(db)
    runner = SyncRunner(
        auth=AuthServiceClient(http, settings.auth_service_url, internal_token),
        http=connectwise,
        engine=IntegrationSync(
            tracking,
            metadata,
            KafkaSink(broker),
            SyncPolicy(
                overlap=timedelta(seconds=settings.sync_overlap_seconds),
                reconcile_every=timedelta(seconds=settings.reconcile_interval_seconds),
            ),
        ),
        budget=budget,
        jobs=jobs,
    )
    scheduler = SyncScheduler(
        runner,
        schedule,
        Leases(db, ttl_seconds=settings.sync_lease_seconds),
        interval=timedelta(seconds=settings.sync_interval_seconds),
        poll_seconds=settings.sync_poll_seconds,
    )

    @at_least_once(broker, topics.INTEGRATIONS, "connector-connectwise")
    async def on_integration_event(message: KafkaMessage) -> None:
        """A new or renewed connection syncs at once instead of waiting for the schedule."""
        try:
            event = events.decode_event(message.headers, message.body)
        except events.InvalidEvent:
            return
        if event.type == events.INTEGRATION_CONNECTED and "id" in event.data:
            await scheduler.request(str(event.data["id"]), Trigger.CONNECTED)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(settings, [topics.CONNECTWISE_RAW, topics.INTEGRATIONS])
        for indexed in (tracking, metadata, jobs):
            await indexed.create_indexes()
        await broker.start()
        loop = asyncio.create_task(scheduler.run_forever(), name="sync-scheduler")
        yield
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await broker.stop()
        await http.aclose()
        await connectwise.aclose()
        await mongo.close()

    app = FastAPI(title="Syntaskio connector-connectwise", version="0.1.0", lifespan=lifespan)
    install_problem_handlers(app)
    app.include_router(health_router({"mongodb": lambda: ping(mongo)}))
    internal = [Depends(internal_caller(settings.internal_api_token))]

    @app.post(
        "/internal/v1/integrations/{integration_id}/sync",
        status_code=status.HTTP_202_ACCEPTED,
        dependencies=internal,
        tags=["internal"],
    )
    async def sync_now(integration_id: str) -> dict[str, str]:
        """Run a sync as soon as a replica is free (the caller checked ownership)."""
        await scheduler.request(integration_id, Trigger.MANUAL)
        return {"status": "queued", "integration_id": integration_id}

    @app.get(
        "/internal/v1/integrations/{integration_id}/sync-jobs",
        dependencies=internal,
        tags=["internal"],
    )
    async def sync_history(
        integration_id: str,
        tenant_id: TenantId,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> list[SyncJob]:
        return await jobs.history(tenant_id, integration_id, limit)

    @app.get(
        "/internal/v1/integrations/{integration_id}/sync-status",
        dependencies=internal,
        tags=["internal"],
    )
    async def sync_status(integration_id: str, tenant_id: TenantId) -> SyncStatus:
        spent = await budget.status(integration_id)
        recent = await jobs.history(tenant_id, integration_id, 1)
        last = recent[0] if recent else None
        planned = await schedule.get(integration_id) or {}
        if integration_id in scheduler.running:
            state, reason = "syncing", None
        elif spent.degraded:
            state, reason = "degraded", spent.reason
        elif spent.paused_until is not None:
            state, reason = "paused", "ConnectWise asked us to slow down"
        else:
            state, reason = "idle", last.error if last else None
        return SyncStatus(
            state=state,
            reason=reason,
            last_job=last,
            next_sync_at=planned.get("next_sync_at"),
            budget=SyncBudget(
                limit_per_hour=spent.limit,
                used_last_hour=spent.used_last_hour,
                remaining=spent.remaining,
                paused_until=spent.paused_until,
            ),
        )

    return app
