from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from syntaskio_common.sessions import Role


class OAuthStart(BaseModel):
    authorization_url: str
    expires_at: datetime


class OAuthOutcome(StrEnum):
    """What the settings page is told after the provider sent the user back."""

    CONNECTED = "connected"
    DENIED = "denied"
    EXPIRED_STATE = "expired_state"
    EXCHANGE_FAILED = "exchange_failed"


# local@domain: no spaces, one "@" (the gateway's dev login checks the same).
EMAIL = r"^[^@\s]+@[^@\s]+$"


class DevSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    user_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.@+-]+$")
    tenant_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str | None = Field(default=None, max_length=128)
    # Taken as verified (what an identity provider's `email_verified` says).
    email: str | None = Field(default=None, max_length=254, pattern=EMAIL)
    roles: tuple[Role, ...] = Field(default=(Role.TECHNICIAN,), min_length=1)


class SessionToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme name, not a secret
    expires_in: int
    # After a sign-in: the local page the user set out for.
    return_to: str | None = None


# A local path only (`/settings?x=1`), never another site (`//evil.example`, `/\\evil`).
LOCAL_PATH = r"^/(?:[A-Za-z0-9._~%!$&'()*+,;=:@?-][A-Za-z0-9/._~%!$&'()*+,;=:@?-]{0,499})?$"


class SignInStart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    return_to: str = Field(default="/", pattern=LOCAL_PATH)


class SignInStarted(BaseModel):
    authorization_url: str
    binding: str
    expires_in: int


class SignInFinish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    state: str = Field(min_length=1, max_length=512)
    code: str | None = Field(default=None, max_length=4096)
    error: str | None = Field(default=None, max_length=256)
    binding: str | None = Field(default=None, max_length=256)
