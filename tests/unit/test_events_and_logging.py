import logging

import pytest

from syntaskio_common import events
from syntaskio_common.logging import REDACTED, RedactingJsonFormatter, redact


def test_a_cloudevent_round_trips_in_kafka_binary_mode() -> None:
    record = events.encode_event(
        event_id="service_ticket/1/2026-01-01T00:00:00Z",
        source="/syntaskio/test",
        event_type=events.CONNECTWISE_RECORD_UPSERTED,
        subject="service_ticket/1",
        key="i1/service_ticket/1",
        data={"external_id": "1"},
    )
    assert record.key == b"i1/service_ticket/1"
    assert record.headers["ce_specversion"] == "1.0"
    assert record.headers["content-type"] == "application/json"
    event = events.decode_event(record.headers, record.value)
    assert (event.id, event.type, event.data) == (
        "service_ticket/1/2026-01-01T00:00:00Z",
        events.CONNECTWISE_RECORD_UPSERTED,
        {"external_id": "1"},
    )


@pytest.mark.parametrize(
    ("headers", "value"),
    [
        ({}, b"{}"),
        ({"ce_specversion": "1.0", "ce_id": "x", "ce_source": "/s"}, b"{}"),
        (
            {
                "ce_specversion": "1.0",
                "ce_id": "x",
                "ce_source": "/s",
                "ce_type": "t",
                "content-type": "application/json",
            },
            b"not json",
        ),
        (
            {
                "ce_specversion": "1.0",
                "ce_id": "x",
                "ce_source": "/s",
                "ce_type": "t",
                "content-type": "application/json",
            },
            b"[1, 2]",
        ),
    ],
)
def test_records_that_are_not_cloudevents_are_rejected(
    headers: dict[str, str], value: bytes
) -> None:
    with pytest.raises(events.InvalidEvent):
        events.decode_event(headers, value)


def test_secrets_are_redacted_by_name_and_by_pattern() -> None:
    assert redact({"private_key": "abc", "nested": {"password": "p", "ok": 1}}) == {
        "private_key": REDACTED,
        "nested": {"password": REDACTED, "ok": 1},
    }
    text = redact("GET https://h/x?access_token=abc123&page=2 Authorization: Basic Zm9vOmJhcg==")
    assert "abc123" not in text
    assert "Zm9vOmJhcg==" not in text
    assert "page=2" in text
    assert "s3cret" not in redact("mongodb://user:s3cret@db:27017/x")


def test_the_log_formatter_never_writes_secrets() -> None:
    formatter = RedactingJsonFormatter("%(message)s")
    record = logging.LogRecord(
        "t", logging.INFO, __file__, 1, "lease for Bearer tok.en.xyz", None, None
    )
    record.private_key = "s3cret"
    line = formatter.format(record)
    assert "s3cret" not in line
    assert "tok.en.xyz" not in line
