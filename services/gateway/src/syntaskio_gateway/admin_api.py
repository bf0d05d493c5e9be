"""The admin console's API under /api/v1/admin: the company's ConnectWise connections, the
technicians' member mappings and the audit log. Everything is auth-service's, asked as the
admin (so it checks the role and the tenant: 403 for a technician, 404 for another
company's objects); syncing is the connector's, called only after auth-service has
confirmed the integration is the admin's company's, with that company's tenant id."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status

from syntaskio_common.connection_requests import ApiKeyConnectionRequest, OAuthStartRequest
from syntaskio_common.integrations import Integration, SyncJob
from syntaskio_common.mappings import AuditRecord, MappingChange, MemberMapping, TenantUser
from syntaskio_common.problems import Problem
from syntaskio_common.tenant_settings import TenantSettings
from syntaskio_gateway.auth_proxy import forward, passed_on, relay
from syntaskio_gateway.dependencies import AdminUser, Connector, ResourceId
from syntaskio_gateway.integrations import IntegrationOverview, overview
from syntaskio_gateway.integrations_api import (
    SyncQueued,
    job_history,
    overviews,
    queue_sync,
    sync_status_of,
)

router = APIRouter(prefix="/api/v1/admin", tags=["admin"])

# A signed-in user's id is their identity provider's `sub`: almost any text, "/" included
# (the route takes the rest of the path). It travels upstream as one encoded segment; only
# whitespace and ids of nothing but dots and slashes (path steps) are refused.
UserId = Annotated[str, Path(min_length=1, max_length=256, pattern=r"^\S*[^\s/.]\S*$")]
# What every admin route may answer besides its own.
_ADMIN: dict[int | str, dict[str, Any]] = {
    403: {"description": "Not an admin of the company"},
    502: {"description": "auth-service gave an answer we cannot use"},
    503: {"description": "auth-service or the connector cannot be reached"},
}
_NOT_THEIRS: dict[int | str, dict[str, Any]] = {
    **_ADMIN,
    404: {"description": "No such integration in the admin's company"},
}
_NO_MAPPING: dict[int | str, dict[str, Any]] = {
    **_ADMIN,
    404: {"description": "No such company connection, or no such user in the company"},
}
# Mapping asks ConnectWise about members, with the connection's credentials.
_ASKS_CONNECTWISE: dict[int | str, dict[str, Any]] = {
    409: {"description": "The connection is not usable (paused, expired, disconnected)"},
    502: {"description": "ConnectWise gave an answer we cannot use"},
    503: {"description": "auth-service or ConnectWise cannot be reached"},
}
_CONNECT: dict[int | str, dict[str, Any]] = {
    **_ADMIN,
    400: {"description": "Site not allowed, unknown company, or keys ConnectWise refused"},
    422: {"description": "Invalid request (impersonation is for personal connections)"},
    502: {"description": "ConnectWise gave an answer we cannot use"},
}
# auth-service's refusals of a look-up of one integration, said here.
_REFUSED = {
    status.HTTP_401_UNAUTHORIZED: "The session is invalid or has expired.",
    status.HTTP_403_FORBIDDEN: "This needs the admin role in your company.",
    status.HTTP_404_NOT_FOUND: "No such integration.",
    status.HTTP_503_SERVICE_UNAVAILABLE: "The integration service is unavailable.",
}


def _integration_path(integration_id: str, tail: str = "") -> str:
    return f"/v1/admin/integrations/{integration_id}{tail}"


async def _companys_integration(
    integration_id: ResourceId, request: Request, admin: AdminUser
) -> Integration:
    """One of the admin's company's integrations as auth-service knows it; 404 for any
    other (so the connector is never asked about another company's)."""
    upstream = await forward(request, "GET", _integration_path(integration_id), admin.token)
    if upstream.status_code in _REFUSED:
        raise Problem(upstream.status_code, _REFUSED[upstream.status_code])
    found = passed_on(upstream, Integration)
    if not isinstance(found, Integration):  # any other refusal is not one to pass on
        raise Problem(502, "The integration service gave an unexpected answer.")
    return found


CompanysIntegration = Annotated[Integration, Depends(_companys_integration)]


# -- the company's users ---------------------------------------------------------------------


@router.get("/users", response_model=list[TenantUser], responses=_ADMIN)
async def list_users(request: Request, admin: AdminUser) -> list[TenantUser] | Response:
    """Everyone who has signed in to the company: the people an admin can map."""
    upstream = await forward(request, "GET", "/v1/admin/users", admin.token)
    return passed_on(upstream, list[TenantUser])


# -- the company's settings ----------------------------------------------------------------


@router.put("/settings", response_model=TenantSettings, responses=_ADMIN)
async def change_settings(
    body: TenantSettings, request: Request, admin: AdminUser
) -> TenantSettings | Response:
    """Replace the company's settings (every one; one left out takes its default).
    `connectwise_enabled: false` stops every connection's syncing and write-back at once
    and keeps the tasks; turned on again, the connections sync at once."""
    upstream = await forward(
        request, "PUT", "/v1/admin/settings", admin.token, body.model_dump(mode="json")
    )
    return passed_on(upstream, TenantSettings)


# -- connections -----------------------------------------------------------------------------


@router.get("/integrations", responses=_ADMIN)
async def list_integrations(
    request: Request, admin: AdminUser, connector: Connector
) -> list[IntegrationOverview]:
    """Every connection of the admin's company (the company's own and the technicians'
    personal ones), with its state, last and next sync, and API budget."""
    return await overviews(request, "/v1/admin/integrations", admin, connector)


@router.post(
    "/integrations/connectwise/api-key",
    status_code=status.HTTP_201_CREATED,
    response_model=Integration,
    responses=_CONNECT,
)
async def connect_company(
    body: ApiKeyConnectionRequest, request: Request, admin: AdminUser
) -> Integration | Response:
    """Connect the company once, with its integration (API) member's keys: they go to the
    vault, never back out. Technicians are then mapped to ConnectWise members."""
    upstream = await forward(
        request,
        "POST",
        "/v1/admin/integrations/connectwise/api-key",
        admin.token,
        body.forwarded(),
    )
    return passed_on(upstream, Integration)


@router.post(
    "/integrations/connectwise/oauth/start",
    responses={**_CONNECT, 404: {"description": "OAuth is not set up for this provider here"}},
)
async def start_company_oauth(
    body: OAuthStartRequest, request: Request, admin: AdminUser
) -> Response:
    """Connect the company with OAuth2 where the ConnectWise site offers it: send the
    browser to the `authorization_url` returned (it comes back to the settings page)."""
    upstream = await forward(
        request,
        "POST",
        "/v1/admin/integrations/connectwise/oauth/start",
        admin.token,
        body.model_dump(),
    )
    return relay(upstream)


@router.get("/integrations/{integration_id}", responses=_NOT_THEIRS)
async def get_integration(
    integration: CompanysIntegration, connector: Connector
) -> IntegrationOverview:
    """One connection of the company, with how its syncing goes."""
    return overview(integration, await sync_status_of(connector, integration))


@router.delete("/integrations/{integration_id}", response_model=Integration, responses=_NOT_THEIRS)
async def disconnect(
    integration_id: ResourceId, request: Request, admin: AdminUser
) -> Integration | Response:
    """Disconnect: the credentials are deleted and syncing stops; the connection stays
    listed as `disconnected`, and its tasks leave the technicians' dashboards."""
    upstream = await forward(request, "DELETE", _integration_path(integration_id), admin.token)
    return passed_on(upstream, Integration)


_NOT_PAUSABLE = {**_NOT_THEIRS, 409: {"description": "Only an active connection is paused"}}
_NOT_RESUMABLE = {**_NOT_THEIRS, 409: {"description": "Only a paused connection is resumed"}}


@router.post(
    "/integrations/{integration_id}/pause", response_model=Integration, responses=_NOT_PAUSABLE
)
async def pause(
    integration_id: ResourceId, request: Request, admin: AdminUser
) -> Integration | Response:
    """Pause: no sync and no write-back until resumed (the credentials and tasks stay)."""
    upstream = await forward(
        request, "POST", _integration_path(integration_id, "/pause"), admin.token
    )
    return passed_on(upstream, Integration)


@router.post(
    "/integrations/{integration_id}/resume", response_model=Integration, responses=_NOT_RESUMABLE
)
async def resume(
    integration_id: ResourceId, request: Request, admin: AdminUser
) -> Integration | Response:
    """Resume a paused connection: it syncs again at once."""
    upstream = await forward(
        request, "POST", _integration_path(integration_id, "/resume"), admin.token
    )
    return passed_on(upstream, Integration)


@router.get("/integrations/{integration_id}/sync-jobs", responses=_NOT_THEIRS)
async def sync_history(
    integration: CompanysIntegration,
    connector: Connector,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[SyncJob]:
    """The connection's recent sync runs, newest first: trigger, outcome, records, API
    requests, error."""
    return await job_history(connector, integration, limit)


@router.post(
    "/integrations/{integration_id}/sync",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_NOT_THEIRS, 409: {"description": "The connection is not active"}},
)
async def sync_now(
    integration: CompanysIntegration,
    connector: Connector,
    resync: Annotated[
        bool, Query(description="List everything again instead of only what changed")
    ] = False,
) -> SyncQueued:
    """Sync as soon as possible (within the integration's API budget); with `resync`, a
    full listing that catches anything an incremental sync missed."""
    return await queue_sync(connector, integration, resync=resync, refusal="it cannot sync now")


# -- member mappings -------------------------------------------------------------------------


@router.get(
    "/integrations/{integration_id}/mappings",
    response_model=list[MemberMapping],
    responses=_NO_MAPPING,
)
async def list_mappings(
    integration_id: ResourceId, request: Request, admin: AdminUser
) -> list[MemberMapping] | Response:
    """Which ConnectWise member each technician is under the company's connection:
    proposed (by e-mail), requested (by the technician) or confirmed (synced)."""
    upstream = await forward(
        request, "GET", _integration_path(integration_id, "/mappings"), admin.token
    )
    return passed_on(upstream, list[MemberMapping])


@router.post(
    "/integrations/{integration_id}/mappings/propose",
    response_model=list[MemberMapping],
    responses={**_NO_MAPPING, **_ASKS_CONNECTWISE},
)
async def propose_mappings(
    integration_id: ResourceId, request: Request, admin: AdminUser
) -> list[MemberMapping] | Response:
    """Propose a member, by e-mail, to everyone with no confirmed or requested mapping: the
    one active member whose office or primary e-mail is their verified e-mail. Proposals
    wait for an admin's confirmation. Answers every mapping of the connection."""
    upstream = await forward(
        request, "POST", _integration_path(integration_id, "/mappings/propose"), admin.token
    )
    return passed_on(upstream, list[MemberMapping])


def _mapping_path(integration_id: str, user_id: str) -> str:
    # The user id is a path segment of its own, whatever it holds.
    return _integration_path(integration_id, f"/mappings/{quote(user_id, safe='')}")


@router.put(
    "/integrations/{integration_id}/mappings/{user_id:path}",
    response_model=MemberMapping,
    responses={
        **_NO_MAPPING,
        **_ASKS_CONNECTWISE,
        409: {
            "description": "The member is mapped to someone else, or the connection is not usable"
        },
        422: {"description": "ConnectWise has no such active member"},
    },
)
async def set_mapping(
    integration_id: ResourceId,
    user_id: UserId,
    body: MappingChange,
    request: Request,
    admin: AdminUser,
) -> MemberMapping | Response:
    """Map a technician to a ConnectWise member (or confirm or change their mapping): it is
    confirmed at once, and their work is synced from then on."""
    upstream = await forward(
        request,
        "PUT",
        _mapping_path(integration_id, user_id),
        admin.token,
        body.model_dump(mode="json"),
    )
    return passed_on(upstream, MemberMapping)


@router.delete(
    "/integrations/{integration_id}/mappings/{user_id:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=_NO_MAPPING,
)
async def remove_mapping(
    integration_id: ResourceId, user_id: UserId, request: Request, admin: AdminUser
) -> Response:
    """Unmap a technician: their company tasks leave their dashboard."""
    upstream = await forward(request, "DELETE", _mapping_path(integration_id, user_id), admin.token)
    if upstream.is_error:
        return relay(upstream)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- audit log -------------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditRecord], responses=_ADMIN)
async def audit_log(
    request: Request,
    admin: AdminUser,
    integration_id: Annotated[
        str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")
    ] = None,
    action: Annotated[
        str | None, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    ] = None,
    user_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    since: Annotated[datetime | None, Query(description="Only records from then on")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AuditRecord] | Response:
    """Who did what to the company's connections, when (connected, leased, paused,
    mapped, disconnected…), newest first; filtered by connection, action and user."""
    given = {"integration_id": integration_id, "action": action, "user_id": user_id}
    params = {name: value for name, value in given.items() if value is not None}
    if since is not None:
        params["since"] = since.isoformat()
    params["limit"] = str(limit)
    upstream = await forward(request, "GET", "/v1/admin/audit", admin.token, params=params)
    return passed_on(upstream, list[AuditRecord])
