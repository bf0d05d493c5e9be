"""The ConnectWise sandbox built in-process: an app per test, an httpx client on an ASGI
transport, and member credentials read from the seeded store."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.state import SandboxState

ANCHOR = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture
def cw_settings() -> Settings:
    return Settings(tickets=300, seed=42, anchor=ANCHOR, client_ids=DEV_CLIENT_ID)


@pytest.fixture
def cw_app(cw_settings: Settings) -> Iterator[FastAPI]:
    app = create_app(cw_settings)
    yield app
    # The callback deliverer's background loop, if a delivery started it.
    app.state.sandbox.callbacks.deliverer.close()


@pytest.fixture
def cw_state(cw_app: FastAPI) -> SandboxState:
    state: SandboxState = cw_app.state.sandbox
    return state


@pytest.fixture
async def cw(cw_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cw_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox.test") as client:
        yield client


def basic_auth(company: str, public_key: str, private_key: str) -> str:
    token = base64.b64encode(f"{company}+{public_key}:{private_key}".encode()).decode()
    return f"Basic {token}"


HeadersFor = Callable[[str], dict[str, str]]


@pytest.fixture
def headers_for(cw_state: SandboxState) -> HeadersFor:
    """Request headers authenticating as the member with the given identifier."""

    def headers(identifier: str) -> dict[str, str]:
        key = next(k for k in cw_state.store.api_keys if k.member_identifier == identifier)
        authorization = basic_auth(cw_state.settings.company_id, key.public_key, key.private_key)
        return {"Authorization": authorization, "clientId": DEV_CLIENT_ID}

    return headers


@pytest.fixture
def atech(headers_for: HeadersFor) -> dict[str, str]:
    """Request headers authenticating as member `atech`."""
    return headers_for("atech")


@pytest.fixture
def api(cw_settings: Settings) -> str:
    """The REST API prefix, e.g. `/v2025_1/apis/3.0`."""
    return cw_settings.api_prefix
