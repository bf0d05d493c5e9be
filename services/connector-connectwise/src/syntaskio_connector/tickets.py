"""Pure sync planning for service tickets: what to ask ConnectWise for, and which raw
events a listing turns into. No I/O here, so it is tested without servers."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from syntaskio_common import events
from syntaskio_common.connectwise import quote_condition_value
from syntaskio_common.events import KafkaRecord

SERVICE_TICKET: Final = "service_ticket"


@dataclass(frozen=True)
class IntegrationRef:
    """The integration a sync runs for (from the credential lease)."""

    integration_id: str
    tenant_id: str
    user_id: str
    member_identifier: str
    api_base_url: str
    company_id: str
    generation: int


def assigned_open_tickets(member_identifier: str) -> str:
    """Open tickets the member owns or is a resource on."""
    member = quote_condition_value(member_identifier)
    return f"closedFlag = false and (owner/identifier = {member} or resources contains {member})"


def last_updated(ticket: Mapping[str, Any]) -> str:
    info = ticket.get("_info")
    return str(info.get("lastUpdated", "")) if isinstance(info, Mapping) else ""


def _source(ref: IntegrationRef) -> str:
    return f"/syntaskio/connector-connectwise/integrations/{ref.integration_id}"


def _envelope(ref: IntegrationRef, ticket_id: str) -> dict[str, Any]:
    return {
        "integration_id": ref.integration_id,
        "tenant_id": ref.tenant_id,
        "user_id": ref.user_id,
        "member_identifier": ref.member_identifier,
        "api_base_url": ref.api_base_url,
        "company_id": ref.company_id,
        "entity": SERVICE_TICKET,
        "external_id": ticket_id,
        "integration_generation": ref.generation,
    }


def upserted_event(ref: IntegrationRef, ticket: Mapping[str, Any]) -> KafkaRecord:
    ticket_id, version = str(ticket["id"]), last_updated(ticket)
    return events.encode_event(
        # Same ticket version → same id, so a replay is recognisable as a duplicate; a
        # reconnect (new generation) publishes afresh.
        event_id=f"g{ref.generation}/{SERVICE_TICKET}/{ticket_id}/{version}",
        source=_source(ref),
        event_type=events.CONNECTWISE_RECORD_UPSERTED,
        subject=f"{SERVICE_TICKET}/{ticket_id}",
        key=f"{ref.integration_id}/{SERVICE_TICKET}/{ticket_id}",
        data={**_envelope(ref, ticket_id), "last_updated": version, "record": dict(ticket)},
    )


def removed_event(
    ref: IntegrationRef, ticket_id: str, last_seen_version: str, observed_at: datetime
) -> KafkaRecord:
    """The ticket left the member's open, assigned set (closed, reassigned or deleted)."""
    return events.encode_event(
        event_id=f"g{ref.generation}/{SERVICE_TICKET}/{ticket_id}/{last_seen_version}/removed",
        source=_source(ref),
        event_type=events.CONNECTWISE_RECORD_REMOVED,
        subject=f"{SERVICE_TICKET}/{ticket_id}",
        key=f"{ref.integration_id}/{SERVICE_TICKET}/{ticket_id}",
        data={**_envelope(ref, ticket_id), "observed_at": observed_at.isoformat()},
    )


@dataclass(frozen=True)
class SyncPlan:
    changed: list[Mapping[str, Any]]
    removed_ids: list[str]
    versions: dict[str, str]  # the checkpoint to store once everything is published


def plan_sync(
    published_versions: Mapping[str, str], current: Iterable[Mapping[str, Any]]
) -> SyncPlan:
    """Compare what is assigned now with what was published last time."""
    versions: dict[str, str] = {}
    changed: list[Mapping[str, Any]] = []
    for ticket in current:
        ticket_id, version = str(ticket["id"]), last_updated(ticket)
        versions[ticket_id] = version
        if published_versions.get(ticket_id) != version:
            changed.append(ticket)
    removed = sorted(set(published_versions) - set(versions), key=lambda i: (len(i), i))
    return SyncPlan(changed=changed, removed_ids=removed, versions=versions)
