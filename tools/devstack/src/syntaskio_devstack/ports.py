"""Where each part of the system listens."""

from __future__ import annotations

import socket
from dataclasses import dataclass, fields


@dataclass(frozen=True)
class Ports:
    gateway: int = 8080
    auth: int = 8081
    connector: int = 8082
    aggregator: int = 8083
    sandbox: int = 8090
    broker: int = 9092
    database: int = 27017
    # A second ConnectWise company for tests that need data of their own (a member with
    # more tickets than the shared seed has); started only when a test asks for it.
    second_sandbox: int = 8091
    # The OpenID Connect provider people sign in with (tests run a third-party one).
    identity_provider: int = 8092
    # Where the services export their spans in tests (an OTLP/HTTP receiver).
    trace_sink: int = 8093
    # The broker's TLS front (`kafka_tls` stacks in tests).
    broker_tls: int = 9093
    # Each service's Prometheus metrics (`GET /metrics`), apart from its own port.
    gateway_metrics: int = 9180
    auth_metrics: int = 9181
    connector_metrics: int = 9182
    aggregator_metrics: int = 9183

    @classmethod
    def free(cls) -> Ports:
        """Ports nobody is using right now (tests run beside a `make run`)."""
        return cls(*(_free_port() for _ in fields(cls)))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
