"""The session issuer: signs the system's own session JWTs and publishes its JWKS.

A session is issued after a sign-in with the company's OpenID Connect provider
(`sign_in.py`) or, in development, by the dev login. Every service verifies the same
short-lived token; its key is `SESSION_SIGNING_KEY` (generated per process in
development only).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from syntaskio_common.sessions import SESSION_AUDIENCE, UserSession, verify_session_token

logger = logging.getLogger(__name__)


class SessionIssuer:
    def __init__(
        self,
        issuer: str,
        ttl_seconds: int,
        private_jwk: str = "",
        *,
        audience: str = SESSION_AUDIENCE,
    ) -> None:
        if private_jwk:
            self._key = ECKey.import_key(json.loads(private_jwk))
        else:
            logger.warning("no SESSION_SIGNING_KEY: sessions last until this process restarts")
            self._key = ECKey.generate_key("P-256", parameters={"kid": uuid.uuid4().hex})
        self.issuer = issuer
        self.ttl_seconds = ttl_seconds
        self.audience = audience
        self._public = KeySet.import_key_set({"keys": [self._key.as_dict(private=False)]})

    def jwks(self) -> dict[str, Any]:
        return dict(self._public.as_dict(private=False))

    def issue(self, session: UserSession) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": session.user_id,
            "tenant_id": session.tenant_id,
            "roles": [role.value for role in session.roles],
            "iat": now,
            "exp": now + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
        }
        if session.name:
            claims["name"] = session.name
        if session.email:
            claims["email"] = session.email
        return jwt.encode({"alg": "ES256", "kid": self._key.kid}, claims, self._key)

    def verify(self, token: str) -> UserSession:
        return verify_session_token(token, self._public, self.issuer, self.audience)
