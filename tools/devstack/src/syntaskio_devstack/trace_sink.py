"""A trace sink for the tests: an OTLP/HTTP receiver (`POST /v1/traces`, protobuf, as the
services' OTLP exporter sends) that keeps the most recent spans in memory and answers
`GET /spans` (`?trace_id=`, `?name=`, `?attribute=key=value`, `?contains=text`: any
attribute holding that text; repeat it for any of several) with them as JSON.

It stands where an OpenTelemetry Collector stands in a deployment, so the end-to-end
tests see exactly what the services export. Run: `python -m syntaskio_devstack.trace_sink
--port N`.
"""

from __future__ import annotations

import argparse
import gzip
import json
from collections import deque
from typing import Any, Final

import uvicorn
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

KEPT: Final = 200_000  # spans; the oldest go first
KINDS: Final = ("unspecified", "internal", "server", "client", "producer", "consumer")

Span = dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


def spans_of(request: ExportTraceServiceRequest) -> list[Span]:
    found = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                found.append(
                    {
                        "service": resource.get("service.name"),
                        "scope": scope_spans.scope.name,
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex() or None,
                        "name": span.name,
                        "kind": KINDS[span.kind] if span.kind < len(KINDS) else str(span.kind),
                        "start_ns": span.start_time_unix_nano,
                        "end_ns": span.end_time_unix_nano,
                        "status": span.status.code,
                        "attributes": _attributes(span.attributes),
                        "links": [
                            {"trace_id": link.trace_id.hex(), "span_id": link.span_id.hex()}
                            for link in span.links
                        ],
                        "events": [event.name for event in span.events],
                    }
                )
    return found


def _holds_any(span: Span, texts: list[str]) -> bool:
    written = json.dumps([span["name"], span["attributes"], span["events"]])
    return any(text in written for text in texts)


def create_app() -> Starlette:
    kept: deque[Span] = deque(maxlen=KEPT)

    async def receive(request: Request) -> Response:
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        export = ExportTraceServiceRequest()
        try:
            export.ParseFromString(body)
        except DecodeError:
            return Response("not an OTLP protobuf export", status_code=400)
        kept.extend(spans_of(export))
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    async def spans(request: Request) -> JSONResponse:
        trace_id = request.query_params.get("trace_id")
        name = request.query_params.get("name")
        attribute = request.query_params.get("attribute")
        key, _, value = (attribute or "").partition("=")
        texts = request.query_params.getlist("contains")
        chosen = [
            span
            for span in kept
            if (trace_id is None or span["trace_id"] == trace_id)
            and (name is None or span["name"] == name)
            and (not attribute or str(span["attributes"].get(key)) == value)
            and (not texts or _holds_any(span, texts))
        ]
        return JSONResponse(chosen)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"spans": len(kept)})

    return Starlette(
        routes=[
            Route("/v1/traces", receive, methods=["POST"]),
            Route("/spans", spans),
            Route("/health", health),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="trace_sink", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
