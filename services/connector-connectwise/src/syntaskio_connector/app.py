"""Wiring: the one place the connector's parts are put together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Path, Query, Request, status
from faststream.kafka import KafkaBroker, KafkaMessage
from pydantic import ValidationError

from syntaskio_common import events, topics
from syntaskio_common.commands import CommandOutcome, TaskCommand, outcome_event
from syntaskio_common.consumer_lag import ConsumerLag
from syntaskio_common.egress import create_guarded_http_client
from syntaskio_common.health import health_router
from syntaskio_common.http import create_http_client
from syntaskio_common.integrations import (
    SyncBudget,
    SyncJob,
    SyncOptions,
    SyncStatus,
    Trigger,
    WebhookStatus,
)
from syntaskio_common.kafka import at_least_once, create_broker, ensure_topics, publish
from syntaskio_common.leases import Leases
from syntaskio_common.mongo import create_mongo_client, get_database, ping
from syntaskio_common.problems import Problem, RequestSizeLimit, install_problem_handlers
from syntaskio_common.service_auth import internal_caller
from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.auth_client import AuthServiceClient
from syntaskio_connector.budget import ApiBudget, BudgetPolicy
from syntaskio_connector.engine import IntegrationSync, KafkaSink, SyncPolicy
from syntaskio_connector.jobs import SyncJobs
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.options import SyncOptionsStore
from syntaskio_connector.settings import ConnectorSettings
from syntaskio_connector.sync import SyncRunner, SyncSchedule, SyncScheduler
from syntaskio_connector.tracking import SyncTracking
from syntaskio_connector.webhooks import (
    DeliveryRejected,
    SigningKeys,
    WebhookReceiver,
    WebhookRegistrations,
    WebhookStats,
)
from syntaskio_connector.writeback import CommandExecutor, CommandJournal

# Integration events after which a connection syncs at once, and why.
SYNC_AT_ONCE = {
    events.INTEGRATION_CONNECTED: Trigger.CONNECTED,
    events.INTEGRATION_RESUMED: Trigger.RESUMED,
    events.INTEGRATION_MEMBERS_CHANGED: Trigger.MEMBERS_CHANGED,
}
logger = logging.getLogger(__name__)

INTEGRATION_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
# The connector's consumer groups: integration lifecycle events, write-back commands.
LIFECYCLE_GROUP_ID = "connector-connectwise"
COMMANDS_GROUP_ID = "connector-connectwise-commands"
MAX_DELIVERY_BYTES = 1_000_000
TenantId = Annotated[str, Query(min_length=1, max_length=64)]
UserId = Annotated[str, Query(min_length=1, max_length=128)]


async def _publish_outcome(broker: KafkaBroker, outcome: CommandOutcome) -> None:
    await publish(broker, topics.TASK_COMMANDS, outcome_event(outcome))


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
    sync_options = SyncOptionsStore(db)
    registrations = WebhookRegistrations(db, settings.webhook_base_url)
    webhook_stats = WebhookStats(db)
    access = ConnectWiseAccess(
        AuthServiceClient(http, settings.auth_service_url, internal_token), connectwise, budget
    )
    runner = SyncRunner(
        access=access,
        engine=IntegrationSync(
            tracking,
            metadata,
            KafkaSink(broker),
            SyncPolicy(
                overlap=timedelta(seconds=settings.sync_overlap_seconds),
                reconcile_every=timedelta(seconds=settings.reconcile_interval_seconds),
                project_refresh=timedelta(seconds=settings.project_refresh_seconds),
            ),
        ),
        jobs=jobs,
        webhooks=registrations,
        options=sync_options,
    )
    scheduler = SyncScheduler(
        runner,
        schedule,
        Leases(db, ttl_seconds=settings.sync_lease_seconds),
        interval=timedelta(seconds=settings.sync_interval_seconds),
        poll_seconds=settings.sync_poll_seconds,
    )

    @at_least_once(
        broker,
        topics.INTEGRATIONS,
        LIFECYCLE_GROUP_ID,
        description="`integration.connected.v1`, `.resumed.v1` and `.members_changed.v1` "
        "start a sync at once",
    )
    async def on_integration_event(message: KafkaMessage) -> None:
        """A new or renewed connection, a resumed one, or a tenant connection whose
        members changed syncs at once instead of waiting for the schedule."""
        try:
            event = events.decode_event(message.headers, message.body)
        except events.InvalidEvent:
            return
        trigger = SYNC_AT_ONCE.get(event.type)
        if trigger is not None and "id" in event.data:
            await scheduler.request(str(event.data["id"]), trigger)

    lag = ConsumerLag(
        settings, {LIFECYCLE_GROUP_ID: topics.INTEGRATIONS, COMMANDS_GROUP_ID: topics.TASK_COMMANDS}
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(
            settings, [topics.CONNECTWISE_RAW, topics.INTEGRATIONS, topics.TASK_COMMANDS]
        )
        for indexed in (tracking, metadata, jobs, journal):
            await indexed.create_indexes()
        await broker.start()
        loop = asyncio.create_task(scheduler.run_forever(), name="sync-scheduler")
        lag.start()
        yield
        await lag.stop()
        loop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loop
        await broker.stop()
        await http.aclose()
        await connectwise.aclose()
        await mongo.close()

    journal = CommandJournal(db)
    outcomes_publisher = partial(_publish_outcome, broker)
    executor = CommandExecutor(
        access,
        tracking,
        metadata,
        journal,
        Leases(db, ttl_seconds=60),
        publish_outcome=outcomes_publisher,
        request_refresh=lambda integration_id, changed: scheduler.notify(
            integration_id, changed, Trigger.WRITE_BACK
        ),
    )

    @at_least_once(
        broker,
        topics.TASK_COMMANDS,
        COMMANDS_GROUP_ID,
        description="Write-back commands (`task.command.requested.v1`) to run in ConnectWise",
    )
    async def on_task_command(message: KafkaMessage) -> None:
        """Write-back: execute ConnectWise commands (others are not ours; outcomes,
        also on this topic, are skipped)."""
        try:
            event = events.decode_event(message.headers, message.body)
        except events.InvalidEvent as error:
            logger.warning("not a task command: %s", error)
            return
        if event.type != events.TASK_COMMAND_REQUESTED or event.data.get("source") not in (
            None,
            "connectwise",
        ):
            return
        try:
            command = TaskCommand.model_validate(event.data)
        except ValidationError as error:
            logger.warning(
                "invalid task command refused",
                extra={"event_id": event.id, "errors": error.error_count()},
            )
            return
        await executor.execute(command)

    receiver = WebhookReceiver(
        access,
        webhook_stats,
        SigningKeys(fetch_interval_seconds=settings.webhook_key_fetch_interval_seconds),
    )

    app = FastAPI(title="Syntaskio connector-connectwise", version="0.1.0", lifespan=lifespan)
    install_problem_handlers(app)
    # Webhook deliveries are the only bodies from outside; nothing we accept is larger.
    app.add_middleware(RequestSizeLimit, max_bytes=MAX_DELIVERY_BYTES)
    app.include_router(health_router({"mongodb": lambda: ping(mongo)}))
    internal = [Depends(internal_caller(settings.internal_api_token))]
    # What the gateway calls for its users (after checking they own what is named); the
    # back-end services' token is accepted too.
    for_gateway = [
        Depends(internal_caller(settings.internal_api_token, settings.connector_api_token))
    ]

    @app.post(
        "/internal/v1/integrations/{integration_id}/sync",
        status_code=status.HTTP_202_ACCEPTED,
        dependencies=for_gateway,
        tags=["internal"],
    )
    async def sync_now(integration_id: str, resync: bool = False) -> dict[str, str]:
        """Run a sync as soon as a replica is free (the caller checked ownership);
        `resync`: list everything again with its body, whatever the cursors say."""
        await scheduler.request(integration_id, Trigger.MANUAL, resync=resync)
        return {"status": "queued", "integration_id": integration_id}

    @app.post(
        "/webhooks/connectwise/{integration_id}",
        tags=["webhooks"],
        responses={400: {}, 401: {}, 404: {}, 413: {}, 503: {}},
    )
    async def connectwise_callback(
        integration_id: Annotated[str, Path(pattern=INTEGRATION_ID_PATTERN)],
        request: Request,
        x_content_signature: Annotated[str | None, Header()] = None,
    ) -> dict[str, str]:
        """A ConnectWise callback delivery: verified, then the record it names is fetched
        again by the next sync run (answered at once; ConnectWise waits 5 s at most)."""
        body = await request.body()
        try:
            changed = await receiver.receive(integration_id, body, x_content_signature)
        except DeliveryRejected as rejected:
            raise Problem(rejected.status_code, rejected.detail) from None
        if changed:
            await scheduler.notify(integration_id, changed, Trigger.WEBHOOK)
        return {"status": "accepted"}

    @app.delete(
        "/internal/v1/integrations/{integration_id}/webhooks",
        dependencies=internal,
        tags=["internal"],
    )
    async def remove_webhooks(integration_id: str) -> dict[str, int]:
        """Called by auth-service while a disconnect still has credentials (a paused
        connection's too)."""
        lease = await access.lease(integration_id, cleanup=True)
        if lease is None:
            raise Problem(404, "No active connection with this id.")
        removed = await registrations.remove(access.client(lease), integration_id)
        return {"removed": removed}

    @app.get("/internal/v1/commands/{command_id}", dependencies=for_gateway, tags=["internal"])
    async def command_outcome(
        command_id: str, tenant_id: TenantId, user_id: UserId
    ) -> CommandOutcome:
        """How a write-back command went (404 until the connector has seen it)."""
        outcome = await journal.outcome(tenant_id, user_id, command_id)
        if outcome is None:
            raise Problem(404, "No such command (yet).")
        return outcome

    @app.get(
        "/internal/v1/integrations/{integration_id}/sync-jobs",
        dependencies=for_gateway,
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
        dependencies=for_gateway,
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
        registered = await registrations.registration(integration_id) or {}
        return SyncStatus(
            webhooks=WebhookStatus(
                enabled=registrations.base_url is not None,
                registered=bool(registered.get("callbacks")),
                error=registered.get("error"),
                **await webhook_stats.get(integration_id),
            ),
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
            options=await sync_options.get(integration_id),
        )

    @app.put(
        "/internal/v1/integrations/{integration_id}/sync-options",
        dependencies=for_gateway,
        tags=["internal"],
    )
    async def set_sync_options(
        integration_id: str, tenant_id: TenantId, options: SyncOptions
    ) -> SyncOptions:
        """What the connection syncs (the caller checked ownership); a change is synced
        at once (phases listed, or tombstoned)."""
        if await sync_options.set(tenant_id, integration_id, options):
            await scheduler.request(integration_id, Trigger.MANUAL)
        return options

    return app
