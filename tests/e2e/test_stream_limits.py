"""One user cannot tie up the gateway's connections with live streams: past
LIVE_STREAMS_PER_USER (8) open at once, another is refused with 429 before it starts,
and closing one frees its place. Another user's streams are not affected."""

from __future__ import annotations

import uuid
from contextlib import ExitStack

import httpx
from e2e_helpers import EventStream, eventually, signed_in

from syntaskio_devstack.stack import EmbeddedStack

MOST = 8


def stream_status(client: httpx.Client) -> int:
    with EventStream(client) as stream:
        status: int = stream.next("status", timeout=30)["data"]
        return status


def test_a_user_holds_at_most_eight_streams_at_once(system: EmbeddedStack) -> None:
    with (
        signed_in(system, f"tabs-{uuid.uuid4().hex[:6]}", "acme") as hoarder,
        signed_in(system, f"other-{uuid.uuid4().hex[:6]}", "acme") as other,
        ExitStack() as tabs,
    ):
        streams = [tabs.enter_context(EventStream(hoarder)) for _ in range(MOST)]
        for stream in streams:
            assert stream.next("status", timeout=30)["data"] == 200
        refused = hoarder.get("/api/v1/tasks/stream", timeout=10)
        assert refused.status_code == 429, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.headers["retry-after"] == "30"
        assert stream_status(other) == 200

        streams[0].__exit__()  # a tab closed: the gateway notices within a moment
        assert eventually(lambda: stream_status(hoarder) == 200, timeout=30, interval=1)
