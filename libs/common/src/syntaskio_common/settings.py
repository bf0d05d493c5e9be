"""The one settings pattern: every service subclasses `ServiceSettings`."""

from __future__ import annotations

from enum import StrEnum

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    # Shared secret the services present to each other's internal endpoints.
    internal_api_token: SecretStr = SecretStr("development-only")

    @property
    def is_development(self) -> bool:
        return self.environment is not Environment.PRODUCTION

    def require_real_secret(self, name: str, value: SecretStr) -> None:
        """Refuse to run outside development with a missing or placeholder secret."""
        if not self.is_development and value.get_secret_value().strip() in PLACEHOLDER_SECRETS:
            raise ValueError(f"{name} must be set to a real secret when environment=production")
