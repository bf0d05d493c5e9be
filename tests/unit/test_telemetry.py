"""Tracing's own parts: URLs in spans lose their query string, events carry the trace
they were made in (the CloudEvents `traceparent` extension) and give it back, and log
lines written in a span carry its ids. (The whole system's traces: tests/e2e/test_tracing.)"""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from syntaskio_common import events
from syntaskio_common.logging import RedactingJsonFormatter, TraceContextFilter
from syntaskio_common.telemetry import (
    _client_request_hook,
    _server_request_hook,
    context_of,
    current_traceparent,
)


@pytest.fixture
def tracer() -> Tracer:
    # A provider of the test's own: the process's global one stays untouched.
    return TracerProvider().get_tracer("test")


@pytest.mark.parametrize(
    ("key", "url", "kept"),
    [
        (
            "http.url",
            "https://app.example/api/v1/integrations/connectwise/oauth/callback?code=abc&state=xyz",
            "https://app.example/api/v1/integrations/connectwise/oauth/callback",
        ),
        ("url.full", "https://cw.example/v2025_1/apis/3.0/service/tickets?conditions=x#f", None),
        ("http.target", "/api/v1/session/callback?code=abc&state=xyz", "/api/v1/session/callback"),
        ("http.url", "https://cw.example/apis/3.0/service/tickets/1", None),
    ],
)
def test_urls_in_spans_lose_their_query_string(
    tracer: Tracer, key: str, url: str, kept: str | None
) -> None:
    for hook in (_server_request_hook, _client_request_hook):
        span = tracer.start_span("request", attributes={key: url, "url.query": "code=abc"})
        hook(span, {})  # type: ignore[operator]
        attributes = span.attributes  # type: ignore[attr-defined]
        assert attributes[key] == (kept or url.split("?")[0].split("#")[0])
        assert attributes["url.query"] == ""


def test_an_event_carries_the_trace_it_was_made_in(tracer: Tracer) -> None:
    with tracer.start_as_current_span("making") as span:
        record = events.encode_event(
            event_id="1", source="test", event_type="t", data={"a": 1}, key="k"
        )
    made_in = span.get_span_context()
    event = events.decode_event(record.headers, record.value)
    assert event.traceparent == record.headers["ce_traceparent"]
    continued = trace.get_current_span(context_of(event.traceparent)).get_span_context()
    assert (continued.trace_id, continued.span_id) == (made_in.trace_id, made_in.span_id)


def test_an_event_made_outside_a_span_has_no_traceparent_and_can_be_given_one(
    tracer: Tracer,
) -> None:
    bare = events.encode_event(event_id="1", source="test", event_type="t", data={}, key=None)
    assert "ce_traceparent" not in bare.headers
    assert events.decode_event(bare.headers, bare.value).traceparent is None

    with tracer.start_as_current_span("elsewhere") as span:
        traceparent = current_traceparent()["traceparent"]
    given = events.encode_event(
        event_id="2",
        source="test",
        event_type="t",
        data={},
        key=None,
        trace_context=context_of(traceparent),
    )
    assert given.headers["ce_traceparent"] == traceparent
    assert format(span.get_span_context().trace_id, "032x") in traceparent


def test_a_malformed_traceparent_starts_nothing_of_its_own() -> None:
    assert context_of(None) is None
    broken = context_of("00-not-a-trace-01")
    assert broken is not None
    assert not trace.get_current_span(broken).get_span_context().is_valid


def test_log_lines_in_a_span_carry_its_trace_and_span_ids(tracer: Tracer) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(RedactingJsonFormatter("%(message)s"))
    logger = logging.getLogger("test_telemetry")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("outside")
        with tracer.start_as_current_span("inside") as span:
            logger.warning("inside")
    finally:
        logger.removeHandler(handler)
    outside, inside = (json.loads(line) for line in out.getvalue().splitlines())
    assert "trace_id" not in outside
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
