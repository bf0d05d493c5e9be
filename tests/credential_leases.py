"""A credential lease as auth-service would give one, for tests that stand in for it."""

from __future__ import annotations

from typing import Any

from syntaskio_common.credentials import AuthScheme, CredentialLease

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
