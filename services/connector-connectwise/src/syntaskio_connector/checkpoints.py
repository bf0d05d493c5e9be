"""What was last published per integration and entity, so a sync sends only changes and
notices what disappeared. Written only after the events are durable in Kafka."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document


class Checkpoints:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._collection = db["sync_checkpoints"]

    async def published_versions(self, integration_id: str, entity: str) -> dict[str, str]:
        doc = await self._collection.find_one({"_id": f"{integration_id}/{entity}"})
        return dict(doc["versions"]) if doc else {}

    async def save(
        self, integration_id: str, tenant_id: str, entity: str, versions: dict[str, str]
    ) -> None:
        await self._collection.replace_one(
            {"_id": f"{integration_id}/{entity}"},
            {
                "tenant_id": tenant_id,
                "integration_id": integration_id,
                "entity": entity,
                "versions": versions,
                "updated_at": datetime.now(UTC),
            },
            upsert=True,
        )
