"""Metrics in the running system, scraped as Prometheus does from each service's metrics
port: HTTP requests by route and status, ConnectWise requests by endpoint, sync runs by
trigger and outcome, the API budget, webhook deliveries, the aggregator's records and
batches, consumer lag per group and partition, and open live streams — with bounded
labels (no user, no URL, no record id) and never on a service's public port."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_helpers import EventStream, connect, dashboard_tasks, eventually, sandbox, signed_in
from metric_names import documented_metrics, is_documented
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from syntaskio_devstack.stack import SERVICES, EmbeddedStack

MEMBER = "jsmith"  # read only here
# Documented metrics that have no series until it happens: a retry, a failed run, a
# batch's dead letters.
ONLY_WHEN_IT_HAPPENS = {
    "syntaskio_connectwise_retries_total",
    "syntaskio_sync_last_failure_timestamp_seconds",
}


def scrape(system: EmbeddedStack, service: str) -> list[Sample]:
    response = httpx.get(system.metrics_url(service), timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return [s for family in text_string_to_metric_families(response.text) for s in family.samples]


def samples(scraped: list[Sample], name: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in scraped
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def total(scraped: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples(scraped, name, **labels))


@pytest.fixture(scope="module")
def jordan(system: EmbeddedStack) -> Iterator[httpx.Client]:
    """Connected and synced, with a ticket made since (announced by a callback)."""
    with signed_in(system, f"jordan-{uuid.uuid4().hex[:6]}@acme-msp.example", "acme") as client:
        assert connect(client, system, MEMBER).status_code == 201
        [integration] = client.get("/api/v1/integrations").json()
        assert eventually(lambda: len(callbacks_of(system, integration["id"])) == 4)
        summary = f"Metered {uuid.uuid4().hex[:6]}"
        made = sandbox(system, "POST", "/tickets", json={"summary": summary, "owner": MEMBER})
        assert made.status_code == 201
        assert eventually(lambda: summary in {t["title"] for t in dashboard_tasks(client)})
        yield client


def callbacks_of(system: EmbeddedStack, integration_id: str) -> list[dict[str, Any]]:
    listed = sandbox(system, "GET", "/callbacks").json()["callbacks"]
    return [c for c in listed if c["url"].endswith(f"/webhooks/connectwise/{integration_id}")]


def test_each_service_counts_what_an_operator_watches(
    system: EmbeddedStack, jordan: httpx.Client
) -> None:
    assert eventually(lambda: jordan.get("/api/v1/tasks").json()["items"])
    with EventStream(jordan) as stream:
        stream.next("ready")
        gateway = scrape(system, "gateway")
        assert total(gateway, "syntaskio_live_streams") >= 1
    requests = "http_server_request_duration_seconds_count"
    assert total(gateway, requests, http_route="/api/v1/tasks", http_response_status_code="200")

    # The new ticket's callback may come after a scheduled run already showed it.
    connector = eventually(
        lambda: (
            found
            if total(found := scrape(system, "connector"), "syntaskio_webhook_deliveries_total")
            else None
        ),
        timeout=30,
    )
    assert connector, "no webhook delivery counted"
    assert total(connector, "syntaskio_sync_runs_total", trigger="connected", outcome="succeeded")
    assert total(connector, "syntaskio_sync_run_duration_seconds_count") >= 1
    assert total(connector, "syntaskio_webhook_deliveries_total", outcome="accepted") >= 1
    assert total(
        connector,
        "syntaskio_connectwise_requests_total",
        endpoint="service/tickets",
        method="GET",
        status="200",
    )
    budgets = samples(connector, "syntaskio_connectwise_budget_remaining")
    assert budgets
    assert all(0 <= s.value <= 1000 for s in budgets)
    assert samples(
        connector, "syntaskio_kafka_consumer_lag", group="connector-connectwise-commands"
    )
    # Database round trips by command name: the connector's schedule claims, jobs, ...
    commands = {s.labels["command"] for s in samples(connector, "syntaskio_mongodb_commands_total")}
    assert {"find", "insert", "update"} <= commands, commands

    aggregator = scrape(system, "aggregator")
    assert total(aggregator, "syntaskio_aggregator_records_total", outcome="applied") >= 1
    assert total(aggregator, "syntaskio_aggregator_batches_total") >= 1
    assert total(aggregator, "syntaskio_aggregator_write_duration_seconds_count") >= 1
    lag = samples(aggregator, "syntaskio_kafka_consumer_lag", group="aggregator")
    assert {s.labels["topic"] for s in lag} == {"syntaskio.connectwise.raw.v1"}
    assert all(s.value >= 0 for s in lag)
    assert total(aggregator, "messaging_process_duration_seconds_count") >= 1


def test_labels_are_bounded_and_metrics_stay_off_the_public_port(
    system: EmbeddedStack, jordan: httpx.Client
) -> None:
    scraped: dict[str, Any] = {service: scrape(system, service) for service in SERVICES}
    for service, found in scraped.items():
        for sample in found:
            for label, value in sample.labels.items():
                # No user (ids are e-mail addresses), no URL or query, no record id.
                assert "@" not in value, (service, sample.name, label, value)
                assert "?" not in value, (service, sample.name, label)
                assert "://" not in value, (service, sample.name, label)
                if label == "endpoint":
                    assert not any(part.isdigit() for part in value.split("/")), value
    for service in SERVICES:
        assert httpx.get(f"{system.url(service)}/metrics").status_code == 404, service


def test_every_documented_metric_is_exported(system: EmbeddedStack, jordan: httpx.Client) -> None:
    exported = {s.name for service in SERVICES for s in scrape(system, service)}
    documented = documented_metrics()
    missing = [
        name
        for name in documented - ONLY_WHEN_IT_HAPPENS
        if not any(is_documented(found, {name}) for found in exported)
    ]
    assert missing == []
    # And the other way round: every metric of ours is documented.
    ours = {name for name in exported if name.startswith("syntaskio_")}
    assert [name for name in ours if not is_documented(name, documented)] == []
