"""Per-connection sync options (`sync_options`, one document per integration): what a
connection syncs beyond the member's tickets. Absent means the defaults."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.integrations import SyncOptions
from syntaskio_common.mongo import Document


class SyncOptionsStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._options = db["sync_options"]

    async def get(self, integration_id: str) -> SyncOptions:
        doc = await self._options.find_one({"_id": integration_id}, {"options": 1})
        return SyncOptions.model_validate((doc or {}).get("options") or {})

    async def set(self, tenant_id: str, integration_id: str, options: SyncOptions) -> bool:
        """Store the options; True when they changed."""
        result = await self._options.update_one(
            {"_id": integration_id},
            {"$set": {"tenant_id": tenant_id, "options": options.model_dump()}},
            upsert=True,
        )
        return result.upserted_id is not None or result.modified_count > 0
