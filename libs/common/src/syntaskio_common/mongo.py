"""The one MongoDB client factory (PyMongo's native async API; Motor is deprecated)."""

from __future__ import annotations

from typing import Any, TypeAlias

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from syntaskio_common.settings import ServiceSettings

Document: TypeAlias = dict[str, Any]


def create_mongo_client(settings: ServiceSettings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        settings.mongodb_url.get_secret_value(),
        tz_aware=True,
        appname=settings.model_config.get("title") or "syntaskio",
        serverSelectionTimeoutMS=10_000,
    )


def get_database(
    client: AsyncMongoClient[Document], settings: ServiceSettings
) -> AsyncDatabase[Document]:
    return client[settings.mongodb_database]


async def ping(client: AsyncMongoClient[Document]) -> bool:
    """Readiness: the database answers within 2 s (server selection alone would wait
    10 s, past the probes' 3 s timeout). Bounded by PyMongo's own timeout, not by
    cancelling: a cancelled operation can break the client (see `leases.Leases.kept`)."""
    try:
        with pymongo.timeout(2.0):
            await client.admin.command("ping")
    except PyMongoError:
        return False
    return True
