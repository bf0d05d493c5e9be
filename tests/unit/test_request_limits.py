"""What one client can make a service hold: a real uvicorn server on a local port, with
the limits `syntaskio_common.serving` puts on every service, and raw sockets as the slow
or greedy clients."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request

from syntaskio_common.problems import install_problem_handlers
from syntaskio_common.request_limits import BodyDeadline, ConcurrencyLimit, HeaderDeadline

HEADER_SECONDS = 0.5
BODY_SECONDS = 0.5


def limited_app(release: asyncio.Event) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/quick")
    async def quick() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        await release.wait()
        return {"status": "done"}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    app.add_middleware(BodyDeadline, seconds=BODY_SECONDS)
    app.add_middleware(ConcurrencyLimit, max_requests=1)
    return app


@contextlib.asynccontextmanager
async def serving(release: asyncio.Event) -> AsyncIterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        port = int(listener.getsockname()[1])
    config = uvicorn.Config(
        limited_app(release),
        host="127.0.0.1",
        port=port,
        http=HeaderDeadline.within(HEADER_SECONDS),
        log_config=None,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(1000):  # up to 10 s
        if server.started:
            break
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        release.set()
        server.should_exit = True
        await task


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    """What the server sent before closing; fails if it keeps the connection open."""
    return await asyncio.wait_for(reader.read(), seconds)


async def test_a_request_whose_headers_never_finish_is_cut_off() -> None:
    async with serving(asyncio.Event()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /quick HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
        assert await closed_within(reader, HEADER_SECONDS + 2) == b""
        writer.close()


async def test_a_connection_that_sends_nothing_is_cut_off() -> None:
    async with serving(asyncio.Event()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await closed_within(reader, HEADER_SECONDS + 2) == b""
        writer.close()


async def test_the_next_request_on_a_kept_alive_connection_has_a_deadline_too() -> None:
    async with serving(asyncio.Event()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
        first = await reader.readuntil(b'{"status":"ok"}')
        assert first.startswith(b"HTTP/1.1 200")
        await asyncio.sleep(HEADER_SECONDS * 2)  # idle longer than the header deadline: fine
        writer.write(b"GET /quick HTTP/1.1\r\nHo")  # a second request, stalled
        assert await closed_within(reader, HEADER_SECONDS + 2) == b""
        writer.close()


async def test_a_prompt_client_is_served_however_long_the_route_takes() -> None:
    release = asyncio.Event()
    async with serving(release) as port, httpx.AsyncClient() as client:
        slow = asyncio.create_task(client.get(f"http://127.0.0.1:{port}/slow"))
        await asyncio.sleep(HEADER_SECONDS * 3)
        release.set()
        assert (await slow).json() == {"status": "done"}


async def test_a_body_that_trickles_in_is_answered_408() -> None:
    async with serving(asyncio.Event()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        answer = await asyncio.wait_for(reader.read(), BODY_SECONDS + 2)
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"application/problem+json" in answer
        writer.close()


async def test_a_whole_body_is_read_as_usual() -> None:
    async with serving(asyncio.Event()) as port, httpx.AsyncClient() as client:
        answer = await client.post(f"http://127.0.0.1:{port}/echo", content=b"x" * 5000)
        assert answer.json() == {"received": 5000}


async def test_past_the_concurrency_limit_requests_are_refused_at_once() -> None:
    release = asyncio.Event()
    async with serving(release) as port, httpx.AsyncClient() as client:
        base = f"http://127.0.0.1:{port}"
        slow = asyncio.create_task(client.get(f"{base}/slow"))
        await asyncio.sleep(0.2)
        refused = await client.get(f"{base}/quick")
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["content-type"] == "application/problem+json"
        # The liveness probe still answers: a busy process is not a dead one.
        assert (await client.get(f"{base}/healthz")).status_code == 200
        release.set()
        assert (await slow).status_code == 200
        assert (await client.get(f"{base}/quick")).status_code == 200


@pytest.mark.parametrize("seconds", [0.25, 3.0])
def test_the_header_deadline_is_per_server(seconds: float) -> None:
    made = HeaderDeadline.within(seconds)
    assert made.header_seconds == seconds
    assert HeaderDeadline.header_seconds == 10.0  # the base is untouched
