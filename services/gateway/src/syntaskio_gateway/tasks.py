"""Reading the user's tasks. Every query is scoped by tenant and user (`task_query.scope`)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.task import Task
from syntaskio_gateway.task_query import (
    FACETS,
    TaskFilters,
    TaskListQuery,
    encode_cursor,
    facets_pipeline,
    list_pipeline,
    scope,
)


class TaskPage(BaseModel):
    items: list[Task]
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters and order) for the next page; "
        "null on the last page."
    )


class FacetValue(BaseModel):
    value: str | int
    label: str | None = Field(default=None, description="Display name (boards, projects, …)")
    count: int


class TaskFacets(BaseModel):
    """Per facet, its values' task counts under the current filter, not counting the
    facet's own selection (so every alternative shows)."""

    source: list[FacetValue]
    status: list[FacetValue]
    priority: list[FacetValue]
    board: list[FacetValue]
    project: list[FacetValue]
    company: list[FacetValue]
    sla: list[FacetValue] = Field(
        description="Tasks by SLA window: breached, at_risk (within `sla_margin`), on_track, none"
    )


MOST_SLA_DUE = 200  # a day's at-risk targets for one technician, with room to spare


class TaskReader:
    def __init__(
        self, db: AsyncDatabase[Document], clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> None:
        self._tasks = db["tasks"]
        self._clock = clock  # "now", for overdue / today / this week

    async def page(self, user: UserSession, query: TaskListQuery) -> TaskPage:
        pipeline = list_pipeline(user.tenant_id, user.user_id, query, self._clock())
        found = await (await self._tasks.aggregate(pipeline)).to_list()
        shown = found[: query.limit]
        more = len(found) > query.limit
        return TaskPage(
            items=[_task(doc) for doc in shown],
            next_cursor=encode_cursor(query.sort, shown[-1]) if more else None,
        )

    async def facets(self, user: UserSession, filters: TaskFilters) -> TaskFacets:
        pipeline = facets_pipeline(user.tenant_id, user.user_id, filters, self._clock())
        found = await (await self._tasks.aggregate(pipeline)).to_list()
        counts: dict[str, Any] = found[0] if found else {}
        return TaskFacets.model_validate(
            {
                facet: [
                    FacetValue(value=item["_id"], label=item.get("label"), count=item["count"])
                    for item in counts.get(facet, [])
                ]
                for facet in FACETS
            }
        )

    async def get(self, user: UserSession, task_id: str) -> Task | None:
        # `_id` first: a server that plans by the first usable field looks up one document.
        doc = await self._tasks.find_one({"_id": task_id, **scope(user.tenant_id, user.user_id)})
        return _task(doc) if doc is not None else None

    async def among(self, user: UserSession, task_ids: Collection[str]) -> list[Task]:
        """Those of these tasks that are the user's and live (not removed)."""
        if not task_ids:
            return []
        cursor = self._tasks.find(
            {"_id": {"$in": list(task_ids)}, **scope(user.tenant_id, user.user_id)}
        )
        return [_task(doc) async for doc in cursor]

    async def sla_due(self, user: UserSession, until: datetime) -> list[Task]:
        """The user's live tasks whose next SLA target is due from now until `until`
        (the `live_by_sla` index), soonest first."""
        wanted = {
            **scope(user.tenant_id, user.user_id),
            "sla.due_at": {"$gt": self._clock(), "$lte": until},
        }
        cursor = self._tasks.find(wanted).sort("sla.due_at", 1).limit(MOST_SLA_DUE)
        return [_task(doc) async for doc in cursor]


def _task(doc: Document) -> Task:
    # The document also holds the aggregator's bookkeeping, which is not part of a Task.
    fields = {key: value for key, value in doc.items() if key in Task.model_fields}
    return Task.model_validate({**fields, "id": doc["_id"]})
