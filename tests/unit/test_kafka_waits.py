"""How long the services' consumers wait for records they do not have yet: the broker's
fetch wait (`KAFKA_FETCH_MAX_WAIT_MS`, short on the embedded broker only) and the batch
subscribers' wait, both of which bound how late a change reaches the dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from syntaskio_common.kafka import BATCH_WAIT_MS, at_least_once, consumer_options
from syntaskio_common.settings import ServiceSettings
from syntaskio_devstack.ports import Ports
from syntaskio_devstack.stack import EMBEDDED_FETCH_MAX_WAIT_MS, EmbeddedStack, StackConfig


def test_a_plain_consumer_gets_the_fetch_wait_besides_how_to_connect() -> None:
    settings = ServiceSettings(kafka_bootstrap_servers="kafka:9092", kafka_fetch_max_wait_ms=80)
    assert consumer_options(settings) == {
        "bootstrap_servers": "kafka:9092",
        "fetch_max_wait_ms": 80,
    }
    assert ServiceSettings().kafka_fetch_max_wait_ms == 500  # Kafka's own default


@pytest.mark.parametrize("wait", [0, -5, 30_001])
def test_a_fetch_wait_out_of_bounds_is_refused(wait: int) -> None:
    with pytest.raises(ValidationError, match="kafka_fetch_max_wait_ms"):
        ServiceSettings(kafka_fetch_max_wait_ms=wait)


async def _handle(records: list[Any]) -> None:
    return None


def test_subscribers_fetch_with_the_services_wait_and_batches_wait_briefly() -> None:
    broker = KafkaBroker("kafka:9092")
    at_least_once(broker, "one", "g1", description="one by one", fetch_max_wait_ms=70)(_handle)
    at_least_once(
        broker, "many", "g2", description="in batches", fetch_max_wait_ms=70, batch_size=50
    )(_handle)
    by_topic = {s.topic_names[0]: s for s in broker.subscribers}  # type: ignore[attr-defined]
    one, many = by_topic["one"], by_topic["many"]
    # FastStream hands these to each aiokafka consumer it makes.
    assert one._connection_args["fetch_max_wait_ms"] == 70  # type: ignore[attr-defined]
    assert many._connection_args["fetch_max_wait_ms"] == 70  # type: ignore[attr-defined]
    assert many.batch_timeout_ms == BATCH_WAIT_MS  # type: ignore[attr-defined]
    assert many.max_records == 50  # type: ignore[attr-defined]
    assert BATCH_WAIT_MS <= 20  # not FastStream's 200 ms (see BATCH_WAIT_MS)


def test_the_devstack_shortens_the_fetch_wait_for_the_embedded_broker_only(
    tmp_path: Path,
) -> None:
    embedded = EmbeddedStack(StackConfig(data_dir=tmp_path, ports=Ports.free()))
    assert embedded.kafka_env()["KAFKA_FETCH_MAX_WAIT_MS"] == str(EMBEDDED_FETCH_MAX_WAIT_MS)
    assert embedded.service_env("aggregator")["KAFKA_FETCH_MAX_WAIT_MS"] == str(
        EMBEDDED_FETCH_MAX_WAIT_MS
    )
    external = EmbeddedStack(
        StackConfig(data_dir=tmp_path, ports=Ports.free(), kafka_bootstrap_servers="kafka:9092")
    )
    assert "KAFKA_FETCH_MAX_WAIT_MS" not in external.kafka_env()
