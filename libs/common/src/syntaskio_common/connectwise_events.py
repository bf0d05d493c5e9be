"""The data of raw ConnectWise events on `syntaskio.connectwise.raw.v1`, as the connector
publishes them and the aggregator reads them (documented in docs/events.md and the
AsyncAPI document). Readers ignore fields they do not know; a breaking change is a new
event type (`….v2`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

Entity = Literal["service_ticket", "project_ticket", "project_phase"]


class RawRecordEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    tenant_id: str
    user_id: str
    integration_id: str
    integration_generation: int = Field(
        ge=0, description="Which connection of the integration read the record"
    )
    member_identifier: str | None = Field(
        description="The ConnectWise member whose work this is for the user; null only on a "
        "removal for a user no longer mapped to a member of a tenant connection"
    )
    api_base_url: str = Field(description="The ConnectWise API base, for deep links")
    company_id: str
    entity: Entity
    external_id: str = Field(description="The ConnectWise record id")


class RawRecordUpserted(RawRecordEnvelope):
    """`io.syntaskio.connectwise.record.upserted.v1`: the record as read, and why it is
    the member's."""

    last_updated: str = Field(description="The record's `_info.lastUpdated`")
    observed_at: AwareDatetime = Field(description="When the connector read the record")
    record: dict[str, Any] = Field(description="The ConnectWise record, as returned")
    assignment: dict[str, Any] = Field(description="`reasons` and open `schedule` entries")
    context: dict[str, Any] = Field(
        description="Metadata the record only points at: board `status`, `priority`; "
        "for a phase its `project` and whether it has `started`"
    )


class RawRecordRemoved(RawRecordEnvelope):
    """`io.syntaskio.connectwise.record.removed.v1`: the record left the member's open,
    assigned set (closed, reassigned or deleted)."""

    observed_at: AwareDatetime = Field(description="When the connector saw it gone")
    last_updated: str | None = Field(
        default=None, description="The record's `lastUpdated` as last read, if known"
    )
