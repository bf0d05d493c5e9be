"""Calling ConnectWise for an integration: credentials leased from auth-service, and a
client whose every request passes the integration's shared budget and breaker."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

import httpx

from syntaskio_common.connectwise import (
    ConnectWiseClient,
    ConnectWiseError,
    RetryPolicy,
    api_base_url,
    fetch_codebase,
)
from syntaskio_common.credentials import CredentialLease
from syntaskio_connector.auth_client import AuthServiceClient
from syntaskio_connector.budget import ApiBudget, IntegrationGate

# An acting lease is reused this long at most (and never near its expiry): auth-service
# checks the connection, its pause and the user's mapping each time it is asked, so a
# disconnect or an unmapping stops acting for the user within this.
ACTING_LEASE_REUSE: Final = timedelta(minutes=1)
MOST_ACTING_LEASES: Final = 10_000
# A sync's lease is reused by the next runs on this replica for this long at most, and
# never within LEASE_MARGIN of its expiry. What stops a connection (disconnect, pause,
# expiry, the company turning ConnectWise off) stops its claims through the integration
# events; what changes its credentials or team (a reconnect, a mapping) bumps the
# schedule's `lease_epoch`, which drops the lease at the next claim.
SYNC_LEASE_REUSE: Final = timedelta(minutes=15)
LEASE_MARGIN: Final = timedelta(minutes=1)
MOST_SYNC_LEASES: Final = 100_000


@dataclass(frozen=True)
class ConnectWiseAccess:
    auth: AuthServiceClient
    http: httpx.AsyncClient
    budget: ApiBudget
    # (tenant, user) → credentials acting as their member, and when they were leased.
    _acting: dict[tuple[str, str], tuple[CredentialLease, datetime]] = field(default_factory=dict)
    # integration → a sync's lease, when it was leased and the schedule's `lease_epoch`
    # the claim had read before it was asked for.
    _sync: dict[str, tuple[CredentialLease, datetime, int]] = field(default_factory=dict)

    async def lease(
        self,
        integration_id: str,
        rejected_version: int | None = None,
        *,
        cleanup: bool = False,
        purpose: str = "sync",
        reuse_epoch: int | None = None,
    ) -> CredentialLease | None:
        """None when the integration is disconnected or expired (or, unless `cleanup`,
        paused or turned off by its company). `purpose`: sync, webhook, write-back,
        cleanup (in auth-service's audit record of the lease). `reuse_epoch`: a
        scheduled run's, the schedule's `lease_epoch` its claim read — a lease this
        replica got at the same epoch is used again while it lasts (None: always ask)."""
        now = datetime.now(UTC)
        if reuse_epoch is not None and rejected_version is None and not cleanup:
            lease, leased_at, epoch = self._sync.get(integration_id, (None, now, -1))
            if (
                lease is not None
                and epoch == reuse_epoch
                and leased_at + SYNC_LEASE_REUSE > now
                and (lease.expires_at is None or lease.expires_at - LEASE_MARGIN > now)
            ):
                return lease
        lease = await self.auth.lease(
            integration_id, rejected_version, cleanup=cleanup, purpose=purpose
        )
        if lease is None:
            self._sync.pop(integration_id, None)
        elif reuse_epoch is not None:
            if len(self._sync) >= MOST_SYNC_LEASES:
                self._sync.clear()  # rare: each is cheap to ask for again
            self._sync[integration_id] = (lease, now, reuse_epoch)
        return lease

    def forget(self, integration_id: str) -> None:
        """ConnectWise rejected the sync's lease: ask auth-service again next time."""
        self._sync.pop(integration_id, None)

    async def acting(self, tenant_id: str, user_id: str, purpose: str) -> CredentialLease:
        """Credentials acting as the user's own ConnectWise member (see auth-service's
        acting lease): for what they do on tickets that are not synced for them. Raises
        LookupError (no connection syncs them) or auth_client.CannotAct."""
        now = datetime.now(UTC)
        cached, leased_at = self._acting.get((tenant_id, user_id), (None, now))
        if cached is not None and leased_at + ACTING_LEASE_REUSE > now and _lasts(cached, now):
            return cached
        lease = await self.auth.acting_lease(tenant_id, user_id, purpose)
        if len(self._acting) >= MOST_ACTING_LEASES:
            self._acting.clear()  # rare: each is cheap to ask for again
        self._acting[(tenant_id, user_id)] = (lease, now)
        return lease

    def forget_acting(self, tenant_id: str, user_id: str) -> None:
        """ConnectWise rejected them: ask auth-service again next time."""
        self._acting.pop((tenant_id, user_id), None)

    def client(
        self,
        lease: CredentialLease,
        *,
        spent: int = 0,
        retry: RetryPolicy | None = None,
        gate: IntegrationGate | None = None,
    ) -> ConnectWiseClient:
        """`spent`: requests already made in this job (a client made after renewing
        credentials carries on the count); `gate`: the job's own (one that reserves its
        requests), else one admitting each request."""

        async def rediscover() -> str:
            codebase = await fetch_codebase(self.http, lease.site_url, lease.company_id)
            if codebase is None:
                raise ConnectWiseError(404, "UnknownCompany", "the company is gone")
            return api_base_url(lease.site_url, codebase)

        client = ConnectWiseClient(
            self.http,
            lease.api_base_url,
            lease.credentials(),
            lease.client_id,
            retry=retry,
            gate=gate or self.budget.gate(lease.integration_id, lease.tenant_id),
            rediscover=rediscover,
        )
        client.requests_made = spent
        return client


def _lasts(lease: CredentialLease, now: datetime) -> bool:
    """Valid for a while yet: long enough for the requests about to be made."""
    return lease.expires_at is None or lease.expires_at - ACTING_LEASE_REUSE > now
