"""Each HTTP request's id and access log line, and the context every log line of the
request carries (`request_id`, and `tenant_id` once a session is verified).

The id is the caller's `X-Request-ID` when it is well-formed (so one id follows a request
from the gateway to auth-service and the connector), else a new one; it is returned on
the response and sent on by the outbound client (`syntaskio_common.http`). The access
line names the route's template, never the path with its ids or the query string (which
may hold an OAuth code)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Final

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER: Final = "X-Request-ID"
_WELL_FORMED = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_tenant_id: ContextVar[str | None] = ContextVar("tenant_id", default=None)
access_log = logging.getLogger("syntaskio.access")


def current_request_id() -> str | None:
    return _request_id.get()


def note_tenant(tenant_id: str) -> None:
    """The request is a signed-in user's of this tenant (for its log lines and span)."""
    _tenant_id.set(tenant_id)
    trace.get_current_span().set_attribute("syntaskio.tenant_id", tenant_id)


def request_id_of(header: str | None) -> str:
    """The caller's id when it is well-formed, else a new one."""
    if header and _WELL_FORMED.match(header):
        return header
    return uuid.uuid4().hex


class RequestContext:
    """ASGI middleware: the request id in and out, the context for log lines, and one
    access line per request (route template, status, duration, tenant)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = request_id_of(headers.get(b"x-request-id", b"").decode("latin-1"))
        id_token, tenant_token = _request_id.set(request_id), _tenant_id.set(None)
        # The request's span (when it is traced) names the id its log lines carry.
        trace.get_current_span().set_attribute("syntaskio.request_id", request_id)
        started, status = time.perf_counter(), 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            access_log.info(
                "%s %s %s",
                scope["method"],
                getattr(route, "path", "(no route)"),
                status,
                extra={
                    "method": scope["method"],
                    "route": getattr(route, "path", None),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )
            _request_id.reset(id_token)
            _tenant_id.reset(tenant_token)


class RequestContextFilter(logging.Filter):
    """Puts the request's id and tenant on every log line written while it is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        request_id, tenant_id = _request_id.get(), _tenant_id.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        if tenant_id is not None and not hasattr(record, "tenant_id"):
            record.tenant_id = tenant_id
        return True
