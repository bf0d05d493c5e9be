from __future__ import annotations

import base64
import json
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from syntaskio_common.settings import (
    PLACEHOLDER_SECRETS,
    ConnectWiseEgressSettings,
    SessionSettings,
)


class OAuthProfile(BaseModel):
    """One OAuth2 provider's endpoints and client registration. Endpoint URLs may contain
    `{api_base_url}` (e.g. `https://host/v2025_1/apis/3.0/`): ConnectWise serves OAuth
    per site, so the URL is only known once the user has named their site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    authorize_url: str = "{api_base_url}system/oauth/authorize"
    token_url: str = "{api_base_url}system/oauth/token"  # noqa: S105 - a URL
    revocation_url: str | None = "{api_base_url}system/oauth/revoke"
    scopes: tuple[str, ...] = ("ConnectWiseManageCallback", "ServiceTicket", "ProjectTask")
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105 - a method name

    @property
    def enabled(self) -> bool:
        secret = self.client_secret.get_secret_value().strip()
        return bool(self.client_id) and secret not in PLACEHOLDER_SECRETS


def _default_oauth_providers() -> dict[str, OAuthProfile]:
    return {"connectwise": OAuthProfile()}


class AuthSettings(SessionSettings, ConnectWiseEgressSettings):
    port: int = 8081
    # The connector's internal API (a disconnect asks it to remove ConnectWise callbacks).
    connector_url: str = "http://127.0.0.1:8082"
    # A session's token lasts this long and is renewed while the person uses it, up to
    # `session_max_age_seconds` after they signed in.
    session_ttl_seconds: int = Field(default=3600, ge=60, le=24 * 3600)
    session_max_age_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    # Private JWK (JSON) of the session issuer; generated per process when unset in dev.
    session_signing_key: SecretStr = SecretStr("")
    dev_login_enabled: bool = False
    # Browser sign-in with the company's OpenID Connect provider (off without an issuer).
    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    # The gateway's callback, registered with the provider.
    oidc_redirect_uri: str = "http://127.0.0.1:8080/api/v1/session/callback"
    oidc_scopes: str = "openid profile email"
    # The claim naming the user's company, and which values are our tenants:
    # {"<claim value>": "<tenant id>"} (e.g. Entra ID's `tid` GUID -> "acme-msp").
    oidc_tenant_claim: str = "tenant_id"
    oidc_tenants: dict[str, str] = Field(default_factory=dict)
    # The claim listing the user's roles or groups, and the values that make each role
    # (comma-separated); a user with none gets `oidc_default_role` ("" refuses them).
    oidc_roles_claim: str = "roles"
    oidc_admin_values: str = "admin"
    oidc_technician_values: str = "technician"
    oidc_default_role: str = "technician"
    # Where the provider sends the browser after it ended its own session.
    oidc_post_logout_redirect_uri: str = "http://127.0.0.1:8080/"
    oidc_sign_in_ttl_seconds: int = Field(default=600, ge=60, le=3600)
    # The `clientId` header ConnectWise requires on every API call (one GUID per product).
    connectwise_client_id: str = ""
    # OAuth2 providers by name (JSON); a provider without a client secret is switched off.
    oauth_providers: Annotated[
        dict[str, OAuthProfile], Field(default_factory=_default_oauth_providers)
    ]
    # The public callback URL registered with the provider (served by the gateway).
    oauth_redirect_uri: str = "http://127.0.0.1:8080/api/v1/integrations/connectwise/oauth/callback"
    # Where the browser lands after the OAuth callback; `?connectwise=<status>` is appended.
    oauth_result_url: str = "/settings"
    # Where an admin lands after connecting the company with OAuth.
    oauth_admin_result_url: str = "/admin"
    oauth_state_ttl_seconds: int = 600
    # Renew OAuth access tokens and impersonation keys this long before they expire.
    renew_ahead_seconds: int = 300
    # Failed renewals in a row (with the credential already expired) before `expired`.
    max_renewal_failures: int = 3
    # How long a connector may use leased credentials before asking again.
    lease_ttl_seconds: int = 900
    # Key-encryption keys: {"key-id": "<base64 of 32 bytes>"}; the primary wraps new data keys.
    vault_keys: SecretStr = SecretStr("")
    vault_primary_key_id: str = ""

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> AuthSettings:
        self.require_real_secret("INTERNAL_API_TOKEN", self.internal_api_token)
        self.require_real_secret("VAULT_KEYS", self.vault_keys)
        self.refuse_development_egress()
        if self.is_development:
            return self
        if self.dev_login_enabled:
            raise ValueError("DEV_LOGIN_ENABLED is development-only")
        self.require_real_secret("SESSION_SIGNING_KEY", self.session_signing_key)
        if not self.oidc_issuer.startswith("https://"):
            raise ValueError("OIDC_ISSUER (the identity provider, https) is required")
        self.require_real_secret("OIDC_CLIENT_SECRET", self.oidc_client_secret)
        if not self.oidc_client_id or not self.oidc_tenants:
            raise ValueError("OIDC_CLIENT_ID and OIDC_TENANTS are required")
        if not self.connectwise_client_id:
            raise ValueError("CONNECTWISE_CLIENT_ID (the registered clientId GUID) is required")
        return self

    @property
    def oidc_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    def keyring(self) -> dict[str, bytes]:
        raw = self.vault_keys.get_secret_value()
        if not raw:
            return {}
        return {kid: base64.b64decode(key) for kid, key in json.loads(raw).items()}
