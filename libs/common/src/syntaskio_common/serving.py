"""Running a service: JSON logging, tracing and metrics, then uvicorn on the configured host and
port, every request in its own span with its id and one access line
(`request_context.RequestContext`, inside the span so the line carries the trace id)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from syntaskio_common.logging import configure_logging
from syntaskio_common.request_context import RequestContext
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.telemetry import configure_telemetry, instrument_app

S = TypeVar("S", bound=ServiceSettings)


def serve(service: str, settings: S, create_app: Callable[[S], FastAPI]) -> None:
    configure_logging(service, settings.log_level)
    configure_telemetry(service, metrics_port=settings.metrics_port, host=settings.host)
    app = create_app(settings)
    # No redirect from `/path/` to `/path`: Starlette builds it from the Host header, so
    # anyone could make us point a browser at their host.
    app.router.redirect_slashes = False
    app.add_middleware(RequestContext)
    instrument_app(app)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # RequestContext writes the access lines
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
