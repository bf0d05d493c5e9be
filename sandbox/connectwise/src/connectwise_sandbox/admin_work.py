"""Admin API (`/_sandbox`, no auth) for project work and schedules: create, change,
close and delete project tickets, change projects and their phases, and create, change
and delete schedule entries. Every change fires the matching callbacks, as an API write
would (with the callback owner as `MemberId`); phases have no callback type."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from connectwise_sandbox.admin import Summary, TicketFields, changed
from connectwise_sandbox.records import JsonObject
from connectwise_sandbox.state import State
from connectwise_sandbox.store import (
    KEEP,
    PhaseChange,
    ProjectChange,
    RecordNotFound,
    ScheduleChange,
    TicketChange,
    TicketKind,
)

router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])
PROJECT = TicketKind.PROJECT


class ProjectTicketFields(TicketFields):
    """`TicketFields` plus `project` and `phase` (ids). A project ticket's board and
    company are always its project's, so they cannot be set."""

    project: int | None = None
    phase: int | None = None

    def change(self) -> TicketChange:
        sent = self.model_fields_set
        for name in ("board", "company"):
            if name in sent:
                raise HTTPException(400, f"a project ticket's {name} is its project's")
        for name in ("project", "phase"):
            if name in sent and getattr(self, name) is None:
                raise HTTPException(400, f"{name} cannot be null")
        change = super().change()
        return replace(
            change,
            project=self.project if self.project is not None else KEEP,
            phase=self.phase if self.phase is not None else KEEP,
        )


class NewProjectTicket(ProjectTicketFields):
    summary: Summary
    project: int


@router.post("/project-tickets", status_code=status.HTTP_201_CREATED)
def create_project_ticket(body: NewProjectTicket, state: State) -> JsonObject:
    """Defaults: the project's first open phase, its board's default status."""
    change = body.change()
    return changed(lambda: state.store.create_ticket(change, PROJECT))


@router.patch("/project-tickets/{ticket_id}")
def update_project_ticket(ticket_id: int, body: ProjectTicketFields, state: State) -> JsonObject:
    change = body.change()
    return changed(lambda: state.store.update_ticket(ticket_id, change, PROJECT))


@router.post("/project-tickets/{ticket_id}/close")
def close_project_ticket(ticket_id: int, state: State) -> JsonObject:
    return changed(lambda: state.store.close_ticket(ticket_id, PROJECT))


@router.delete("/project-tickets/{ticket_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_project_ticket(ticket_id: int, state: State) -> Response:
    try:
        state.store.delete_ticket(ticket_id, PROJECT)
    except RecordNotFound as error:
        raise HTTPException(404, str(error)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class ProjectFields(BaseModel):
    """`status` is a project status name (`closedFlag` follows it), `manager` a member."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=100)
    status: str | None = None
    manager: str | None = None

    def change(self) -> ProjectChange:
        return ProjectChange(
            name=self.name if self.name is not None else KEEP,
            status=self.status if self.status is not None else KEEP,
            manager=self.manager if self.manager is not None else KEEP,
        )


@router.patch("/projects/{project_id}")
def update_project(project_id: int, body: ProjectFields, state: State) -> JsonObject:
    change = body.change()
    return changed(lambda: state.store.update_project(project_id, change))


class PhaseFields(BaseModel):
    """`status` is a phase status name ("Completed" closes the phase)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, min_length=1, max_length=100)
    status: str | None = None

    def change(self) -> PhaseChange:
        return PhaseChange(
            description=self.description if self.description is not None else KEEP,
            status=self.status if self.status is not None else KEEP,
        )


@router.patch("/phases/{phase_id}")
def update_phase(phase_id: int, body: PhaseFields, state: State) -> JsonObject:
    change = body.change()
    return changed(lambda: state.store.update_phase(phase_id, change))


class ScheduleFields(BaseModel):
    """`type` "S" schedules `member` on the ticket `objectId`; "C" is an activity (any
    `objectId`). Dates default to now and one hour later; `name` to the ticket's
    "Company / summary"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    object_id: int | None = Field(
        default=None, ge=1, validation_alias=AliasChoices("objectId", "object_id")
    )
    member: str | None = None
    type: str | None = None
    done: bool | None = Field(default=None, validation_alias=AliasChoices("doneFlag", "done"))
    date_start: datetime | None = Field(
        default=None, validation_alias=AliasChoices("dateStart", "date_start")
    )
    date_end: datetime | None = Field(
        default=None, validation_alias=AliasChoices("dateEnd", "date_end")
    )
    name: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("date_start", "date_end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def change(self) -> ScheduleChange:
        def pick(value: Any) -> Any:
            return KEEP if value is None else value

        return ScheduleChange(
            object_id=pick(self.object_id),
            member=pick(self.member),
            kind=pick(self.type),
            done=pick(self.done),
            date_start=pick(self.date_start),
            date_end=pick(self.date_end),
            name=pick(self.name),
        )


class NewScheduleEntry(ScheduleFields):
    object_id: int = Field(ge=1, validation_alias=AliasChoices("objectId", "object_id"))
    member: str


@router.post("/schedule-entries", status_code=status.HTTP_201_CREATED)
def create_schedule_entry(body: NewScheduleEntry, state: State) -> JsonObject:
    change = body.change()
    return changed(lambda: state.store.create_schedule_entry(change))


@router.patch("/schedule-entries/{entry_id}")
def update_schedule_entry(entry_id: int, body: ScheduleFields, state: State) -> JsonObject:
    change = body.change()
    return changed(lambda: state.store.update_schedule_entry(entry_id, change))


@router.delete("/schedule-entries/{entry_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_schedule_entry(entry_id: int, state: State) -> Response:
    try:
        state.store.delete_schedule_entry(entry_id)
    except RecordNotFound as error:
        raise HTTPException(404, str(error)) from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)
