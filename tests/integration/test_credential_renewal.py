"""Credential renewal against the real database: one refresh however many workers ask,
`invalid_grant` after someone else's refresh is not a revocation, repeated failure
expires the connection. The OAuth provider is scripted here; the sandbox-backed flow
is covered end to end in tests/e2e/test_connections.py."""

from __future__ import annotations

import asyncio
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from auth_records import stored_connection
from pydantic import SecretStr
from pymongo import AsyncMongoClient

from syntaskio_auth.accounts import ConnectWiseAccounts
from syntaskio_auth.company_settings import CompanySettings
from syntaskio_auth.mapping_store import MappingStore
from syntaskio_auth.oauth import OAuthError, TokenSet
from syntaskio_auth.renewal import CredentialLeases
from syntaskio_auth.repository import IntegrationRepository
from syntaskio_auth.settings import OAuthProfile
from syntaskio_auth.vault import Vault
from syntaskio_common import events
from syntaskio_common.egress import SitePolicy
from syntaskio_common.integrations import Integration, IntegrationStatus
from syntaskio_common.leases import Leases
from syntaskio_common.mongo import Document
from syntaskio_common.problems import Problem
from syntaskio_common.settings import ServiceSettings

VAULT = Vault({"k1": os.urandom(32)}, "k1")
NO_HTTP = httpx.AsyncClient(transport=httpx.MockTransport(lambda _: httpx.Response(599)))


@dataclass
class RecordedEvents:
    published: list[tuple[str, str]] = field(default_factory=list)

    async def publish(self, event_type: str, integration: Integration) -> None:
        self.published.append((event_type, integration.id))


@dataclass
class ScriptedProvider:
    """Stands in for an OAuth provider: counts refreshes, answers as scripted."""

    outcomes: list[Any]
    delay: float = 0.0
    refreshes: int = 0
    profile: OAuthProfile = field(
        default_factory=lambda: OAuthProfile(client_id="c", client_secret=SecretStr("s3cret-value"))
    )

    async def refresh(self, api_base_url: str, refresh_token: str) -> TokenSet:
        self.refreshes += 1
        await asyncio.sleep(self.delay)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if callable(outcome):
            outcome = await outcome()
        if isinstance(outcome, Exception):
            raise outcome
        n = self.refreshes
        return TokenSet(f"access-{n}", f"refresh-{n}", datetime.now(UTC) + timedelta(hours=1), [])


@pytest.fixture
async def repository(
    settings: ServiceSettings, mongo: AsyncMongoClient[Document]
) -> IntegrationRepository:
    repository = IntegrationRepository(mongo[settings.mongodb_database])
    await repository.create_indexes()
    return repository


def workers(
    repository: IntegrationRepository,
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    provider: ScriptedProvider,
    announcements: RecordedEvents,
    count: int = 1,
) -> list[CredentialLeases]:
    """`count` independent auth-service workers sharing only the database."""
    return [
        CredentialLeases(
            repository=repository,
            vault=VAULT,
            # Impersonation is not exercised here; OAuth renewal never calls ConnectWise.
            accounts=ConnectWiseAccounts(NO_HTTP, SitePolicy(frozenset()), "cid"),
            announcements=announcements,  # type: ignore[arg-type]
            oauth_providers={"connectwise": provider},  # type: ignore[dict-item]
            leases=Leases(mongo[settings.mongodb_database], ttl_seconds=30),
            client_id="cid",
            renew_ahead=timedelta(minutes=5),
            lease_ttl=timedelta(minutes=15),
            max_renewal_failures=3,
            mappings=MappingStore(mongo[settings.mongodb_database]),
            company=CompanySettings(mongo[settings.mongodb_database]),
        )
        for _ in range(count)
    ]


async def oauth_connection(
    repository: IntegrationRepository, tenant: str, expires_in: timedelta
) -> Integration:
    return await stored_connection(
        repository,
        VAULT,
        tenant,
        "oauth2",
        {"access_token": "access-0", "refresh_token": "refresh-0"},
        expires_at=datetime.now(UTC) + expires_in,
    )


@pytest.fixture
def events_seen() -> RecordedEvents:
    return RecordedEvents()


async def test_a_fresh_token_is_leased_without_refreshing(
    repository: IntegrationRepository, mongo: Any, settings: ServiceSettings, tenant: str,
    events_seen: RecordedEvents,
) -> None:  # fmt: skip
    provider = ScriptedProvider([])
    [worker] = workers(repository, mongo, settings, provider, events_seen)
    integration = await oauth_connection(repository, tenant, timedelta(hours=1))
    lease = await worker.lease(integration.id, "test")
    assert lease.access_token == "access-0"
    assert provider.refreshes == 0
    assert lease.expires_at is not None
    assert lease.expires_at <= datetime.now(UTC) + timedelta(minutes=15, seconds=1)


async def test_eight_workers_asking_at_once_cause_exactly_one_refresh(
    repository: IntegrationRepository, mongo: Any, settings: ServiceSettings, tenant: str,
    events_seen: RecordedEvents,
) -> None:  # fmt: skip
    provider = ScriptedProvider([], delay=0.3)
    integration = await oauth_connection(repository, tenant, timedelta(minutes=1))
    fleet = workers(repository, mongo, settings, provider, events_seen, count=8)
    leases = await asyncio.gather(*(w.lease(integration.id, "test") for w in fleet))
    assert provider.refreshes == 1
    assert {lease.access_token for lease in leases} == {"access-1"}
    stored = await repository.credentials(integration)
    assert stored is not None
    assert VAULT.open_fields(stored.secrets, tenant, integration.id)["refresh_token"] == "refresh-1"


async def test_a_rejected_version_is_renewed_once(
    repository: IntegrationRepository, mongo: Any, settings: ServiceSettings, tenant: str,
    events_seen: RecordedEvents,
) -> None:  # fmt: skip
    provider = ScriptedProvider([])
    [worker] = workers(repository, mongo, settings, provider, events_seen)
    integration = await oauth_connection(repository, tenant, timedelta(hours=1))
    first = await worker.lease(integration.id, "test")
    renewed = await worker.lease(integration.id, "test", rejected_version=first.version)
    # A second replica reporting the same (old) version gets the renewed token as is.
    again = await worker.lease(integration.id, "test", rejected_version=first.version)
    assert provider.refreshes == 1
    assert renewed.access_token == again.access_token == "access-1"
    assert renewed.version > first.version


async def test_invalid_grant_after_someone_elses_refresh_is_not_a_revocation(
    repository: IntegrationRepository, mongo: Any, settings: ServiceSettings, tenant: str,
    events_seen: RecordedEvents,
) -> None:  # fmt: skip
    integration = await oauth_connection(repository, tenant, timedelta(minutes=1))

    async def another_worker_refreshes_first() -> Exception:
        # Another replica (whose lease had run out) wins the race with the same refresh
        # token, so the provider sees ours as reused.
        stored = await repository.credentials(integration)
        assert stored is not None
        sealed = VAULT.seal_fields(
            {"access_token": "access-other", "refresh_token": "refresh-other"},
            tenant,
            integration.id,
        )
        await repository.replace_secrets(stored, sealed, datetime.now(UTC) + timedelta(hours=1))
        return OAuthError(error="invalid_grant", description="refresh token already used")

    provider = ScriptedProvider([another_worker_refreshes_first])
    [worker] = workers(repository, mongo, settings, provider, events_seen)
    lease = await worker.lease(integration.id, "test")
    assert lease.access_token == "access-other"
    current = await repository.get(integration.id)
    assert current is not None
    assert current.status is IntegrationStatus.ACTIVE
    assert events_seen.published == []


async def test_invalid_grant_expires_the_connection_and_announces_it(
    repository: IntegrationRepository, mongo: Any, settings: ServiceSettings, tenant: str,
    events_seen: RecordedEvents,
) -> None:  # fmt: skip
    provider = ScriptedProvider([OAuthError(error="invalid_grant", description="revoked")])
    [worker] = workers(repository, mongo, settings, provider, events_seen)
    integration = await oauth_connection(repository, tenant, timedelta(minutes=1))
    with pytest.raises(Problem) as raised:
        await worker.lease(integration.id, "test")
    assert raised.value.status == 409
    current = await repository.get(integration.id)
    assert current is not None
    assert current.status is IntegrationStatus.EXPIRED
    assert current.last_error
    assert "Reconnect" in current.last_error
    assert events_seen.published == [(events.INTEGRATION_EXPIRED, integration.id)]
    with pytest.raises(Problem) as again:
        await worker.lease(integration.id, "test")
    assert again.value.status == 404  # no longer active: the connector stops asking


async def test_transient_failures_use_the_current_token_then_expire_after_the_limit(
    repository: IntegrationRepository, mongo: Any, settings: ServiceSettings, tenant: str,
    events_seen: RecordedEvents,
) -> None:  # fmt: skip
    down = httpx.ConnectError("provider unreachable")
    provider = ScriptedProvider([down, down, down, down])
    [worker] = workers(repository, mongo, settings, provider, events_seen)
    integration = await oauth_connection(repository, tenant, timedelta(minutes=2))

    # Still valid for two minutes: the failed refresh is counted, the token still served.
    assert (await worker.lease(integration.id, "test")).access_token == "access-0"

    stored = await repository.credentials(integration)
    assert stored is not None
    assert stored.renewal_failures == 1
    await mongo[settings.mongodb_database]["credentials"].update_one(
        {"_id": integration.id}, {"$set": {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}}
    )
    with pytest.raises(Problem) as second:
        await worker.lease(integration.id, "test")
    assert second.value.status == 503  # retryable: two failures so far
    with pytest.raises(Problem) as third:
        await worker.lease(integration.id, "test")
    assert third.value.status == 409
    current = await repository.get(integration.id)
    assert current is not None
    assert current.status is IntegrationStatus.EXPIRED
    assert events_seen.published == [(events.INTEGRATION_EXPIRED, integration.id)]


async def test_a_lease_left_by_a_crashed_worker_is_taken_over(
    repository: IntegrationRepository, mongo: Any, settings: ServiceSettings, tenant: str,
    events_seen: RecordedEvents,
) -> None:  # fmt: skip
    provider = ScriptedProvider([])
    [worker] = workers(repository, mongo, settings, provider, events_seen)
    integration = await oauth_connection(repository, tenant, timedelta(minutes=1))
    await mongo[settings.mongodb_database]["leases"].insert_one(
        {
            "_id": f"renew-credentials:{integration.id}",
            "owner": "crashed-worker",
            "expires_at": datetime.now(UTC) - timedelta(seconds=5),
        }
    )
    lease = await worker.lease(integration.id, "test")
    assert lease.access_token == "access-1"
    assert (
        await mongo[settings.mongodb_database]["leases"].count_documents(
            {"_id": f"renew-credentials:{integration.id}"}
        )
        == 0
    )  # released after use


async def test_a_held_lease_is_only_released_by_its_owner(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    leases = Leases(mongo[settings.mongodb_database], ttl_seconds=30)
    name = f"test:{uuid.uuid4()}"
    owner = await leases.try_acquire(name)
    assert owner is not None
    assert await leases.try_acquire(name) is None
    await leases.release(name, "someone-else")
    assert await leases.try_acquire(name) is None
    await leases.release(name, owner)
    assert await leases.try_acquire(name) is not None


async def test_a_rejected_token_is_not_handed_out_again_when_renewal_fails(
    repository: IntegrationRepository, mongo: Any, settings: ServiceSettings, tenant: str,
    events_seen: RecordedEvents,
) -> None:  # fmt: skip
    provider = ScriptedProvider([httpx.ConnectError("provider unreachable")])
    [worker] = workers(repository, mongo, settings, provider, events_seen)
    integration = await oauth_connection(repository, tenant, timedelta(hours=1))
    first = await worker.lease(integration.id, "test")
    with pytest.raises(Problem) as raised:
        await worker.lease(integration.id, "test", rejected_version=first.version)
    assert raised.value.status == 503  # try again later, not the token ConnectWise refused


async def test_a_connection_without_a_refresh_token_expires_instead_of_failing(
    repository: IntegrationRepository, mongo: Any, settings: ServiceSettings, tenant: str,
    events_seen: RecordedEvents,
) -> None:  # fmt: skip
    provider = ScriptedProvider([])
    [worker] = workers(repository, mongo, settings, provider, events_seen)
    integration = await oauth_connection(repository, tenant, timedelta(minutes=1))
    await mongo[settings.mongodb_database]["credentials"].update_one(
        {"_id": integration.id}, {"$unset": {"secrets.refresh_token": ""}}
    )
    with pytest.raises(Problem) as raised:
        await worker.lease(integration.id, "test")
    assert raised.value.status == 409
    assert provider.refreshes == 0
    assert events_seen.published == [(events.INTEGRATION_EXPIRED, integration.id)]
