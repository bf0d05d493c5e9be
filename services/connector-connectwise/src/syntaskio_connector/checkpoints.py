"""What was last published per integration and entity, so a sync sends only changes and
notices what disappeared. Written only after the events are durable in Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document
from syntaskio_connector.tickets import IntegrationRef


class Checkpoints:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._collection = db["sync_checkpoints"]

    async def published_versions(
        self, integration_id: str, generation: int, entity: str
    ) -> dict[str, str]:
        """Empty for a new generation: a reconnect starts from an empty dashboard (the
        aggregator dropped the old connection's tasks), so everything is published again."""
        doc = await self._collection.find_one({"_id": f"{integration_id}/{entity}"})
        if doc is None or doc.get("generation") != generation:
            return {}
        return dict(doc["versions"])

    async def save(self, ref: IntegrationRef, entity: str, versions: dict[str, str]) -> None:
        await self._collection.replace_one(
            {"_id": f"{ref.integration_id}/{entity}"},
            {
                "tenant_id": ref.tenant_id,
                "integration_id": ref.integration_id,
                "generation": ref.generation,
                "entity": entity,
                "versions": versions,
                "updated_at": datetime.now(UTC),
            },
            upsert=True,
        )
