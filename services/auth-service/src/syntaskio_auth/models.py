from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


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
