"""`create_app(settings)`: the sandbox wired together — seeded store, the ConnectWise API
(with request counting and fault injection in front of it), callbacks fed by the
store's change events, and the admin API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from connectwise_sandbox import (
    admin,
    admin_callbacks,
    admin_fleet,
    admin_work,
    api,
    callback_routes,
    oauth_routes,
    project_routes,
    schedule_routes,
    ticket_routes,
    time_routes,
)
from connectwise_sandbox.callbacks import CallbackRegistry
from connectwise_sandbox.callers import caller_of
from connectwise_sandbox.deliveries import Deliverer
from connectwise_sandbox.errors import CwError, ErrorItem
from connectwise_sandbox.faults import FaultInjector
from connectwise_sandbox.fleet import DownCompanies, Fleet, FleetSpec
from connectwise_sandbox.latency import Latency
from connectwise_sandbox.member_tokens import MemberTokens
from connectwise_sandbox.oauth import OAuthServer
from connectwise_sandbox.seed import generate
from connectwise_sandbox.settings import Settings
from connectwise_sandbox.state import SandboxState, get_state
from connectwise_sandbox.stats import RequestStats
from connectwise_sandbox.store import Store

# Where the error handler leaves a contract violation for the traffic middleware (the
# request scope's state is shared between them, as `callers.remember` relies on too).
VIOLATION_STATE_KEY = "cw_contract_violation"

_API_ROUTERS = (
    api.router,
    ticket_routes.router,
    project_routes.router,
    schedule_routes.router,
    time_routes.router,
    callback_routes.router,
    # Under the API prefix so request counting and fault injection apply to OAuth too.
    oauth_routes.router,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    dataset = generate(
        seed=settings.seed,
        tickets=settings.tickets,
        anchor=settings.anchor,
        extra_technicians=settings.extra_technicians,
    )
    deliverer = Deliverer(
        timeout=settings.callback_timeout,
        attempts=settings.callback_attempts,
        retry_delay=settings.callback_retry_delay,
    )
    state = SandboxState(
        settings=settings,
        store=Store(dataset),
        faults=FaultInjector(),
        stats=RequestStats(),
        seed=settings.seed,
        tickets=settings.tickets,
        oauth=OAuthServer(
            access_token_ttl=settings.oauth_access_token_ttl,
            refresh_token_ttl=settings.oauth_refresh_token_ttl,
            code_ttl=settings.oauth_code_ttl,
        ),
        member_tokens=MemberTokens(ttl=settings.member_token_ttl),
        callbacks=CallbackRegistry(company_id=settings.company_id, deliverer=deliverer),
        latency=Latency.from_settings(settings),
    )
    state.store.subscribe(state.callbacks.on_change)
    if settings.fleet_companies:
        state.fleet = Fleet(FleetSpec.from_settings(settings), state)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(deliverer.close)

    app = FastAPI(
        title="ConnectWise Manage sandbox",
        description="A ConnectWise PSA REST API simulator for development, tests and demos.",
        version="1.0",
        lifespan=lifespan,
    )
    app.state.sandbox = state
    app.include_router(api.login_router)
    for index, prefix in enumerate(state.api_prefixes):
        for router in _API_ROUTERS:
            app.include_router(router, prefix=prefix, include_in_schema=index == 0)
    app.include_router(admin.router)
    app.include_router(admin_work.router)
    app.include_router(admin_callbacks.router)
    app.include_router(admin_fleet.router)
    _install_error_handlers(app)
    app.middleware("http")(_connectwise_traffic)
    if state.fleet is not None and settings.fleet_down_fraction > 0:
        app.add_middleware(DownCompanies)  # outermost: a down server does nothing at all
    return app


async def _connectwise_traffic(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Injected faults (delays, errors) and request counting, for ConnectWise API paths
    only. The login lookups are counted in the totals but belong to no caller."""
    state = get_state(request)
    path = request.url.path
    if not state.is_api_path(path):
        return await call_next(request)
    if state.latency is not None and state.latency.enabled:
        await asyncio.sleep(state.latency.next_seconds())
    fault = state.faults.take(path)
    if fault is not None and fault.delay_seconds:
        await asyncio.sleep(fault.delay_seconds)
    error = fault.error() if fault is not None else None
    response = _error_response(error) if error is not None else await call_next(request)
    response.headers["api-current-version"] = api.version_code(state.settings).lstrip("v")
    caller = None if path.startswith("/login/") else caller_of(request, state)
    violation = getattr(request.state, VIOLATION_STATE_KEY, None)
    state.stats.record(
        request.method,
        path,
        response.status_code,
        caller,
        violation if isinstance(violation, str) else None,
    )
    return response


def _error_response(error: CwError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers or None)


def _install_error_handlers(app: FastAPI) -> None:
    """ConnectWise's error shape on the API paths; FastAPI's defaults elsewhere."""

    @app.exception_handler(CwError)
    async def _cw_error(request: Request, error: CwError) -> JSONResponse:
        if error.contract:
            setattr(request.state, VIOLATION_STATE_KEY, error.describe())
        return _error_response(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        if not get_state(request).is_api_path(request.url.path):
            return await request_validation_exception_handler(request, error)
        items = [
            ErrorItem(
                "InvalidField",
                str(detail.get("msg", "invalid")),
                "request",
                "/".join(str(part) for part in detail.get("loc", ())[1:]) or "request",
            )
            for detail in error.errors()
        ]
        return _error_response(CwError(400, "InvalidObject", "request object is invalid", items))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        if not get_state(request).is_api_path(request.url.path):
            return await http_exception_handler(request, error)
        code = "NotFound" if error.status_code == 404 else "BadRequest"
        if error.status_code == 405:
            code = "MethodNotAllowed"
        return _error_response(CwError(error.status_code, code, str(error.detail)))
