"""Integrations as the services show them to users: the connection (auth-service) and how
its syncing goes (connector). The gateway combines both for the settings page."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field


class AuthMethod(StrEnum):
    OAUTH2 = "oauth2"
    API_KEY = "api_key"
    IMPERSONATION = "impersonation"


class ConnectionScope(StrEnum):
    """Whose ConnectWise account a connection uses."""

    PERSONAL = "personal"  # the technician's own: their work, their keys
    # The company's integration (API) member, connected once by an admin: the work of
    # every technician mapped to a ConnectWise member (`MemberMapping`), synced together.
    TENANT = "tenant"


# A tenant connection belongs to no user: its `user_id` is this (never a real user id).
TENANT_CONNECTION_USER: Final = ""


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
    user_id: str  # TENANT_CONNECTION_USER for the tenant's connection
    scope: ConnectionScope = ConnectionScope.PERSONAL
    connected_by: str | None = None  # the admin who connected a tenant connection
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


class Trigger(StrEnum):
    SCHEDULED = "scheduled"
    MANUAL = "manual"
    CONNECTED = "connected"
    WEBHOOK = "webhook"
    WRITE_BACK = "write_back"  # our own change to a record, fetched back
    RESUMED = "resumed"  # an admin resumed a paused connection
    MEMBERS_CHANGED = "members_changed"  # a tenant connection's member mapping changed
    DETAIL = "detail"  # a ticket opened on the dashboard was gone from ConnectWise


class JobStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEFERRED = "deferred"  # budget, a 429 pause or an open circuit: comes back later
    FAILED = "failed"
    # Never finished: its connector stopped (killed, restarted; the next run finds it and
    # reconciles) or it ran out of time (SYNC_RUN_TIMEOUT_SECONDS; the next run goes on
    # from the listing's saved progress).
    INTERRUPTED = "interrupted"


class SyncJob(BaseModel):
    id: str
    tenant_id: str
    integration_id: str
    trigger: Trigger
    status: JobStatus
    modes: dict[str, str] = {}
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: int | None = None
    fetched: int = 0
    published: int = 0
    tombstoned: int = 0
    api_requests: int = 0
    budget_remaining: int | None = None
    error: str | None = None
    retry_at: datetime | None = None  # a deferred job's integration is due again then
    # When the run was due (its claim's due time): it started `started_at - due_at` late.
    due_at: datetime | None = None

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> SyncJob:
        return cls.model_validate({**doc, "id": doc["_id"]})


class SyncBudget(BaseModel):
    limit_per_hour: int
    used_last_hour: int
    remaining: int
    paused_until: datetime | None


class WebhookStatus(BaseModel):
    enabled: bool
    registered: bool
    error: str | None
    accepted: int
    rejected: dict[str, int]  # by reason: unsigned, forged, malformed, unverifiable


# A connection's own sync interval: at least two minutes (an idle run costs a few of its
# 1,000 requests an hour), at most a day.
MIN_SYNC_INTERVAL_MINUTES: Final = 2
MAX_SYNC_INTERVAL_MINUTES: Final = 24 * 60


class SyncOptions(BaseModel):
    """What a connection syncs beyond the member's tickets (Integration Settings)."""

    model_config = ConfigDict(extra="forbid")

    # Open phases of the projects the member works on, as tasks of their own. Off by
    # default: ConnectWise assigns phases to nobody, and listing them costs a request per
    # project per refresh (docs/connectwise.md).
    project_phases: bool = False
    # Minutes between the connection's scheduled syncs; unset: the service's default
    # (SYNC_INTERVAL_SECONDS). Webhooks bring changes sooner either way.
    sync_interval_minutes: int | None = Field(
        default=None, ge=MIN_SYNC_INTERVAL_MINUTES, le=MAX_SYNC_INTERVAL_MINUTES
    )


class SyncStatus(BaseModel):
    """What the settings page shows about an integration's syncing."""

    state: Literal["syncing", "idle", "degraded", "paused"]
    reason: str | None
    last_job: SyncJob | None
    next_sync_at: datetime | None
    budget: SyncBudget
    webhooks: WebhookStatus
    options: SyncOptions = Field(default_factory=SyncOptions)
