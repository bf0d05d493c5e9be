"""The `tasks` collection: idempotent, version-guarded writes.

A write only lands when its upstream version is at least the stored one, so redelivered
or reordered events never overwrite newer data.
"""

from __future__ import annotations

from datetime import datetime

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from syntaskio_common.mongo import Document
from syntaskio_common.task import SourceType, Task, TaskSource


class TaskStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tasks = db["tasks"]

    async def create_indexes(self) -> None:
        await self._tasks.create_index(
            [
                ("tenant_id", ASCENDING),
                ("user_id", ASCENDING),
                ("source", ASCENDING),
                ("source_type", ASCENDING),
                ("external_id", ASCENDING),
            ],
            unique=True,
            name="one_task_per_user_and_record",
        )
        await self._tasks.create_index(
            [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("source_updated_at", DESCENDING)],
            name="dashboard_by_updated",
        )
        await self._tasks.create_index(
            [("tenant_id", ASCENDING), ("integration_id", ASCENDING)], name="by_integration"
        )

    async def upsert(self, task: Task) -> bool:
        """Store the task unless a newer version is there already; True if it landed."""
        document = task.model_dump(mode="python", exclude={"id"})
        try:
            await self._tasks.update_one(
                {
                    **_key(
                        task.tenant_id,
                        task.user_id,
                        task.source,
                        task.source_type,
                        task.external_id,
                    ),
                    "source_updated_at": {"$lte": task.source_updated_at},
                },
                {"$set": document, "$setOnInsert": {"_id": task.id}},
                upsert=True,
            )
        except DuplicateKeyError:
            return False  # the stored version is newer
        return True

    async def delete(
        self,
        tenant_id: str,
        user_id: str,
        source_type: SourceType,
        external_id: str,
        observed_at: datetime,
    ) -> bool:
        """Remove the task unless it was updated after the removal was observed."""
        result = await self._tasks.delete_one(
            {
                **_key(tenant_id, user_id, TaskSource.CONNECTWISE, source_type, external_id),
                "source_updated_at": {"$lte": observed_at},
            }
        )
        return result.deleted_count == 1

    async def delete_integration(self, tenant_id: str, integration_id: str) -> int:
        """Every task synced through one integration (it was disconnected)."""
        result = await self._tasks.delete_many(
            {"tenant_id": tenant_id, "integration_id": integration_id}
        )
        return result.deleted_count


def _key(
    tenant_id: str, user_id: str, source: TaskSource, source_type: SourceType, external_id: str
) -> Document:
    return {
        "tenant_id": tenant_id,
        "user_id": user_id,
        "source": source.value,
        "source_type": source_type.value,
        "external_id": external_id,
    }
