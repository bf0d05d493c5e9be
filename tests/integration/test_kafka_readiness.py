"""Readiness includes Kafka: the check a service's /readyz runs says yes while the
embedded broker answers, and no — within its time limit, not a hang — when nothing
listens at the bootstrap address or the broker was never started."""

from __future__ import annotations

import socket
import time

from syntaskio_common.kafka import READINESS_SECONDS, create_broker, reachable
from syntaskio_common.settings import ServiceSettings


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_a_started_broker_is_ready(settings: ServiceSettings) -> None:
    broker = create_broker(settings, client_id="readiness-test")
    await broker.start()
    try:
        assert await reachable(broker)() is True
    finally:
        await broker.stop()


async def test_a_broker_that_is_gone_is_not_ready_within_the_limit(
    settings: ServiceSettings,
) -> None:
    elsewhere = settings.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{closed_port()}"}
    )
    broker = create_broker(elsewhere, client_id="readiness-test")
    # Never connected (start would fail): the check answers no at once.
    started = time.monotonic()
    assert await reachable(broker)() is False
    assert time.monotonic() - started < READINESS_SECONDS + 1
