"""The credential lease: what auth-service hands the connector (internal API only)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class CredentialLease(BaseModel):
    """Everything needed to call ConnectWise for one integration. Never logged: the keys
    are left out of the repr."""

    integration_id: str
    tenant_id: str
    user_id: str
    api_base_url: str
    site_url: str
    company_id: str
    member_identifier: str
    client_id: str
    public_key: str = Field(repr=False)
    private_key: str = Field(repr=False)
