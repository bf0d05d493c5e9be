"""Time entries (`/time/entries`): read them, and log time against a service or
project ticket, of a work type (`/time/workTypes`). Logging time adds to the ticket's
`actualHours` and moves its `lastUpdated` forward (so it fires the ticket's callbacks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from connectwise_sandbox.auth import CurrentMember, authenticate
from connectwise_sandbox.bodies import documented_body, validated
from connectwise_sandbox.errors import invalid_object
from connectwise_sandbox.responses import collection_routes, documented_query, record_response
from connectwise_sandbox.state import State
from connectwise_sandbox.store import InvalidChange, TicketKind, UnknownReference
from connectwise_sandbox.ticket_routes import change_error

router = APIRouter(
    dependencies=[Depends(authenticate), Depends(documented_query)], tags=["ConnectWise API"]
)
RESOURCE = "timeEntry"
# The TimeEntry members the sandbox models (the model requires only `timeStart`; a
# charge target is the sandbox's own rule: it logs time on tickets only).
SUPPORTED = frozenset(
    {
        "chargeToType",
        "chargeToId",
        "member",
        "timeStart",
        "timeEnd",
        "actualHours",
        "notes",
        "billableOption",
        "workType",
    }
)


class MemberReference(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: int | None = None
    identifier: str | None = None


class WorkTypeReference(BaseModel):
    """A work type named by id (the sandbox does not look names up)."""

    model_config = ConfigDict(extra="ignore")

    id: int = Field(ge=1)


class NewTimeEntry(BaseModel):
    """`POST /time/entries`. `member` defaults to the caller; the span is `timeStart` to
    `timeEnd`, or `timeStart` plus `actualHours` when `timeEnd` is absent."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    charge_to_type: Literal["ServiceTicket", "ProjectTicket"] = Field(alias="chargeToType")
    charge_to_id: int = Field(alias="chargeToId", ge=1)
    member: MemberReference | None = None
    time_start: datetime = Field(alias="timeStart")
    time_end: datetime | None = Field(default=None, alias="timeEnd")
    actual_hours: float | None = Field(default=None, alias="actualHours", gt=0, le=24)
    notes: str | None = Field(default=None, max_length=4000)
    billable_option: Literal["Billable", "DoNotBill", "NoCharge", "NoDefault"] | None = Field(
        default=None, alias="billableOption"
    )
    work_type: WorkTypeReference | None = Field(default=None, alias="workType")


collection_routes(
    router, "/time/entries", "TimeEntry", lambda s: s.store.time_entries(), lambda s: s.time_entry
)
collection_routes(
    router, "/time/workTypes", "WorkType", lambda s: s.store.work_types, lambda s: s.work_type
)


@router.post("/time/entries", status_code=201)
def add_time_entry(
    request: Request,
    caller: CurrentMember,
    state: State,
    raw: Annotated[Any, Body()] = None,
) -> Response:
    members = documented_body(raw, "TimeEntry", RESOURCE, supported=SUPPORTED)
    body = validated(NewTimeEntry, members, RESOURCE)
    member = caller
    if body.member is not None and (body.member.id is not None or body.member.identifier):
        found = (
            state.store.member(body.member.id)
            if body.member.id is not None
            else state.store.member_by_identifier(body.member.identifier or "")
        )
        if found is None or found["inactiveFlag"]:
            raise invalid_object(RESOURCE, "member", "member not found or inactive", "NotFound")
        member = found
    start = _utc(body.time_start)
    if body.time_end is not None:
        end = _utc(body.time_end)
    elif body.actual_hours is not None:
        end = start + timedelta(hours=body.actual_hours)
    else:
        raise invalid_object(RESOURCE, "timeEnd", "timeEnd or actualHours is required", "Required")
    try:
        entry = state.store.add_time_entry(
            TicketKind(body.charge_to_type),
            body.charge_to_id,
            member=member,
            start=start,
            end=end,
            billable_option=body.billable_option,
            notes=body.notes,
            actor=caller["identifier"],
            work_type_id=body.work_type.id if body.work_type else None,
        )
    except (InvalidChange, UnknownReference) as error:
        raise change_error(error, RESOURCE) from None
    return record_response(request, entry, state.store.schemas.time_entry, status_code=201)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
