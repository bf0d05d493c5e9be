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


def internal_caller(expected: SecretStr) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency admitting only callers that hold the internal API token."""
    expected_bytes = expected.get_secret_value().encode()

    async def check(authorization: Annotated[str | None, Header()] = None) -> None:
        if not hmac.compare_digest(bearer_token(authorization).encode(), expected_bytes):
            raise Problem(401, "This endpoint is for Syntaskio services only.")

    return check
