"""Secured Kafka, live: a whole stack whose broker is reached only over TLS with a client
certificate (mutual TLS; our own CA) serves a technician's tasks; a service that does not
trust the broker's certificate, or whose SASL credentials the broker refuses, fails its
start-up within seconds with a message that says so — never a hang, never the password.

The embedded broker (Tansu 0.6) does not serve TLS itself: `syntaskio_devstack.tls_proxy`
fronts it, as a TLS listener of a real cluster would. SASL is the broker's own
(`--authentication`); it cannot create users while it requires authentication, so only
refusal is tested live here (the SASL client settings: tests/unit/test_kafka_security.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_helpers import assigned_open_ticket_ids, connect, dashboard_ids, eventually, signed_in

from syntaskio_devstack.certificates import issue_certificates
from syntaskio_devstack.ports import Ports
from syntaskio_devstack.processes import ManagedProcess
from syntaskio_devstack.stack import EmbeddedStack, StackConfig

MEMBER = "atech"
FAIL_WITHIN = 45.0  # seconds from launch to exit: the start-up check's bound, and more


@pytest.fixture(scope="module")
def tls_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    stack = EmbeddedStack(
        StackConfig(
            data_dir=tmp_path_factory.mktemp("tls-stack"),
            ports=Ports.free(),
            database_name=f"tls_{uuid.uuid4().hex[:8]}",
            sync_interval_seconds=2.0,
            environment="test",
            kafka_tls=True,
        )
    )
    try:
        stack.start_data_stores()
        stack.start_sandbox()
        stack.start_services()
        yield stack
    finally:
        stack.stop()


def another_aggregator(stack: EmbeddedStack, name: str, log_dir: Path) -> ManagedProcess:
    """An aggregator beside the stack's own, on ports of its own."""
    process = stack.service("aggregator")
    free = Ports.free()
    process.name, process.log_path = name, log_dir / f"{name}.log"
    process.env = {
        **process.env,
        "PORT": str(free.aggregator),
        "METRICS_PORT": str(free.aggregator_metrics),
    }
    return process


def exits(process: ManagedProcess) -> str:
    """Start it; it must exit within FAIL_WITHIN seconds; its log."""
    process.start()
    deadline = time.monotonic() + FAIL_WITHIN
    while process.running and time.monotonic() < deadline:
        time.sleep(0.25)
    running = process.running
    process.stop()
    assert not running, f"{process.name} still running after {FAIL_WITHIN:.0f}s (a hang)"
    return process.log_path.read_text()


def test_a_stack_on_mutual_tls_kafka_serves_a_technicians_tasks(
    tls_stack: EmbeddedStack,
) -> None:
    env = tls_stack.service_env("gateway")
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SSL"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"127.0.0.1:{tls_stack.config.ports.broker_tls}"
    with signed_in(tls_stack, f"tls-{uuid.uuid4().hex[:6]}@acme-msp.example", "acme") as client:
        assert connect(client, tls_stack, MEMBER).status_code == 201
        expected = assigned_open_ticket_ids(tls_stack, MEMBER)
        assert expected
        assert eventually(lambda: dashboard_ids(client) == expected)


def test_a_service_that_does_not_trust_the_broker_fails_start_up_clearly(
    tls_stack: EmbeddedStack, tmp_path: Path
) -> None:
    stranger = issue_certificates(tmp_path / "other-ca", clients=[], ca_name="Another CA")
    aggregator = another_aggregator(tls_stack, "untrusting", tmp_path)
    aggregator.env = {**aggregator.env, "KAFKA_SSL_CA_FILE": str(stranger["ca"])}
    log = exits(aggregator)
    assert "cannot connect to Kafka" in log
    assert "certificate is not trusted" in log


def test_a_client_without_a_certificate_is_refused_by_the_broker(
    tls_stack: EmbeddedStack, tmp_path: Path
) -> None:
    aggregator = another_aggregator(tls_stack, "certless", tmp_path)
    env = dict(aggregator.env)
    del env["KAFKA_SSL_CERT_FILE"], env["KAFKA_SSL_KEY_FILE"]
    aggregator.env = env
    log = exits(aggregator)
    assert "cannot connect to Kafka" in log
    assert "client certificate; KAFKA_SSL_CERT_FILE is unset" in log


def test_refused_sasl_credentials_fail_start_up_clearly(tmp_path: Path) -> None:
    ports = Ports.free()
    config = StackConfig(data_dir=tmp_path, ports=ports, environment="test")
    stack = EmbeddedStack(config)
    broker, database = stack.data_stores()
    broker.argv = [*broker.argv, "--authentication"]
    stack.start_all([broker, database])
    try:
        aggregator = stack.service("aggregator")
        password = f"wrong-{uuid.uuid4().hex}"
        aggregator.env = {
            **aggregator.env,
            "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "aggregator",
            "KAFKA_SASL_PASSWORD": password,
        }
        log = exits(aggregator)
    finally:
        stack.stop()
    assert "cannot connect to Kafka" in log
    assert "SASL SCRAM-SHA-512 as 'aggregator'" in log
    assert password not in log
