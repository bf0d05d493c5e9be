"""HTTP routes: user-facing (bearer session), internal (service token), dev login."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Header, Request, status
from fastapi.responses import RedirectResponse

from syntaskio_auth.company_settings import CompanySettings
from syntaskio_auth.connections import Connections
from syntaskio_auth.member_mapping import MemberMappings
from syntaskio_auth.models import (
    DevSessionRequest,
    OAuthStart,
    SessionToken,
    SignInFinish,
    SignInStart,
    SignInStarted,
)
from syntaskio_auth.renewal import CredentialLeases
from syntaskio_auth.repository import Owner
from syntaskio_auth.session_issuer import SessionIssuer
from syntaskio_auth.settings import AuthSettings
from syntaskio_auth.sign_in import SignIn, SignInRefused
from syntaskio_auth.tenant_users import TenantUsers
from syntaskio_common.connection_requests import ApiKeyConnectionRequest, OAuthStartRequest
from syntaskio_common.credentials import ActingLeaseRequest, CredentialLease, LeaseRequest
from syntaskio_common.integrations import ConnectionScope, Integration, IntegrationStatus
from syntaskio_common.problems import Problem
from syntaskio_common.rate_limits import RateLimiter
from syntaskio_common.request_context import note_tenant
from syntaskio_common.service_auth import bearer_token
from syntaskio_common.sessions import (
    InvalidSession,
    SignedOut,
    SignInMethods,
    UserSession,
    admin_only,
)

logger = logging.getLogger(__name__)
SessionVerifier = Callable[[str], Awaitable[UserSession]]

# Per-user limits on the endpoints that reach out to ConnectWise or mint sessions.
CONNECT_LIMIT = "10/minute"
# Member lookups in ConnectWise (proposing, mapping, a technician's request).
MAPPING_LIMIT = "60/minute"
CALLBACK_LIMIT = "30/minute"
LOGIN_LIMIT = "20/minute"


def _connections(request: Request) -> Connections:
    connections: Connections = request.app.state.connections
    return connections


def _credential_leases(request: Request) -> CredentialLeases:
    leases: CredentialLeases = request.app.state.credential_leases
    return leases


def _member_mappings(request: Request) -> MemberMappings:
    mappings: MemberMappings = request.app.state.member_mappings
    return mappings


def _tenant_users(request: Request) -> TenantUsers:
    users: TenantUsers = request.app.state.tenant_users
    return users


def _company_settings(request: Request) -> CompanySettings:
    settings: CompanySettings = request.app.state.company_settings
    return settings


def _issuer(request: Request) -> SessionIssuer:
    issuer: SessionIssuer = request.app.state.issuer
    return issuer


def _sign_in(request: Request) -> SignIn:
    """Sign-in with the company's identity provider; 404 where none is configured."""
    sign_in: SignIn | None = request.app.state.sign_in
    if sign_in is None:
        raise Problem(404, "Sign-in with an identity provider is not configured.")
    return sign_in


def _rate_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.rate_limiter
    return limiter


async def _current_user(
    request: Request, authorization: Annotated[str | None, Header()] = None
) -> UserSession:
    verify: SessionVerifier = request.app.state.verify_session
    try:
        session = await verify(bearer_token(authorization))
    except InvalidSession as error:
        raise Problem(401, "The session is invalid or has expired.") from error
    note_tenant(session.tenant_id)
    return session


CurrentUser = Annotated[UserSession, Depends(_current_user)]


async def _admin(user: CurrentUser) -> UserSession:
    return admin_only(user)


AdminUser = Annotated[UserSession, Depends(_admin)]
SignInDep = Annotated[SignIn, Depends(_sign_in)]
ConnectionsDep = Annotated[Connections, Depends(_connections)]
LeasesDep = Annotated[CredentialLeases, Depends(_credential_leases)]
MappingsDep = Annotated[MemberMappings, Depends(_member_mappings)]
TenantUsersDep = Annotated[TenantUsers, Depends(_tenant_users)]
CompanySettingsDep = Annotated[CompanySettings, Depends(_company_settings)]
Limiter = Annotated[RateLimiter, Depends(_rate_limiter)]

public = APIRouter()
# Internal routes get their token check when mounted (see app.py): it needs the settings.
internal = APIRouter(prefix="/internal/v1")


@public.get("/.well-known/jwks.json", tags=["sessions"])
async def jwks(request: Request) -> dict[str, Any]:
    return _issuer(request).jwks()


@public.post("/v1/dev/sessions", tags=["sessions"], status_code=status.HTTP_201_CREATED)
async def dev_login(
    body: DevSessionRequest, request: Request, limiter: Limiter, users: TenantUsersDep
) -> SessionToken:
    """Development login: a signed session for any user and tenant (and e-mail, taken as
    verified). Off in production."""
    settings: AuthSettings = request.app.state.settings
    if not settings.dev_login_enabled:
        raise Problem(404, "Not Found")
    # Keyed by the account: behind the gateway every caller shares one address.
    await limiter.hit(LOGIN_LIMIT, "dev-login", body.tenant_id, body.user_id)
    issuer = _issuer(request)
    session = UserSession(
        user_id=body.user_id,
        tenant_id=body.tenant_id,
        name=body.name,
        email=body.email,
        roles=body.roles,
    )
    issued = issuer.issue(session)
    await users.signed_in(session)
    return SessionToken(access_token=issued.token, expires_in=issued.expires_in)


@public.get("/v1/sessions/methods", tags=["sessions"])
async def sign_in_methods(request: Request) -> SignInMethods:
    """How people can sign in here (the sign-in page shows what is on)."""
    settings: AuthSettings = request.app.state.settings
    return SignInMethods(
        identity_provider=request.app.state.sign_in is not None,
        dev_login=settings.dev_login_enabled,
    )


@public.post("/v1/sessions/oidc/start", tags=["sessions"])
async def start_sign_in(body: SignInStart, sign_in: SignInDep) -> SignInStarted:
    """Begin signing in with the company's identity provider: the browser goes to
    `authorization_url` and keeps `binding` (the gateway puts it in an HttpOnly cookie)."""
    started = await sign_in.start(body.return_to)
    return SignInStarted(
        authorization_url=started.authorization_url,
        binding=started.binding,
        expires_in=started.expires_in,
    )


@public.post("/v1/sessions/oidc/finish", tags=["sessions"])
async def finish_sign_in(
    body: SignInFinish,
    request: Request,
    sign_in: SignInDep,
    limiter: Limiter,
    users: TenantUsersDep,
) -> SessionToken:
    """The provider sent the browser back: exchange the code, validate the ID token,
    issue the session. Refusals are problems with a `reason` and words for the person."""
    await limiter.hit(LOGIN_LIMIT, "sign-in", body.state[:64])
    try:
        signed_in = await sign_in.finish(
            state=body.state, code=body.code, error=body.error, binding=body.binding
        )
    except SignInRefused as refused:
        logger.info("sign-in refused", extra={"reason": refused.reason})
        raise Problem(refused.status, refused.message, reason=refused.reason) from None
    # Someone an admin can map (by the e-mail the provider verified) from now on.
    await users.signed_in(signed_in.session)
    issued = _issuer(request).issue(signed_in.session)
    return SessionToken(
        access_token=issued.token, expires_in=issued.expires_in, return_to=signed_in.return_to
    )


@public.post("/v1/sessions/renew", tags=["sessions"])
async def renew_session(request: Request, user: CurrentUser) -> SessionToken:
    """A new token of the caller's session (signed out sessions are refused like any
    other), valid for another `SESSION_TTL_SECONDS` but never past the session's end;
    401 once the session has reached its maximum length."""
    try:
        issued = _issuer(request).renew(user)
    except InvalidSession as error:
        raise Problem(401, f"The session cannot be renewed: {error}.") from None
    return SessionToken(access_token=issued.token, expires_in=issued.expires_in)


@public.post("/v1/sessions/logout", tags=["sessions"])
async def sign_out(request: Request, user: CurrentUser) -> SignedOut:
    """End the session (refused everywhere from now on) and say where the browser can
    end the identity provider's session too."""
    await request.app.state.revocations.revoke(user)
    sign_in: SignIn | None = request.app.state.sign_in
    return SignedOut(end_session_url=await sign_in.end_session_url() if sign_in else None)


@public.post(
    "/v1/integrations/connectwise/api-key",
    tags=["integrations"],
    status_code=status.HTTP_201_CREATED,
)
async def connect_api_key(
    body: ApiKeyConnectionRequest,
    user: CurrentUser,
    connections: ConnectionsDep,
    mappings: MappingsDep,
    limiter: Limiter,
) -> Integration:
    """Connect with API-member keys, optionally for a named member or by impersonation.
    409 when the company's connection already syncs the user's work."""
    await limiter.hit(CONNECT_LIMIT, "connect", user.tenant_id, user.user_id)
    await mappings.refuse_personal_when_mapped(user)
    return await connections.connect_api_key(user, Owner.user(user), body)


@public.post("/v1/integrations/connectwise/oauth/start", tags=["integrations"])
async def start_oauth(
    body: OAuthStartRequest,
    user: CurrentUser,
    connections: ConnectionsDep,
    mappings: MappingsDep,
    limiter: Limiter,
) -> OAuthStart:
    """Begin the OAuth2 authorization-code flow; send the browser to `authorization_url`.
    409 when the company's connection already syncs the user's work."""
    await limiter.hit(CONNECT_LIMIT, "connect", user.tenant_id, user.user_id)
    await mappings.refuse_personal_when_mapped(user)
    return await connections.start_oauth(user, Owner.user(user), body)


@public.get(
    "/v1/integrations/connectwise/oauth/callback",
    tags=["integrations"],
    status_code=status.HTTP_303_SEE_OTHER,
    response_class=RedirectResponse,
)
async def oauth_callback(
    request: Request,
    user: CurrentUser,
    connections: ConnectionsDep,
    mappings: MappingsDep,
    limiter: Limiter,
) -> RedirectResponse:
    """Where the provider sends the browser back (for a user's own connection or, when an
    admin started the flow, the company's); redirects to the settings page (the admin
    console for the company's) with
    `connectwise=connected|denied|expired_state|exchange_failed`."""
    await limiter.hit(CALLBACK_LIMIT, "oauth-callback", user.tenant_id, user.user_id)
    params = {k: v for k, v in request.query_params.items() if k in ("state", "code", "error")}
    outcome, integration, scope = await connections.finish_oauth(user, params)
    if integration is not None:
        await mappings.propose_after_connecting(user, integration)
    settings: AuthSettings = request.app.state.settings
    page = (
        settings.oauth_admin_result_url
        if scope is ConnectionScope.TENANT
        else settings.oauth_result_url
    )
    location = f"{page}?{urlencode({'connectwise': outcome.value})}"
    return RedirectResponse(location, status_code=status.HTTP_303_SEE_OTHER)


@public.get("/v1/integrations", tags=["integrations"])
async def list_integrations(user: CurrentUser, connections: ConnectionsDep) -> list[Integration]:
    return await connections.repository.list_for_user(user.tenant_id, user.user_id)


@public.get("/v1/admin/integrations", tags=["admin"])
async def list_tenant_integrations(
    admin: AdminUser, connections: ConnectionsDep
) -> list[Integration]:
    """Every connection of the admin's tenant (any user's)."""
    return await connections.repository.list_for_tenant(admin.tenant_id)


@public.get("/v1/integrations/{integration_id}", tags=["integrations"])
async def get_integration(
    integration_id: str, user: CurrentUser, connections: ConnectionsDep
) -> Integration:
    return await connections.own(user, integration_id)


@public.delete("/v1/integrations/{integration_id}", tags=["integrations"])
async def disconnect(
    integration_id: str, user: CurrentUser, connections: ConnectionsDep
) -> Integration:
    """Revoke what can be revoked, delete the credentials, stop syncing; the connection
    stays listed as `disconnected` and its tasks leave the dashboard."""
    return await connections.disconnect(user, await connections.own(user, integration_id))


@internal.get("/integrations", tags=["internal"])
async def list_by_status(
    connections: ConnectionsDep, status: IntegrationStatus = IntegrationStatus.ACTIVE
) -> list[Integration]:
    return await connections.repository.list_by_status(status)


@internal.post(
    "/acting-credentials/lease",
    tags=["internal"],
    responses={404: {"description": "No active connection syncs the user"}, 409: {}},
)
async def lease_acting_credentials(
    body: ActingLeaseRequest,
    leases: LeasesDep,
    x_syntaskio_caller: Annotated[str, Header(max_length=64)] = "unknown",
) -> CredentialLease:
    """Credentials acting as the user's own ConnectWise member (`member_identifier`), on
    the connection that syncs them (`integration_id`): for tickets that are not synced
    for the user, so ConnectWise allows exactly what that member may. Audited."""
    return await leases.acting(body.tenant_id, body.user_id, x_syntaskio_caller)


@internal.post("/integrations/{integration_id}/credentials/lease", tags=["internal"])
async def lease_credentials(
    integration_id: str,
    leases: LeasesDep,
    body: LeaseRequest | None = None,
    x_syntaskio_caller: Annotated[str, Header(max_length=64)] = "unknown",
) -> CredentialLease:
    """Valid credentials for one integration, renewed if they were about to expire or
    ConnectWise rejected them. Use them until `expires_at`, then lease again. 404: no
    active integration; 409: expired, the user must reconnect. Every lease is audited."""
    rejected = body.rejected_version if body else None
    cleanup = body.cleanup if body else False
    return await leases.lease(integration_id, x_syntaskio_caller, rejected, cleanup=cleanup)
