"""Tracing in the running system, as exported over OTLP to the test trace sink (where a
Collector stands in a deployment): one trace follows a technician's "complete" from the
gateway through the command topic, the connector and ConnectWise, the raw topic, the
aggregator and its database, and the task feed to the open live stream; a scheduled sync
and a webhook delivery are traces of their own; log lines carry the trace id; and no span
carries a secret, a query string or note text."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e_helpers import (
    EventStream,
    connect,
    dashboard_tasks,
    eventually,
    sandbox,
    sandbox_keys,
    signed_in,
)

from syntaskio_common import topics
from syntaskio_devstack.stack import EmbeddedStack, dev_secrets

MEMBER = "iokafor"  # its tickets are only read elsewhere; the ones changed here are made here
TENANT = "acme"
WEBHOOK_ROUTE = "POST /webhooks/connectwise/{integration_id}"

Span = dict[str, Any]


def spans(system: EmbeddedStack, **query: str) -> list[Span]:
    found: list[Span] = httpx.get(f"{system.url('trace_sink')}/spans", params=query).json()
    return found


def trace_of(system: EmbeddedStack, trace_id: str) -> list[Span]:
    return spans(system, trace_id=trace_id)


def names(trace: list[Span], service: str) -> set[str]:
    return {s["name"] for s in trace if s["service"] == service}


@pytest.fixture(scope="module")
def ifeoma(system: EmbeddedStack) -> Iterator[tuple[httpx.Client, str]]:
    with signed_in(system, f"ifeoma-{uuid.uuid4().hex[:6]}@acme-msp.example", TENANT) as client:
        assert connect(client, system, MEMBER).status_code == 201
        [integration] = client.get("/api/v1/integrations").json()
        yield client, integration["id"]


def new_ticket(system: EmbeddedStack, client: httpx.Client) -> dict[str, Any]:
    """A ticket made for the member, once it is on the dashboard: its task."""
    summary = f"Trace me {uuid.uuid4().hex[:6]}"
    made = sandbox(system, "POST", "/tickets", json={"summary": summary, "owner": MEMBER})
    assert made.status_code == 201, made.text
    task = eventually(
        lambda: next((t for t in dashboard_tasks(client) if t["title"] == summary), None)
    )
    assert task, "the new ticket never reached the dashboard"
    return dict(task)


ATTEMPTS = 3


def write_back(
    system: EmbeddedStack,
    client: httpx.Client,
    action: str,
    body: dict[str, Any] | None,
    announced: str,
) -> tuple[Span, list[Span] | None]:
    """Do the write-back on a new ticket with a live stream open, until the change is on
    the stream: the gateway's request span, and its whole trace — None when the change
    came by a scheduled run's trace instead."""
    # No callbacks while it runs: the ticket's refresh is the write-back's own, so the
    # run that fetches it back continues this trace (not a callback's).
    assert sandbox(system, "POST", "/callbacks/pause").is_success
    try:
        task = new_ticket(system, client)
        request_id = f"trace-{uuid.uuid4().hex}"
        with EventStream(client) as stream:
            assert stream.next("status")["data"] == 200
            stream.next("ready")
            accepted = client.post(
                f"/api/v1/tasks/{task['id']}/{action}",
                json=body,
                headers={"Idempotency-Key": str(uuid.uuid4()), "X-Request-ID": request_id},
            )
            assert accepted.status_code == 202, accepted.text
            while (change := stream.next(announced, timeout=60))["data"].get(
                "id", change["data"].get("task", {}).get("id")
            ) != task["id"]:
                pass
    finally:
        assert sandbox(system, "POST", "/callbacks/resume").is_success

    # The gateway's span for the request names its request id (as does auth-service's,
    # which the gateway asked for the company's settings, in the same trace).
    named = eventually(
        lambda: spans(system, attribute=f"syntaskio.request_id={request_id}"), timeout=30
    )
    [root] = [s for s in named if s["service"] == "gateway"]
    assert {s["trace_id"] for s in named} == {root["trace_id"]}
    assert root["parent_span_id"] is None

    def whole() -> list[Span] | None:
        """The trace once its last spans are in: the delivery to the stream, the
        aggregator's announcement (each service exports its spans in batches of its own,
        so the gateway's may arrive first), and the run that fetched the ticket back (it
        ends after what it published is delivered, when it is a long scheduled run that
        answered the write-back on its way)."""
        trace = trace_of(system, root["trace_id"])
        delivered = f"{topics.TASKS} deliver" in names(trace, "gateway")
        announced = f"{topics.TASKS} publish" in names(trace, "aggregator")
        ran = any(n.startswith("sync ") for n in names(trace, "connector-connectwise"))
        return trace if delivered and announced and ran else None

    return root, eventually(whole, timeout=30)


@pytest.mark.parametrize(
    ("action", "body", "announced"),
    [
        ("notes", {"text": "Replaced the PSU", "internal": True}, "task.upserted"),
        ("complete", None, "task.deleted"),
    ],
)
def test_one_trace_follows_a_write_back_from_the_gateway_to_the_live_stream(
    system: EmbeddedStack,
    ifeoma: tuple[httpx.Client, str],
    action: str,
    body: dict[str, Any] | None,
    announced: str,
) -> None:
    client, _ = ifeoma
    route = f"POST /api/v1/tasks/{{task_id}}/{action}"
    # The test stack syncs every 2 s: now and then a scheduled run lists the change before
    # the write-back's own run fetches it, and the change reaches the dashboard in that
    # run's trace (as it should). Then the write-back is tried again on a new ticket.
    for _ in range(ATTEMPTS):
        root, trace = write_back(system, client, action, body, announced)
        if trace is not None:
            break
    assert root["name"] == route
    assert trace, sorted((s["service"], s["name"]) for s in trace_of(system, root["trace_id"]))
    by_service = Counter(s["service"] for s in trace)
    assert {"gateway", "connector-connectwise", "aggregator"} <= by_service.keys(), by_service

    # Every step, in its service.
    assert f"{topics.TASK_COMMANDS} publish" in names(trace, "gateway")
    assert f"{topics.TASK_COMMANDS} process" in names(trace, "connector-connectwise")
    # The run that fetched the ticket back (the write-back's own, or a scheduled one that
    # came first): it answered the write-back, so it continues its trace.
    assert any(n.startswith("sync ") for n in names(trace, "connector-connectwise"))
    assert f"{topics.CONNECTWISE_RAW} publish" in names(trace, "connector-connectwise")
    assert f"{topics.CONNECTWISE_RAW} apply" in names(trace, "aggregator")
    assert f"{topics.TASKS} publish" in names(trace, "aggregator")
    # ConnectWise: the change (a POST of the note, a PATCH of the status) and the fetch
    # back (GET), each a client span.
    connectwise_site = f"127.0.0.1:{system.config.ports.sandbox}/"
    connectwise_calls = {
        s["name"]
        for s in trace
        if s["service"] == "connector-connectwise"
        and s["kind"] == "client"
        and connectwise_site in s["attributes"].get("http.url", s["attributes"].get("url.full", ""))
    }
    write = "POST" if action == "notes" else "PATCH"
    assert {write, "GET"} <= connectwise_calls, connectwise_calls
    # The database: the connector's command record and the aggregator's task write.
    for service in ("connector-connectwise", "aggregator"):
        assert any(
            s["attributes"].get("db.system") == "mongodb" for s in trace if s["service"] == service
        ), service

    # One tree: every span's parent is in the trace; the gateway's request is its root.
    ids = {s["span_id"] for s in trace}
    orphans = [s["name"] for s in trace if s["parent_span_id"] not in ids | {None}]
    assert orphans == []
    assert [s["name"] for s in trace if s["parent_span_id"] is None] == [route]

    # The gateway's log lines of the request carry its trace id and request id.
    request_id = root["attributes"]["syntaskio.request_id"]
    lines = [
        json.loads(line)
        for line in (system.config.data_dir / "logs" / "gateway.log").read_text().splitlines()
        if request_id in line
    ]
    access = [line for line in lines if line.get("logger") == "syntaskio.access"]
    assert access
    assert {line.get("trace_id") for line in access} == {root["trace_id"]}


def test_a_scheduled_sync_and_a_webhook_delivery_are_traces_of_their_own(
    system: EmbeddedStack, ifeoma: tuple[httpx.Client, str]
) -> None:
    client, integration_id = ifeoma
    new_ticket(system, client)  # announced by a callback

    def delivered() -> list[Span]:
        return [
            s
            for s in spans(system, name=WEBHOOK_ROUTE)
            if s["attributes"]
            .get("http.target", s["attributes"].get("url.path", ""))
            .endswith(integration_id)
        ]

    deliveries = eventually(delivered, timeout=30)
    assert deliveries
    assert all(s["parent_span_id"] is None for s in deliveries)

    def fetched_in_delivery_trace() -> bool:
        """A delivery's trace goes on to the run that fetched the ticket and to the
        aggregator that applied it."""
        for delivery in delivered():
            trace = trace_of(system, delivery["trace_id"])
            fetched = any(n.startswith("sync ") for n in names(trace, "connector-connectwise"))
            if fetched and f"{topics.CONNECTWISE_RAW} apply" in names(trace, "aggregator"):
                return True
        return False

    assert eventually(fetched_in_delivery_trace, timeout=30)

    # A scheduled run is a trace of its own, unless it also fetched what a request (a
    # webhook, a write-back) named: then it continues that request's trace and links to it.
    scheduled = eventually(lambda: spans(system, name="sync scheduled"), timeout=30)
    assert any(s["parent_span_id"] is None for s in scheduled)
    for run in scheduled:
        assert (run["parent_span_id"] is None) == (run["links"] == []), run


def test_no_span_carries_a_secret_a_query_string_or_note_text(
    system: EmbeddedStack, ifeoma: tuple[httpx.Client, str]
) -> None:
    client, _ = ifeoma
    task = new_ticket(system, client)
    text = f"Customer's door code is {uuid.uuid4().hex[:8]}"
    noted = client.post(
        f"/api/v1/tasks/{task['id']}/notes",
        json={"text": text, "internal": True},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert noted.status_code == 202, noted.text
    done = eventually(
        lambda: client.get(noted.json()["status_url"]).json()["status"] == "succeeded"
    )
    assert done

    secrets = dev_secrets(system.config.data_dir)
    keys = sandbox_keys(system, MEMBER)
    forbidden = {
        "note text": text,
        "ConnectWise private key": keys["private_key"],
        "internal token": secrets["INTERNAL_API_TOKEN"],
        "connector token": secrets["CONNECTOR_API_TOKEN"],
        "OAuth client secret": secrets["OAUTH_CLIENT_SECRET"],
        "session cookie": next(iter(client.cookies.values())),
    }
    assert eventually(lambda: spans(system, name=f"{topics.TASK_COMMANDS} process"))
    for what, value in forbidden.items():
        assert spans(system, contains=value) == [], f"a span carries the {what}"
    # URLs without their query (an OAuth code and state; a ConnectWise condition).
    for span in spans(system, contains="?"):
        for key in ("http.url", "url.full", "http.target"):
            value = span["attributes"].get(key)
            assert value is None or "?" not in value, (span["name"], key, value)
        assert not span["attributes"].get("url.query"), span["name"]
