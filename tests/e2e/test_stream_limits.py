"""One user cannot tie up the gateway's connections with live streams: past
LIVE_STREAMS_PER_USER (8) open at once, another is refused with 429 before it starts,
and closing one frees its place. Another user's streams are not affected."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from e2e_helpers import eventually, signed_in

from syntaskio_devstack.stack import EmbeddedStack

MOST = 8


@contextmanager
def stream(client: httpx.Client) -> Iterator[httpx.Response]:
    """A live stream as a browser tab holds it: open once its headers have come."""
    response = client.send(client.build_request("GET", "/api/v1/tasks/stream"), stream=True)
    try:
        yield response
    finally:
        response.close()


def opens(client: httpx.Client) -> bool:
    with stream(client) as response:
        return response.status_code == 200


def test_a_user_holds_at_most_eight_streams_at_once(system: EmbeddedStack) -> None:
    with (
        signed_in(system, f"tabs-{uuid.uuid4().hex[:6]}", "acme") as hoarder,
        signed_in(system, f"other-{uuid.uuid4().hex[:6]}", "acme") as other,
    ):
        tabs: list[httpx.Response] = []
        try:
            for _ in range(MOST):
                tabs.append(
                    hoarder.send(hoarder.build_request("GET", "/api/v1/tasks/stream"), stream=True)
                )
            assert [tab.status_code for tab in tabs] == [200] * MOST
            refused = hoarder.get("/api/v1/tasks/stream")
            assert refused.status_code == 429, refused.text
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.headers["retry-after"] == "30"
            assert opens(other)

            tabs.pop().close()  # a tab closed: the gateway notices the disconnect
            assert eventually(lambda: opens(hoarder), timeout=30, interval=0.5)
        finally:
            for tab in tabs:
                tab.close()
