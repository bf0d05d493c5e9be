"""The session issuer: signs the system's own session JWTs and publishes its JWKS.

A session is issued after a sign-in with the company's OpenID Connect provider
(`sign_in.py`) or, in development, by the dev login. Every service verifies the same
short-lived token (`SESSION_TTL_SECONDS`); while the person uses it, it is renewed
(`renew`: a new token of the same session, `sid`) up to `SESSION_MAX_AGE_SECONDS` after
they signed in (`auth_time`), when they sign in again. Its key is `SESSION_SIGNING_KEY`
(generated per process in development only).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from syntaskio_common.sessions import (
    SESSION_AUDIENCE,
    InvalidSession,
    UserSession,
    verify_session_token,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuedSession:
    token: str
    expires_in: int  # seconds


class SessionIssuer:
    def __init__(
        self,
        issuer: str,
        ttl_seconds: int,
        private_jwk: str = "",
        *,
        max_age_seconds: int | None = None,
        audience: str = SESSION_AUDIENCE,
    ) -> None:
        if private_jwk:
            self._key = ECKey.import_key(json.loads(private_jwk))
        else:
            logger.warning("no SESSION_SIGNING_KEY: sessions last until this process restarts")
            self._key = ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex})
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds
        self.max_age_seconds = max(max_age_seconds or ttl_seconds, ttl_seconds)
        self.audience = audience
        self._public = KeySet.import_key_set({"keys": [self._key.as_dict(private=False)]})

    def jwks(self) -> dict[str, Any]:
        return dict(self._public.as_dict(private=False))

    def issue(self, session: UserSession) -> IssuedSession:
        """A new session for someone who just signed in."""
        now = int(time.time())
        return self._issue(session, uuid.uuid4().hex, now, now + self.max_age_seconds, now)

    def renew(self, session: UserSession) -> IssuedSession:
        """A new token of the same session (same id, sign-in time and end), valid for
        another `ttl_seconds` at most; refused once the session has reached its end."""
        now = int(time.time())
        if session.session_id is None or session.signed_in_at is None or session.ends_at is None:
            raise InvalidSession("this session cannot be renewed: sign in again")
        ends = int(session.ends_at.timestamp())
        if ends <= now:
            raise InvalidSession("the session has reached its maximum length: sign in again")
        return self._issue(
            session, session.session_id, int(session.signed_in_at.timestamp()), ends, now
        )

    def _issue(
        self, session: UserSession, session_id: str, signed_in: int, ends: int, now: int
    ) -> IssuedSession:
        expires = min(now + self.ttl_seconds, ends)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": session.user_id,
            "tenant_id": session.tenant_id,
            "roles": [role.value for role in session.roles],
            "iat": now,
            "exp": expires,
            "jti": uuid.uuid4().hex,
            "sid": session_id,
            "auth_time": signed_in,
            "session_exp": ends,
        }
        if session.name:
            claims["name"] = session.name
        if session.email:
            claims["email"] = session.email
        token = jwt.encode({"alg": "ES256", "kid": self._key.kid}, claims, self._key)
        return IssuedSession(token, expires - now)

    def verify(self, token: str) -> UserSession:
        return verify_session_token(token, self._public, self.issuer, self.audience)
