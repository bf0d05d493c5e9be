"""Wiring: the one place the connector's parts are put together."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, status
from faststream.kafka import KafkaMessage

from syntaskio_common import events, topics
from syntaskio_common.egress import create_guarded_http_client
from syntaskio_common.health import health_router
from syntaskio_common.http import create_http_client
from syntaskio_common.kafka import at_least_once, create_broker, ensure_topics
from syntaskio_common.mongo import create_mongo_client, get_database, ping
from syntaskio_common.problems import install_problem_handlers
from syntaskio_common.service_auth import internal_caller
from syntaskio_connector.auth_client import AuthServiceClient
from syntaskio_connector.checkpoints import Checkpoints
from syntaskio_connector.settings import ConnectorSettings
from syntaskio_connector.sync import SyncScheduler, TicketSync


def create_app(settings: ConnectorSettings) -> FastAPI:
    mongo = create_mongo_client(settings)
    broker = create_broker(settings, client_id="connector-connectwise")
    internal_token = settings.internal_api_token.get_secret_value()

    @at_least_once(broker, topics.INTEGRATIONS, "connector-connectwise")
    async def on_integration_event(message: KafkaMessage) -> None:
        """A new or renewed connection syncs at once instead of waiting for the schedule."""
        try:
            event = events.decode_event(message.headers, message.body)
        except events.InvalidEvent:
            return
        if event.type == events.INTEGRATION_CONNECTED and "id" in event.data:
            scheduler.request(str(event.data["id"]))

    http = create_http_client()
    # Sites were checked when connected; the guard checks again on every connection
    # (a DNS answer can change to a private address after the fact).
    connectwise = create_guarded_http_client(settings.site_policy())
    scheduler = SyncScheduler(
        TicketSync(
            auth=AuthServiceClient(http, settings.auth_service_url, internal_token),
            http=connectwise,
            broker=broker,
            checkpoints=Checkpoints(get_database(mongo, settings)),
        ),
        settings.sync_interval_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await ensure_topics(settings, [topics.CONNECTWISE_RAW, topics.INTEGRATIONS])
        await broker.start()
        runner = asyncio.create_task(scheduler.run_forever(), name="sync-scheduler")
        yield
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await broker.stop()
        await http.aclose()
        await connectwise.aclose()
        await mongo.close()

    app = FastAPI(title="Syntaskio connector-connectwise", version="0.1.0", lifespan=lifespan)
    install_problem_handlers(app)
    app.include_router(health_router({"mongodb": lambda: ping(mongo)}))

    @app.post(
        "/internal/v1/integrations/{integration_id}/sync",
        status_code=status.HTTP_202_ACCEPTED,
        dependencies=[Depends(internal_caller(settings.internal_api_token))],
        tags=["internal"],
    )
    async def sync_now(integration_id: str) -> dict[str, str]:
        scheduler.request(integration_id)
        return {"status": "queued", "integration_id": integration_id}

    return app
