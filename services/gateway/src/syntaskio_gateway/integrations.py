"""The settings page's view of an integration: the connection as auth-service keeps it,
with how its syncing goes from the connector, summed up in one `state`."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from syntaskio_common.integrations import (
    Integration,
    IntegrationStatus,
    JobStatus,
    SyncOptions,
    SyncStatus,
)


class ConnectionState(StrEnum):
    """The connection's own status (`IntegrationStatus`), with `active` told apart."""

    PENDING = "pending"
    ACTIVE = "active"
    SYNCING = "syncing"
    DEGRADED = "degraded"
    PAUSED = "paused"
    EXPIRED = "expired"
    ERROR = "error"
    DISCONNECTED = "disconnected"


class IntegrationOverview(Integration):
    state: ConnectionState = Field(
        description="What to show: the connection's status, or for an active one how its "
        "syncing goes (`syncing`, `degraded` when throttled or failing upstream, `error` "
        "when the last sync failed)."
    )
    state_reason: str | None = Field(description="Why, for expired, error and degraded")
    sync: SyncStatus | None = Field(
        description="Sync status, budget and history head; null when not connected or "
        "while the connector cannot be reached."
    )
    options: SyncOptions = Field(
        description="What the connection syncs beyond the member's tickets (set with PUT "
        "…/sync-options). The defaults while `sync` is null: not connected, or the connector "
        "cannot be reached (so not necessarily what is stored)."
    )


def overview(integration: Integration, sync: SyncStatus | None) -> IntegrationOverview:
    state, reason = connection_state(integration, sync)
    return IntegrationOverview(
        **integration.model_dump(),
        state=state,
        state_reason=reason,
        sync=sync,
        options=sync.options if sync else SyncOptions(),
    )


def connection_state(
    integration: Integration, sync: SyncStatus | None
) -> tuple[ConnectionState, str | None]:
    if integration.status is not IntegrationStatus.ACTIVE:
        return ConnectionState(integration.status.value), integration.last_error
    if sync is None or sync.state == "idle":
        last = sync.last_job if sync else None
        if last is not None and last.status is JobStatus.FAILED:
            return ConnectionState.ERROR, last.error
        return ConnectionState.ACTIVE, None
    if sync.state == "syncing":
        return ConnectionState.SYNCING, None
    return ConnectionState.DEGRADED, sync.reason
