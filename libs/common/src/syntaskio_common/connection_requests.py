"""What a user sends to connect a source system: validated the same way by the gateway
(the public API) and by auth-service (which acts on it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

_SITE = Field(min_length=1, max_length=253, examples=["api-na.myconnectwise.net"])
# Starts with a letter, digit, "_" or "-": "." and ".." would be path segments in a URL.
_COMPANY_ID = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


class ApiKeyConnectionRequest(BaseModel):
    """API-member keys. `member` (identifier or e-mail) names whose work to show when the
    keys belong to an integration (API) member; with `impersonate` the keys are used only
    to mint short-lived keys that act as that member."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    site: str = _SITE
    company_id: str = _COMPANY_ID
    public_key: SecretStr = Field(min_length=1, max_length=128)
    private_key: SecretStr = Field(min_length=1, max_length=128)
    member: str | None = Field(default=None, min_length=1, max_length=254)
    impersonate: bool = False

    @model_validator(mode="after")
    def _impersonation_names_a_member(self) -> ApiKeyConnectionRequest:
        if self.impersonate and not self.member:
            raise ValueError("impersonation needs the member to act as")
        return self

    def forwarded(self) -> dict[str, Any]:
        """The body to pass on to auth-service: the keys in clear, over the internal hop."""
        return {
            **self.model_dump(exclude={"public_key", "private_key"}),
            "public_key": self.public_key.get_secret_value(),
            "private_key": self.private_key.get_secret_value(),
        }


class OAuthStartRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    site: str = _SITE
    company_id: str = _COMPANY_ID
