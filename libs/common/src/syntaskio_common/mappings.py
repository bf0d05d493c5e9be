"""A tenant connection's member mapping: which ConnectWise member each technician is.

An admin connects the company once (`ConnectionScope.TENANT`); each technician who has
signed in is then mapped to a ConnectWise member. A mapping is proposed by e-mail (the
member's `officeEmail` or `primaryEmail` equals the technician's verified e-mail) or
requested by the technician, and only synced once an admin has confirmed it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from syntaskio_common.integrations import IntegrationStatus
from syntaskio_common.sessions import Role

# ConnectWise member identifiers: letters, digits and a few marks (never a condition's
# quote or operator), as the member endpoints take them in a path.
MEMBER_IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,29}$"


class MappingState(StrEnum):
    PROPOSED = "proposed"  # found by e-mail; not synced until an admin confirms it
    REQUESTED = "requested"  # asked for by the technician; waits for an admin
    CONFIRMED = "confirmed"  # synced: this member's work is the technician's


class MappingOrigin(StrEnum):
    EMAIL = "email"
    TECHNICIAN = "technician"
    ADMIN = "admin"


class MemberMapping(BaseModel):
    """One technician's ConnectWise member under a tenant connection."""

    integration_id: str
    tenant_id: str
    user_id: str
    user_name: str | None = None
    user_email: str | None = None
    member_identifier: str
    member_id: int | None = None
    member_name: str | None = None
    state: MappingState
    origin: MappingOrigin
    updated_at: datetime
    updated_by: str  # the user who proposed, requested or confirmed it ("system": e-mail)


class MappingChange(BaseModel):
    """An admin sets (or changes) a technician's member; it is confirmed at once."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    member_identifier: str = Field(pattern=MEMBER_IDENTIFIER)


class MappingRequest(BaseModel):
    """A technician asks to be mapped: to a member they name, or (None) to the member
    whose e-mail is their verified e-mail."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    member_identifier: str | None = Field(default=None, pattern=MEMBER_IDENTIFIER)


class TeamMember(BaseModel):
    """A confirmed mapping as the connector needs it (in the credential lease)."""

    identifier: str
    user_id: str


class TenantUser(BaseModel):
    """Someone who has signed in to the tenant (the people an admin can map)."""

    tenant_id: str
    user_id: str
    name: str | None = None
    email: str | None = None  # verified by the identity provider, else None
    roles: tuple[Role, ...]
    last_signed_in_at: datetime


class AuditRecord(BaseModel):
    """Who did what to a connection, when (auth-service's `audit_log`)."""

    id: str
    at: datetime
    action: str
    tenant_id: str
    integration_id: str | None = None
    user_id: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> AuditRecord:
        return cls.model_validate({**doc, "id": doc["_id"]})


class TenantConnectionView(BaseModel):
    """What a technician sees of their company's connection: where it points, whether it
    syncs, and their own mapping (None: not mapped yet)."""

    integration_id: str
    site: str
    company_id: str
    status: IntegrationStatus
    mapping: MemberMapping | None = None
