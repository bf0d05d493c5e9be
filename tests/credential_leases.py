"""A credential lease as auth-service would give one, and auth-service answering with it,
for tests that stand in for it."""

from __future__ import annotations

import uuid
from typing import Any

from connectwise_sandbox import DEV_CLIENT_ID
from connectwise_sandbox.state import SandboxState
from syntaskio_common.credentials import AuthScheme, CredentialLease
from syntaskio_connector.auth_client import AuthServiceClient, CannotAct

API_BASE = "https://api-na.myconnectwise.net/v2025_1/apis/3.0/"


def api_key_lease(integration_id: str, tenant_id: str = "acme", **fields: Any) -> CredentialLease:
    """API-member keys for `integration_id` on a cloud site; `fields` override the rest."""
    return CredentialLease(
        **{
            "integration_id": integration_id,
            "tenant_id": tenant_id,
            "user_id": "u1",
            "api_base_url": API_BASE,
            "site_url": "https://api-na.myconnectwise.net",
            "company_id": "acme",
            "member_identifier": "atech",
            "client_id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "scheme": AuthScheme.BASIC,
            "public_key": "public",
            "private_key": "private",
            "version": 1,
        }
        | fields
    )


def sandbox_lease(state: SandboxState, member: str, base: str) -> CredentialLease:
    """A fresh integration of a new tenant with `member`'s keys on an in-process sandbox
    served at `base`."""
    key = next(k for k in state.store.api_keys if k.member_identifier == member)
    return CredentialLease(
        integration_id=f"int-{uuid.uuid4().hex[:8]}",
        tenant_id=f"tenant-{uuid.uuid4().hex[:8]}",
        user_id="alex@acme.example",
        api_base_url=f"{base}{state.settings.api_prefix}/",
        site_url=base,
        company_id=state.settings.company_id,
        member_identifier=member,
        client_id=DEV_CLIENT_ID,
        scheme=AuthScheme.BASIC,
        public_key=key.public_key,
        private_key=key.private_key,
        version=1,
        generation=1,
    )


class FixedAuth(AuthServiceClient):
    """auth-service's answer for one integration, without auth-service. `acting`: the
    credentials acting as each user's member (by user id); for anyone else the
    connection cannot act as them, as for a company connection over OAuth."""

    def __init__(
        self, lease: CredentialLease, acting: dict[str, CredentialLease] | None = None
    ) -> None:
        self._lease = lease
        self._acting = acting or {}

    async def lease(
        self,
        integration_id: str,
        rejected_version: int | None = None,
        *,
        cleanup: bool = False,
        purpose: str = "sync",
    ) -> CredentialLease | None:
        return self._lease if integration_id == self._lease.integration_id else None

    async def acting_lease(self, tenant_id: str, user_id: str, purpose: str) -> CredentialLease:
        acting = self._acting.get(user_id)
        if tenant_id != self._lease.tenant_id:
            raise LookupError("no connection syncs this user")
        if acting is None:
            raise CannotAct("this connection cannot act as the member")
        return acting
