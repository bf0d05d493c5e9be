"""Signing in and out under /api/v1/session: with the company's OpenID Connect provider
(auth-service runs the flow and issues the session; the gateway is where the browser
goes and holds the cookies), or with the development login where it is on."""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict, Field

from syntaskio_common.sessions import Role, SignedOut, SignInMethods
from syntaskio_gateway.auth_proxy import forward, relay
from syntaskio_gateway.dependencies import (
    SESSION_COOKIE,
    BrowserUser,
    CurrentUser,
    rate_limiter,
    settings_of,
)
from syntaskio_gateway.redirects import is_local_path, see_other

# Per client IP, in this process (see RateLimiter): sign-ins are what a guesser hammers.
# A company's technicians may share one address, and a sign-in is two requests (start,
# callback); the development login is tighter.
SIGN_IN_LIMIT = "60/minute"
DEV_LOGIN_LIMIT = "20/minute"
# Binds a sign-in to the browser that started it (login CSRF); only the callback reads it.
SIGN_IN_COOKIE = "syntaskio_sign_in"
CALLBACK_PATH = "/api/v1/session/callback"


def _per_address(limit: str, name: str) -> Callable[[Request], Awaitable[None]]:
    async def hit(request: Request) -> None:
        client = request.client.host if request.client else "unknown"
        await rate_limiter(request).hit(limit, name, client)

    return hit


_limit_sign_in = _per_address(SIGN_IN_LIMIT, "sign-in")
_limit_dev_login = _per_address(DEV_LOGIN_LIMIT, "dev-login")


router = APIRouter(prefix="/api/v1", tags=["session"])
_REFUSAL_PAGE: dict[str, Any] = {
    "description": "The sign-in was refused (an HTML page says why)",
    "content": {"text/html": {"schema": {"type": "string"}}},
}


class DevLoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=128)
    tenant_id: str = Field(min_length=1, max_length=64)
    name: str | None = Field(default=None, max_length=128)
    # As if the identity provider had verified it (member mappings are proposed by it).
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")
    roles: tuple[Role, ...] = Field(default=(Role.TECHNICIAN,), min_length=1)


class SessionInfo(BaseModel):
    user_id: str
    tenant_id: str
    name: str | None = None
    email: str | None = Field(default=None, description="Verified by the identity provider")
    roles: tuple[Role, ...] = (Role.TECHNICIAN,)
    access_token: str | None = Field(
        default=None, description="For API clients; browsers use the HttpOnly cookie."
    )
    expires_in: int | None = None
    expires_at: datetime | None = Field(
        default=None, description="When this session token ends (renew before, with POST …/renew)"
    )
    ends_at: datetime | None = Field(
        default=None, description="When the session ends whatever renewals: sign in again then"
    )


class SessionRenewed(BaseModel):
    expires_in: int
    access_token: str = Field(description="For API clients; browsers use the HttpOnly cookie.")


def _set_session_cookie(request: Request, response: Response, token: str, max_age: int) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age,
        httponly=True,
        secure=settings_of(request).secure_cookies,
        # Lax, not Strict: identity and OAuth providers send the browser back with a
        # top-level cross-site GET, and a Strict cookie would not be sent with it. Lax still
        # withholds the cookie from cross-site POSTs (CSRF), and every route that changes
        # state is a POST, PUT or DELETE.
        samesite="lax",
        path="/",
    )


def _delete_cookie(request: Request, response: Response, name: str, path: str) -> None:
    response.delete_cookie(
        name, path=path, secure=settings_of(request).secure_cookies, httponly=True, samesite="lax"
    )


@router.get("/session/methods", response_model=SignInMethods, responses={503: {}})
async def sign_in_methods(request: Request) -> SignInMethods | Response:
    """How people sign in here: the sign-in page offers what is on."""
    upstream = await forward(request, "GET", "/v1/sessions/methods", None)
    if upstream.status_code != status.HTTP_200_OK:
        return relay(upstream)
    return SignInMethods.model_validate(upstream.json())


@router.get(
    "/session/login",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    dependencies=[Depends(_limit_sign_in)],
    responses={
        404: {"description": "No identity provider is configured"},
        422: {"description": "`return_to` is not a page of this site"},
        429: {},
        503: {},
    },
)
async def sign_in(
    request: Request,
    return_to: Annotated[str, Query(max_length=500)] = "/",
) -> Response:
    """Sign in with the company's account: off to the identity provider, back at
    `/api/v1/session/callback`, then to `return_to` (a page of ours)."""
    upstream = await forward(
        request, "POST", "/v1/sessions/oidc/start", None, {"return_to": return_to}
    )
    if upstream.status_code != status.HTTP_200_OK:
        return relay(upstream)
    started = upstream.json()
    response = RedirectResponse(started["authorization_url"], status.HTTP_303_SEE_OTHER)
    response.set_cookie(
        SIGN_IN_COOKIE,
        started["binding"],
        max_age=int(started["expires_in"]),
        httponly=True,
        secure=settings_of(request).secure_cookies,
        samesite="lax",  # sent with the provider's top-level redirect back to us
        path=CALLBACK_PATH,
    )
    return response


@router.get(
    "/session/callback",
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
    dependencies=[Depends(_limit_sign_in)],
    responses={
        400: _REFUSAL_PAGE,
        403: _REFUSAL_PAGE | {"description": "No known tenant or role (an HTML page says why)"},
        429: {},
        502: _REFUSAL_PAGE | {"description": "The identity provider failed"},
        503: {},
    },
)
async def sign_in_callback(
    request: Request,
    state: Annotated[str, Query(max_length=512)] = "",
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    """Where the identity provider sends the browser back: the session cookie is set and
    the browser goes on to the page it set out for; a refusal is a page saying why."""
    body: dict[str, Any] = {"state": state or "-", "code": code, "error": error}
    body["binding"] = request.cookies.get(SIGN_IN_COOKIE)
    upstream = await forward(request, "POST", "/v1/sessions/oidc/finish", None, body)
    if upstream.status_code == status.HTTP_200_OK:
        issued = upstream.json()
        return_to = issued.get("return_to") or "/"
        response: Response = see_other(return_to if is_local_path(return_to) else "/")
        _set_session_cookie(request, response, issued["access_token"], int(issued["expires_in"]))
    else:
        response = _refusal_page(upstream)
    _delete_cookie(request, response, SIGN_IN_COOKIE, CALLBACK_PATH)
    return response


def _refusal_page(upstream: Any) -> HTMLResponse:
    """The person signing in is told why, in words; never a token or a stack trace."""
    try:
        detail = str(upstream.json().get("detail") or "")
    except ValueError:
        detail = ""
    detail = detail or "Signing in did not work. Please try again."
    page = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>Sign-in refused · Syntaskio</title>"
        '<link rel="stylesheet" href="/static/styles.css"></head>'
        '<body><main class="refused"><h1>You are not signed in</h1>'
        f'<p id="sign-in-refused">{html.escape(detail)}</p>'
        '<p><a href="/">Back to the sign-in page</a></p></main></body></html>'
    )
    code = upstream.status_code if 400 <= upstream.status_code < 500 else 502
    return HTMLResponse(page, status_code=code)


@router.post(
    "/session/dev-login",
    status_code=status.HTTP_201_CREATED,
    response_model=SessionInfo,
    dependencies=[Depends(_limit_dev_login)],
    responses={429: {"description": "Too many sign-ins from this address"}, 503: {}},
)
async def dev_login(
    body: DevLoginRequest, request: Request, response: Response
) -> SessionInfo | Response:
    """Development login (only where auth-service's dev login is enabled)."""
    # Unset fields are left out: auth-service refuses fields it does not know.
    upstream = await forward(
        request, "POST", "/v1/dev/sessions", None, body.model_dump(mode="json", exclude_none=True)
    )
    if upstream.status_code != status.HTTP_201_CREATED:
        return relay(upstream)
    issued = upstream.json()
    _set_session_cookie(request, response, issued["access_token"], int(issued["expires_in"]))
    return SessionInfo(
        user_id=body.user_id,
        tenant_id=body.tenant_id,
        name=body.name,
        email=body.email,
        roles=body.roles,
        access_token=issued["access_token"],
        expires_in=issued["expires_in"],
    )


@router.post("/session/logout", responses={503: {}})
async def logout(request: Request, response: Response, user: BrowserUser) -> SignedOut:
    """Sign out: the session is refused everywhere from now on and the cookie goes;
    `end_session_url`, when the identity provider has one, ends its session too."""
    signed_out = SignedOut()
    if user is not None:
        upstream = await forward(request, "POST", "/v1/sessions/logout", user.token)
        if upstream.status_code == status.HTTP_200_OK:
            signed_out = SignedOut.model_validate(upstream.json())
    _delete_cookie(request, response, SESSION_COOKIE, "/")
    return signed_out


@router.post(
    "/session/renew",
    response_model=SessionRenewed,
    responses={401: {"description": "Signed out, or the session reached its end"}, 503: {}},
)
async def renew(
    request: Request, response: Response, user: CurrentUser
) -> SessionRenewed | Response:
    """A new token of the same session in the cookie (and the body, for API clients),
    valid for another session lifetime but never past the session's end. The web page
    renews before its token expires while it is open."""
    upstream = await forward(request, "POST", "/v1/sessions/renew", user.token)
    if upstream.status_code != status.HTTP_200_OK:
        return relay(upstream)
    issued = upstream.json()
    _set_session_cookie(request, response, issued["access_token"], int(issued["expires_in"]))
    return SessionRenewed(access_token=issued["access_token"], expires_in=issued["expires_in"])


@router.get("/me")
async def me(user: CurrentUser) -> SessionInfo:
    return SessionInfo(
        user_id=user.user_id,
        tenant_id=user.tenant_id,
        name=user.name,
        email=user.email,
        roles=user.roles,
        expires_at=user.expires_at,
        ends_at=user.ends_at,
    )
