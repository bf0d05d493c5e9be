"""The one outbound HTTP client factory: explicit timeouts, never follows redirects."""

from __future__ import annotations

import httpx


def timeout(seconds: float = 15.0) -> httpx.Timeout:
    """Every outbound call's budget; connecting gets a shorter one."""
    return httpx.Timeout(seconds, connect=5.0)


def create_http_client(
    *,
    base_url: str = "",
    timeout_seconds: float = 15.0,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: dict[str, str] | None = None,
    trust_env: bool = True,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout(timeout_seconds),
        follow_redirects=False,
        transport=transport,
        headers=headers,
        trust_env=trust_env,
    )
