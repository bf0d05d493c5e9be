"""CloudEvents 1.0 envelope in Kafka binary content mode (``ce_*`` headers, JSON data).

Built on the CloudEvents SDK so attribute validation and header mapping follow the spec.
Event ids are chosen by the producer and must be deterministic for a given upstream
version, so a replay produces the same id and consumers can dedupe.

Each event carries the trace context it was made in as the CloudEvents distributed-tracing
extension (`traceparent`, `tracestate`: the `ce_traceparent` header), so the consumer
continues the trace that made it. The transport's own `traceparent` header (FastStream's
telemetry middleware) names the publish instead, which a relay changes; the extension
does not change however often the event is relayed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings import kafka as kafka_binding
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from opentelemetry.context import Context

from syntaskio_common.telemetry import current_traceparent

JSON: Final = "application/json"
_FORMAT: Final = JSONFormat()

# Event types: a new major version of a payload is a new type.
CONNECTWISE_RECORD_UPSERTED: Final = "io.syntaskio.connectwise.record.upserted.v1"
CONNECTWISE_RECORD_REMOVED: Final = "io.syntaskio.connectwise.record.removed.v1"
TASK_UPSERTED: Final = "io.syntaskio.task.upserted.v1"
TASK_DELETED: Final = "io.syntaskio.task.deleted.v1"
INTEGRATION_CONNECTED: Final = "io.syntaskio.integration.connected.v1"
INTEGRATION_DISCONNECTED: Final = "io.syntaskio.integration.disconnected.v1"
INTEGRATION_EXPIRED: Final = "io.syntaskio.integration.expired.v1"
INTEGRATION_PAUSED: Final = "io.syntaskio.integration.paused.v1"
INTEGRATION_RESUMED: Final = "io.syntaskio.integration.resumed.v1"
# A tenant connection's confirmed member mapping changed: sync it again.
INTEGRATION_MEMBERS_CHANGED: Final = "io.syntaskio.integration.members_changed.v1"
SYNC_STARTED: Final = "io.syntaskio.integration.sync.started.v1"
SYNC_FINISHED: Final = "io.syntaskio.integration.sync.finished.v1"
SYNC_FAILED: Final = "io.syntaskio.integration.sync.failed.v1"
TASK_COMMAND_REQUESTED: Final = "io.syntaskio.task.command.requested.v1"
TASK_COMMAND_SUCCEEDED: Final = "io.syntaskio.task.command.succeeded.v1"
TASK_COMMAND_FAILED: Final = "io.syntaskio.task.command.failed.v1"


class InvalidEvent(ValueError):
    """A Kafka record that is not a valid CloudEvent with JSON object data."""


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    source: str
    type: str
    subject: str | None
    time: datetime | None
    data: dict[str, Any]
    traceparent: str | None = None
    tracestate: str | None = None


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """What goes on the wire: key, value and headers."""

    key: bytes | None
    value: bytes
    headers: dict[str, str]


def encode_event(
    *,
    event_id: str,
    source: str,
    event_type: str,
    data: Mapping[str, Any],
    key: str | None,
    subject: str | None = None,
    time: datetime | None = None,
    trace_context: Context | None = None,
) -> KafkaRecord:
    """`trace_context`: the context the event continues (the current one by default)."""
    attributes: dict[str, Any] = {
        "id": event_id,
        "source": source,
        "type": event_type,
        "datacontenttype": JSON,
        "time": time or datetime.now(UTC),
        **current_traceparent(trace_context),
    }
    if subject is not None:
        attributes["subject"] = subject
    event = CloudEvent(attributes=attributes, data=dict(data))
    message = kafka_binding.to_binary(event, _FORMAT, key_mapper=lambda _: key)
    return KafkaRecord(
        key=key.encode() if key is not None else None,
        value=message.value,
        headers={name: raw.decode() for name, raw in message.headers.items()},
    )


def decode_event(headers: Mapping[str, str | bytes], value: bytes) -> Event:
    """Parse a binary-mode record; raise `InvalidEvent` with the reason when it is not one."""
    raw_headers = {
        name: raw if isinstance(raw, bytes) else raw.encode() for name, raw in headers.items()
    }
    try:
        event = kafka_binding.from_binary(
            kafka_binding.KafkaMessage(headers=raw_headers, key=None, value=value), _FORMAT
        )
    except (BaseCloudEventException, ValueError, KeyError, TypeError) as error:
        raise InvalidEvent(f"not a CloudEvent: {error}") from error
    data = event.get_data()
    if not isinstance(data, dict):
        raise InvalidEvent("CloudEvent data must be a JSON object")
    return Event(
        id=event.get_id(),
        source=event.get_source(),
        type=event.get_type(),
        subject=event.get_subject(),
        time=event.get_time(),
        data=data,
        traceparent=_text_extension(event, "traceparent"),
        tracestate=_text_extension(event, "tracestate"),
    )


def _text_extension(event: BaseCloudEvent, name: str) -> str | None:
    value = event.get_extension(name)
    return value if isinstance(value, str) else None


def header_pairs(headers: Mapping[str, str]) -> Iterable[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in headers.items()]
