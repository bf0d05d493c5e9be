"""A company's settings for its technicians' work (admins set them; auth-service keeps
them, `tenant_settings`): whether ConnectWise is on at all, the time a logged entry
defaults to, how close an SLA target is flagged, and the status a logged change moves
its ticket to."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# A board status name as ConnectWise shows it ("Waiting on Client"): printable, short.
StatusName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=50, pattern=r"^[^\x00-\x1f\x7f]+$"
    ),
]


class TenantSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    connectwise_enabled: bool = Field(
        default=True,
        description="Off: no connection of the company syncs or writes back (its tasks "
        "stay on the dashboards, no longer updated) until it is turned on again.",
    )
    default_time_minutes: int = Field(
        default=15,
        ge=1,
        le=480,
        description="What a time entry defaults to when the technician does not say.",
    )
    sla_warning_minutes: int = Field(
        default=60,
        ge=5,
        le=1440,
        description="A task whose next SLA target is this close (or closer) is flagged.",
    )
    log_change_status: StatusName | None = Field(
        default=None,
        description="Logging a change also moves the ticket to the status of this name on "
        "its board (when the board has one and the technician chose no status); null: "
        "the status is left as it is.",
    )
