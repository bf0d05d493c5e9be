"""The aggregator's AsyncAPI document, generated from its FastStream subscribers and
publishers (so it cannot drift from the code):

    faststream docs gen syntaskio_aggregator.asyncapi:app -o docs/asyncapi.json

`make asyncapi` runs exactly that; a test fails when the checked-in file differs.
"""

from __future__ import annotations

from datetime import timedelta

from faststream import FastStream
from faststream.specification import AsyncAPI

from syntaskio_aggregator.consumer import register
from syntaskio_aggregator.settings import AggregatorSettings
from syntaskio_aggregator.store import TaskStore
from syntaskio_common.kafka import BatchProducer, create_broker
from syntaskio_common.mongo import create_mongo_client, get_database

# Fixed values, not the environment's: the document describes the deployment.
_settings = AggregatorSettings(kafka_bootstrap_servers="kafka:9092")
_broker = create_broker(_settings, client_id="aggregator")
register(
    _broker,
    BatchProducer(_settings, client_id="aggregator"),  # never started
    # Never connected: the client is lazy and this module only describes.
    TaskStore(get_database(create_mongo_client(_settings), _settings), timedelta(days=14)),
    _settings.batch_size,
    _settings.kafka_fetch_max_wait_ms,
)
app = FastStream(
    _broker,
    specification=AsyncAPI(
        title="Syntaskio aggregator",
        version="1.0.0",
        description="Raw ConnectWise records in; the public task feed "
        "(`syntaskio.tasks.v1`) and the raw dead-letter queue out. Events are CloudEvents "
        "1.0 in Kafka binary mode (`ce_*` headers, JSON data); see docs/events.md.",
    ),
)
