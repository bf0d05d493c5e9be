"""Wiring: the one place the aggregator's parts are put together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from syntaskio_aggregator.consumer import GROUP_ID, LIFECYCLE_GROUP_ID, register
from syntaskio_aggregator.settings import AggregatorSettings
from syntaskio_aggregator.store import TaskStore
from syntaskio_common import topics
from syntaskio_common.consumer_lag import ConsumerLag
from syntaskio_common.health import health_router
from syntaskio_common.kafka import BatchProducer, create_broker, ensure_topics, reachable
from syntaskio_common.mongo import create_mongo_client, get_database, ping
from syntaskio_common.problems import install_problem_handlers


def create_app(settings: AggregatorSettings) -> FastAPI:
    mongo = create_mongo_client(settings)
    broker = create_broker(settings, client_id="aggregator")
    producer = BatchProducer(settings, client_id="aggregator")
    store = TaskStore(
        get_database(mongo, settings), timedelta(days=settings.tombstone_retention_days)
    )

    register(
        broker,
        producer,
        store,
        settings.batch_size,
        settings.kafka_fetch_max_wait_ms,
        settings.consumers,
    )

    lag = ConsumerLag(
        settings, {GROUP_ID: topics.CONNECTWISE_RAW, LIFECYCLE_GROUP_ID: topics.INTEGRATIONS}
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.create_indexes()
        raw = topics.CONNECTWISE_RAW
        await ensure_topics(
            settings, [raw, topics.dead_letter(raw), topics.INTEGRATIONS, topics.TASKS]
        )
        await producer.start()
        await broker.start()
        lag.start()
        yield
        await lag.stop()
        await broker.stop()
        await producer.stop()
        await mongo.close()

    app = FastAPI(title="Syntaskio aggregator", version="0.1.0", lifespan=lifespan)
    install_problem_handlers(app)
    app.include_router(health_router({"mongodb": lambda: ping(mongo), "kafka": reachable(broker)}))
    return app
