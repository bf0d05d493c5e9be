"""RFC 9457 problem+json errors for every HTTP service, so clients see one error shape."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Final

from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PROBLEM_JSON = "application/problem+json"
# How long a client is asked to wait when the database or the broker cannot be reached.
UNAVAILABLE_RETRY_AFTER: Final = "5"
# What "the database or the broker cannot be reached" is raised as.
UNAVAILABLE: Final = (ConnectionFailure, KafkaError)

logger = logging.getLogger(__name__)


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        title: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or HTTPStatus(status).phrase
        self.headers = headers
        self.extra = extra


def problem_response(
    status: int,
    detail: str,
    title: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        **extra,
    }
    headers = dict(headers or {})
    if status == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    """Every error answered as a problem document, and documented as one in the app's
    OpenAPI (`document_problems`)."""
    fastapi_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document_problems(fastapi_openapi())  # fills app.openapi_schema, then amends it
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, exc.title, exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Its headers too: a 405 says what is Allowed.
        return problem_response(exc.status_code, str(exc.detail), headers=dict(exc.headers or {}))

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # Report where and why, never the submitted value (it may be a secret).
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        return problem_response(422, "The request is invalid.", errors=errors)

    # What a service depends on is down: 503 with Retry-After (clients and ConnectWise's
    # callbacks try again), and one log line per request, never a traceback.
    @app.exception_handler(ConnectionFailure)
    async def _database_unavailable(request: Request, exc: ConnectionFailure) -> JSONResponse:
        return _unavailable(request, "database", exc)

    @app.exception_handler(KafkaError)
    async def _broker_unavailable(request: Request, exc: KafkaError) -> JSONResponse:
        return _unavailable(request, "message broker", exc)


def _unavailable(request: Request, what: str, exc: Exception) -> JSONResponse:
    logger.warning("%s unavailable: %s", what, type(exc).__name__, extra={"path": request.url.path})
    return problem_response(
        503,
        f"The {what} is unavailable; try again shortly.",
        headers={"Retry-After": UNAVAILABLE_RETRY_AFTER},
    )


class RequestSizeLimit:
    """ASGI middleware: request bodies past `max_bytes` are refused with 413, by their
    declared length before anything is read, or once that many bytes have arrived."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"The request body is larger than {self.max_bytes} bytes."
        # Closing the connection after the answer: otherwise the server would read (and
        # throw away) the rest of the body to get to the connection's next request.
        closing = {"Connection": "close"}
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await problem_response(413, detail, headers=closing)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                # Raised inside the route's body read: answered by the problem handlers.
                raise StarletteHTTPException(413, detail, headers=closing)
            return message

        await self.app(scope, limited_receive, send)


PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "description": "RFC 9457 problem details. For invalid input, `errors` says where and why "
    "(never the value sent).",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["loc", "msg", "type"],
                "properties": {
                    "loc": {"type": "array", "items": {"type": ["string", "integer"]}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
}


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Describe an app's error answers as they are sent: every 4xx/5xx as
    problem+json, unless the route declares another type for it (a page for a browser);
    401, 429 and 503 (sessions cannot be verified) wherever a session is required, 400
    (unreadable) and 413 (too large) wherever a body is read. FastAPI's own validation
    schema is replaced."""
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    for replaced in ("HTTPValidationError", "ValidationError"):
        schemas.pop(replaced, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            answers: dict[str, Any] = operation.setdefault("responses", {})
            implied = ({"401", "429", "503"} if operation.get("security") else set()) | (
                {"400", "413"} if "requestBody" in operation else set()
            )
            for status in implied:
                answers.setdefault(status, {})
            for status, answer in answers.items():
                if status[0] in "45":
                    if answer.get("description") in (None, "Validation Error"):
                        answer["description"] = HTTPStatus(int(status)).phrase
                    declared = answer.get("content", {})
                    pages = {
                        kind: body for kind, body in declared.items() if kind != "application/json"
                    }
                    answer["content"] = pages or problem
    return schema
