"""Connecting, pausing and disconnecting ConnectWise: a user's own account or the
tenant's (connected by an admin for everyone), with API-member keys, impersonation, or
the OAuth2 authorization-code flow with PKCE."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from syntaskio_auth.accounts import ConnectWiseAccounts, Site, upstream_problems
from syntaskio_auth.announcements import Announcements
from syntaskio_auth.connector_client import ConnectorClient
from syntaskio_auth.models import OAuthOutcome, OAuthStart
from syntaskio_auth.oauth import OAuthError, OAuthProvider, new_code_verifier, new_state
from syntaskio_auth.repository import PROVIDER, IntegrationRepository, Owner, Sealed
from syntaskio_auth.vault import SecretContext, Vault, VaultError
from syntaskio_common import events
from syntaskio_common.connection_requests import ApiKeyConnectionRequest, OAuthStartRequest
from syntaskio_common.connectwise import ApiKeyCredentials, BearerCredentials, ConnectWiseError
from syntaskio_common.egress import SiteRejected
from syntaskio_common.integrations import (
    AuthMethod,
    ConnectionScope,
    Integration,
    IntegrationStatus,
)
from syntaskio_common.problems import Problem
from syntaskio_common.sessions import UserSession

logger = logging.getLogger(__name__)


def state_id(state: str) -> str:
    """States are stored by hash: a database reader can't complete someone's flow."""
    return hashlib.sha256(state.encode()).hexdigest()


def _verifier_context(tenant_id: str, state_key: str) -> SecretContext:
    return SecretContext(tenant_id, f"oauth-state/{state_key}", "code_verifier")


@dataclass
class Connections:
    repository: IntegrationRepository
    vault: Vault
    accounts: ConnectWiseAccounts
    announcements: Announcements
    oauth_providers: dict[str, OAuthProvider]
    state_ttl: timedelta
    connector: ConnectorClient

    # -- API-member keys and impersonation -----------------------------------------------

    async def connect_api_key(
        self, actor: UserSession, owner: Owner, request: ApiKeyConnectionRequest
    ) -> Integration:
        """Connect `owner`'s account; `actor` is who asks (the user, or the tenant's admin)."""
        if owner.scope is ConnectionScope.TENANT and request.impersonate:
            raise Problem(
                422,
                "A company connection uses its own API member's keys; it cannot impersonate "
                "one member. Map technicians to their members instead.",
                title="Impersonation not allowed",
            )
        site = await self.accounts.resolve_site(request.site, request.company_id)
        keys = ApiKeyCredentials(
            request.company_id,
            request.public_key.get_secret_value(),
            request.private_key.get_secret_value(),
        )
        with upstream_problems():
            member = await self.accounts.member(site, keys, request.member)
            if not request.impersonate:
                return await self._store(
                    actor,
                    owner,
                    site,
                    member,
                    AuthMethod.API_KEY,
                    {"public_key": keys.public_key, "private_key": keys.private_key},
                    # The keys' own member (none named) is the member itself; keys of an
                    # integration member only act for them.
                    keys_are_members=request.member is None,
                )
            minted = await self.accounts.mint_member_keys(site, keys, member["identifier"])
            acting = ApiKeyCredentials(site.company_id, minted.public_key, minted.private_key)
            # The minted keys must really act as the member before we rely on them.
            if (await self.accounts.member(site, acting))["identifier"] != member["identifier"]:
                raise Problem(502, "ConnectWise minted keys for a different member.")
        return await self._store(
            actor,
            owner,
            site,
            member,
            AuthMethod.IMPERSONATION,
            {
                "integration_public_key": keys.public_key,
                "integration_private_key": keys.private_key,
                "public_key": minted.public_key,
                "private_key": minted.private_key,
            },
            expires_at=minted.expires_at,
        )

    # -- OAuth2 authorization code + PKCE ------------------------------------------------

    def _provider(self, name: str) -> OAuthProvider:
        provider = self.oauth_providers.get(name)
        if provider is None or not provider.profile.enabled:
            raise Problem(404, f"OAuth is not configured for {name!r} on this server.")
        return provider

    async def start_oauth(
        self, user: UserSession, owner: Owner, request: OAuthStartRequest
    ) -> OAuthStart:
        """The flow is `user`'s (only their session can finish it) and connects `owner`'s
        account: their own, or (an admin's flow) the tenant's."""
        provider = self._provider(PROVIDER)
        site = await self.accounts.resolve_site(request.site, request.company_id)
        state, verifier = new_state(), new_code_verifier()
        key = state_id(state)
        expires_at = datetime.now(UTC) + self.state_ttl
        await self.repository.save_state(
            {
                "_id": key,
                "tenant_id": user.tenant_id,
                "user_id": user.user_id,
                "session_id": user.session_id,
                "owner_user_id": owner.user_id,
                "scope": owner.scope.value,
                "provider": PROVIDER,
                "site": site.site,
                "site_url": site.site_url,
                "company_id": site.company_id,
                "codebase": site.codebase,
                "api_base_url": site.api_base_url,
                "code_verifier": self.vault.seal(verifier, _verifier_context(user.tenant_id, key)),
                "created_at": datetime.now(UTC),
                "expires_at": expires_at,
            }
        )
        await self.repository.ensure_pending(owner, PROVIDER, _site_fields(site, AuthMethod.OAUTH2))
        url = provider.authorization_url(site.api_base_url, state, verifier)
        return OAuthStart(authorization_url=url, expires_at=expires_at)

    async def finish_oauth(
        self, user: UserSession, params: dict[str, str]
    ) -> tuple[OAuthOutcome, Integration | None, ConnectionScope]:
        """Handle the provider's redirect back. Never raises for a provider-side outcome:
        the user is sent back (to settings, or the admin console for the company's
        connection: the scope says which) with one of four plain statuses."""
        provider = self._provider(PROVIDER)
        key = state_id(params.get("state", ""))
        flow = await self.repository.take_state(key, user.tenant_id, user.user_id)
        if (
            flow is None
            or (flow.get("session_id") and flow["session_id"] != user.session_id)
            or flow["expires_at"] <= datetime.now(UTC)
        ):
            owner = Owner.user(user) if flow is None else _flow_owner(flow)
            await self._flow_failed(
                user,
                owner,
                OAuthOutcome.EXPIRED_STATE,
                "The sign-in took too long or was already used.",
            )
            return OAuthOutcome.EXPIRED_STATE, None, owner.scope
        owner = _flow_owner(flow)
        site = Site(
            flow["site"], flow["site_url"], flow["company_id"], flow["codebase"],
            flow["api_base_url"],
        )  # fmt: skip
        if params.get("error"):
            outcome = (
                OAuthOutcome.DENIED
                if params["error"] == "access_denied"
                else OAuthOutcome.EXCHANGE_FAILED
            )
            reason = f"ConnectWise answered {params['error']!r}."
            await self._flow_failed(user, owner, outcome, reason)
            return outcome, None, owner.scope
        try:
            verifier = self.vault.open(
                flow["code_verifier"], _verifier_context(user.tenant_id, key)
            )
            # Mix-up defence: the code goes only to the token endpoint of the site the
            # flow started with, and that site is checked again before we connect to it.
            await self.accounts.resolve_site(site.site, site.company_id)
            tokens = await provider.exchange_code(
                site.api_base_url, params.get("code", ""), verifier
            )
            member = await self.accounts.member(site, BearerCredentials(tokens.access_token))
        except (OAuthError, ConnectWiseError, SiteRejected, VaultError, Problem,
                httpx.HTTPError) as error:  # fmt: skip
            logger.warning(
                "OAuth code exchange failed",
                extra={"tenant_id": user.tenant_id, "error_type": type(error).__name__},
            )
            await self._flow_failed(
                user,
                owner,
                OAuthOutcome.EXCHANGE_FAILED,
                "ConnectWise did not complete the sign-in.",
            )
            return OAuthOutcome.EXCHANGE_FAILED, None, owner.scope
        secrets = {"access_token": tokens.access_token}
        if tokens.refresh_token:
            secrets["refresh_token"] = tokens.refresh_token
        integration = await self._store(
            user,
            owner,
            site,
            member,
            AuthMethod.OAUTH2,
            secrets,
            expires_at=tokens.expires_at,
            scopes=tokens.scopes or list(provider.profile.scopes),
        )
        return OAuthOutcome.CONNECTED, integration, owner.scope

    async def _flow_failed(
        self, user: UserSession, owner: Owner, outcome: OAuthOutcome, reason: str
    ) -> None:
        existing = await self.repository.find_for_owner(owner, PROVIDER)
        if existing and existing.status is IntegrationStatus.PENDING:
            await self.repository.set_status(
                existing.id, IntegrationStatus.ERROR, reason, only_if=IntegrationStatus.PENDING
            )
        await self.repository.audit(
            f"oauth.{outcome.value}",
            tenant_id=user.tenant_id,
            user_id=user.user_id,
            integration_id=existing.id if existing else None,
        )

    # -- storing and disconnecting -------------------------------------------------------

    async def _store(
        self,
        actor: UserSession,
        owner: Owner,
        site: Site,
        member: dict[str, Any],
        method: AuthMethod,
        secrets: dict[str, str],
        *,
        expires_at: datetime | None = None,
        scopes: list[str] | None = None,
        keys_are_members: bool = False,
    ) -> Integration:
        integration_id = await self.repository.integration_id_for(owner, PROVIDER)
        sealed: dict[str, Sealed] = self.vault.seal_fields(secrets, owner.tenant_id, integration_id)
        tenant_wide = owner.scope is ConnectionScope.TENANT
        integration = await self.repository.save_connection(
            {
                "tenant_id": owner.tenant_id,
                "user_id": owner.user_id,
                "provider": PROVIDER,
                "scope": owner.scope.value,
                "connected_by": actor.user_id if tenant_wide else None,
                **_site_fields(site, method),
                "member_id": member.get("id"),
                "member_identifier": member["identifier"],
                "member_name": _member_name(member),
                "scopes": scopes or [],
                # Whether the stored credentials are the member's own (OAuth, minted
                # impersonation keys, the member's API keys): see `CredentialLeases.acting`.
                "acts_as_member": not tenant_wide
                and (method is not AuthMethod.API_KEY or keys_are_members),
            },
            sealed,
            integration_id,
            expires_at=expires_at,
        )
        await self.repository.audit(
            "connected",
            tenant_id=owner.tenant_id,
            user_id=actor.user_id,
            integration_id=integration.id,
            auth_method=method.value,
            scope=owner.scope.value,
        )
        if integration.status is IntegrationStatus.ACTIVE:
            # (A paused connection stays paused: resuming it announces it then.)
            await self.announcements.publish(events.INTEGRATION_CONNECTED, integration)
        logger.info(
            "connected ConnectWise",
            extra={"integration_id": integration.id, "tenant_id": integration.tenant_id},
        )
        return integration

    # -- finding, pausing and disconnecting ----------------------------------------------

    async def own(self, user: UserSession, integration_id: str) -> Integration:
        """The user's own connection with this id; 404 for anyone else's."""
        found = await self.repository.get_for_user(user.tenant_id, user.user_id, integration_id)
        if found is None:
            raise Problem(404, "No integration with this id.")
        return found

    async def of_tenant(self, admin: UserSession, integration_id: str) -> Integration:
        """Any connection of the admin's tenant (a user's or the tenant's); 404 for
        another tenant's, exactly as for an id that does not exist."""
        found = await self.repository.get_for_tenant(admin.tenant_id, integration_id)
        if found is None:
            raise Problem(404, "No integration with this id.")
        return found

    async def pause(self, actor: UserSession, integration: Integration) -> Integration:
        """No syncing and no write-back until resumed: leases answer 404 meanwhile."""
        return await self._move(
            actor, integration, IntegrationStatus.ACTIVE, IntegrationStatus.PAUSED, "paused"
        )

    async def resume(self, actor: UserSession, integration: Integration) -> Integration:
        return await self._move(
            actor, integration, IntegrationStatus.PAUSED, IntegrationStatus.ACTIVE, "resumed"
        )

    async def _move(
        self,
        actor: UserSession,
        integration: Integration,
        before: IntegrationStatus,
        after: IntegrationStatus,
        action: str,
    ) -> Integration:
        moved = await self.repository.set_status(integration.id, after, None, only_if=before)
        if moved is None:
            raise Problem(
                409,
                f"Only a connection that is {before.value} can be {action}; this one is "
                f"{integration.status.value}.",
                title="Not possible in this state",
            )
        await self.repository.audit(
            action,
            tenant_id=integration.tenant_id,
            user_id=actor.user_id,
            integration_id=integration.id,
        )
        paused = after is IntegrationStatus.PAUSED
        await self.announcements.publish(
            events.INTEGRATION_PAUSED if paused else events.INTEGRATION_RESUMED, moved
        )
        return moved

    async def disconnect(self, actor: UserSession, integration: Integration) -> Integration:
        """Revoke what can be revoked, forget the credentials, announce it (the aggregator
        then removes the integration's tasks) and keep an audit record naming `actor`
        (the user, or the admin who disconnected a connection of their tenant)."""
        # Callbacks are removed with the integration's own credentials: before they go.
        webhooks_removed = await self.connector.remove_webhooks(integration.id)
        revoked = await self._revoke(integration)
        await self.repository.delete_credentials(integration)
        updated = await self.repository.set_status(
            integration.id, IntegrationStatus.DISCONNECTED, None
        )
        assert updated is not None
        await self.repository.audit(
            "disconnected",
            tenant_id=integration.tenant_id,
            user_id=actor.user_id,
            integration_id=integration.id,
            revoked_at_provider=revoked,
            webhooks_removed=webhooks_removed,
        )
        await self.announcements.publish(events.INTEGRATION_DISCONNECTED, updated)
        return updated

    async def _revoke(self, integration: Integration) -> bool:
        """Only OAuth grants can be revoked through the API; API-member keys are revoked
        by an administrator in ConnectWise, and minted member keys expire on their own."""
        if integration.auth_method is not AuthMethod.OAUTH2:
            return False
        stored = await self.repository.credentials(integration)
        if stored is None or "refresh_token" not in stored.secrets:
            return False
        try:
            refresh_token = self.vault.open(
                stored.secrets["refresh_token"],
                SecretContext(integration.tenant_id, integration.id, "refresh_token"),
            )
            return await self._provider(integration.provider).revoke(
                integration.api_base_url, refresh_token
            )
        except (OAuthError, VaultError, SiteRejected, Problem, httpx.HTTPError) as error:
            # Disconnecting must work even when the provider is down: we still forget
            # the tokens, and they expire at the provider.
            logger.warning(
                "could not revoke the OAuth grant",
                extra={"integration_id": integration.id, "error_type": type(error).__name__},
            )
            return False


def _flow_owner(flow: dict[str, Any]) -> Owner:
    """Whose connection an OAuth flow makes (flows started before tenant connections
    existed name no owner: they are the user's own)."""
    scope = ConnectionScope(flow.get("scope", ConnectionScope.PERSONAL.value))
    return Owner(flow["tenant_id"], flow.get("owner_user_id", flow["user_id"]), scope)


def _site_fields(site: Site, method: AuthMethod) -> dict[str, Any]:
    return {
        "auth_method": method.value,
        "site": site.site,
        "site_url": site.site_url,
        "company_id": site.company_id,
        "codebase": site.codebase,
        "api_base_url": site.api_base_url,
    }


def _member_name(member: dict[str, Any]) -> str | None:
    name = " ".join(str(member.get(k) or "") for k in ("firstName", "lastName")).strip()
    return name or None
