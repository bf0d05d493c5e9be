"""The `tasks` collection: idempotent, version-guarded writes.

A write only lands when its upstream version is at least the stored one, so redelivered
or reordered events never overwrite newer data.

Disconnecting is fenced by the connection's generation (`integration_fences`): records a
disconnected connection still had in flight arrive after its tasks were removed, on
another topic, and must not bring them back; a reconnect's records (a newer generation)
are kept whichever topic's consumer is ahead.
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
        self._fences = db["integration_fences"]

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

    async def upsert(self, task: Task, generation: int) -> bool:
        """Store the task unless a newer version is there already, or its connection was
        disconnected; True if it landed."""
        if await self._fenced_up_to(task.tenant_id, task.integration_id) >= generation:
            return False
        document = {
            **task.model_dump(mode="python", exclude={"id"}),
            "integration_generation": generation,
        }
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
        # A disconnect may have been handled between the check and the write; it fences
        # before it deletes, so looking again after writing closes the gap.
        fence = await self._fenced_up_to(task.tenant_id, task.integration_id)
        if fence >= generation:
            await self._tasks.delete_one(
                {"_id": task.id, "integration_generation": {"$lte": fence}}
            )
            return False
        return True

    async def _fenced_up_to(self, tenant_id: str, integration_id: str) -> int:
        doc = await self._fences.find_one({"_id": _fence_id(tenant_id, integration_id)})
        return int(doc["disconnected_generation"]) if doc else -1

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

    async def disconnect(self, tenant_id: str, integration_id: str, generation: int) -> int:
        """Remove the tasks synced by this and earlier connections of the integration,
        and refuse their stragglers from now on; returns how many tasks went."""
        await self._fences.update_one(
            {"_id": _fence_id(tenant_id, integration_id)},
            {
                "$max": {"disconnected_generation": generation},
                "$set": {"tenant_id": tenant_id, "integration_id": integration_id},
            },
            upsert=True,
        )
        result = await self._tasks.delete_many(
            {
                "tenant_id": tenant_id,
                "integration_id": integration_id,
                "integration_generation": {"$lte": generation},
            }
        )
        return result.deleted_count


def _fence_id(tenant_id: str, integration_id: str) -> str:
    return f"{tenant_id}/{integration_id}"


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
