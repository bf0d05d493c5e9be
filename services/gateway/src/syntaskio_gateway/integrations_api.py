"""Integration settings under /api/v1/integrations: connections are auth-service's
(called as the user, so it scopes them), syncing is the connector's (called with
CONNECTOR_API_TOKEN, only after auth-service has confirmed the integration is the user's)."""

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
from syntaskio_common.problems import Problem
from syntaskio_gateway.auth_proxy import forward, relay
from syntaskio_gateway.connector import ConnectorApi, ConnectorUnavailable
from syntaskio_gateway.dependencies import (
    AdminUser,
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
# Connections whose syncing there is something to say about.
_SYNCED = frozenset({IntegrationStatus.ACTIVE, IntegrationStatus.ERROR, IntegrationStatus.EXPIRED})
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


async def _sync_status(connector: ConnectorApi, integration: Integration) -> SyncStatus | None:
    if integration.status not in _SYNCED:
        return None
    try:
        return await connector.sync_status(integration.tenant_id, integration.id)
    except ConnectorUnavailable as error:
        # The page still shows the connection; its sync details come back with the connector.
        logger.warning("sync status unavailable: %s", error)
        return None


async def _overviews(
    request: Request, path: str, user: AuthenticatedUser, connector: ConnectorApi
) -> list[IntegrationOverview]:
    upstream = await forward(request, "GET", path, user.token)
    if upstream.is_error:
        raise Problem(upstream.status_code, "Integrations are unavailable.")
    integrations = _INTEGRATIONS.validate_json(upstream.content)
    statuses = await asyncio.gather(*(_sync_status(connector, i) for i in integrations))
    return [overview(i, s) for i, s in zip(integrations, statuses, strict=True)]


@router.get("/integrations", responses={503: {}})
async def list_integrations(
    request: Request, user: CurrentUser, connector: Connector
) -> list[IntegrationOverview]:
    """The user's connections with their state, last and next sync, and API budget."""
    return await _overviews(request, "/v1/integrations", user, connector)


@router.get(
    "/admin/integrations",
    tags=["admin"],
    responses={403: {"description": "Not an admin of the company"}, 503: {}},
)
async def list_tenant_integrations(
    request: Request, admin: AdminUser, connector: Connector
) -> list[IntegrationOverview]:
    """Admins: every connection of their company (whoever made it), with its state, last
    and next sync, and API budget."""
    return await _overviews(request, "/v1/admin/integrations", admin, connector)


@router.get("/integrations/{integration_id}", responses=_NOT_THEIRS)
async def get_integration(
    integration: UsersIntegration, connector: Connector
) -> IntegrationOverview:
    return overview(integration, await _sync_status(connector, integration))


@router.get("/integrations/{integration_id}/sync-jobs", responses=_NOT_THEIRS)
async def sync_history(
    integration: UsersIntegration,
    connector: Connector,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[SyncJob]:
    """The integration's recent sync runs, newest first: trigger, outcome, records, cost."""
    try:
        return await connector.sync_history(integration.tenant_id, integration.id, limit)
    except ConnectorUnavailable as error:
        raise Problem(503, "Sync history is unavailable right now.") from error


@router.post(
    "/integrations/{integration_id}/sync",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_NOT_THEIRS, 409: {"description": "The connection is not active"}},
)
async def sync_now(integration: UsersIntegration, connector: Connector) -> SyncQueued:
    """Sync as soon as possible (within the integration's API budget)."""
    if integration.status is not IntegrationStatus.ACTIVE:
        raise Problem(409, f"The connection is {integration.status.value}; reconnect it first.")
    try:
        await connector.sync_now(integration.id)
    except ConnectorUnavailable as error:
        raise Problem(503, "Syncing is unavailable right now; try again shortly.") from error
    return SyncQueued(integration_id=integration.id)


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
