"""HTTP routes: user-facing (bearer session), internal (service token), dev login."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, status

from syntaskio_auth.connections import Connections
from syntaskio_auth.dev_issuer import DevIssuer
from syntaskio_auth.models import (
    ApiKeyConnectionRequest,
    DevSessionRequest,
    Integration,
    IntegrationStatus,
    SessionToken,
)
from syntaskio_auth.settings import AuthSettings
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.problems import Problem
from syntaskio_common.service_auth import bearer_token
from syntaskio_common.sessions import InvalidSession, UserSession


def _connections(request: Request) -> Connections:
    connections: Connections = request.app.state.connections
    return connections


def _issuer(request: Request) -> DevIssuer:
    issuer: DevIssuer = request.app.state.issuer
    return issuer


async def _current_user(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> UserSession:
    try:
        return _issuer(request).verify(bearer_token(authorization))
    except InvalidSession as error:
        raise Problem(401, "The session is invalid or has expired.") from error


CurrentUser = Annotated[UserSession, Depends(_current_user)]
ConnectionsDep = Annotated[Connections, Depends(_connections)]

public = APIRouter()
# Internal routes get their token check when mounted (see app.py): it needs the settings.
internal = APIRouter(prefix="/internal/v1")


@public.get("/.well-known/jwks.json", tags=["sessions"])
async def jwks(request: Request) -> dict[str, Any]:
    return _issuer(request).jwks()


@public.post("/v1/dev/sessions", tags=["sessions"], status_code=status.HTTP_201_CREATED)
async def dev_login(body: DevSessionRequest, request: Request) -> SessionToken:
    """Development login: a signed session for any user and tenant. Off in production."""
    settings: AuthSettings = request.app.state.settings
    if not settings.dev_login_enabled:
        raise Problem(404, "Not Found")
    issuer = _issuer(request)
    token = issuer.issue(
        UserSession(user_id=body.user_id, tenant_id=body.tenant_id, name=body.name)
    )
    return SessionToken(access_token=token, expires_in=issuer.ttl_seconds)


@public.post(
    "/v1/integrations/connectwise/api-key",
    tags=["integrations"],
    status_code=status.HTTP_201_CREATED,
)
async def connect_api_key(
    body: ApiKeyConnectionRequest, user: CurrentUser, connections: ConnectionsDep
) -> Integration:
    return await connections.connect_api_key(user, body)


@public.get("/v1/integrations", tags=["integrations"])
async def list_integrations(user: CurrentUser, connections: ConnectionsDep) -> list[Integration]:
    return await connections.repository.list_for_user(user.tenant_id, user.user_id)


@internal.get("/integrations", tags=["internal"])
async def list_by_status(
    connections: ConnectionsDep, status: IntegrationStatus = IntegrationStatus.ACTIVE
) -> list[Integration]:
    return await connections.repository.list_by_status(status)


@internal.post("/integrations/{integration_id}/credentials/lease", tags=["internal"])
async def lease_credentials(integration_id: str, connections: ConnectionsDep) -> CredentialLease:
    return await connections.lease(integration_id)
