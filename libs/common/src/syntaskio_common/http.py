"""The one outbound HTTP client factory: explicit timeouts, never follows redirects."""

from __future__ import annotations

import httpx

from syntaskio_common.request_context import REQUEST_ID_HEADER, current_request_id


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
    propagate_request_id: bool = False,
) -> httpx.AsyncClient:
    """`propagate_request_id`: for our own services only (never a third party), send the
    id of the request being served, so one id follows it through the services' logs."""
    hooks = {"request": [_send_request_id]} if propagate_request_id else {}
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=timeout(timeout_seconds),
        follow_redirects=False,
        transport=transport,
        headers=headers,
        trust_env=trust_env,
        event_hooks=hooks,
    )


async def _send_request_id(request: httpx.Request) -> None:
    request_id = current_request_id()
    if request_id is not None and REQUEST_ID_HEADER not in request.headers:
        request.headers[REQUEST_ID_HEADER] = request_id
