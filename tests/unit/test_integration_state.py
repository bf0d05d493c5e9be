"""The one state the settings page shows for an integration: the connection's own status,
and for an active connection how its syncing goes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from syntaskio_common.integrations import (
    AuthMethod,
    Integration,
    IntegrationStatus,
    JobStatus,
    SyncBudget,
    SyncJob,
    SyncStatus,
    Trigger,
    WebhookStatus,
)
from syntaskio_gateway.integrations import ConnectionState, connection_state, overview

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def integration(status: IntegrationStatus, last_error: str | None = None) -> Integration:
    return Integration(
        id="i-1",
        tenant_id="acme",
        user_id="alex",
        provider="connectwise",
        auth_method=AuthMethod.OAUTH2,
        site="na.myconnectwise.net",
        site_url="https://na.myconnectwise.net",
        company_id="acme",
        codebase="v4_6_release/",
        api_base_url="https://api-na.myconnectwise.net/v4_6_release/apis/3.0/",
        status=status,
        last_error=last_error,
        created_at=NOW,
        updated_at=NOW,
    )


def sync(state: Any, reason: str | None = None, last: JobStatus | None = None) -> SyncStatus:
    job = (
        SyncJob(
            id="j-1",
            tenant_id="acme",
            integration_id="i-1",
            trigger=Trigger.SCHEDULED,
            status=last,
            started_at=NOW,
            error="ConnectWise answered 500" if last is JobStatus.FAILED else None,
        )
        if last
        else None
    )
    return SyncStatus(
        state=state,
        reason=reason,
        last_job=job,
        next_sync_at=None,
        budget=SyncBudget(limit_per_hour=1000, used_last_hour=10, remaining=990, paused_until=None),
        webhooks=WebhookStatus(enabled=True, registered=True, error=None, accepted=0, rejected={}),
    )


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (IntegrationStatus.EXPIRED, ConnectionState.EXPIRED),
        (IntegrationStatus.ERROR, ConnectionState.ERROR),
        (IntegrationStatus.PENDING, ConnectionState.PENDING),
        (IntegrationStatus.PAUSED, ConnectionState.PAUSED),
        (IntegrationStatus.DISCONNECTED, ConnectionState.DISCONNECTED),
    ],
)
def test_a_connection_that_is_not_active_shows_its_own_status_and_error(
    status: IntegrationStatus, expected: ConnectionState
) -> None:
    # Whatever the last sync did: the connection itself needs the user first.
    state = connection_state(integration(status, "Reconnect ConnectWise"), sync("idle"))
    assert state == (expected, "Reconnect ConnectWise")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (sync("syncing"), (ConnectionState.SYNCING, None)),
        (
            sync("degraded", "ConnectWise answers 500"),
            (ConnectionState.DEGRADED, "ConnectWise answers 500"),
        ),
        (
            sync("paused", "ConnectWise asked us to slow down"),
            (ConnectionState.DEGRADED, "ConnectWise asked us to slow down"),
        ),
        (sync("idle", last=JobStatus.SUCCEEDED), (ConnectionState.ACTIVE, None)),
        (sync("idle", last=JobStatus.DEFERRED), (ConnectionState.ACTIVE, None)),
        (sync("idle"), (ConnectionState.ACTIVE, None)),
        (sync("idle", last=JobStatus.FAILED), (ConnectionState.ERROR, "ConnectWise answered 500")),
        (None, (ConnectionState.ACTIVE, None)),
    ],
)
def test_an_active_connection_shows_how_its_syncing_goes(
    status: SyncStatus | None, expected: tuple[ConnectionState, str | None]
) -> None:
    assert connection_state(integration(IntegrationStatus.ACTIVE), status) == expected


def test_the_overview_keeps_the_connection_and_adds_the_state() -> None:
    shown = overview(integration(IntegrationStatus.ACTIVE), sync("syncing"))
    assert shown.id == "i-1"
    assert shown.status is IntegrationStatus.ACTIVE
    assert shown.state is ConnectionState.SYNCING
    assert shown.sync is not None
    assert shown.sync.budget.remaining == 990
