"""How the services' Kafka clients connect, from the `KAFKA_*` settings: TLS with a CA of
our own and a client certificate, SASL PLAIN and SCRAM, and incomplete settings refused
with a message that names what is missing and shows no other setting."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from syntaskio_common.kafka import client_options, kafka_security
from syntaskio_common.settings import ServiceSettings
from syntaskio_devstack.certificates import issue_certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return issue_certificates(tmp_path_factory.mktemp("tls"), clients=["syntaskio"])


def test_plaintext_by_default() -> None:
    settings = ServiceSettings(kafka_bootstrap_servers="kafka:9092")
    assert kafka_security(settings) is None
    assert client_options(settings) == {"bootstrap_servers": "kafka:9092"}


def test_tls_trusts_our_ca_and_presents_the_client_certificate(
    certificates: dict[str, Path],
) -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=str(certificates["ca"]),
        kafka_ssl_cert_file=str(certificates["syntaskio.crt"]),
        kafka_ssl_key_file=str(certificates["syntaskio.key"]),
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SSL"
    context: ssl.SSLContext = options["ssl_context"]
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "Syntaskio test CA"),),)
    ]


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_over_tls_with_each_mechanism(certificates: dict[str, Path], mechanism: str) -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_ca_file=str(certificates["ca"]),
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="aggregator",
        kafka_sasl_password="s3cret-password",
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == mechanism
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "aggregator",
        "s3cret-password",
    )
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_sasl_without_tls() -> None:
    settings = ServiceSettings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_username="aggregator",
        kafka_sasl_password="s3cret-password",
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["ssl_context"] is None


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        (
            {"kafka_security_protocol": "SASL_SSL"},
            "needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "c.pem"}, "go together"),
        ({"kafka_ssl_ca_file": "ca.pem"}, "need KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL"),
    ],
)
def test_incomplete_settings_are_refused_without_showing_the_others(
    settings: dict[str, str], said: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        ServiceSettings(mongodb_url="mongodb://app:database-password@db", **settings)
    assert said in str(refused.value)
    assert "database-password" not in str(refused.value)
