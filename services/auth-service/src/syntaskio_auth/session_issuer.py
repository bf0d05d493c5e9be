"""The development session issuer: signs user JWTs and publishes its JWKS.

In production an external OIDC provider issues the tokens; this exists so a laptop and
the tests have real, verifiable sessions.
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


class DevIssuer:
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
