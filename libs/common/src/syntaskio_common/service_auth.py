"""Bearer-token extraction and the check for service-to-service (internal) calls."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Header
from pydantic import SecretStr

from syntaskio_common.problems import Problem


def bearer_token(authorization: str | None) -> str:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "A bearer token is required.")
    return token


def internal_caller(*accepted: SecretStr) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency admitting only callers that hold one of the `accepted` tokens."""
    accepted_bytes = [token.get_secret_value().encode() for token in accepted]

    async def check(authorization: Annotated[str | None, Header()] = None) -> None:
        presented = bearer_token(authorization).encode()
        # Compared with every token, so the time taken tells nothing about which matched.
        matches = [hmac.compare_digest(presented, token) for token in accepted_bytes]
        if not any(matches):
            raise Problem(401, "This endpoint is for Syntaskio services only.")

    return check
