"""The one outbound HTTP client factory: explicit timeouts, never follows redirects."""

from __future__ import annotations

import httpx


def create_http_client(
    *,
    base_url: str = "",
    timeout_seconds: float = 15.0,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout_seconds, connect=5.0),
        follow_redirects=False,
        transport=transport,
        headers=headers,
    )
