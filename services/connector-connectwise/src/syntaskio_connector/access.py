"""Calling ConnectWise for an integration: credentials leased from auth-service, and a
client whose every request passes the integration's shared budget and breaker."""

from __future__ import annotations

from dataclasses import dataclass

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
from syntaskio_connector.budget import ApiBudget


@dataclass(frozen=True)
class ConnectWiseAccess:
    auth: AuthServiceClient
    http: httpx.AsyncClient
    budget: ApiBudget

    async def lease(
        self,
        integration_id: str,
        rejected_version: int | None = None,
        *,
        cleanup: bool = False,
        purpose: str = "sync",
    ) -> CredentialLease | None:
        """None when the integration is disconnected or expired (or, unless `cleanup`,
        paused or turned off by its company). `purpose`: sync, webhook, write-back,
        cleanup (in auth-service's audit record of the lease)."""
        return await self.auth.lease(
            integration_id, rejected_version, cleanup=cleanup, purpose=purpose
        )

    def client(
        self, lease: CredentialLease, *, spent: int = 0, retry: RetryPolicy | None = None
    ) -> ConnectWiseClient:
        """`spent`: requests already made in this job (a client made after renewing
        credentials carries on the count)."""

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
            gate=self.budget.gate(lease.integration_id, lease.tenant_id),
            rediscover=rediscover,
        )
        client.requests_made = spent
        return client
