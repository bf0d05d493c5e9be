"""Callback registrations against the ConnectWise sandbox (in-process) and the real
database: a disconnect is final, even for a sync that was registering at that moment
on credentials leased before it."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime

import httpx
import pytest
from pymongo import AsyncMongoClient

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.state import SandboxState
from syntaskio_common.connectwise import ApiKeyCredentials, ConnectWiseClient
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.assignment import IntegrationRef
from syntaskio_connector.webhooks import CALLBACK_TYPES, WebhookRegistrations, receiver_url

BASE = "http://sandbox.test"
RECEIVER = "https://hooks.syntaskio.test"
MEMBER = "atech"


class BeforeFirstRegistration(httpx.AsyncBaseTransport):
    """Runs `interlude` once, just before the first callback is registered."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, interlude: Callable[[], Awaitable[None]]
    ) -> None:
        self.inner, self.interlude = inner, interlude
        self.posted = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/system/callbacks"):
            if self.posted == 0:
                await self.interlude()
            self.posted += 1
        return await self.inner.handle_async_request(request)


@pytest.fixture
def sandbox() -> tuple[httpx.AsyncBaseTransport, SandboxState]:
    app = create_app(Settings(tickets=20, seed=7, client_ids=DEV_CLIENT_ID))
    return httpx.ASGITransport(app=app), app.state.sandbox


def client_of(transport: httpx.AsyncBaseTransport, state: SandboxState) -> ConnectWiseClient:
    key = next(k for k in state.store.api_keys if k.member_identifier == MEMBER)
    credentials = ApiKeyCredentials(state.settings.company_id, key.public_key, key.private_key)
    http = httpx.AsyncClient(transport=transport, base_url=BASE)
    return ConnectWiseClient(
        http, f"{BASE}{state.settings.api_prefix}/", credentials, DEV_CLIENT_ID
    )


def ours(state: SandboxState, integration_id: str) -> list[str]:
    url = receiver_url(RECEIVER, integration_id)
    return sorted(c.type.value for c in state.callbacks.every() if c.url == url)


@pytest.fixture
async def registrations(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> WebhookRegistrations:
    made = WebhookRegistrations(mongo[settings.mongodb_database], RECEIVER)
    await made.create_indexes()
    return made


def integration(tenant: str) -> IntegrationRef:
    return IntegrationRef(str(uuid.uuid4()), tenant, "u1", MEMBER, BASE, "syntaskio", 1)


async def test_a_disconnect_while_a_sync_registers_leaves_no_callback(
    sandbox: tuple[httpx.AsyncBaseTransport, SandboxState],
    registrations: WebhookRegistrations,
    tenant: str,
) -> None:
    transport, state = sandbox
    ref = integration(tenant)
    disconnecting = client_of(transport, state)

    async def disconnect() -> None:
        assert await registrations.remove(disconnecting, ref.integration_id) == 0

    syncing = client_of(BeforeFirstRegistration(transport, disconnect), state)
    await registrations.ensure(syncing, ref)

    # The sync registered all four after the disconnect had looked, then took them back.
    assert ours(state, ref.integration_id) == []
    record = await registrations.registration(ref.integration_id)
    assert record is not None
    assert set(record) == {"_id", "removed_at"}


async def test_a_disconnected_integration_is_never_registered_again(
    sandbox: tuple[httpx.AsyncBaseTransport, SandboxState],
    registrations: WebhookRegistrations,
    tenant: str,
) -> None:
    transport, state = sandbox
    ref = integration(tenant)
    client = client_of(transport, state)
    await registrations.ensure(client, ref)
    assert ours(state, ref.integration_id) == sorted(CALLBACK_TYPES)

    assert await registrations.remove(client, ref.integration_id) == len(CALLBACK_TYPES)
    before = datetime.now(UTC)
    await registrations.ensure(client, ref)
    await registrations.ensure(client, replace(ref, generation=2))

    assert ours(state, ref.integration_id) == []
    record = await registrations.registration(ref.integration_id)
    assert record is not None
    assert record["removed_at"] <= before
