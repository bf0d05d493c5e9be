"""One abusive user, as a process of its own (so its work never shares an interpreter
with the user who measures): `python abuser.py KIND GATEWAY_URL SESSION_TOKEN SECONDS`.

Kinds: `flood` (as many `/tasks` requests as 32 connections carry), `streams` (250 live
streams at once, again and again), `slow` (clients that trickle their headers or their
body a byte a second), `huge` (bodies far past the limit, declared or streamed). It
prints what it got back as JSON: answers by status, and for `slow` how its connections
ended."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

COOKIE = "syntaskio_session"
FLOOD_CONNECTIONS = 32
STREAMS = 250
SLOW_CLIENTS = 100
TRICKLE_SECONDS = 20  # a slow client still open after this is reported as such
WAVE_SECONDS = 7
# The gateway's limit is 64 KiB: these are far past it.
DECLARED_HUGE = 100_000_000
STREAMED_HUGE = 2_000_000


@dataclass(frozen=True)
class Target:
    base_url: str
    token: str  # the abuser's session
    address: str  # where its requests say they come from


def client(target: Target, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=target.base_url,
        cookies={COOKIE: target.token},
        headers={"X-Forwarded-For": target.address},
        timeout=30,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def until(deadline: float, work: Callable[[], Awaitable[None]], times: int) -> None:
    async def worker() -> None:
        while time.monotonic() < deadline:
            await work()

    await asyncio.gather(*(worker() for _ in range(times)))


async def flood(target: Target, deadline: float) -> dict[str, int]:
    statuses: Counter[str] = Counter()
    async with client(target, FLOOD_CONNECTIONS) as http:

        async def ask() -> None:
            statuses[str((await http.get("/api/v1/tasks")).status_code)] += 1

        await until(deadline, ask, FLOOD_CONNECTIONS)
    return dict(statuses)


async def streams(target: Target, deadline: float) -> dict[str, int]:
    """250 streams at once, each read as a browser tab reads it until the end; a refused
    one tried again 5 s later. `most_open`: the most that were open at one time."""
    statuses: Counter[str] = Counter()
    open_now = 0
    async with client(target, STREAMS) as http:

        async def hold() -> None:
            nonlocal open_now
            request = http.build_request("GET", "/api/v1/tasks/stream")
            response = await http.send(request, stream=True)
            statuses[str(response.status_code)] += 1
            try:
                if response.status_code != 200:
                    await asyncio.sleep(min(5.0, max(0.0, deadline - time.monotonic())))
                    return
                open_now += 1
                statuses["most_open"] = max(statuses["most_open"], open_now)
                with contextlib.suppress(TimeoutError, httpx.HTTPError):
                    async with asyncio.timeout_at(
                        asyncio.get_running_loop().time() + (deadline - time.monotonic())
                    ):
                        async for _ in response.aiter_bytes():
                            pass
                open_now -= 1
            finally:
                await response.aclose()

        await until(deadline, hold, STREAMS)
    return dict(statuses)


def _credentials(target: Target) -> str:
    """The abuser's session and address, as request header lines."""
    return f"Cookie: {COOKIE}={target.token}\r\nX-Forwarded-For: {target.address}\r\n"


async def _trickle(host: str, port: int, head: bytes, rest: bytes) -> str:
    """Send `head` at once, then `rest` a byte a second: how the connection ended (the
    status the server answered with, "closed" without an answer, or "still open")."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(head)
    try:
        for byte in rest[:TRICKLE_SECONDS]:
            try:
                answer = await asyncio.wait_for(reader.read(100), 1.0)
            except TimeoutError:
                writer.write(bytes([byte]))
                continue
            return answer.split(b" ", 2)[1].decode() if answer else "closed"
        return "still open"
    except ConnectionError:
        return "closed"
    finally:
        writer.close()


async def slow(target: Target, deadline: float) -> dict[str, int]:
    """Waves of slow clients, half trickling headers, half a body, while the time left
    is enough for a wave to be cut off (the test stack's read timeouts are 5 s)."""
    url = urlsplit(target.base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    cookie = _credentials(target)
    headers = f"GET /api/v1/tasks HTTP/1.1\r\nHost: x\r\n{cookie}X-Slow: {'a' * 100}".encode()
    body_head = (
        f"POST /api/v1/tasks/t-1/notes HTTP/1.1\r\nHost: x\r\n{cookie}"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    ).encode()
    ended: Counter[str] = Counter()

    async def one(head: bytes, rest: bytes) -> None:
        ended[await _trickle(host, port, head, rest)] += 1

    while deadline - time.monotonic() > WAVE_SECONDS:
        half = SLOW_CLIENTS // 2
        await asyncio.gather(
            *(one(headers[:30], headers[30:]) for _ in range(half)),
            *(one(body_head, b"a" * 999) for _ in range(half)),
        )
    return dict(ended)


async def _chunks() -> AsyncIterator[bytes]:
    for _ in range(STREAMED_HUGE // 65536):
        yield b"a" * 65536


async def huge(target: Target, deadline: float) -> dict[str, int]:
    """Half declare a body far past the limit (and send a little of it), half stream one
    without declaring its length."""
    statuses: Counter[str] = Counter()
    url = urlsplit(target.base_url)
    declared_head = (
        f"POST /api/v1/tasks/t-1/notes HTTP/1.1\r\nHost: x\r\n{_credentials(target)}"
        f"Content-Type: application/json\r\nContent-Length: {DECLARED_HUGE}\r\n\r\n"
    ).encode() + b"{" * 65536

    async def declared() -> None:
        reader, writer = await asyncio.open_connection(url.hostname, url.port)
        try:
            writer.write(declared_head)
            answer = await asyncio.wait_for(reader.read(100), 30)
            statuses[answer.split(b" ", 2)[1].decode() if answer else "closed"] += 1
        except ConnectionError:
            statuses["closed"] += 1
        finally:
            writer.close()

    async with client(target, 4) as http:

        async def streamed() -> None:
            try:
                answer = await http.post("/api/v1/tasks/t-1/notes", content=_chunks())
                statuses[str(answer.status_code)] += 1
            except httpx.HTTPError:
                statuses["closed"] += 1

        await asyncio.gather(until(deadline, declared, 4), until(deadline, streamed, 4))
    return dict(statuses)


KINDS = {"flood": flood, "streams": streams, "slow": slow, "huge": huge}


def main() -> None:
    kind, base_url, token, address, seconds = sys.argv[1:6]
    deadline = time.monotonic() + float(seconds)
    print(json.dumps(asyncio.run(KINDS[kind](Target(base_url, token, address), deadline))))


if __name__ == "__main__":
    main()
