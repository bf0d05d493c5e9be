"""The ConnectWise REST endpoints for the system and reference data (members,
companies, contacts, boards and their statuses, priorities), mounted under `/{codebase}apis/3.0`,
and the unauthenticated company lookup at `/login/companyinfo/{companyId}`. Tickets,
projects, schedules, time and callbacks have `*_routes.py` modules of their own.

Handlers are plain functions: FastAPI runs them in its thread pool, so filtering a
large ticket set does not stall the event loop.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Body, Depends, Request, Response

from connectwise_sandbox.auth import CurrentMember, authenticate
from connectwise_sandbox.errors import CwError, invalid_parameter, not_found
from connectwise_sandbox.records import JsonObject, format_timestamp
from connectwise_sandbox.responses import (
    collection_routes,
    count_response,
    documented_query,
    find_record,
    json_response,
    list_response,
    record_response,
)
from connectwise_sandbox.seed import API_LICENSE_CLASS
from connectwise_sandbox.settings import Settings
from connectwise_sandbox.state import SandboxState, State

BUILD_NUMBER: Final = "99001"

login_router = APIRouter(tags=["ConnectWise login"])
router = APIRouter(
    dependencies=[Depends(authenticate), Depends(documented_query)], tags=["ConnectWise API"]
)


def version_code(settings: Settings) -> str:
    """`v2025_1/` -> `v2025.1`, the release the codebase names."""
    return settings.codebase.strip("/").replace("_", ".")


# --- login ------------------------------------------------------------------------------


@login_router.get("/login/companyinfo/{company_id}")
def company_info(company_id: str, request: Request, state: State) -> Response:
    """The unauthenticated lookup clients use to find the codebase; JSON `null` when the
    company is unknown (the real answer, not a 404)."""
    settings = state.settings
    company = state.company_named(company_id)  # the home company or a fleet one
    if company is None:
        return json_response(None)
    found_id, name = company
    return json_response(
        {
            "CompanyName": name,
            "Codebase": settings.codebase,
            "VersionCode": version_code(settings),
            "VersionNumber": f"v4.6.{BUILD_NUMBER}",
            "CompanyID": found_id,
            "IsCloud": False,
            "SiteUrl": request.url.netloc,
        }
    )


# --- system -----------------------------------------------------------------------------


@router.get("/system/info")
def system_info(state: State) -> Response:
    """The `Info` model."""
    return json_response(
        {
            "version": f"{version_code(state.settings)}.{BUILD_NUMBER}",
            "isCloud": False,
            "serverTimeZone": "Eastern Standard Time",
            "licenseBits": [],
            "cloudRegion": "NA",
        }
    )


@router.get("/system/myMembers")
def my_member(request: Request, member: CurrentMember, state: State) -> Response:
    """The caller's own member record. Public SDKs generated from ConnectWise's OpenAPI
    document type this endpoint as one `MyMember` object (not a list); the facts hold no
    `MyMember` model, so the record is the `Member` model's."""
    return record_response(request, member, state.store.schemas.member)


@router.get("/system/myMembers/info")
def my_member_info(member: CurrentMember) -> Response:
    """The short `MemberInfo` form of the caller (no time zone: the model has none)."""
    return json_response(
        {
            "id": member["id"],
            "identifier": member["identifier"],
            "firstName": member["firstName"],
            "lastName": member["lastName"],
            "fullName": f"{member['firstName']} {member['lastName']}",
            "defaultEmail": member["officeEmail"],
            "licenseClass": member["licenseClass"],
            "inactiveFlag": member["inactiveFlag"],
            "_info": member["_info"],
        }
    )


@router.post("/system/members/{identifier}/tokens", status_code=201)
def mint_member_token(
    identifier: str,
    caller: CurrentMember,
    state: State,
    body: Annotated[dict[str, Any] | None, Body()] = None,
) -> Response:
    """Impersonation keys: an API member (licence class A) mints a key pair that
    authenticates as member `identifier` until `expiration`.

    Body (optional): `{"expiration": "<ISO 8601>"}`, capped at `member_token_ttl`
    seconds from now. Answers **201 Created** with `{"publicKey", "privateKey",
    "expiration"}` — ConnectWise's `Token` model; the status is the one its other
    creating POSTs use (not verified against a live instance). A member that is not an
    API member gets 403; an unknown identifier 404; an inactive member 400.
    """
    if caller["licenseClass"] != API_LICENSE_CLASS:
        raise CwError(403, "Forbidden", "Only API members may create member tokens")
    member = state.store.member_by_identifier(identifier)
    if member is None:
        raise not_found("Member", identifier)
    if member["inactiveFlag"]:
        raise invalid_parameter(
            "memberIdentifier", "Inactive", f"Member '{member['identifier']}' is inactive"
        )
    requested = _expiration((body or {}).get("expiration"), state.member_tokens.clock())
    token = state.member_tokens.mint(member["id"], requested)
    return json_response(
        {
            "publicKey": token.public_key,
            "privateKey": token.private_key,
            "expiration": format_timestamp(token.expires_at),
        },
        status_code=201,
    )


def _expiration(value: object, now: datetime) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise invalid_parameter(
            "expiration", "InvalidFormat", "expiration must be an ISO 8601 date-time"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if moment <= now:
        raise invalid_parameter("expiration", "OutOfRange", "expiration must be in the future")
    return moment


collection_routes(
    router, "/system/members", "Member", lambda s: s.store.members, lambda s: s.member
)
collection_routes(
    router, "/company/companies", "Company", lambda s: s.store.companies, lambda s: s.company
)
collection_routes(
    router, "/company/contacts", "Contact", lambda s: s.store.contacts, lambda s: s.contact
)
collection_routes(router, "/service/boards", "Board", lambda s: s.store.boards, lambda s: s.board)
collection_routes(
    router, "/service/priorities", "Priority", lambda s: s.store.priorities, lambda s: s.priority
)


# --- board statuses ---------------------------------------------------------------------


def _board_statuses(state: SandboxState, board_id: int) -> list[JsonObject]:
    find_record(state.store.boards, board_id, "Board")
    return state.store.statuses_of(board_id)


@router.get("/service/boards/{board_id}/statuses")
def list_statuses(board_id: int, request: Request, state: State) -> Response:
    statuses = _board_statuses(state, board_id)
    return list_response(request, statuses, state.store.schemas.status)


@router.get("/service/boards/{board_id}/statuses/count")
def count_statuses(board_id: int, request: Request, state: State) -> Response:
    statuses = _board_statuses(state, board_id)
    return count_response(request, statuses, state.store.schemas.status)


@router.get("/service/boards/{board_id}/statuses/{status_id}")
def get_status(board_id: int, status_id: int, request: Request, state: State) -> Response:
    status = find_record(_board_statuses(state, board_id), status_id, "Status")
    return record_response(request, status, state.store.schemas.status)
