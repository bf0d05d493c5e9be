"""The one settings pattern: every service subclasses `ServiceSettings`."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from syntaskio_common.egress import CONNECTWISE_CLOUD_HOSTS, SitePolicy

# Values that must never reach a non-development deployment.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "dev", "secret", "development-only"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class KafkaSecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"  # TLS
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"  # SASL over TLS


class KafkaSaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class ServiceSettings(BaseSettings):
    """Settings every service shares; read from the environment (no prefix) and `.env`."""

    # hide_input_in_errors: a refused setting must not print the others (secrets among them).
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", hide_input_in_errors=True)

    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    host: str = "127.0.0.1"
    port: int = 8000
    # Prometheus metrics (`GET /metrics`) on a port of their own, so the public entry
    # (the Ingress to the gateway's PORT) never serves them. Unset: no metrics endpoint.
    metrics_port: int | None = None
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # How every Kafka client of the service connects (syntaskio_common.kafka): TLS with
    # a CA of its own and a client certificate, and/or SASL.
    kafka_security_protocol: KafkaSecurityProtocol = KafkaSecurityProtocol.PLAINTEXT
    kafka_ssl_ca_file: str | None = None  # PEM; unset: the system's trusted CAs
    kafka_ssl_cert_file: str | None = None  # PEM client certificate (mutual TLS)
    kafka_ssl_key_file: str | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_sasl_mechanism: KafkaSaslMechanism = KafkaSaslMechanism.SCRAM_SHA_512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # The longest the broker may hold a consumer's fetch while it has nothing new. Kafka
    # answers as soon as a record arrives, so its default (500) costs no latency there;
    # the embedded broker (Tansu) answers only as its wait runs out (measured: up to half
    # of it after the record came), so the devstack sets it short (tools/devstack).
    kafka_fetch_max_wait_ms: int = Field(default=500, ge=1, le=30_000)
    # Partitions used when a service creates a missing topic (embedded broker, tests).
    kafka_topic_partitions: int = 3
    mongodb_url: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    mongodb_database: str = "syntaskio"
    # What one client can make the service hold (syntaskio_common.request_limits): the
    # time to send a request's headers and its body, and the requests served at once
    # (live streams included; past it, 503 with Retry-After).
    header_read_timeout_seconds: float = 10.0
    body_read_timeout_seconds: float = 30.0
    max_concurrent_requests: int = 1000
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

    @property
    def kafka_uses_tls(self) -> bool:
        return self.kafka_security_protocol in (
            KafkaSecurityProtocol.SSL,
            KafkaSecurityProtocol.SASL_SSL,
        )

    @property
    def kafka_uses_sasl(self) -> bool:
        return self.kafka_security_protocol in (
            KafkaSecurityProtocol.SASL_PLAINTEXT,
            KafkaSecurityProtocol.SASL_SSL,
        )

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> ServiceSettings:
        protocol = self.kafka_security_protocol.value
        if self.kafka_uses_sasl and not (self.kafka_sasl_username and self.kafka_sasl_password):
            raise ValueError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and "
                "KAFKA_SASL_PASSWORD"
            )
        if bool(self.kafka_ssl_cert_file) != bool(self.kafka_ssl_key_file):
            raise ValueError("KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE go together")
        if not self.kafka_uses_tls and (self.kafka_ssl_ca_file or self.kafka_ssl_cert_file):
            raise ValueError(
                f"KAFKA_SSL_* files need KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL, not {protocol}"
            )
        return self

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
