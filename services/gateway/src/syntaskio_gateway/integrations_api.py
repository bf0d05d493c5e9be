"""Integration settings under /api/v1/integrations: connections are auth-service's
(called as the user, so it scopes them), syncing is the connector's (called with
CONNECTOR_API_TOKEN, only after auth-service has confirmed the integration is the user's).
A technician's view of their company's connection is here too; what admins manage is in
`admin_api`."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, TypeAdapter

from syntaskio_common.connection_requests import ApiKeyConnectionRequest, OAuthStartRequest
from syntaskio_common.integrations import (
    Integration,
    IntegrationStatus,
    SyncJob,
    SyncOptions,
    SyncStatus,
)
from syntaskio_common.mappings import MappingRequest, MemberMapping, TenantConnectionView
from syntaskio_common.problems import Problem
from syntaskio_common.tenant_settings import TenantSettings
from syntaskio_gateway.auth_proxy import forward, passed_on, relay
from syntaskio_gateway.connector import ConnectorApi, ConnectorUnavailable
from syntaskio_gateway.dependencies import (
    AuthenticatedUser,
    BrowserUser,
    Connector,
    CurrentUser,
    ResourceId,
)
from syntaskio_gateway.integrations import IntegrationOverview, overview
from syntaskio_gateway.redirects import is_local_path, see_other

logger = logging.getLogger(__name__)
# Where a browser without a valid session is sent.
SIGN_IN_PAGE = "/"
# Connections whose syncing there is something to say about (a paused one keeps its
# history, budget and options; it is only not synced until resumed).
_SYNCED = frozenset(
    {
        IntegrationStatus.ACTIVE,
        IntegrationStatus.ERROR,
        IntegrationStatus.EXPIRED,
        IntegrationStatus.PAUSED,
    }
)
_INTEGRATIONS = TypeAdapter(list[Integration])

router = APIRouter(prefix="/api/v1", tags=["integrations"])
# What auth-service answers when connecting fails, passed on.
_CONNECT_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Site not allowed, unknown company, or keys ConnectWise refused"},
    502: {"description": "ConnectWise gave an answer we cannot use"},
    503: {"description": "auth-service or ConnectWise cannot be reached"},
}
_NOT_THEIRS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not one of the user's integrations"},
    503: {"description": "auth-service or the connector cannot be reached"},
}


class SyncQueued(BaseModel):
    status: str = "queued"
    integration_id: str
    resync: bool = False


async def job_history(
    connector: ConnectorApi, integration: Integration, limit: int
) -> list[SyncJob]:
    """The integration's recent sync runs (the caller checked whose it is)."""
    try:
        return await connector.sync_history(integration.tenant_id, integration.id, limit)
    except ConnectorUnavailable as error:
        raise Problem(503, "Sync history is unavailable right now.") from error


async def queue_sync(
    connector: ConnectorApi, integration: Integration, *, resync: bool = False, refusal: str
) -> SyncQueued:
    """Ask the connector for a run of an active integration (the caller checked whose it
    is); `refusal` ends the 409's words for one that is not active."""
    if integration.status is not IntegrationStatus.ACTIVE:
        raise Problem(409, f"The connection is {integration.status.value}; {refusal}.")
    try:
        await connector.sync_now(integration.id, resync=resync)
    except ConnectorUnavailable as error:
        raise Problem(503, "Syncing is unavailable right now; try again shortly.") from error
    return SyncQueued(integration_id=integration.id, resync=resync)


async def _users_integration(
    integration_id: ResourceId, request: Request, user: CurrentUser
) -> Integration:
    """The user's integration, as auth-service knows it; its problem (404, 401) otherwise."""
    upstream = await forward(request, "GET", f"/v1/integrations/{integration_id}", user.token)
    if upstream.is_error:
        raise Problem(
            upstream.status_code,
            "No such integration." if upstream.status_code == 404 else "Integration unavailable.",
        )
    return Integration.model_validate_json(upstream.content)


UsersIntegration = Annotated[Integration, Depends(_users_integration)]


async def sync_status_of(connector: ConnectorApi, integration: Integration) -> SyncStatus | None:
    """How the integration syncs, when there is something to say and the connector
    answers; None otherwise (the page still shows the connection)."""
    if integration.status not in _SYNCED:
        return None
    try:
        return await connector.sync_status(integration.tenant_id, integration.id)
    except ConnectorUnavailable as error:
        # The page still shows the connection; its sync details come back with the connector.
        logger.warning("sync status unavailable: %s", error)
        return None


async def overviews(
    request: Request, path: str, user: AuthenticatedUser, connector: ConnectorApi
) -> list[IntegrationOverview]:
    """auth-service's list at `path` (as the user), each with how it syncs."""
    upstream = await forward(request, "GET", path, user.token)
    if upstream.is_error:
        raise Problem(upstream.status_code, "Integrations are unavailable.")
    integrations = _INTEGRATIONS.validate_json(upstream.content)
    statuses = await asyncio.gather(*(sync_status_of(connector, i) for i in integrations))
    return [overview(i, s) for i, s in zip(integrations, statuses, strict=True)]


@router.get("/integrations", responses={503: {}})
async def list_integrations(
    request: Request, user: CurrentUser, connector: Connector
) -> list[IntegrationOverview]:
    """The user's connections with their state, last and next sync, and API budget."""
    return await overviews(request, "/v1/integrations", user, connector)


@router.get("/settings", tags=["settings"], response_model=TenantSettings, responses={503: {}})
async def company_settings(request: Request, user: CurrentUser) -> TenantSettings | Response:
    """The company's settings as the technician's actions use them (a time entry's
    default length, whether ConnectWise is on)."""
    upstream = await forward(request, "GET", "/v1/settings", user.token)
    return passed_on(upstream, TenantSettings)


# Before /integrations/{integration_id}, which would take "tenant" for an id.
@router.get(
    "/integrations/tenant",
    response_model=TenantConnectionView,
    responses={
        404: {"description": "The company has no ConnectWise connection"},
        502: {"description": "auth-service gave an answer we cannot use"},
        503: {},
    },
)
async def get_tenant_connection(
    request: Request, user: CurrentUser
) -> TenantConnectionView | Response:
    """The company's ConnectWise connection (made once by an admin) and the signed-in
    user's own member mapping under it (`mapping` null: not mapped yet)."""
    upstream = await forward(request, "GET", "/v1/integrations/tenant", user.token)
    return passed_on(upstream, TenantConnectionView)


@router.post(
    "/integrations/tenant/mapping-request",
    response_model=MemberMapping,
    responses={
        404: {"description": "The company has no ConnectWise connection"},
        409: {
            "description": "The member is mapped to someone else, the user's mapping is "
            "confirmed already, or the connection is not usable"
        },
        422: {
            "description": "No such active member in ConnectWise, or none with the user's e-mail"
        },
        502: {"description": "ConnectWise or auth-service gave an answer we cannot use"},
        503: {},
    },
)
async def request_mapping(
    body: MappingRequest, request: Request, user: CurrentUser
) -> MemberMapping | Response:
    """Ask to be mapped to a ConnectWise member: the one named, or (no `member_identifier`)
    the one whose e-mail is the user's verified e-mail. An admin confirms it; until then
    nothing is synced for it."""
    upstream = await forward(
        request,
        "POST",
        "/v1/integrations/tenant/mapping-request",
        user.token,
        body.model_dump(mode="json"),
    )
    return passed_on(upstream, MemberMapping)


@router.get("/integrations/{integration_id}", responses=_NOT_THEIRS)
async def get_integration(
    integration: UsersIntegration, connector: Connector
) -> IntegrationOverview:
    return overview(integration, await sync_status_of(connector, integration))


@router.get("/integrations/{integration_id}/sync-jobs", responses=_NOT_THEIRS)
async def sync_history(
    integration: UsersIntegration,
    connector: Connector,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[SyncJob]:
    """The integration's recent sync runs, newest first: trigger, outcome, records, cost."""
    return await job_history(connector, integration, limit)


@router.post(
    "/integrations/{integration_id}/sync",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_NOT_THEIRS, 409: {"description": "The connection is not active"}},
)
async def sync_now(integration: UsersIntegration, connector: Connector) -> SyncQueued:
    """Sync as soon as possible (within the integration's API budget)."""
    return await queue_sync(connector, integration, refusal="reconnect it first")


@router.put(
    "/integrations/{integration_id}/sync-options",
    responses={**_NOT_THEIRS, 409: {"description": "The connection is pending or disconnected"}},
)
async def set_sync_options(
    options: SyncOptions, integration: UsersIntegration, connector: Connector
) -> SyncOptions:
    """Set what the connection syncs beyond the member's tickets: every option (one left
    out takes its default). An active connection syncs a change at once."""
    if integration.status not in _SYNCED:
        raise Problem(409, f"The connection is {integration.status.value}; connect it first.")
    try:
        return await connector.set_sync_options(integration.tenant_id, integration.id, options)
    except ConnectorUnavailable as error:
        raise Problem(503, "Sync options are unavailable right now; try again shortly.") from error


@router.post(
    "/integrations/connectwise/api-key",
    status_code=status.HTTP_201_CREATED,
    responses=_CONNECT_ANSWERS,
)
async def connect_connectwise(
    body: ApiKeyConnectionRequest, request: Request, user: CurrentUser
) -> Response:
    """Connect ConnectWise with API-member keys; they go to the vault, never back out."""
    upstream = await forward(
        request, "POST", "/v1/integrations/connectwise/api-key", user.token, body.forwarded()
    )
    return relay(upstream)


@router.post("/integrations/connectwise/oauth/start", responses=_CONNECT_ANSWERS)
async def start_connectwise_oauth(
    body: OAuthStartRequest, request: Request, user: CurrentUser
) -> Response:
    """Begin connecting with OAuth2; send the browser to the `authorization_url` returned."""
    upstream = await forward(
        request, "POST", "/v1/integrations/connectwise/oauth/start", user.token, body.model_dump()
    )
    return relay(upstream)


@router.get(
    "/integrations/connectwise/oauth/callback",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
)
async def connectwise_oauth_callback(
    request: Request,
    user: BrowserUser,
    state: Annotated[str | None, Query(max_length=1024)] = None,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Where ConnectWise sends the browser back: finishes the flow in auth-service, then
    redirects to the settings page (`/settings?connectwise=<outcome>`)."""
    if user is None:
        return see_other(SIGN_IN_PAGE)
    given = {"state": state, "code": code, "error": error}
    params = {name: value for name, value in given.items() if value is not None}
    upstream = await forward(
        request, "GET", "/v1/integrations/connectwise/oauth/callback", user.token, params=params
    )
    if upstream.status_code == status.HTTP_401_UNAUTHORIZED:
        return see_other(SIGN_IN_PAGE)
    if upstream.is_redirect:
        location = upstream.headers.get("location", "")
        if is_local_path(location):
            return see_other(location)
    elif upstream.is_error:
        return relay(upstream)
    raise Problem(502, "The integration service gave an unexpected answer.")


@router.delete("/integrations/{integration_id}", responses=_NOT_THEIRS)
async def disconnect_integration(
    integration_id: ResourceId, request: Request, user: CurrentUser
) -> Response:
    """Disconnect: credentials are deleted and syncing stops; the integration stays listed
    as `disconnected`."""
    return relay(await forward(request, "DELETE", f"/v1/integrations/{integration_id}", user.token))
