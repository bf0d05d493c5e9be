"""Tracing and metrics with OpenTelemetry: one trace follows a user action through the
services, the broker and ConnectWise; each service's metrics are scraped by Prometheus.

`configure_tracing` sets the SDK up from the standard `OTEL_*` variables: spans are
exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is
set and kept nowhere otherwise — they still give log lines their `trace_id`/`span_id`
and still travel to the next service. `OTEL_SDK_DISABLED=true` turns tracing off.

What is instrumented, by the OpenTelemetry instrumentations, not by hand: the FastAPI
apps (`instrument_app`), every httpx client (service to service and ConnectWise; the W3C
`traceparent` header goes with each request), PyMongo, and Kafka through FastStream's
telemetry middleware (`syntaskio_common.kafka`; its `BatchProducer` makes one span per
batch by hand, where the middleware would make two per record). Each CloudEvent also
carries the context it was made in as the CloudEvents distributed-tracing extension
(`syntaskio_common.events`).

Spans never carry a query string (an OAuth `code` and `state`, a ConnectWise search):
the hooks here put the URL without it; PyMongo spans name the command, never its body.

Metrics: the same SDK's meters, read by the Prometheus exporter and served on
`METRICS_PORT` (`GET /metrics`), never on the service's own port. HTTP server metrics come
from the FastAPI instrumentation under the stable HTTP conventions (route template,
method, status: labels a client cannot make up, unlike the old conventions' `Host`);
each service adds its own (`meter`). Labels are bounded: a route, a status, a trigger, an
integration id at most — never a ticket, a user or a URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor, RequestInfo
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import start_http_server
from pymongo import monitoring

from syntaskio_common.health import PROBE_PATHS

# The span attributes that hold a URL or its target, in the old and the stable HTTP
# semantic conventions (which one is written depends on OTEL_SEMCONV_STABILITY_OPT_IN).
_URL_ATTRIBUTES: Final = ("http.url", "url.full")
_TARGET_ATTRIBUTES: Final = ("http.target",)
_QUERY_ATTRIBUTES: Final = ("url.query",)
# Probes and scrapes are not worth a trace each.
_UNTRACED_PATHS: Final = ",".join(sorted(PROBE_PATHS | {"/metrics"}))
_PROPAGATOR: Final = TraceContextTextMapPropagator()

tracer = trace.get_tracer("syntaskio")
meter = metrics.get_meter("syntaskio")

MONGODB_COMMANDS = meter.create_counter(
    "syntaskio.mongodb.commands",
    unit="{command}",
    description="MongoDB commands sent, by command name (find, insert, update, findAndModify …)",
)


class _CommandCounter(monitoring.CommandListener):
    """Counts every command the process's PyMongo clients send, by name: database round
    trips per unit of work (a sync run, say) are read off /metrics. The name is the
    driver's (a bounded set), never the command's body."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        MONGODB_COMMANDS.add(1, {"command": event.command_name})

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


_command_counter: _CommandCounter | None = None


def tracing_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def configure_telemetry(service: str, *, metrics_port: int | None, host: str) -> None:
    """The process's tracer and meter providers, the client instrumentations and the
    metrics endpoint; once, before any client is made (PyMongo's listener is registered
    for clients made after it)."""
    # The stable HTTP conventions (see the module's docstring), unless told otherwise.
    os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
    # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set, are merged in by `create`.
    resource = Resource.create({SERVICE_NAME: service})
    if metrics_port is not None:
        reader = PrometheusMetricReader(scope_info_enabled=False)
        metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))
        start_http_server(metrics_port, addr=host)
    _count_mongodb_commands()
    if tracing_disabled():
        return
    provider = TracerProvider(resource=resource)
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    HTTPXClientInstrumentor().instrument(
        request_hook=_client_request_hook,
        async_request_hook=_async_client_request_hook,
        # ConnectWise requests are counted by endpoint (`syntaskio_common.connectwise`),
        # not by the customer's host the client metrics would name.
        meter_provider=NoOpMeterProvider(),
    )
    PymongoInstrumentor().instrument()


def _count_mongodb_commands() -> None:
    """PyMongo's listeners are global and apply to clients made after registering: once
    per process, before any client."""
    global _command_counter
    if _command_counter is None:
        _command_counter = _CommandCounter()
        monitoring.register(_command_counter)


def instrument_app(app: FastAPI) -> None:
    """A server span per request (not for probes), named by the route's template."""
    if tracing_disabled():
        return
    FastAPIInstrumentor.instrument_app(
        app,
        server_request_hook=_server_request_hook,
        excluded_urls=_UNTRACED_PATHS,
        # The ASGI send/receive spans say nothing the request's span does not.
        exclude_spans=["receive", "send"],
    )


def _without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


def _scrub(span: Span) -> None:
    """Rewrite the URL attributes the instrumentation set, without the query string."""
    attributes: Mapping[str, Any] = getattr(span, "attributes", None) or {}
    for key in _URL_ATTRIBUTES + _TARGET_ATTRIBUTES:
        value = attributes.get(key)
        if isinstance(value, str) and ("?" in value or "#" in value):
            span.set_attribute(key, _without_query(value))
    for key in _QUERY_ATTRIBUTES:
        if attributes.get(key):
            span.set_attribute(key, "")


def _server_request_hook(span: Span, scope: dict[str, Any]) -> None:
    if span.is_recording():
        _scrub(span)


def _client_request_hook(span: Span, request: RequestInfo) -> None:
    if span.is_recording():
        _scrub(span)


async def _async_client_request_hook(span: Span, request: RequestInfo) -> None:
    _client_request_hook(span, request)


# -- trace context on events (the CloudEvents distributed-tracing extension) -----------


def current_traceparent(within: Context | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate` if any) of the span current in `within` (the
    current context by default); empty when there is none."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=within)
    return carrier


def context_of(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The context a `traceparent` names; None (the current context) without one. A
    malformed one names an empty context: what follows starts a trace of its own."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier, context=Context())


def span_context_of(traceparent: str) -> trace.SpanContext:
    """The span a `traceparent` names (invalid when it is malformed), for a link."""
    found = context_of(traceparent)
    return trace.get_current_span(found).get_span_context()
