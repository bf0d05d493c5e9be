"""Valid credentials for the connector: renewed ahead of expiry, by one worker at a time.

OAuth access tokens are refreshed and impersonation keys re-minted before they expire.
Renewal runs under a per-integration lease (`Leases`) and writes with a version check;
whoever waited for the lease re-reads first and usually finds the work already done, so
exactly one refresh reaches the provider however many workers ask at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from syntaskio_auth.accounts import ConnectWiseAccounts, MintedKeys, Site
from syntaskio_auth.announcements import Announcements
from syntaskio_auth.company_settings import CompanySettings
from syntaskio_auth.mapping_store import MappingStore
from syntaskio_auth.oauth import OAuthError, OAuthProvider
from syntaskio_auth.repository import PROVIDER, IntegrationRepository, Owner, StoredCredentials
from syntaskio_auth.vault import Vault
from syntaskio_common import events
from syntaskio_common.connectwise import (
    ApiKeyCredentials,
    BearerCredentials,
    ConnectWiseError,
    Credentials,
    Unavailable,
)
from syntaskio_common.credentials import AuthScheme, CredentialLease
from syntaskio_common.egress import SiteRejected
from syntaskio_common.integrations import (
    AuthMethod,
    ConnectionScope,
    Integration,
    IntegrationStatus,
)
from syntaskio_common.leases import LeaseBusy, Leases
from syntaskio_common.mappings import MappingState
from syntaskio_common.problems import Problem

logger = logging.getLogger(__name__)

EXPIRED_REASON = (
    "ConnectWise no longer accepts this connection's authorization. Reconnect to resume syncing."
)


class RenewalFailed(Exception):
    """The provider could not renew the credential this time (may succeed later)."""


class Revoked(Exception):
    """The provider says the grant or keys are no longer valid: reconnecting is needed."""


@dataclass
class CredentialLeases:
    repository: IntegrationRepository
    vault: Vault
    accounts: ConnectWiseAccounts
    announcements: Announcements
    oauth_providers: dict[str, OAuthProvider]
    leases: Leases
    client_id: str
    renew_ahead: timedelta
    lease_ttl: timedelta
    max_renewal_failures: int
    mappings: MappingStore
    company: CompanySettings
    # Keys minted to act as a member, by (connection, member, credentials version): used
    # until `renew_ahead` before they expire, so a search does not cost a mint each time.
    # Held in memory only (never stored): each worker mints its own.
    minted: dict[tuple[str, str, int], MintedKeys] = field(default_factory=dict)

    async def lease(
        self,
        integration_id: str,
        caller: str,
        rejected_version: int | None = None,
        *,
        cleanup: bool = False,
    ) -> CredentialLease:
        """`cleanup`: only to remove the connection's callbacks as it is disconnected,
        which a pause or the company's switch must not prevent."""
        integration = await self.repository.get(integration_id)
        leasable = {IntegrationStatus.ACTIVE} | ({IntegrationStatus.PAUSED} if cleanup else set())
        if integration is None or integration.status not in leasable:
            raise Problem(404, "No active integration with this id.")
        if not cleanup and not (await self.company.get(integration.tenant_id)).connectwise_enabled:
            # The company turned ConnectWise off: like a pause, for all its connections.
            raise Problem(404, "ConnectWise is turned off for this company.")
        stored = await self._valid_credentials(integration, rejected_version)
        # Only a cleanup lease says so (the others are the usual).
        cleanup_only: dict[str, Any] = {"cleanup": True} if cleanup else {}
        await self.repository.audit(
            "credentials.leased",
            tenant_id=integration.tenant_id,
            integration_id=integration.id,
            caller=caller,
            **cleanup_only,
        )
        return await self._lease(integration, stored)

    async def acting(self, tenant_id: str, user_id: str, caller: str) -> CredentialLease:
        """Credentials acting as the user's own ConnectWise member, for what the user does
        on a ticket that is not synced for them (found by a search): ConnectWise then
        allows exactly what that member may.

        Their personal connection's credentials when those are the member's own (OAuth,
        impersonation, the member's API keys); otherwise keys minted for the member
        (`POST /system/members/{identifier}/tokens`) with the connection's API-member keys:
        their personal connection's, or the company connection's when an admin mapped
        them. Minted keys are kept in memory, never stored. The connection, its status
        and the mapping are checked on every call, so a disconnect, pause or unmapping
        stops them within the connector's reuse (`ACTING_LEASE_REUSE`). 404: no active
        connection syncs the user; 409: it cannot act as them."""
        integration, member = await self._acting_connection(tenant_id, user_id)
        if not (await self.company.get(tenant_id)).connectwise_enabled:
            raise Problem(404, "ConnectWise is turned off for this company.")
        stored = await self._valid_credentials(integration, None)
        await self.repository.audit(
            "credentials.leased",
            tenant_id=tenant_id,
            integration_id=integration.id,
            caller=caller,
            acting_for=user_id,
        )
        own = integration.scope is ConnectionScope.PERSONAL and (
            await self.repository.acts_as_member(integration)
        )
        if own:
            return await self._lease(integration, stored)
        if integration.auth_method is not AuthMethod.API_KEY:
            raise Problem(
                409,
                "This connection cannot act as your ConnectWise member: it signs in with "
                "OAuth as someone else. Connect your own account to find other tickets.",
                title="Cannot act as the member",
            )
        opened = self.vault.open_fields(stored.secrets, integration.tenant_id, integration.id)
        keys = ApiKeyCredentials(
            integration.company_id, opened["public_key"], opened["private_key"]
        )
        try:
            minted = await self._minted_for(integration, stored, keys, member)
        except ConnectWiseError as error:
            if error.status in (400, 403, 404):
                raise Problem(
                    409,
                    f"ConnectWise would not let this connection act as member {member!r} "
                    f"({error.status}): its API member may not create member tokens.",
                    title="Cannot act as the member",
                ) from None
            raise Problem(502, "ConnectWise could not be reached.") from error
        except (Unavailable, httpx.HTTPError, SiteRejected) as error:
            raise Problem(502, "ConnectWise could not be reached.") from error
        lease = await self._lease(integration, stored)
        return lease.model_copy(
            update={
                "user_id": user_id,
                "member_identifier": member,
                "scheme": AuthScheme.BASIC,
                "public_key": minted.public_key,
                "private_key": minted.private_key,
                "access_token": None,
                "expires_at": min(lease.expires_at or minted.expires_at, minted.expires_at),
                "scope": ConnectionScope.PERSONAL,
                "members": [],
            }
        )

    async def _minted_for(
        self,
        integration: Integration,
        stored: StoredCredentials,
        keys: ApiKeyCredentials,
        member: str,
    ) -> MintedKeys:
        key = (integration.id, member.casefold(), stored.version)
        now = datetime.now(UTC)
        held = self.minted.get(key)
        if held is not None and held.expires_at - self.renew_ahead > now:
            return held
        minted = await self.accounts.mint_member_keys(Site.of(integration), keys, member)
        # Drop what has expired, so the map holds only what is in use.
        for old in [k for k, v in self.minted.items() if v.expires_at <= now]:
            del self.minted[old]
        self.minted[key] = minted
        return minted

    async def _acting_connection(self, tenant_id: str, user_id: str) -> tuple[Integration, str]:
        """The active connection that syncs the user, and their member's identifier: their
        own connection first, else the company's when they are mapped."""
        own = await self.repository.find_for_owner(
            Owner(tenant_id, user_id, ConnectionScope.PERSONAL), PROVIDER
        )
        if own is not None and own.status is IntegrationStatus.ACTIVE and own.member_identifier:
            return own, own.member_identifier
        company = await self.repository.find_for_owner(Owner.tenant(tenant_id), PROVIDER)
        if company is not None and company.status is IntegrationStatus.ACTIVE:
            mapping = await self.mappings.get(company, user_id)
            if mapping is not None and mapping.state is MappingState.CONFIRMED:
                return company, mapping.member_identifier
        raise Problem(404, "No active ConnectWise connection syncs this user.")

    async def credentials(self, integration: Integration) -> Credentials:
        """Valid credentials for auth-service's own calls on a connection (looking up its
        members), renewed like a lease's when they are about to expire."""
        stored = await self._valid_credentials(integration, None)
        opened = self.vault.open_fields(stored.secrets, integration.tenant_id, integration.id)
        if integration.auth_method is AuthMethod.OAUTH2:
            return BearerCredentials(opened["access_token"])
        return ApiKeyCredentials(
            integration.company_id, opened["public_key"], opened["private_key"]
        )

    async def _valid_credentials(
        self, integration: Integration, rejected_version: int | None
    ) -> StoredCredentials:
        stored = await self._read(integration)
        if not self._needs_renewal(stored, rejected_version):
            return stored
        if integration.auth_method is AuthMethod.API_KEY:
            # Nothing to renew: an administrator revoked or changed the keys.
            await self._expire(integration, "ConnectWise rejected the API keys. Reconnect.")
            raise Problem(409, "ConnectWise rejected the API keys.", title="Connection expired")
        try:
            async with self.leases.hold(f"renew-credentials:{integration.id}"):
                # Whoever held the lease before us has probably renewed already.
                stored = await self._read(integration)
                if not self._needs_renewal(stored, rejected_version):
                    return stored
                return await self._renew(
                    integration, stored, rejected=rejected_version == stored.version
                )
        except LeaseBusy as error:
            raise Problem(503, "Credentials are being renewed; try again shortly.") from error

    async def _read(self, integration: Integration) -> StoredCredentials:
        stored = await self.repository.credentials(integration)
        if stored is None:
            raise Problem(404, "No active integration with this id.")
        return stored

    def _needs_renewal(self, stored: StoredCredentials, rejected_version: int | None) -> bool:
        if rejected_version == stored.version:
            return True
        if stored.expires_at is None:
            return False
        return stored.expires_at - self.renew_ahead <= datetime.now(UTC)

    async def _renew(
        self, integration: Integration, stored: StoredCredentials, *, rejected: bool
    ) -> StoredCredentials:
        try:
            secrets, expires_at = await self._renewed_secrets(integration, stored)
        except Revoked:
            # `invalid_grant` may only mean another worker refreshed first (its lease ran
            # out mid-refresh): that shows as a newer version, and is not a revocation.
            current = await self._read(integration)
            if current.version != stored.version:
                return current
            await self._expire(integration, EXPIRED_REASON)
            raise Problem(409, EXPIRED_REASON, title="Connection expired") from None
        except RenewalFailed as error:
            failures = await self.repository.count_renewal_failure(stored)
            logger.warning(
                "credential renewal failed",
                extra={
                    "integration_id": integration.id,
                    "failures": failures,
                    "reason": str(error),
                },
            )
            still_valid = stored.expires_at and stored.expires_at > datetime.now(UTC)
            if still_valid and not rejected:
                return stored  # use the current credential while it lasts; retry next time
            if failures >= self.max_renewal_failures:
                await self._expire(integration, EXPIRED_REASON)
                raise Problem(409, EXPIRED_REASON, title="Connection expired") from None
            raise Problem(503, "ConnectWise could not renew the credentials; retrying.") from None
        sealed = self.vault.seal_fields(secrets, integration.tenant_id, integration.id)
        if not await self.repository.replace_secrets(stored, sealed, expires_at):
            logger.warning("renewal lost a race", extra={"integration_id": integration.id})
        await self.repository.audit(
            "credentials.renewed", tenant_id=integration.tenant_id, integration_id=integration.id
        )
        return await self._read(integration)

    async def _renewed_secrets(
        self, integration: Integration, stored: StoredCredentials
    ) -> tuple[dict[str, str], datetime]:
        opened = self.vault.open_fields(stored.secrets, integration.tenant_id, integration.id)
        try:
            if integration.auth_method is AuthMethod.OAUTH2:
                provider = self.oauth_providers.get(integration.provider)
                if provider is None:
                    raise RenewalFailed(f"no OAuth provider {integration.provider!r} configured")
                if "refresh_token" not in opened:
                    raise Revoked  # the provider gave no refresh token: only reconnecting helps
                tokens = await provider.refresh(integration.api_base_url, opened["refresh_token"])
                renewed = {"access_token": tokens.access_token}
                if tokens.refresh_token:
                    renewed["refresh_token"] = tokens.refresh_token
                return renewed, tokens.expires_at
            if integration.auth_method is AuthMethod.IMPERSONATION:
                keys = ApiKeyCredentials(
                    integration.company_id,
                    opened["integration_public_key"],
                    opened["integration_private_key"],
                )
                assert integration.member_identifier is not None
                minted = await self.accounts.mint_member_keys(
                    Site.of(integration), keys, integration.member_identifier
                )
                return {
                    "public_key": minted.public_key,
                    "private_key": minted.private_key,
                }, minted.expires_at
        except OAuthError as error:
            if error.error == "invalid_grant":
                raise Revoked from error
            raise RenewalFailed(f"OAuth error {error.error}") from error
        except (Unavailable, httpx.HTTPError, SiteRejected) as error:
            raise RenewalFailed(type(error).__name__) from error
        except ConnectWiseError as error:
            if error.status in (401, 403):
                raise Revoked from error
            raise RenewalFailed(f"ConnectWise answered {error.status}") from error
            raise RenewalFailed(type(error).__name__) from error
        raise RenewalFailed(f"{integration.auth_method.value} credentials do not expire")

    async def _expire(self, integration: Integration, reason: str) -> None:
        expired = await self.repository.set_status(
            integration.id, IntegrationStatus.EXPIRED, reason, only_if=IntegrationStatus.ACTIVE
        )
        if expired is None:
            return  # someone else already moved it on
        await self.repository.audit(
            "expired", tenant_id=integration.tenant_id, integration_id=integration.id
        )
        await self.announcements.publish(events.INTEGRATION_EXPIRED, expired)

    async def _lease(self, integration: Integration, stored: StoredCredentials) -> CredentialLease:
        opened = self.vault.open_fields(stored.secrets, integration.tenant_id, integration.id)
        until = datetime.now(UTC) + self.lease_ttl
        if stored.expires_at is not None:
            until = min(until, stored.expires_at)
        assert integration.member_identifier is not None
        common = {
            "integration_id": integration.id,
            "tenant_id": integration.tenant_id,
            "user_id": integration.user_id,
            "api_base_url": integration.api_base_url,
            "site_url": integration.site_url,
            "company_id": integration.company_id,
            "member_identifier": integration.member_identifier,
            "client_id": self.client_id,
            "expires_at": until,
            "version": stored.version,
            "generation": integration.generation,
            "scope": integration.scope,
            # A tenant connection syncs the members an admin confirmed (none yet: nothing).
            "members": (
                await self.mappings.team(integration)
                if integration.scope is ConnectionScope.TENANT
                else []
            ),
        }
        if integration.auth_method is AuthMethod.OAUTH2:
            return CredentialLease(
                **common, scheme=AuthScheme.BEARER, access_token=opened["access_token"]
            )
        return CredentialLease(
            **common,
            scheme=AuthScheme.BASIC,
            public_key=opened["public_key"],
            private_key=opened["private_key"],
        )
