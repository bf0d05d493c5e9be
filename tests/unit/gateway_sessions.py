"""A session verifier for gateway unit tests: tokens are "<tenant>:<user>", or
"<tenant>:<user>:admin" for an admin."""

from __future__ import annotations

from syntaskio_common.sessions import InvalidSession, Role, UserSession


class TokensAreUserNames:
    """A verifier whose tokens are "<tenant>:<user>[:admin]"; anything else is invalid."""

    async def verify(self, token: str) -> UserSession:
        tenant, _, rest = token.partition(":")
        user, _, role = rest.partition(":")
        if not user:
            raise InvalidSession("not a token")
        roles = (Role.TECHNICIAN, Role.ADMIN) if role == "admin" else (Role.TECHNICIAN,)
        return UserSession(tenant_id=tenant, user_id=user, roles=roles)
