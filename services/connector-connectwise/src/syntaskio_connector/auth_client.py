"""auth-service's internal API, as the connector uses it."""

from __future__ import annotations

import httpx

from syntaskio_common.credentials import ActingLeaseRequest, CredentialLease


class CannotAct(Exception):
    """auth-service has a connection for the user, but it cannot act as their member."""


class AuthServiceClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str, internal_token: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {internal_token}",
            "X-Syntaskio-Caller": "connector-connectwise",
        }

    async def lease(
        self,
        integration_id: str,
        rejected_version: int | None = None,
        *,
        cleanup: bool = False,
        purpose: str = "sync",
    ) -> CredentialLease | None:
        """Credentials for the integration; pass the version ConnectWise just rejected
        to have them renewed (`cleanup`: only to remove its callbacks on disconnect).
        `purpose` goes into the caller auth-service audits: why they were leased."""
        response = await self._http.post(
            f"{self._base_url}/internal/v1/integrations/{integration_id}/credentials/lease",
            json={"rejected_version": rejected_version, "cleanup": cleanup},
            headers={**self._headers, "X-Syntaskio-Caller": f"connector-connectwise/{purpose}"},
        )
        if response.status_code in (404, 409):
            return None  # disconnected, or expired until the user reconnects
        response.raise_for_status()
        return CredentialLease.model_validate(response.json())

    async def acting_lease(self, tenant_id: str, user_id: str, purpose: str) -> CredentialLease:
        """Credentials acting as the user's own member. LookupError when no active
        connection syncs the user; CannotAct (its message for the user) when it can't."""
        response = await self._http.post(
            f"{self._base_url}/internal/v1/acting-credentials/lease",
            json=ActingLeaseRequest(tenant_id=tenant_id, user_id=user_id).model_dump(),
            headers={**self._headers, "X-Syntaskio-Caller": f"connector-connectwise/{purpose}"},
        )
        if response.status_code == 404:
            raise LookupError("no active ConnectWise connection syncs this user")
        if response.status_code == 409:
            raise CannotAct(_problem_detail(response))
        response.raise_for_status()
        return CredentialLease.model_validate(response.json())


def _problem_detail(response: httpx.Response) -> str:
    try:
        return str(response.json()["detail"])
    except (ValueError, KeyError, TypeError):
        return "This connection cannot act as your ConnectWise member."
