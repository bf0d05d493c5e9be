"""Service tickets (`/service/tickets`) and project tickets (`/project/tickets`): the
same endpoints over two separate collections — list, count, search, get, JSON Patch
updates, and notes (list, count, add).

`POST …/tickets/search` takes a `FilterValues` body — `conditions`, `orderBy`,
`childconditions`, `customfieldconditions` (names case-insensitive) and nothing else —
and pages in the query string (`?page=&pageSize=`) with the list's `Link` header.

Real ConnectWise keeps both kinds in one table (`/service/tickets` can return project
tickets, told apart by `recordType`); the sandbox keeps them apart so service-ticket
queries never see project tickets. Ids are still unique across both.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from connectwise_sandbox.auth import CurrentMember, authenticate
from connectwise_sandbox.bodies import documented_body, validated
from connectwise_sandbox.contract import contract
from connectwise_sandbox.errors import CwError, contract_violation, invalid_object, not_found
from connectwise_sandbox.records import JsonObject
from connectwise_sandbox.responses import (
    count_response,
    documented_query,
    forward_only,
    list_response,
    query_params,
    record_response,
)
from connectwise_sandbox.schema import EntitySchema
from connectwise_sandbox.state import SandboxState, State
from connectwise_sandbox.store import (
    InvalidChange,
    TicketChange,
    TicketKind,
    TicketNotFound,
    UnknownReference,
)
from connectwise_sandbox.ticket_patch import parse_patch

router = APIRouter(
    dependencies=[Depends(authenticate), Depends(documented_query)], tags=["ConnectWise API"]
)
NOTE_RESOURCE = "note"
# What a note body may carry here: the sandbox models these ServiceNote members.
NOTE_MEMBERS = frozenset(
    {"text", "detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag", "ticketId"}
)

# Where an unknown reference the store reports was named in a patch.
_REFERENCE_FIELDS = {
    "status": "status/id",
    "priority": "priority/id",
    "member": "owner/identifier",
    "phase": "phase/id",
    "project": "project/id",
    "board": "board/id",
    "work": "workType/id",  # "work type"
}


class NewNote(BaseModel):
    """`POST …/tickets/{id}/notes`: at least one of the three flags must be set."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    text: str = Field(min_length=1)
    detail_description: bool = Field(default=False, alias="detailDescriptionFlag")
    internal_analysis: bool = Field(default=False, alias="internalAnalysisFlag")
    resolution: bool = Field(default=False, alias="resolutionFlag")
    ticket_id: int | None = Field(default=None, alias="ticketId")


def filter_values(body: Any) -> dict[str, Any]:
    """A search body's members (lower-cased keys, as `parse_list_query` wants them): a
    `FilterValues` object and nothing else — paging (`page`, `pageSize`, `pageId`),
    `fields` or anything undocumented in the body is a contract violation naming the
    member. A null member counts as absent (JSON serialisers write unset ones so)."""
    if body is None:
        return {}
    model = contract().model("FilterValues")
    if not isinstance(body, dict):
        raise contract_violation(
            "filterValues", "InvalidField", "The search body must be a FilterValues object"
        )
    params: dict[str, Any] = {}
    for key, value in body.items():
        field = model.field(key) if isinstance(key, str) else None
        if field is None:
            raise contract_violation(
                str(key),
                "InvalidField",
                f"'{key}' is not a member of FilterValues (conditions, orderBy, "
                "childconditions, customfieldconditions); page with ?page=&pageSize=",
            )
        if value is not None and not isinstance(value, str):
            raise contract_violation(field.name, "InvalidField", f"{field.name} must be a string")
        if value is not None:
            params[field.name.lower()] = value
    return params


def change_error(error: Exception, resource: str = "ticket") -> CwError:
    """A store refusal as ConnectWise's 400 (or 404 for a missing ticket)."""
    if isinstance(error, TicketNotFound):
        return not_found("Ticket", error.ticket_id)
    if isinstance(error, UnknownReference):
        field = _REFERENCE_FIELDS.get(error.kind.split()[0], error.kind)
        return invalid_object(resource, field, str(error), "NotFound")
    if isinstance(error, InvalidChange):
        return invalid_object(resource, error.field, error.message)
    raise error


def ticket_endpoints(path: str, kind: TicketKind) -> None:
    label = "tickets" if kind is TicketKind.SERVICE else "project_tickets"

    def schema(state: SandboxState) -> EntitySchema:
        return state.store.schemas.tickets(kind)

    @router.get(path, name=f"list_{label}")
    def list_tickets(request: Request, state: State) -> Response:
        return list_response(request, state.store.tickets(kind), schema(state))

    @router.get(f"{path}/count", name=f"count_{label}")
    def count_tickets(request: Request, state: State) -> Response:
        return count_response(request, state.store.tickets(kind), schema(state))

    @router.post(f"{path}/search", name=f"search_{label}")
    def search_tickets(
        request: Request,
        state: State,
        body: Annotated[Any, Body()] = None,
    ) -> Response:
        """The list's query with a `FilterValues` body (a long `conditions` fits there);
        paging only in the query string. Forward-only paging is refused: the document
        is silent on it for a search, and its next link could not carry the body."""
        if forward_only(request):
            raise contract_violation(
                "pagination-type",
                "InvalidField",
                "Forward-only paging is not available on a search; page with ?page=",
            )
        params = filter_values(body)
        paging = query_params(request)
        params |= {name: paging[name] for name in ("page", "pagesize") if name in paging}
        return list_response(request, state.store.tickets(kind), schema(state), params)

    @router.get(f"{path}/{{ticket_id}}", name=f"get_{label}")
    def get_ticket(ticket_id: int, request: Request, state: State) -> Response:
        ticket = state.store.ticket(ticket_id, kind)
        if ticket is None:
            raise not_found("Ticket", ticket_id)
        return record_response(request, ticket, schema(state))

    @router.patch(f"{path}/{{ticket_id}}", name=f"patch_{label}")
    def patch_ticket(
        ticket_id: int,
        request: Request,
        member: CurrentMember,
        state: State,
        body: Annotated[Any, Body()] = None,
    ) -> Response:
        """A JSON Patch array (see `ticket_patch.py`); answers with the updated ticket."""
        if state.store.ticket(ticket_id, kind) is None:
            raise not_found("Ticket", ticket_id)
        change: TicketChange = parse_patch(body, kind, state.store)
        try:
            ticket = state.store.update_ticket(ticket_id, change, kind, member["identifier"])
        except (TicketNotFound, UnknownReference, InvalidChange) as error:
            raise change_error(error) from None
        return record_response(request, ticket, schema(state))

    def notes(state: SandboxState, ticket_id: int) -> list[JsonObject]:
        found = state.store.notes(ticket_id, kind)
        if found is None:
            raise not_found("Ticket", ticket_id)
        return found

    @router.get(f"{path}/{{ticket_id}}/notes", name=f"list_{label}_notes")
    def list_notes(ticket_id: int, request: Request, state: State) -> Response:
        """The initial description (which a ticket's own record never returns), then the
        notes added since."""
        return list_response(request, notes(state, ticket_id), state.store.schemas.note)

    @router.get(f"{path}/{{ticket_id}}/notes/count", name=f"count_{label}_notes")
    def count_notes(ticket_id: int, request: Request, state: State) -> Response:
        return count_response(request, notes(state, ticket_id), state.store.schemas.note)

    @router.post(f"{path}/{{ticket_id}}/notes", name=f"add_{label}_note", status_code=201)
    def add_note(
        ticket_id: int,
        request: Request,
        member: CurrentMember,
        state: State,
        raw: Annotated[Any, Body()] = None,
    ) -> Response:
        """A note by the calling member; the ticket's `lastUpdated` moves forward. The
        body is a ServiceNote (see `Schemas.note`) of the members `NOTE_MEMBERS`."""
        members = documented_body(raw, "ServiceNote", NOTE_RESOURCE, supported=NOTE_MEMBERS)
        body = validated(NewNote, members, NOTE_RESOURCE)
        if body.ticket_id is not None and body.ticket_id != ticket_id:
            raise invalid_object(
                NOTE_RESOURCE, "ticketId", f"ticketId must be the ticket's own ({ticket_id})"
            )
        if not (body.detail_description or body.internal_analysis or body.resolution):
            raise invalid_object(
                NOTE_RESOURCE,
                "detailDescriptionFlag",
                "One of detailDescriptionFlag, internalAnalysisFlag or resolutionFlag must be true",
                "Required",
            )
        try:
            note = state.store.add_note(
                ticket_id,
                kind,
                text=body.text,
                detail=body.detail_description,
                internal=body.internal_analysis,
                resolution=body.resolution,
                member=member,
            )
        except TicketNotFound as error:
            raise change_error(error) from None
        return record_response(request, note, state.store.schemas.note, status_code=201)


ticket_endpoints("/service/tickets", TicketKind.SERVICE)
ticket_endpoints("/project/tickets", TicketKind.PROJECT)
