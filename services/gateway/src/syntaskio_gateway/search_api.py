"""Find any ticket under /api/v1: search ConnectWise as the user's own member, then open
a found ticket at /tasks/{task_id} and log time or a note on it (`found_tickets.py`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from syntaskio_common.problems import Problem
from syntaskio_common.ticket_search import MOST_QUERY_CHARACTERS, InvalidSearch, TicketQuery
from syntaskio_gateway.api import Found, connector_problems
from syntaskio_gateway.dependencies import Connector, CurrentUser
from syntaskio_gateway.found_tickets import SearchAnswer

router = APIRouter(prefix="/api/v1", tags=["search"])


@router.get(
    "/tickets/search",
    responses={
        409: {"description": "No ConnectWise connection syncs the user, or it can't act as them"},
        422: {"description": "Not a query: a ticket number, or words of two characters or more"},
        502: {"description": "ConnectWise did not answer as expected"},
        503: {"description": "ConnectWise or its budget is unavailable; see Retry-After"},
    },
)
async def search_tickets(
    user: CurrentUser,
    connector: Connector,
    found: Found,
    q: Annotated[
        str,
        Query(
            max_length=MOST_QUERY_CHARACTERS,
            description="A ticket number (`1234` or `#1234`), or words its summary holds",
            examples=["printer offline"],
        ),
    ],
    source_type: Literal["service_ticket", "project_ticket"] = "service_ticket",
) -> SearchAnswer:
    """Tickets in ConnectWise by number or summary words, as the user's own ConnectWise
    member may see them (their connection's credentials, or keys acting as them): newest
    first, at most 25. The same query within 30 s is answered without asking ConnectWise
    again. Each ticket found can be opened and worked through the task routes by its
    `task_id`, including one not on the user's dashboard."""
    try:
        query = TicketQuery.parse(q)  # refused here, before any call
    except InvalidSearch as invalid:
        raise Problem(422, str(invalid), title="Invalid search") from None
    with connector_problems("Search is unavailable right now."):
        results = await connector.search_tickets(
            user.tenant_id, user.user_id, query.normal, source_type
        )
    return await found.remember(user, results)
