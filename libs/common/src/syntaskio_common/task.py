"""The unified `Task`: what every source is normalised into and the dashboard shows."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# Fixed namespace so a task's id is the same in every service, replay and deployment.
_TASK_ID_NAMESPACE: Final = uuid.UUID("0b7d1c8e-5a54-4e2f-9a55-3d6f1f0c2a91")


class TaskSource(StrEnum):
    CONNECTWISE = "connectwise"


class SourceType(StrEnum):
    SERVICE_TICKET = "service_ticket"
    PROJECT_TICKET = "project_ticket"
    PROJECT_PHASE = "project_phase"


class TaskStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class TaskPriority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    URGENT = "urgent"


class SlaStage(StrEnum):
    RESPOND = "respond"
    PLAN = "plan"
    RESOLVE = "resolve"


class TaskSla(BaseModel):
    """Where a task stands against its service level: the next target (`stage`, due at
    `due_at`) and each target's time."""

    model_config = ConfigDict(frozen=True)

    name: str | None = None
    stage: SlaStage
    due_at: AwareDatetime
    respond_by: AwareDatetime | None = None
    plan_by: AwareDatetime | None = None
    resolve_by: AwareDatetime | None = None
    in_sla: bool | None = Field(default=None, description="The source's own verdict so far")


def task_id(
    tenant_id: str, user_id: str, source: TaskSource, source_type: SourceType, external_id: str
) -> str:
    """Stable id: one task per user per upstream record (two technicians assigned the same
    ticket each see their own task)."""
    name = "\x1f".join((tenant_id, user_id, source.value, source_type.value, external_id))
    return str(uuid.uuid5(_TASK_ID_NAMESPACE, name))


class TaskRef(BaseModel):
    """Which task: enough to find, route or delete it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    tenant_id: str
    user_id: str
    integration_id: str
    source: TaskSource
    source_type: SourceType
    external_id: str

    @classmethod
    def of(cls, task: TaskRef) -> TaskRef:
        return cls.model_validate(task.model_dump(include=set(cls.model_fields)))


class Task(TaskRef):
    title: str
    description: str | None = None
    status: TaskStatus
    source_status: str | None = None
    priority: TaskPriority
    source_priority: str | None = None
    due_at: AwareDatetime | None = None
    created_at: AwareDatetime | None = None
    source_updated_at: AwareDatetime
    url: str | None = Field(default=None, description="Deep link into the source system")
    sla: TaskSla | None = Field(default=None, description="Null: no service level applies")
    source_data: dict[str, Any] = Field(default_factory=dict)


def parse_timestamp(value: object) -> datetime | None:
    """ISO-8601 as ConnectWise sends it (`2026-01-01T00:00:00Z`); None when absent or bad."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
