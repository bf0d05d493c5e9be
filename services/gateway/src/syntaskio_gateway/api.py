"""The dashboard API under /api/v1: the one door for frontends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, status
from fastapi.responses import RedirectResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, ConfigDict, Field

from syntaskio_common.connection_requests import ApiKeyConnectionRequest, OAuthStartRequest
from syntaskio_common.problems import Problem
from syntaskio_common.rate_limits import RateLimiter
from syntaskio_common.service_auth import bearer_token
from syntaskio_common.sessions import InvalidSession, JwksSessionVerifier, UserSession
from syntaskio_common.task import Task
from syntaskio_gateway.live import TaskFeed, stream
from syntaskio_gateway.settings import GatewaySettings
from syntaskio_gateway.task_query import InvalidQuery, TaskFilters, TaskListQuery
from syntaskio_gateway.tasks import TaskFacets, TaskPage, TaskReader

# Per client IP, in this process (see RateLimiter): logins are what a guesser would hammer.
DEV_LOGIN_LIMIT = "20/minute"
# Where a browser without a valid session is sent.
SIGN_IN_PAGE = "/"
# Headers worth passing on from auth-service's answers besides the body and its type.
_RELAYED_HEADERS = ("retry-after", "www-authenticate")


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


async def _browser_user(request: Request) -> AuthenticatedUser | None:
    """Like `_current_user`, but None instead of a 401, for pages a browser navigates to."""
    try:
        return await _current_user(request)
    except Problem as problem:
        if problem.status == status.HTTP_401_UNAUTHORIZED:
            return None
        raise


def _rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def _limit_dev_login(request: Request) -> None:
    client = request.client.host if request.client else "unknown"
    await _rate_limiter(request).hit(DEV_LOGIN_LIMIT, "dev-login", client)


CurrentUser = Annotated[AuthenticatedUser, Depends(_current_user)]
BrowserUser = Annotated[AuthenticatedUser | None, Depends(_browser_user)]
# Ids are our services' UUIDs (integrations, tasks); the pattern keeps anything else out of
# queries and upstream paths.
ResourceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
router = APIRouter(prefix="/api/v1")


def _auth_service(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.auth_service
    return client


async def _forward(
    request: Request,
    method: str,
    path: str,
    token: str | None,
    json: Any = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """Call auth-service as the user: the token travels in a header, never in the URL."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return await _auth_service(request).request(
            method, path, json=json, params=params, headers=headers
        )
    except httpx.HTTPError as error:
        raise Problem(503, "The integration service is unavailable.") from error


def _relay(upstream: httpx.Response) -> Response:
    """Pass auth-service's answer (JSON or problem+json) through unchanged."""
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
        headers={
            name: upstream.headers[name] for name in _RELAYED_HEADERS if name in upstream.headers
        },
    )


def _see_other(location: str) -> RedirectResponse:
    return RedirectResponse(
        location,
        status_code=status.HTTP_303_SEE_OTHER,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def is_local_path(location: str) -> bool:
    """A path on this site: "/x" but not "//host" (scheme-relative), nor anything a browser
    might rewrite into one ("/\\host", control characters or whitespace it strips)."""
    return (
        location.startswith("/")
        and not location.startswith("//")
        and "\\" not in location
        and location.isascii()
        and location.isprintable()
        and " " not in location
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
    dependencies=[Depends(_limit_dev_login)],
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
        # Lax, not Strict: the OAuth provider sends the browser back to our callback with a
        # top-level cross-site GET, and a Strict cookie would not be sent with it. Lax still
        # withholds the cookie from cross-site POSTs (CSRF), and every route that changes
        # state is a POST or DELETE.
        samesite="lax",
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
    settings = _settings(request)
    response.delete_cookie(
        settings.session_cookie_name,
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="lax",
    )


@router.get("/me", tags=["session"])
async def me(user: CurrentUser) -> SessionInfo:
    return SessionInfo(user_id=user.user_id, tenant_id=user.tenant_id, name=user.name)


def _reader(request: Request) -> TaskReader:
    reader: TaskReader = request.app.state.tasks
    return reader


Reader = Annotated[TaskReader, Depends(_reader)]


@router.get("/tasks", tags=["tasks"])
async def list_tasks(
    user: CurrentUser, reader: Reader, query: Annotated[TaskListQuery, Query()]
) -> TaskPage:
    """The signed-in user's tasks: filtered, searched, sorted, one page at a time."""
    try:
        return await reader.page(user, query)
    except InvalidQuery as error:
        raise Problem(400, str(error)) from None


@router.get("/tasks/facets", tags=["tasks"])
async def task_facets(
    user: CurrentUser, reader: Reader, filters: Annotated[TaskFilters, Query()]
) -> TaskFacets:
    """How many of the user's tasks each filter value would show: "Board: Service (12)"."""
    return await reader.facets(user, filters)


@router.get("/tasks/stream", tags=["tasks"], response_class=EventSourceResponse)
async def task_stream(
    request: Request,
    user: CurrentUser,
    last_event_id: Annotated[str | None, Header(max_length=200)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """The user's task changes as Server-Sent Events: `task.upserted` (data: `version`,
    `task`) and `task.deleted` (the task's ids and `version`); keep per task the greatest
    `version`. `ready` once caught up. Reconnecting with `Last-Event-ID` resumes after that
    event; `reset` means changes were missed: load the tasks again."""
    feed: TaskFeed = request.app.state.feed
    with feed.buffer.subscribe(user.tenant_id, user.user_id, last_event_id) as subscription:
        async for message in stream(subscription):
            yield message


@router.get("/tasks/{task_id}", tags=["tasks"])
async def get_task(task_id: ResourceId, user: CurrentUser, reader: Reader) -> Task:
    """One of the user's tasks, with its source details and deep link."""
    task = await reader.get(user, task_id)
    if task is None:
        raise Problem(404, "No such task.")
    return task


@router.get("/integrations", tags=["integrations"])
async def list_integrations(request: Request, user: CurrentUser) -> Response:
    return _relay(await _forward(request, "GET", "/v1/integrations", user.token))


@router.post(
    "/integrations/connectwise/api-key",
    tags=["integrations"],
    status_code=status.HTTP_201_CREATED,
)
async def connect_connectwise(
    body: ApiKeyConnectionRequest, request: Request, user: CurrentUser
) -> Response:
    """Connect ConnectWise with API-member keys; they go to the vault, never back out."""
    upstream = await _forward(
        request, "POST", "/v1/integrations/connectwise/api-key", user.token, body.forwarded()
    )
    return _relay(upstream)


@router.post("/integrations/connectwise/oauth/start", tags=["integrations"])
async def start_connectwise_oauth(
    body: OAuthStartRequest, request: Request, user: CurrentUser
) -> Response:
    """Begin connecting with OAuth2; send the browser to the `authorization_url` returned."""
    upstream = await _forward(
        request, "POST", "/v1/integrations/connectwise/oauth/start", user.token, body.model_dump()
    )
    return _relay(upstream)


@router.get(
    "/integrations/connectwise/oauth/callback",
    tags=["integrations"],
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
        return _see_other(SIGN_IN_PAGE)
    given = {"state": state, "code": code, "error": error}
    params = {name: value for name, value in given.items() if value is not None}
    upstream = await _forward(
        request, "GET", "/v1/integrations/connectwise/oauth/callback", user.token, params=params
    )
    if upstream.status_code == status.HTTP_401_UNAUTHORIZED:
        return _see_other(SIGN_IN_PAGE)
    if upstream.is_redirect:
        location = upstream.headers.get("location", "")
        if is_local_path(location):
            return _see_other(location)
    elif upstream.is_error:
        return _relay(upstream)
    raise Problem(502, "The integration service gave an unexpected answer.")


@router.get("/integrations/{integration_id}", tags=["integrations"])
async def get_integration(
    integration_id: ResourceId, request: Request, user: CurrentUser
) -> Response:
    return _relay(await _forward(request, "GET", f"/v1/integrations/{integration_id}", user.token))


@router.delete("/integrations/{integration_id}", tags=["integrations"])
async def disconnect_integration(
    integration_id: ResourceId, request: Request, user: CurrentUser
) -> Response:
    """Disconnect: credentials are deleted and syncing stops; the integration stays listed
    as `disconnected`."""
    return _relay(
        await _forward(request, "DELETE", f"/v1/integrations/{integration_id}", user.token)
    )
