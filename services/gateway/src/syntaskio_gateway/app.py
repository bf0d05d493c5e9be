"""Wiring: the one place the gateway's parts are put together."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from syntaskio_common import topics
from syntaskio_common.health import health_router
from syntaskio_common.http import create_http_client
from syntaskio_common.kafka import (
    consumer_options,
    create_broker,
    ensure_topics,
    publish,
    reachable,
)
from syntaskio_common.mongo import create_mongo_client, get_database, ping
from syntaskio_common.problems import RequestSizeLimit, install_problem_handlers
from syntaskio_common.rate_limits import RateLimiter
from syntaskio_common.sessions import JwksSessionVerifier, LiveSessions, SessionRevocations
from syntaskio_gateway import (
    admin_api,
    api,
    integrations_api,
    my_day_api,
    notifications_api,
    search_api,
    session_api,
    timers_api,
)
from syntaskio_gateway.commands import CommandRequests
from syntaskio_gateway.connector import ConnectorApi
from syntaskio_gateway.found_tickets import FoundTickets
from syntaskio_gateway.live import FeedBuffer, TaskFeed
from syntaskio_gateway.my_day import TaskPlans
from syntaskio_gateway.notifier import Notifier
from syntaskio_gateway.same_origin import SameOriginWrites
from syntaskio_gateway.settings import GatewaySettings
from syntaskio_gateway.tasks import TaskReader
from syntaskio_gateway.timers import TaskTimers

STATIC = Path(__file__).parent / "static"
# The page loads only its own script and stylesheet and talks only to this origin.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


def _reading(feed: TaskFeed) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return feed.running

    return check


def create_app(settings: GatewaySettings) -> FastAPI:
    mongo = create_mongo_client(settings)
    db = get_database(mongo, settings)
    plans = TaskPlans(db)
    # A task that leaves the dashboard takes its plan with it.
    feed = TaskFeed(
        consumer_options(settings),
        FeedBuffer(settings.live_buffer_size),
        on_removed=plans.forget_tasks,
    )
    broker = create_broker(settings, client_id="gateway")
    notifier = Notifier(settings, db)
    connector_token = settings.connector_api_token.get_secret_value()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with (
            create_http_client() as http,
            create_http_client(
                base_url=settings.auth_service_url, propagate_request_id=True
            ) as auth_service,
            create_http_client(
                base_url=settings.connector_url,
                headers={"Authorization": f"Bearer {connector_token}"},
                propagate_request_id=True,
            ) as connector,
        ):
            app.state.verifier = LiveSessions(
                JwksSessionVerifier(
                    settings.session_jwks_url,
                    settings.session_issuer,
                    http,
                    audience=settings.session_audience,
                ),
                SessionRevocations(db),
            )
            app.state.auth_service = auth_service
            app.state.connector = ConnectorApi(connector)
            app.state.tasks = TaskReader(db)
            commands = CommandRequests(
                db, lambda record: publish(broker, topics.TASK_COMMANDS, record)
            )
            await commands.create_indexes()
            app.state.commands = commands
            timers = TaskTimers(db)
            await timers.create_indexes()
            app.state.timers = timers
            found_tickets = FoundTickets(db, app.state.tasks)
            await found_tickets.create_indexes()
            app.state.found_tickets = found_tickets
            await notifier.create_indexes()
            app.state.notifications = notifier.notifications
            await plans.create_indexes()
            app.state.plans = plans
            await ensure_topics(settings, [topics.TASKS, topics.TASK_COMMANDS, topics.INTEGRATIONS])
            await broker.start()
            await feed.start()
            app.state.feed = feed
            notifier.start()
            yield
            await notifier.stop()
            await feed.stop()
            await broker.stop()
        await mongo.close()

    app = FastAPI(
        title="Syntaskio gateway",
        version="0.1.0",
        summary="The dashboard API and web UI",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter()
    install_problem_handlers(app)
    app.include_router(
        health_router(
            {
                "mongodb": lambda: ping(mongo),
                "kafka": reachable(broker),
                "task_feed": _reading(feed),
            }
        )
    )
    app.include_router(session_api.router)
    app.include_router(api.router)
    app.include_router(timers_api.router)
    app.include_router(search_api.router)
    app.include_router(notifications_api.router)
    app.include_router(my_day_api.router)
    app.include_router(integrations_api.router)
    app.include_router(admin_api.router)
    app.add_middleware(RequestSizeLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(SameOriginWrites)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/settings", include_in_schema=False)
    async def settings_page() -> FileResponse:
        """The same page; it brings the integrations section forward (and is where the
        OAuth flow ends up)."""
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/my-day", include_in_schema=False)
    async def my_day_page() -> FileResponse:
        """The same page, with My day forward."""
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/tasks/{task_id}", include_in_schema=False)
    async def ticket_page(task_id: str) -> FileResponse:
        """The same page, with a ticket's detail forward; what it shows comes from
        /api/v1/tasks/{id}/detail, which answers only the task's own user."""
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    @app.get("/admin", include_in_schema=False)
    async def admin_page() -> FileResponse:
        """The same page again, with the admin console forward. The page holds no data:
        what it shows comes from /api/v1/admin, which refuses anyone but the company's
        admins (a technician who comes here is told so, in the API's words)."""
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    return app
