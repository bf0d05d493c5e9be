"""End-user sessions: OIDC-style JWTs verified against the issuer's JWKS.

Locally the issuer is auth-service's development issuer; in production any OIDC provider
whose tokens carry `tenant_id` works the same way.
"""

from __future__ import annotations

import time
from typing import Any, Final

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from pydantic import BaseModel, ConfigDict

SESSION_AUDIENCE: Final = "syntaskio"
SESSION_ALGORITHMS: Final = ["ES256"]


class InvalidSession(Exception):
    """The token is missing, malformed, expired or not ours."""


class UserSession(BaseModel):
    model_config = ConfigDict(frozen=True)

    user_id: str
    tenant_id: str
    name: str | None = None
    email: str | None = None
    # The token's `jti`: lets short-lived state (an OAuth flow) be bound to one login.
    session_id: str | None = None


def session_from_claims(claims: dict[str, Any]) -> UserSession:
    subject, tenant = claims.get("sub"), claims.get("tenant_id")
    if not isinstance(subject, str) or not subject or not isinstance(tenant, str) or not tenant:
        raise InvalidSession("token lacks sub or tenant_id")
    return UserSession(
        user_id=subject,
        tenant_id=tenant,
        name=claims.get("name"),
        email=claims.get("email"),
        session_id=claims.get("jti"),
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
        ).validate(decoded.claims)
    except (JoseError, ValueError) as error:
        raise InvalidSession(str(error)) from error
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
