"""A stored ConnectWise connection, as auth-service writes it, for tests of what
happens to it afterwards (renewal, key rotation)."""

from __future__ import annotations

import uuid
from datetime import datetime

from syntaskio_auth.repository import IntegrationRepository
from syntaskio_auth.vault import Vault
from syntaskio_common.integrations import Integration


async def stored_connection(
    repository: IntegrationRepository,
    vault: Vault,
    tenant: str,
    auth_method: str,
    secrets: dict[str, str],
    *,
    expires_at: datetime | None = None,
) -> Integration:
    integration_id = str(uuid.uuid4())
    return await repository.save_connection(
        {
            "tenant_id": tenant,
            "user_id": "u1",
            "provider": "connectwise",
            "auth_method": auth_method,
            "site": "cw.example",
            "site_url": "https://cw.example",
            "company_id": "acme",
            "codebase": "v2025_1/",
            "api_base_url": "https://cw.example/v2025_1/apis/3.0/",
            "member_identifier": "atech",
        },
        vault.seal_fields(secrets, tenant, integration_id),
        integration_id,
        expires_at=expires_at,
    )
