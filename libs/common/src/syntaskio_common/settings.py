"""The one settings pattern: every service subclasses `ServiceSettings`."""

from __future__ import annotations

from enum import StrEnum

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from syntaskio_common.egress import CONNECTWISE_CLOUD_HOSTS, SitePolicy

# Values that must never reach a non-development deployment.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "dev", "secret", "development-only"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ServiceSettings(BaseSettings):
    """Settings every service shares; read from the environment (no prefix) and `.env`."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 8000
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # Partitions used when a service creates a missing topic (embedded broker, tests).
    kafka_topic_partitions: int = 3
    mongodb_url: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    mongodb_database: str = "syntaskio"
    # Proxies whose X-Forwarded-For is trusted for the client address (rate limits).
    forwarded_allow_ips: str = "127.0.0.1"
    # Shared secret the back-end services (auth-service, connector) present to each
    # other's internal endpoints, credential leases among them.
    internal_api_token: SecretStr = SecretStr("development-only")
    # What the gateway presents to the connector's endpoints for sync status, sync now and
    # command outcomes: a separate secret, so the public-facing gateway cannot lease
    # credentials.
    connector_api_token: SecretStr = SecretStr("development-only")

    @property
    def is_development(self) -> bool:
        return self.environment is not Environment.PRODUCTION

    def require_real_secret(self, name: str, value: SecretStr) -> None:
        """Refuse to run outside development with a missing or placeholder secret."""
        if not self.is_development and value.get_secret_value().strip() in PLACEHOLDER_SECRETS:
            raise ValueError(f"{name} must be set to a real secret when environment=production")


class SessionSettings(ServiceSettings):
    """For services that accept end-user sessions: OIDC JWTs from a configured issuer."""

    session_issuer: str = "http://127.0.0.1:8081"
    session_audience: str = "syntaskio"
    # The issuer's signing keys; empty means auth-service's own development issuer.
    session_jwks_url: str = ""


class ConnectWiseEgressSettings(ServiceSettings):
    """For services that call a user's ConnectWise site: where they may connect."""

    # Comma-separated; the ConnectWise cloud hosts plus any on-premises host names.
    connectwise_allowed_hosts: str = ",".join(sorted(CONNECTWISE_CLOUD_HOSTS))
    # Development and tests only: the sandbox runs on plain HTTP on loopback.
    connectwise_allow_private_network: bool = False
    connectwise_allow_http: bool = False

    def site_policy(self) -> SitePolicy:
        return SitePolicy(
            frozenset(h.strip().lower() for h in self.connectwise_allowed_hosts.split(",") if h),
            allow_private_network=self.connectwise_allow_private_network,
            allow_http=self.connectwise_allow_http,
        )

    def refuse_development_egress(self) -> None:
        if not self.is_development and (
            self.connectwise_allow_private_network or self.connectwise_allow_http
        ):
            raise ValueError("CONNECTWISE_ALLOW_PRIVATE_NETWORK/ALLOW_HTTP are development-only")
