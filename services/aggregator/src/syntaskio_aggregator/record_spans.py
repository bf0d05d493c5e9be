"""Each raw record's span, in the trace the record was made in.

A batch mixes records of many traces (a technician's write-back, a scheduled sync, a
webhook), so FastStream's span for the batch only links to them. Here each record gets a
span of its own whose parent is the context the connector made it in (the CloudEvents
`traceparent`), and the task event announced for it continues that span: one trace goes
from the user's action to the task feed. The batch's one database write and its
announcements run in the first record's span; the other records' spans link to it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from syntaskio_common.events import Event
from syntaskio_common.telemetry import context_of, current_traceparent, tracer


class RecordSpans:
    def __init__(self) -> None:
        self._spans: list[Span] = []

    def begin(self, event: Event, record: Any) -> str | None:
        """Start the record's span; its traceparent, for the record's announcement."""
        first = self._spans[0].get_span_context() if self._spans else None
        span = tracer.start_span(
            f"{record.topic} apply",
            # Without a traceparent, a child of the batch's span (the current one).
            context=context_of(event.traceparent, event.tracestate),
            kind=SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": record.topic,
                "messaging.kafka.destination.partition": record.partition,
                "messaging.kafka.message.offset": record.offset,
                "cloudevents.event_id": event.id,
                "cloudevents.event_type": event.type,
            },
            links=[Link(first)] if first is not None else None,
        )
        self._spans.append(span)
        return current_traceparent(trace.set_span_in_context(span)).get("traceparent")

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """Around the batch's write: it runs in the first record's span; every span
        ends with it, marked failed if it failed."""
        try:
            if not self._spans:
                yield
                return
            with trace.use_span(self._spans[0], end_on_exit=False):
                yield
        except BaseException as error:
            for span in self._spans:
                span.set_status(Status(StatusCode.ERROR, type(error).__name__))
            raise
        finally:
            for span in self._spans:
                span.end()
