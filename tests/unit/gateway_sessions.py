"""A session verifier for gateway unit tests: tokens are "<tenant>:<user>"."""

from __future__ import annotations

from syntaskio_common.sessions import InvalidSession, UserSession


class TokensAreUserNames:
    """A verifier whose tokens are "<tenant>:<user>"; anything else is invalid."""

    async def verify(self, token: str) -> UserSession:
        tenant, _, user = token.partition(":")
        if not user:
            raise InvalidSession("not a token")
        return UserSession(tenant_id=tenant, user_id=user)
