"""The credential lease: what auth-service hands the connector (internal API only)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from syntaskio_common.commands import PrincipalId
from syntaskio_common.connectwise import ApiKeyCredentials, BearerCredentials, Credentials
from syntaskio_common.integrations import ConnectionScope
from syntaskio_common.mappings import TeamMember


class AuthScheme(StrEnum):
    BASIC = "basic"  # API-member keys (also short-lived impersonation keys)
    BEARER = "bearer"  # an OAuth2 access token


class CredentialLease(BaseModel):
    """Everything needed to call ConnectWise for one integration, valid until
    `expires_at` (None: until revoked). Never logged: secrets are left out of the repr."""

    integration_id: str
    tenant_id: str
    user_id: str
    api_base_url: str
    site_url: str
    company_id: str
    # Whose credentials: for a personal connection the member whose work is synced; for
    # a tenant connection the integration (API) member acting for everyone in `members`.
    member_identifier: str
    client_id: str
    scheme: AuthScheme
    public_key: str | None = Field(default=None, repr=False)
    private_key: str | None = Field(default=None, repr=False)
    access_token: str | None = Field(default=None, repr=False)
    expires_at: datetime | None = None
    # Which stored credentials these are: report it back when ConnectWise rejects them
    # (`LeaseRequest.rejected_version`) so they are renewed once, not once per caller.
    version: int
    # The connection's generation (see auth-service's Integration): stamped on every raw
    # event so records synced before a disconnect can be told apart from a reconnect's.
    generation: int = 0
    scope: ConnectionScope = ConnectionScope.PERSONAL
    # A tenant connection's confirmed mappings (ConnectWise member → user); empty for a
    # personal connection (see `team`).
    members: list[TeamMember] = Field(default_factory=list)

    @model_validator(mode="after")
    def _secrets_match_scheme(self) -> CredentialLease:
        if self.scheme is AuthScheme.BASIC and not (self.public_key and self.private_key):
            raise ValueError("a basic lease needs public_key and private_key")
        if self.scheme is AuthScheme.BEARER and not self.access_token:
            raise ValueError("a bearer lease needs access_token")
        return self

    def team(self) -> list[TeamMember]:
        """Whose work this connection syncs: the mapped members of a tenant connection,
        or the one member of a personal connection."""
        if self.scope is ConnectionScope.TENANT:
            return list(self.members)
        return [TeamMember(identifier=self.member_identifier, user_id=self.user_id)]

    def credentials(self) -> Credentials:
        if self.scheme is AuthScheme.BEARER:
            assert self.access_token is not None  # checked by the validator
            return BearerCredentials(self.access_token)
        assert self.public_key is not None
        assert self.private_key is not None
        return ApiKeyCredentials(self.company_id, self.public_key, self.private_key)


class LeaseRequest(BaseModel):
    rejected_version: int | None = Field(
        default=None,
        description="ConnectWise answered 401 to the credentials of this version: renew them.",
    )
    cleanup: bool = Field(
        default=False,
        description="Only to remove what the connection left in ConnectWise (its callbacks) "
        "as it is disconnected: leased even while paused or while the company has "
        "ConnectWise off, which refuse every other lease.",
    )


class ActingLeaseRequest(BaseModel):
    """Whose ConnectWise member to act as (in the body: a user id may hold any visible
    character, so it never goes into a path)."""

    model_config = ConfigDict(extra="forbid")

    tenant_id: PrincipalId
    user_id: PrincipalId
