"""What every route of the dashboard API depends on: the signed-in user (verified, and
held to the per-user request rate), the services the gateway calls, and id parameters."""

from __future__ import annotations

from typing import Annotated

import httpx
from fastapi import Depends, Path, Request, status
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import Field

from syntaskio_common.problems import Problem
from syntaskio_common.rate_limits import RateLimiter
from syntaskio_common.request_context import note_tenant
from syntaskio_common.sessions import InvalidSession, SessionVerifier, UserSession, admin_only
from syntaskio_gateway.connector import ConnectorApi
from syntaskio_gateway.settings import GatewaySettings

# The browser's session: an HttpOnly cookie set at sign-in. API clients send the same token
# as a bearer token. (Declared as security schemes, so the OpenAPI document says which
# routes need a session.)
SESSION_COOKIE = "syntaskio_session"
_session_cookie = APIKeyCookie(name=SESSION_COOKIE, auto_error=False, scheme_name="session")
_bearer = HTTPBearer(auto_error=False, scheme_name="bearer")


class AuthenticatedUser(UserSession):
    token: str = Field(exclude=True, repr=False)


def settings_of(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


def _connector(request: Request) -> ConnectorApi:
    connector: ConnectorApi = request.app.state.connector
    return connector


Connector = Annotated[ConnectorApi, Depends(_connector)]


def rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def _current_user(
    request: Request,
    cookie: Annotated[str | None, Depends(_session_cookie)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthenticatedUser:
    """A session from the HttpOnly cookie (browsers) or a bearer token (API clients),
    counted against the user's request rate (floods of tokens and from addresses were
    refused before: `flood_guard`)."""
    settings = settings_of(request)
    token = cookie or (bearer.credentials if bearer else None)
    if not token:
        raise Problem(401, "A session (cookie or bearer token) is required.")
    verifier: SessionVerifier = request.app.state.verifier
    try:
        session = await verifier.verify(token)
        note_tenant(session.tenant_id)
    except InvalidSession as error:
        raise Problem(401, "The session is invalid or has expired.") from error
    except httpx.HTTPError as error:
        raise Problem(503, "Sessions cannot be verified right now.") from error
    await rate_limiter(request).hit(
        settings.user_rate_limit, "user", session.tenant_id, session.user_id
    )
    return AuthenticatedUser(**session.model_dump(), token=token)


async def _browser_user(
    request: Request,
    cookie: Annotated[str | None, Depends(_session_cookie)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AuthenticatedUser | None:
    """Like `_current_user`, but None instead of a 401, for pages a browser navigates to."""
    try:
        return await _current_user(request, cookie, bearer)
    except Problem as problem:
        if problem.status == status.HTTP_401_UNAUTHORIZED:
            return None
        raise


CurrentUser = Annotated[AuthenticatedUser, Depends(_current_user)]


async def _admin(user: CurrentUser) -> AuthenticatedUser:
    return admin_only(user)


AdminUser = Annotated[AuthenticatedUser, Depends(_admin)]
BrowserUser = Annotated[AuthenticatedUser | None, Depends(_browser_user)]
# Ids are our services' UUIDs (integrations, tasks, commands); the pattern keeps anything
# else out of queries and upstream paths.
ResourceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
