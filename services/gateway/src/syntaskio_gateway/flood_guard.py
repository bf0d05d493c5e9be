"""Floods refused first: per client address and per presented session token, a rate
(`ADDRESS_RATE_LIMIT`, `SESSION_RATE_LIMIT`) and a number of requests not yet answered
(`*_CONCURRENT_REQUESTS`), counted before anything else is done for the request — no
span, no access line, no body read, no signature check. A refusal costs a counter and a
short 429, and one client's burst queues behind nobody's requests but its own, so the
process stays free for everyone else.

The outermost middleware (`serve(..., front=...)`); behind it the user's own rate
(`USER_RATE_LIMIT`) is counted once the session is verified (`dependencies`)."""

from __future__ import annotations

import hashlib
from collections import Counter

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from syntaskio_common.health import PROBE_PATHS
from syntaskio_common.problems import Problem, problem_response
from syntaskio_common.rate_limits import RateLimiter
from syntaskio_common.telemetry import meter
from syntaskio_gateway.dependencies import SESSION_COOKIE
from syntaskio_gateway.settings import GatewaySettings

REFUSED = meter.create_counter(
    "syntaskio.gateway.floods.refused",
    unit="{request}",
    description="Requests refused before any other work, by what was over its rate or its "
    "unanswered requests: the client address or the presented session token",
)


def presented_token(connection: HTTPConnection) -> str | None:
    """The session token the request carries (cookie or bearer), if any."""
    cookie = connection.cookies.get(SESSION_COOKIE)
    if cookie:
        return cookie
    scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


def _has_body(connection: HTTPConnection) -> bool:
    length = connection.headers.get("content-length", "0")
    return "transfer-encoding" in connection.headers or length not in ("", "0")


class FloodGuard:
    def __init__(self, app: ASGIApp, settings: GatewaySettings) -> None:
        self.app = app
        self.settings = settings
        self.limiter = RateLimiter()
        self.unanswered: Counter[str] = Counter()  # by "address:…" and "session:…"
        for reason in ("address", "session"):
            REFUSED.add(0, {"reason": reason})  # exported from the start, at 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        connection = HTTPConnection(scope)
        address = connection.client.host if connection.client else "unknown"
        token = presented_token(connection)
        # Kept by digest: the limiter's memory holds no token.
        presented = hashlib.sha256(token.encode()).hexdigest() if token else None
        try:
            await self._count(address, presented)
        except Problem as refused:
            headers = dict(refused.headers or {})
            if _has_body(connection):
                # Closed after the answer, rather than the body read to reuse it.
                headers["Connection"] = "close"
            answer = problem_response(refused.status, refused.detail, headers=headers)
            await answer(scope, receive, send)
            return
        keys = [f"address:{address}"] + ([f"session:{presented}"] if presented else [])
        await self._answered(scope, receive, send, keys)

    async def _count(self, address: str, presented: str | None) -> None:
        """429 if the address or the token is over its rate, or has too many requests
        not yet answered; counted in that order, so a refusal costs no more than needed."""
        settings = self.settings
        try:
            reason = "address"
            await self.limiter.hit(settings.address_rate_limit, "address", address)
            self._at_most(f"address:{address}", settings.address_concurrent_requests)
            if presented is not None:
                reason = "session"
                await self.limiter.hit(settings.session_rate_limit, "presented", presented)
                self._at_most(f"session:{presented}", settings.session_concurrent_requests)
        except Problem:
            REFUSED.add(1, {"reason": reason})
            raise

    def _at_most(self, key: str, most: int) -> None:
        if self.unanswered[key] >= most:
            raise Problem(
                429,
                f"At most {most} requests at once may wait for an answer.",
                headers={"Retry-After": "1"},
            )

    async def _answered(self, scope: Scope, receive: Receive, send: Send, keys: list[str]) -> None:
        """Serve the request, counted as unanswered until its response starts."""
        self.unanswered.update(keys)
        pending = True

        def answered() -> None:
            nonlocal pending
            if pending:
                pending = False
                self.unanswered -= Counter(keys)  # keys at 0 are dropped

        async def send_and_count(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered()
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            answered()
