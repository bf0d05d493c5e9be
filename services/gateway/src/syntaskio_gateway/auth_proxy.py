"""Calls to auth-service as the signed-in user, and its answers passed on."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from fastapi import Request, Response
from pydantic import TypeAdapter, ValidationError

from syntaskio_common.problems import Problem

T = TypeVar("T")
# Headers worth passing on from auth-service's answers besides the body and its type.
_RELAYED_HEADERS = ("retry-after", "www-authenticate")


def _auth_service(request: Request) -> httpx.AsyncClient:
    client: httpx.AsyncClient = request.app.state.auth_service
    return client


async def forward(
    request: Request,
    method: str,
    path: str,
    token: str | None,
    json: Any = None,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """Call auth-service as the user: the token travels in a header, never in the URL."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return await _auth_service(request).request(
            method, path, json=json, params=params, headers=headers
        )
    except httpx.HTTPError as error:
        raise Problem(503, "The integration service is unavailable.") from error


def relay(upstream: httpx.Response) -> Response:
    """Pass auth-service's answer (JSON or problem+json) through unchanged."""
    return Response(
        upstream.content,
        status_code=upstream.status_code,
        media_type=upstream.headers.get("content-type", "application/json"),
        headers={
            name: upstream.headers[name] for name in _RELAYED_HEADERS if name in upstream.headers
        },
    )


def passed_on(upstream: httpx.Response, shape: type[T]) -> T | Response:
    """auth-service's answer as the route declares it: a problem relayed unchanged; a
    success read as `shape` (a model, or e.g. `list[Model]`), so the route answers with its
    own documented status and nothing auth-service added unexpectedly reaches a browser."""
    if upstream.is_error:
        return relay(upstream)
    try:
        return TypeAdapter(shape).validate_json(upstream.content)
    except ValidationError as error:
        raise Problem(502, "The integration service gave an unexpected answer.") from error
