"""The dashboard API under /api/v1: the one door for frontends."""

from __future__ import annotations

from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from syntaskio_common.problems import Problem
from syntaskio_common.service_auth import bearer_token
from syntaskio_common.sessions import InvalidSession, JwksSessionVerifier, UserSession
from syntaskio_gateway.settings import GatewaySettings
from syntaskio_gateway.tasks import TaskPage, TaskReader


class AuthenticatedUser(UserSession):
    token: str = Field(exclude=True, repr=False)


def _settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


async def _current_user(request: Request) -> AuthenticatedUser:
    """A session from the HttpOnly cookie (browsers) or a bearer token (API clients)."""
    settings = _settings(request)
    token = request.cookies.get(settings.session_cookie_name)
    if not token:
        token = bearer_token(request.headers.get("Authorization"))
    verifier: JwksSessionVerifier = request.app.state.verifier
    try:
        session = await verifier.verify(token)
    except InvalidSession as error:
        raise Problem(401, "The session is invalid or has expired.") from error
    except httpx.HTTPError as error:
        raise Problem(503, "Sessions cannot be verified right now.") from error
    return AuthenticatedUser(**session.model_dump(), token=token)


CurrentUser = Annotated[AuthenticatedUser, Depends(_current_user)]
router = APIRouter(prefix="/api/v1")


def _auth_service(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.auth_service
    return client


async def _forward(
    request: Request, method: str, path: str, token: str | None, json: Any = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return await _auth_service(request).request(method, path, json=json, headers=headers)
    except httpx.HTTPError as error:
        raise Problem(503, "The integration service is unavailable.") from error


def _relay(upstream: httpx.Response) -> Response:
    """Pass auth-service's answer (JSON or problem+json) through unchanged."""
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
    )


class DevLoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128)
    tenant_id: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=128)


class SessionInfo(BaseModel):
    user_id: str
    tenant_id: str
    name: str | None = None
    access_token: str | None = Field(
        default=None, description="For API clients; browsers use the HttpOnly cookie."
    )
    expires_in: int | None = None


@router.post(
    "/session/dev-login",
    tags=["session"],
    status_code=status.HTTP_201_CREATED,
    response_model=SessionInfo,
)
async def dev_login(
    body: DevLoginRequest, request: Request, response: Response
) -> SessionInfo | Response:
    """Development login (only where auth-service's dev issuer is enabled)."""
    upstream = await _forward(request, "POST", "/v1/dev/sessions", None, body.model_dump())
    if upstream.status_code != status.HTTP_201_CREATED:
        return _relay(upstream)
    issued = upstream.json()
    response.set_cookie(
        _settings(request).session_cookie_name,
        issued["access_token"],
        max_age=int(issued["expires_in"]),
        httponly=True,
        secure=_settings(request).secure_cookies,
        samesite="strict",
        path="/",
    )
    return SessionInfo(
        user_id=body.user_id,
        tenant_id=body.tenant_id,
        name=body.name,
        access_token=issued["access_token"],
        expires_in=issued["expires_in"],
    )


@router.post("/session/logout", tags=["session"], status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, response: Response) -> None:
    response.delete_cookie(_settings(request).session_cookie_name, path="/")


@router.get("/me", tags=["session"])
async def me(user: CurrentUser) -> SessionInfo:
    return SessionInfo(user_id=user.user_id, tenant_id=user.tenant_id, name=user.name)


@router.get("/tasks", tags=["tasks"])
async def list_tasks(
    request: Request,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> TaskPage:
    """The signed-in user's tasks, most recently updated first."""
    reader: TaskReader = request.app.state.tasks
    return await reader.list_for(user, limit)


@router.get("/integrations", tags=["integrations"])
async def list_integrations(request: Request, user: CurrentUser) -> Response:
    return _relay(await _forward(request, "GET", "/v1/integrations", user.token))


class ApiKeyConnection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    site: str = Field(min_length=1, max_length=253)
    company_id: str = Field(min_length=1, max_length=64)
    public_key: str = Field(min_length=1, max_length=128)
    private_key: str = Field(min_length=1, max_length=128)


@router.post(
    "/integrations/connectwise/api-key",
    tags=["integrations"],
    status_code=status.HTTP_201_CREATED,
)
async def connect_connectwise(
    body: ApiKeyConnection, request: Request, user: CurrentUser
) -> Response:
    """Connect ConnectWise with API-member keys; they go to the vault, never back out."""
    upstream = await _forward(
        request, "POST", "/v1/integrations/connectwise/api-key", user.token, body.model_dump()
    )
    return _relay(upstream)
