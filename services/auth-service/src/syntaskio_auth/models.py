from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class AuthMethod(StrEnum):
    OAUTH2 = "oauth2"
    API_KEY = "api_key"
    IMPERSONATION = "impersonation"


class IntegrationStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    ERROR = "error"
    EXPIRED = "expired"
    PAUSED = "paused"
    DISCONNECTED = "disconnected"


class Integration(BaseModel):
    """A user's connection to a source system, as shown to that user (never secrets)."""

    id: str
    tenant_id: str
    user_id: str
    provider: str
    auth_method: AuthMethod
    site: str
    site_url: str
    company_id: str
    codebase: str
    api_base_url: str
    member_id: int | None = None
    member_identifier: str | None = None  # None while a connection is pending
    member_name: str | None = None
    scopes: list[str] = Field(default_factory=list)
    status: IntegrationStatus
    last_error: str | None = None
    created_at: datetime
    updated_at: datetime
    last_validated_at: datetime | None = None
    disconnected_at: datetime | None = None
    # Grows each time the user connects. Everything synced is stamped with it, so the
    # aggregator can drop what an earlier, since disconnected, connection still sends.
    generation: int = 0

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Integration:
        return cls.model_validate({**doc, "id": doc["_id"]})


class OAuthStart(BaseModel):
    authorization_url: str
    expires_at: datetime


class OAuthOutcome(StrEnum):
    """What the settings page is told after the provider sent the user back."""

    CONNECTED = "connected"
    DENIED = "denied"
    EXPIRED_STATE = "expired_state"
    EXCHANGE_FAILED = "exchange_failed"


class DevSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@+-]+$")
    tenant_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str | None = Field(default=None, max_length=128)


class SessionToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int
