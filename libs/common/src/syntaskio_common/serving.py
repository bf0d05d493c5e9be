"""Running a service: JSON logging, tracing and metrics, then uvicorn on the configured host and
port, every request in its own span with its id and one access line
(`request_context.RequestContext`, inside the span so the line carries the trace id)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final, TypeVar

import uvicorn
from fastapi import FastAPI
from starlette.middleware import Middleware

from syntaskio_common.logging import configure_logging
from syntaskio_common.request_context import RequestContext
from syntaskio_common.request_limits import BodyDeadline, ConcurrencyLimit, HeaderDeadline
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.telemetry import configure_telemetry, instrument_app

S = TypeVar("S", bound=ServiceSettings)
REQUEST_KEEP_ALIVE_SECONDS: Final = 15


def serve(
    service: str,
    settings: S,
    create_app: Callable[[S], FastAPI],
    *,
    front: Sequence[Middleware] = (),
) -> None:
    """`front`: middleware that must act before any of ours (tracing, access lines,
    limits), outermost last."""
    configure_logging(service, settings.log_level)
    configure_telemetry(service, metrics_port=settings.metrics_port, host=settings.host)
    app = create_app(settings)
    # No redirect from `/path/` to `/path`: Starlette builds it from the Host header, so
    # anyone could make us point a browser at their host.
    app.router.redirect_slashes = False
    app.add_middleware(RequestContext)
    instrument_app(app)
    # Outermost (added last): a busy process refuses before any other work.
    app.add_middleware(BodyDeadline, seconds=settings.body_read_timeout_seconds)
    app.add_middleware(ConcurrencyLimit, max_requests=settings.max_concurrent_requests)
    for middleware in front:
        app.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        http=HeaderDeadline.within(settings.header_read_timeout_seconds),
        # Longer than our clients keep idle connections (httpx: 5 s), so a client never
        # reuses one the server is closing at that moment (a ReadError on the next call).
        timeout_keep_alive=REQUEST_KEEP_ALIVE_SECONDS,
        log_config=None,
        access_log=False,  # RequestContext writes the access lines
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
