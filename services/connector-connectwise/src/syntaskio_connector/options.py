"""Per-connection sync options: what a connection syncs beyond the member's tickets. Kept
in the connection's schedule document (`sync_schedule`, field `options`), which each
run's claim reads anyway; absent means the defaults."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.integrations import SyncOptions
from syntaskio_common.mongo import Document


class SyncOptionsStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._schedule = db["sync_schedule"]
        self._legacy = db["sync_options"]

    async def migrate(self) -> None:
        """Options stored before they moved into the schedule (`sync_options`), moved
        (after `SyncSchedule.create_indexes`, which activates schedules from before)."""
        async for doc in self._legacy.find({}):
            moved = {"$ifNull": ["$options", doc.get("options") or {}]}
            await self._schedule.update_one(
                {"_id": doc["_id"]},
                [{"$set": {"options": moved, "active": {"$ifNull": ["$active", False]}}}],
                upsert=True,
            )
            await self._legacy.delete_one({"_id": doc["_id"]})

    async def get(self, integration_id: str) -> SyncOptions:
        doc = await self._schedule.find_one({"_id": integration_id}, {"options": 1})
        return SyncOptions.model_validate((doc or {}).get("options") or {})

    async def set(self, tenant_id: str, integration_id: str, options: SyncOptions) -> bool:
        """Store the options; True when they changed. A connection not scheduled yet is
        not made active by it (its connected event does that)."""
        result = await self._schedule.update_one(
            {"_id": integration_id},
            {
                "$set": {"tenant_id": tenant_id, "options": options.model_dump()},
                "$setOnInsert": {"active": False},
            },
            upsert=True,
        )
        return result.upserted_id is not None or result.modified_count > 0
