"""Reading the user's tasks. Every query is scoped by tenant and user."""

from __future__ import annotations

from pydantic import BaseModel
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.task import Task


class TaskPage(BaseModel):
    items: list[Task]
    count: int


class TaskReader:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._tasks = db["tasks"]

    async def list_for(self, user: UserSession, limit: int) -> TaskPage:
        cursor = (
            self._tasks.find(
                # Removed tasks stay a while as tombstones (see the aggregator's store).
                {"tenant_id": user.tenant_id, "user_id": user.user_id, "deleted": False}
            )
            .sort([("source_updated_at", DESCENDING), ("_id", ASCENDING)])
            .limit(limit)
        )
        items = [_task(doc) async for doc in cursor]
        return TaskPage(items=items, count=len(items))


def _task(doc: Document) -> Task:
    # The document also holds the aggregator's bookkeeping, which is not part of a Task.
    fields = {key: value for key, value in doc.items() if key in Task.model_fields}
    return Task.model_validate({**fields, "id": doc["_id"]})
