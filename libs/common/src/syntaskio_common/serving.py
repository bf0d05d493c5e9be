"""Running a service: JSON logging, then uvicorn on the configured host and port, every
request with its id and one access line (`request_context.RequestContext`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import uvicorn
from fastapi import FastAPI

from syntaskio_common.logging import configure_logging
from syntaskio_common.request_context import RequestContext
from syntaskio_common.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def serve(service: str, settings: S, create_app: Callable[[S], FastAPI]) -> None:
    configure_logging(service, settings.log_level)
    uvicorn.run(
        RequestContext(create_app(settings)),
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,  # RequestContext writes the access lines
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )
