"""End-user sessions: JWTs auth-service issues (after a sign-in with the company's
identity provider, or the development login), verified by every service against its
JWKS. A session names the user, their tenant and their roles (`technician`, `admin`);
one that was signed out is on the revocation list until it would have expired.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Protocol, TypeVar

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict, Field
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.problems import Problem

SESSION_AUDIENCE: Final = "syntaskio"
SESSION_ALGORITHMS: Final = ["ES256"]
# The longest a session token may live from issue to expiry (auth-service's
# SESSION_TTL_SECONDS is at most this).
MAX_TOKEN_LIFETIME_SECONDS: Final = 24 * 3600


class InvalidSession(Exception):
    """The token is missing, malformed, expired or not ours."""


class Role(StrEnum):
    TECHNICIAN = "technician"
    ADMIN = "admin"


class UserSession(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: str
    tenant_id: str
    name: str | None = None
    email: str | None = None
    roles: tuple[Role, ...] = (Role.TECHNICIAN,)
    # The session's id (`sid`, kept by every renewal; `jti` in tokens from before
    # renewals): lets short-lived state (an OAuth flow) be bound to one login, and names
    # the session on the revocation list once signed out.
    session_id: str | None = None
    expires_at: datetime | None = None  # this token's end; a renewal issues a later one
    signed_in_at: datetime | None = None  # `auth_time`: when the person signed in
    ends_at: datetime | None = None  # `session_exp`: no renewal goes past it


def _instant(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, UTC) if isinstance(value, int) else None


def session_from_claims(claims: dict[str, Any]) -> UserSession:
    subject, tenant = claims.get("sub"), claims.get("tenant_id")
    if not isinstance(subject, str) or not subject or not isinstance(tenant, str) or not tenant:
        raise InvalidSession("token lacks sub or tenant_id")
    roles = claims.get("roles", [Role.TECHNICIAN.value])
    if not isinstance(roles, list) or not all(r in Role._value2member_map_ for r in roles):
        raise InvalidSession("token has unknown roles")
    return UserSession(
        user_id=subject,
        tenant_id=tenant,
        name=claims.get("name"),
        email=claims.get("email"),
        roles=tuple(Role(r) for r in roles),
        session_id=claims.get("sid") or claims.get("jti"),
        expires_at=_instant(claims.get("exp")),
        signed_in_at=_instant(claims.get("auth_time")),
        ends_at=_instant(claims.get("session_exp")),
    )


def verify_session_token(
    token: str, keys: KeySet, issuer: str, audience: str = SESSION_AUDIENCE
) -> UserSession:
    try:
        decoded = jwt.decode(token, keys, algorithms=SESSION_ALGORITHMS)
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        ).validate(decoded.claims)
    except (JoseError, ValueError) as error:
        raise InvalidSession(str(error)) from error
    # Both are NumericDates: the registry checked them.
    if decoded.claims["exp"] - decoded.claims["iat"] > MAX_TOKEN_LIFETIME_SECONDS:
        # Whoever holds the signing key could mint a token for a century: none is honoured
        # for longer than the issuer may make one (SESSION_TTL_SECONDS is at most a day).
        raise InvalidSession("the token's lifetime is longer than a session token's may be")
    return session_from_claims(decoded.claims)


class JwksSessionVerifier:
    """Verifies session tokens with keys fetched from the issuer's JWKS URL.

    Keys are cached; an unknown key id triggers at most one refetch per `min_refresh`
    seconds, so key rotation at the issuer is picked up without a restart.
    """

    def __init__(
        self,
        jwks_url: str,
        issuer: str,
        http: httpx.AsyncClient,
        *,
        audience: str = SESSION_AUDIENCE,
        min_refresh: float = 30.0,
    ) -> None:
        self._jwks_url = jwks_url
        self._issuer = issuer
        self._audience = audience
        self._http = http
        self._min_refresh = min_refresh
        self._keys: KeySet | None = None
        self._fetched_at = 0.0

    async def _refresh(self) -> KeySet:
        response = await self._http.get(self._jwks_url)
        response.raise_for_status()
        self._keys = KeySet.import_key_set(response.json())
        self._fetched_at = time.monotonic()
        return self._keys

    async def verify(self, token: str) -> UserSession:
        keys = self._keys or await self._refresh()
        try:
            return verify_session_token(token, keys, self._issuer, self._audience)
        except InvalidSession:
            if time.monotonic() - self._fetched_at < self._min_refresh:
                raise
        return verify_session_token(token, await self._refresh(), self._issuer, self._audience)


class SignInMethods(BaseModel):
    """How people sign in here (auth-service says; the gateway's sign-in page shows it)."""

    identity_provider: bool = Field(description="Sign in with the company's account")
    dev_login: bool = Field(description="The development login (never in production)")


class SignedOut(BaseModel):
    end_session_url: str | None = Field(
        default=None,
        description="Where the browser goes to end the identity provider's session too",
    )


SessionT = TypeVar("SessionT", bound=UserSession)


def admin_only(session: SessionT) -> SessionT:
    """The session, if it is an admin's: checked before anything is asked for. Within
    their tenant only; every query stays scoped by the session's tenant."""
    if Role.ADMIN not in session.roles:
        raise Problem(403, "This needs the admin role in your company.")
    return session


class SessionRevocations:
    """Signed-out sessions (`revoked_sessions`, by session id: every renewed token of the
    session at once), kept until the session would have ended anyway. Every service that
    accepts sessions checks it, so a signed-out cookie is refused everywhere at once."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._revoked = db["revoked_sessions"]

    async def create_indexes(self) -> None:
        await self._revoked.create_index("expires_at", expireAfterSeconds=0, name="expiry")

    async def revoke(self, session: UserSession) -> None:
        if session.session_id is None:
            raise InvalidSession("a session without an id cannot be signed out")
        await self._revoked.update_one(
            {"_id": session.session_id},
            {
                "$set": {
                    "tenant_id": session.tenant_id,
                    "expires_at": session.ends_at or session.expires_at or datetime.now(UTC),
                }
            },
            upsert=True,
        )

    async def check(self, session: UserSession) -> UserSession:
        """The session, unless it was signed out."""
        if session.session_id is None:
            raise InvalidSession("the session has no id")
        if await self._revoked.find_one({"_id": session.session_id}, {"_id": 1}):
            raise InvalidSession("the session was signed out")
        return session


class SessionVerifier(Protocol):
    async def verify(self, token: str) -> UserSession: ...


@dataclass(frozen=True)
class LiveSessions:
    """A verifier that also refuses sessions that were signed out."""

    verifier: SessionVerifier
    revocations: SessionRevocations

    async def verify(self, token: str) -> UserSession:
        return await self.revocations.check(await self.verifier.verify(token))
