"""Every request has an id (the caller's when well-formed) returned on the response and
carried by each log line written while it is served, and one access line naming the
route's template — never the path's ids or the query string — its status, duration and
the tenant of a verified session."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI

from syntaskio_common.http import create_http_client
from syntaskio_common.logging import RedactingJsonFormatter
from syntaskio_common.request_context import (
    REQUEST_ID_HEADER,
    RequestContext,
    RequestContextFilter,
    current_request_id,
    note_tenant,
)

handled = logging.getLogger("tests.handler")


def app() -> RequestContext:
    inner = FastAPI()

    @inner.get("/tasks/{task_id}")
    async def task(task_id: str) -> dict[str, str | None]:
        note_tenant("acme")
        handled.info("looking at a task")
        return {"task_id": task_id, "request_id": current_request_id()}

    @inner.get("/boom")
    async def boom() -> None:
        raise RuntimeError("broken")

    return RequestContext(inner)


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.addFilter(RequestContextFilter())
        self.setFormatter(RedactingJsonFormatter("%(levelname)s %(name)s %(message)s"))
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(previous)


async def get(path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        return await client.get(path, headers=headers)


async def test_a_well_formed_id_is_kept_and_carried_by_every_line(lines: Lines) -> None:
    answered = await get("/tasks/4711?code=oauth-secret", **{REQUEST_ID_HEADER: "req-12345678"})
    assert answered.headers[REQUEST_ID_HEADER] == "req-12345678"
    assert answered.json()["request_id"] == "req-12345678"
    handler_line = next(line for line in lines.lines if line["name"] == "tests.handler")
    assert (handler_line["request_id"], handler_line["tenant_id"]) == ("req-12345678", "acme")
    [access] = [line for line in lines.lines if line["name"] == "syntaskio.access"]
    assert access["message"] == "GET /tasks/{task_id} 200"
    assert (access["route"], access["status"], access["tenant_id"]) == (
        "/tasks/{task_id}",
        200,
        "acme",
    )
    assert access["request_id"] == "req-12345678"
    assert isinstance(access["duration_ms"], float)
    assert "4711" not in json.dumps(access)
    # (The test's own client logs its URL: that is httpx here, not the service.)
    served = [line for line in lines.lines if not str(line["name"]).startswith("httpx")]
    assert "oauth-secret" not in json.dumps(served)


@pytest.mark.parametrize("sent", [None, "short", "has spaces in it", "x" * 129, "semi;colon-123"])
async def test_a_missing_or_malformed_id_is_replaced(sent: str | None, lines: Lines) -> None:
    answered = await get("/tasks/1", **({REQUEST_ID_HEADER: sent} if sent else {}))
    made = answered.headers[REQUEST_ID_HEADER]
    assert made != sent
    assert len(made) == 32
    assert answered.json()["request_id"] == made


async def test_failures_and_unknown_paths_are_logged_too(lines: Lines) -> None:
    assert (await get("/boom")).status_code == 500
    assert (await get("/nowhere/42")).status_code == 404
    access = [line for line in lines.lines if line["name"] == "syntaskio.access"]
    assert [(a["route"], a["status"]) for a in access] == [("/boom", 500), (None, 404)]
    assert all("tenant_id" not in a for a in access)  # nobody signed in
    assert current_request_id() is None  # nothing leaks out of a request


async def test_our_own_services_are_sent_the_id_and_nobody_else() -> None:
    seen: list[str | None] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get(REQUEST_ID_HEADER))
        return httpx.Response(200)

    inner = FastAPI()

    @inner.get("/call")
    async def call() -> None:
        for propagate in (True, False):
            async with create_http_client(
                transport=httpx.MockTransport(upstream), propagate_request_id=propagate
            ) as client:
                await client.get("http://next.service/")

    transport = httpx.ASGITransport(app=RequestContext(inner))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as client:
        await client.get("/call", headers={REQUEST_ID_HEADER: "trace-me-please"})
    assert seen == ["trace-me-please", None]
