"""Limits on what one client can make a service hold: the time to send a request's
headers and body, and how many requests are served at once.

uvicorn times out only idle keep-alive connections: a client that sends half a request
line and then waits (a "slowloris") would hold its connection for ever. `HeaderDeadline`
gives every request's headers a deadline from their first byte (or from connecting);
`BodyDeadline` does the same for the body once the route starts reading it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from syntaskio_common.health import LIVENESS_PATH
from syntaskio_common.problems import problem_response


class HeaderDeadline(HttpToolsProtocol):
    """uvicorn's httptools protocol (its C parser), closing a connection whose request
    headers are not all in within `header_seconds` (the keep-alive timeout still covers
    idle connections)."""

    header_seconds: float = 10.0

    def __init__(self, config: Config, server_state: ServerState, *args: Any, **kwargs: Any):
        super().__init__(config, server_state, *args, **kwargs)
        self._header_deadline: asyncio.TimerHandle | None = None

    @classmethod
    def within(cls, seconds: float) -> type[HeaderDeadline]:
        return type(cls.__name__, (cls,), {"header_seconds": seconds})

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers():
            self._arm()  # the first bytes of the next request on a kept-alive connection
        super().data_received(data)
        if not self._awaiting_headers():
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_headers(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_seconds, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _too_slow(self) -> None:
        self._header_deadline = None
        if self._awaiting_headers() and not self.transport.is_closing():
            self.transport.close()


class BodyDeadline:
    """ASGI middleware: a request body not all received within `seconds` of the route
    starting to read it is answered 408 (nothing it would have changed is changed)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        complete = False

        async def receive_in_time() -> Message:
            nonlocal deadline, complete
            if complete:  # after the body: a wait for the disconnect (a live stream's)
                return await receive()
            deadline = deadline or loop.time() + self.seconds
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # The rest of the body may still come: the connection is of no further use.
                raise StarletteHTTPException(
                    408, "The request body took too long.", headers={"Connection": "close"}
                ) from None
            complete = message["type"] != "http.request" or not message.get("more_body")
            return message

        await self.app(scope, receive_in_time, send)


class ConcurrencyLimit:
    """ASGI middleware: past `max_requests` in progress (live streams included), new
    requests are answered 503 at once, with Retry-After, rather than queued. The
    liveness probe is never refused: a busy process is not a dead one."""

    def __init__(self, app: ASGIApp, max_requests: int) -> None:
        self.app = app
        self.max_requests = max_requests
        self.in_progress = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == LIVENESS_PATH:
            await self.app(scope, receive, send)
            return
        if self.in_progress >= self.max_requests:
            busy = problem_response(
                503, "The service is busy; try again shortly.", headers={"Retry-After": "1"}
            )
            await busy(scope, receive, send)
            return
        self.in_progress += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_progress -= 1
