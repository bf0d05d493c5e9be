"""Wiring: the one place the connector's parts are put together. Its HTTP routes are in
`routes.py`, its Kafka subscribers in `subscribers.py`, what they do in the rest."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial

from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from syntaskio_common import topics
from syntaskio_common.commands import CommandOutcome, outcome_event
from syntaskio_common.consumer_lag import ConsumerLag
from syntaskio_common.egress import create_guarded_http_client
from syntaskio_common.health import health_router
from syntaskio_common.http import create_http_client
from syntaskio_common.integrations import Trigger
from syntaskio_common.kafka import create_broker, ensure_topics, publish, reachable
from syntaskio_common.leases import Leases
from syntaskio_common.mongo import create_mongo_client, get_database, ping
from syntaskio_common.problems import RequestSizeLimit, install_problem_handlers
from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.auth_client import AuthServiceClient
from syntaskio_connector.budget import ApiBudget, BudgetPolicy
from syntaskio_connector.components import Components
from syntaskio_connector.details import TicketDetails
from syntaskio_connector.engine import Changed, IntegrationSync, KafkaSink, SyncPolicy
from syntaskio_connector.jobs import SyncJobs
from syntaskio_connector.metadata import MetadataCache
from syntaskio_connector.options import SyncOptionsStore
from syntaskio_connector.routes import create_router
from syntaskio_connector.search import TicketSearch
from syntaskio_connector.settings import ConnectorSettings
from syntaskio_connector.subscribers import COMMANDS_GROUP_ID, LIFECYCLE_GROUP_ID, subscribe
from syntaskio_connector.sync import SyncRunner, SyncSchedule, SyncScheduler
from syntaskio_connector.tracking import SyncTracking
from syntaskio_connector.webhooks import (
    DeliveryLimits,
    SigningKeys,
    WebhookReceiver,
    WebhookRegistrations,
    WebhookStats,
)
from syntaskio_connector.writeback import CommandExecutor, CommandJournal

# Webhook deliveries are the only bodies from outside; nothing we accept is larger.
MAX_DELIVERY_BYTES = 1_000_000


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
        run_timeout=timedelta(seconds=settings.sync_run_timeout_seconds),
    )
    scheduler = SyncScheduler(
        runner,
        schedule,
        interval=timedelta(seconds=settings.sync_interval_seconds),
        lease=timedelta(seconds=settings.sync_lease_seconds),
        poll_seconds=settings.sync_poll_seconds,
        concurrency=settings.sync_concurrency,
        slow_after=timedelta(seconds=settings.sync_slow_after_seconds),
        slow_runs=settings.sync_slow_runs,
    )
    journal = CommandJournal(db)
    webhook_stats = WebhookStats(db)
    details = TicketDetails(
        db, access, metadata, max_age=timedelta(seconds=settings.ticket_detail_max_age_seconds)
    )

    short_leases = Leases(db, ttl_seconds=60)
    searches = TicketSearch(db, access, short_leases)

    async def refetch(integration_id: str, changed: Changed) -> None:
        """Our own write-back changed these records: read them (and their detail) again."""
        await details.forget(integration_id, changed)
        await scheduler.notify(integration_id, changed, Trigger.WRITE_BACK)

    parts = Components(
        access=access,
        budget=budget,
        jobs=jobs,
        schedule=schedule,
        scheduler=scheduler,
        sync_options=sync_options,
        registrations=registrations,
        webhook_stats=webhook_stats,
        receiver=WebhookReceiver(
            access,
            webhook_stats,
            SigningKeys(fetch_interval_seconds=settings.webhook_key_fetch_interval_seconds),
            DeliveryLimits(
                per_integration=settings.webhook_rate_per_integration,
                per_source=settings.webhook_rate_per_source,
            ),
        ),
        journal=journal,
        executor=CommandExecutor(
            access,
            tracking,
            metadata,
            journal,
            short_leases,
            publish_outcome=partial(_publish_outcome, broker),
            request_refresh=refetch,
        ),
        details=details,
        searches=searches,
    )
    subscribe(broker, parts, settings.kafka_fetch_max_wait_ms)
    lag = ConsumerLag(
        settings, {LIFECYCLE_GROUP_ID: topics.INTEGRATIONS, COMMANDS_GROUP_ID: topics.TASK_COMMANDS}
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(
            settings, [topics.CONNECTWISE_RAW, topics.INTEGRATIONS, topics.TASK_COMMANDS]
        )
        indexed = (tracking, metadata, jobs, journal, details, searches, registrations)
        for part in (*indexed, schedule):
            await part.create_indexes()
        await sync_options.migrate()  # after the schedule's own migration
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

    app = FastAPI(title="Syntaskio connector-connectwise", version="0.1.0", lifespan=lifespan)
    install_problem_handlers(app)
    app.add_middleware(RequestSizeLimit, max_bytes=MAX_DELIVERY_BYTES)
    app.include_router(health_router({"mongodb": lambda: ping(mongo), "kafka": reachable(broker)}))
    app.include_router(create_router(settings, parts))
    return app
