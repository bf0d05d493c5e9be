from __future__ import annotations

import base64
import json

from pydantic import SecretStr, model_validator

from syntaskio_common.settings import ServiceSettings

CONNECTWISE_CLOUD_HOSTS = (
    "api-na.myconnectwise.net,api-eu.myconnectwise.net,api-au.myconnectwise.net,"
    "api-aus.myconnectwise.net,api-za.myconnectwise.net,api-staging.connectwisedev.com"
)


class AuthSettings(ServiceSettings):
    port: int = 8081
    session_issuer: str = "http://127.0.0.1:8081"
    session_ttl_seconds: int = 8 * 3600
    # Private JWK (JSON) of the development issuer; generated per process when unset in dev.
    session_signing_key: SecretStr = SecretStr("")
    dev_login_enabled: bool = False
    connectwise_client_id: str = ""
    connectwise_allowed_hosts: str = CONNECTWISE_CLOUD_HOSTS
    connectwise_allow_private_network: bool = False
    connectwise_allow_http: bool = False
    # Key-encryption keys: {"key-id": "<base64 of 32 bytes>"}; the primary wraps new data keys.
    vault_keys: SecretStr = SecretStr("")
    vault_primary_key_id: str = ""

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> AuthSettings:
        self.require_real_secret("INTERNAL_API_TOKEN", self.internal_api_token)
        self.require_real_secret("VAULT_KEYS", self.vault_keys)
        if not self.is_development and (
            self.dev_login_enabled
            or self.connectwise_allow_private_network
            or self.connectwise_allow_http
        ):
            raise ValueError("development-only switches are on with environment=production")
        return self

    @property
    def allowed_hosts(self) -> frozenset[str]:
        return frozenset(h.strip().lower() for h in self.connectwise_allowed_hosts.split(",") if h)

    def keyring(self) -> dict[str, bytes]:
        raw = self.vault_keys.get_secret_value()
        if not raw:
            return {}
        return {kid: base64.b64decode(key) for kid, key in json.loads(raw).items()}
