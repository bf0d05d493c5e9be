"""Connecting a user's ConnectWise account: validate live, seal the keys, store, announce."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
from faststream.kafka import KafkaBroker

from syntaskio_auth.models import (
    ApiKeyConnectionRequest,
    AuthMethod,
    Integration,
    IntegrationStatus,
)
from syntaskio_auth.repository import IntegrationRepository, new_integration_id
from syntaskio_auth.site_guard import SitePolicy, SiteRejected, check_site
from syntaskio_auth.vault import SecretContext, Vault
from syntaskio_common import events, topics
from syntaskio_common.connectwise import (
    ApiKeyCredentials,
    ConnectWiseClient,
    ConnectWiseError,
    api_base_url,
    fetch_codebase,
)
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.kafka import publish
from syntaskio_common.problems import Problem
from syntaskio_common.sessions import UserSession

logger = logging.getLogger(__name__)
PROVIDER = "connectwise"
_SECRET_FIELDS = ("public_key", "private_key")


@dataclass
class Connections:
    repository: IntegrationRepository
    vault: Vault
    http: httpx.AsyncClient
    broker: KafkaBroker
    site_policy: SitePolicy
    client_id: str

    async def connect_api_key(
        self, user: UserSession, request: ApiKeyConnectionRequest
    ) -> Integration:
        try:
            site_url = await check_site(request.site, self.site_policy)
        except SiteRejected as error:
            raise Problem(400, str(error), title="Site not allowed") from error
        credentials = ApiKeyCredentials(
            request.company_id,
            request.public_key.get_secret_value(),
            request.private_key.get_secret_value(),
        )
        member, codebase = await self._validate(site_url, credentials)
        existing = await self.repository.find_for_user(user.tenant_id, user.user_id, PROVIDER)
        integration_id = existing.id if existing else new_integration_id()
        sealed = {
            name: self.vault.seal(
                getattr(credentials, name), SecretContext(user.tenant_id, integration_id, name)
            )
            for name in _SECRET_FIELDS
        }
        integration = await self.repository.save_connection(
            {
                "tenant_id": user.tenant_id,
                "user_id": user.user_id,
                "provider": PROVIDER,
                "auth_method": AuthMethod.API_KEY.value,
                "site": request.site,
                "site_url": site_url,
                "company_id": request.company_id,
                "codebase": codebase,
                "api_base_url": api_base_url(site_url, codebase),
                "member_id": member.get("id"),
                "member_identifier": member["identifier"],
                "member_name": _member_name(member),
                "status": IntegrationStatus.ACTIVE.value,
                "last_error": None,
            },
            sealed,
            integration_id,
        )
        await self._announce(integration)
        logger.info(
            "connected ConnectWise",
            extra={"integration_id": integration.id, "tenant_id": integration.tenant_id},
        )
        return integration

    async def _validate(
        self, site_url: str, credentials: ApiKeyCredentials
    ) -> tuple[dict[str, Any], str]:
        try:
            codebase = await fetch_codebase(self.http, site_url, credentials.company_id)
            if codebase is None:
                raise Problem(
                    400,
                    f"ConnectWise does not know the company id {credentials.company_id!r} "
                    "on this site.",
                    title="Unknown company",
                )
            client = ConnectWiseClient(
                self.http, api_base_url(site_url, codebase), credentials, self.client_id
            )
            found = await client.get("system/myMembers")
        except ConnectWiseError as error:
            if error.status in (401, 403):
                raise Problem(
                    400, "ConnectWise rejected the API keys.", title="Invalid credentials"
                ) from error
            raise Problem(
                502, f"ConnectWise answered with an error: {error.message}", title="Upstream error"
            ) from error
        except httpx.HTTPError as error:
            raise Problem(
                502, "ConnectWise could not be reached.", title="Upstream unreachable"
            ) from error
        member = found[0] if isinstance(found, list) and found else found
        if not isinstance(member, dict) or not member.get("identifier"):
            raise Problem(502, "ConnectWise did not say which member the keys belong to.")
        return member, codebase

    async def _announce(self, integration: Integration) -> None:
        record = events.encode_event(
            event_id=f"{integration.id}:connected:{integration.updated_at.isoformat()}",
            source="/syntaskio/auth-service",
            event_type=events.INTEGRATION_CONNECTED,
            subject=f"integration/{integration.id}",
            key=integration.id,
            data=integration.model_dump(mode="json"),
        )
        await publish(self.broker, topics.INTEGRATIONS, record)

    async def lease(self, integration_id: str) -> CredentialLease:
        integration = await self.repository.get(integration_id)
        if integration is None or integration.status is not IntegrationStatus.ACTIVE:
            raise Problem(404, "No active integration with this id.")
        sealed = await self.repository.sealed_secrets(integration)
        opened = {
            name: self.vault.open(
                sealed[name], SecretContext(integration.tenant_id, integration.id, name)
            )
            for name in _SECRET_FIELDS
        }
        return CredentialLease(
            integration_id=integration.id,
            tenant_id=integration.tenant_id,
            user_id=integration.user_id,
            api_base_url=integration.api_base_url,
            site_url=integration.site_url,
            company_id=integration.company_id,
            member_identifier=integration.member_identifier,
            client_id=self.client_id,
            **opened,
        )


def _member_name(member: dict[str, Any]) -> str | None:
    name = " ".join(str(member.get(k) or "") for k in ("firstName", "lastName")).strip()
    return name or None
