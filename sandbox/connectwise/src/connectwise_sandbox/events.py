"""Change events: what the store announces after every change to a record a callback
can subscribe to, so callbacks are delivered without the store knowing about HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from connectwise_sandbox.records import JsonObject


class EntityType(StrEnum):
    """Callback types and the records they cover."""

    TICKET = "Ticket"  # service tickets
    PROJECT_TICKET = "ProjectTicket"
    SCHEDULE = "Schedule"  # schedule entries
    PROJECT = "Project"


class Action(StrEnum):
    ADDED = "added"
    UPDATED = "updated"
    DELETED = "deleted"


@dataclass(frozen=True)
class ChangeEvent:
    entity: EntityType
    action: Action
    record_id: int
    # The record after the change; for a deletion, the record as it was.
    record: JsonObject
    # The member identifier whose API call made the change; None for the admin API.
    actor: str | None


Listener = Callable[[ChangeEvent], None]
