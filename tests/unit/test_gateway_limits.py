"""Per-user request rate, flood limits counted before a session is verified (per
presented token, per address), and request body size limits in front of the dashboard
API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Request
from gateway_sessions import TokensAreUserNames

from syntaskio_common.problems import RequestSizeLimit, install_problem_handlers
from syntaskio_common.rate_limits import RateLimiter
from syntaskio_common.sessions import UserSession
from syntaskio_gateway.dependencies import CurrentUser
from syntaskio_gateway.flood_guard import FloodGuard
from syntaskio_gateway.settings import GatewaySettings

MAX_BYTES = 2048


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.state.settings = GatewaySettings(user_rate_limit="3/minute")
    app.state.verifier = TokensAreUserNames()
    app.state.rate_limiter = RateLimiter()
    install_problem_handlers(app)

    @app.get("/whoami")
    async def whoami(user: CurrentUser) -> str:
        return user.user_id

    @app.post("/echo")
    async def echo(request: Request, user: CurrentUser) -> int:
        return len(await request.body())

    app.add_middleware(RequestSizeLimit, max_bytes=MAX_BYTES)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        yield http


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_each_user_has_their_own_request_rate(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await client.get("/whoami", headers=_as("acme:alex"))).status_code == 200
    refused = await client.get("/whoami", headers=_as("acme:alex"))
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert int(refused.headers["retry-after"]) >= 1
    # Another user of the same tenant, and the same user name in another tenant, are not
    # held back by Alex's requests.
    assert (await client.get("/whoami", headers=_as("acme:sam"))).status_code == 200
    assert (await client.get("/whoami", headers=_as("globex:alex"))).status_code == 200


async def test_requests_without_a_valid_session_are_refused_before_counting(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        assert (await client.get("/whoami", headers=_as("garbage"))).status_code == 401
    assert (await client.get("/whoami", headers=_as("acme:alex"))).status_code == 200


async def test_a_body_declared_too_large_is_refused_unread(client: httpx.AsyncClient) -> None:
    refused = await client.post("/echo", headers=_as("acme:alex"), content=b"x" * (MAX_BYTES + 1))
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert str(MAX_BYTES) in refused.json()["detail"]
    # The connection is closed rather than the rest of the body read and thrown away.
    assert refused.headers["connection"] == "close"


async def test_a_streamed_body_is_cut_off_at_the_limit(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for _ in range(3):
            yield b"x" * 1000

    refused = await client.post("/echo", headers=_as("acme:alex"), content=chunks())
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.headers["connection"] == "close"


async def test_a_body_within_the_limit_is_served(client: httpx.AsyncClient) -> None:
    served = await client.post("/echo", headers=_as("acme:alex"), content=b"x" * MAX_BYTES)
    assert served.status_code == 200
    assert served.json() == MAX_BYTES


class CountingVerifier(TokensAreUserNames):
    def __init__(self) -> None:
        self.verified = 0

    async def verify(self, token: str) -> UserSession:
        self.verified += 1
        return await super().verify(token)


async def flood_app(verifier: CountingVerifier) -> httpx.AsyncClient:
    app = FastAPI()
    app.state.settings = settings = GatewaySettings(
        user_rate_limit="100/minute", session_rate_limit="4/minute", address_rate_limit="10/minute"
    )
    app.state.verifier = verifier
    app.state.rate_limiter = RateLimiter()
    install_problem_handlers(app)

    @app.get("/whoami")
    async def whoami(user: CurrentUser) -> str:
        return user.user_id

    app.add_middleware(FloodGuard, settings=settings)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


async def test_a_flood_with_one_token_is_refused_before_verifying_it() -> None:
    verifier = CountingVerifier()
    async with await flood_app(verifier) as client:
        answers = [
            (await client.get("/whoami", headers=_as("forged"))).status_code for _ in range(8)
        ]
    assert answers == [401] * 4 + [429] * 4
    assert verifier.verified == 4  # the refused ones cost no verification


async def test_a_flood_of_made_up_tokens_from_one_address_is_refused_before_verifying() -> None:
    verifier = CountingVerifier()
    async with await flood_app(verifier) as client:
        answers = [
            (await client.get("/whoami", headers=_as(f"forged-{n}"))).status_code for n in range(14)
        ]
    assert answers == [401] * 10 + [429] * 4
    assert verifier.verified == 10


async def test_a_burst_from_one_token_waits_for_nobody_but_itself() -> None:
    """Past `session_concurrent_requests` unanswered, a token's requests are refused at
    once (nothing verified); another token is served meanwhile, and answered requests
    free their places."""
    release = asyncio.Event()
    verifier = CountingVerifier()
    app = FastAPI()
    app.state.settings = settings = GatewaySettings(session_concurrent_requests=2)
    app.state.verifier = verifier
    app.state.rate_limiter = RateLimiter()
    install_problem_handlers(app)

    @app.get("/slow")
    async def slow(user: CurrentUser) -> str:
        await release.wait()
        return user.user_id

    app.add_middleware(FloodGuard, settings=settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        alex = _as("acme:alex")
        held = [asyncio.create_task(client.get("/slow", headers=alex)) for _ in range(2)]
        await asyncio.sleep(0.1)
        refused = await client.get("/slow", headers=alex)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert verifier.verified == 2  # the refused one cost no verification
        other = asyncio.create_task(client.get("/slow", headers=_as("acme:sam")))
        await asyncio.sleep(0.1)
        release.set()
        assert [(await task).status_code for task in (*held, other)] == [200, 200, 200]
        assert (await client.get("/slow", headers=alex)).status_code == 200
