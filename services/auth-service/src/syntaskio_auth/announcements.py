"""Integration lifecycle events on `syntaskio.integrations.v1`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from faststream.kafka import KafkaBroker

from syntaskio_common import events, topics
from syntaskio_common.integrations import Integration
from syntaskio_common.kafka import publish

_KIND = {
    events.INTEGRATION_CONNECTED: "connected",
    events.INTEGRATION_DISCONNECTED: "disconnected",
    events.INTEGRATION_EXPIRED: "expired",
    events.INTEGRATION_PAUSED: "paused",
    events.INTEGRATION_RESUMED: "resumed",
    events.INTEGRATION_MEMBERS_CHANGED: "members_changed",
}


@dataclass
class Announcements:
    broker: KafkaBroker

    async def publish(
        self, event_type: str, integration: Integration, *, changed_at: datetime | None = None
    ) -> None:
        """Keyed by integration, so one integration's events stay in order; the id is
        fixed for a given change, so a retried publish is recognised as a duplicate. A
        change that leaves the integration itself as it was (its member mapping) names
        its own time, `changed_at`."""
        at = changed_at or integration.updated_at
        record = events.encode_event(
            event_id=f"{integration.id}:{_KIND[event_type]}:{at.isoformat()}",
            source="/syntaskio/auth-service",
            event_type=event_type,
            subject=f"integration/{integration.id}",
            key=integration.id,
            data=integration.model_dump(mode="json"),
        )
        await publish(self.broker, topics.INTEGRATIONS, record)
