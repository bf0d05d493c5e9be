"""The `tasks` collection: one document per (tenant, user, source, type, record), written
in one bulk request per batch, each write guarded by version.

A write lands only when its version is newer than the stored one (see `changes`), so
redelivered, reordered or replayed events never overwrite newer data. The guard is in
the write's filter, not in a read before it: a stale write finds no document to replace,
tries to insert one with the same `_id`, and is refused as a duplicate — the per-write
answer that tells which tasks changed. A removed task stays as a tombstone (so a late,
older upsert cannot bring it back) until `tombstone_retention` has passed.

`changed_by` names where the event whose write last changed the task was read (topic,
partition, offset). When a batch comes again after a crash between writing and
announcing, its writes match through `changed_by` and are announced again instead of
being lost; the same event published twice (read at two offsets) is announced once.

Disconnecting is fenced by the connection's generation (`integration_fences`): records a
disconnected connection still had in flight arrive after its tasks were removed, on
another topic, and must not bring them back; a reconnect's records (a newer generation)
are kept whichever topic's consumer is ahead.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from pymongo import ASCENDING, DESCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from pymongo.results import BulkWriteResult

from syntaskio_aggregator.changes import (
    DELETED,
    Change,
    Latest,
    disconnected_version,
)
from syntaskio_common.mongo import Document
from syntaskio_common.task import TaskPriority, TaskRef

DUPLICATE_KEY: Final = 11000
PRIORITY_RANK: Final = {
    TaskPriority.LOW: 1,
    TaskPriority.MEDIUM: 2,
    TaskPriority.HIGH: 3,
    TaskPriority.URGENT: 4,
}
IntegrationKey = tuple[str, str]  # (tenant_id, integration_id)


@dataclass(frozen=True)
class Written:
    """What a batch's write did: the tasks whose content changed, to be announced."""

    changed: list[Change]


class TaskStore:
    def __init__(self, db: AsyncDatabase[Document], tombstone_retention: timedelta) -> None:
        self._tasks = db["tasks"]
        self._fences = db["integration_fences"]
        self._tombstone_retention = tombstone_retention

    async def create_indexes(self) -> None:
        """Idempotent; run at every start. The dashboard's queries (gateway) read a
        user's live tasks sorted by update, due date or priority, with `_id` as the
        tie-break of keyset pagination."""
        tasks = self._tasks
        await tasks.create_index(
            [(field, ASCENDING) for field in ("tenant_id", "user_id", "source", "source_type")]
            + [("external_id", ASCENDING)],
            unique=True,
            name="one_task_per_user_and_record",
        )
        live = [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("deleted", ASCENDING)]
        await tasks.create_index(
            [*live, ("source_updated_at", DESCENDING), ("_id", ASCENDING)], name="live_by_updated"
        )
        await tasks.create_index(
            [*live, ("due_at", ASCENDING), ("_id", ASCENDING)], name="live_by_due"
        )
        await tasks.create_index(
            [*live, ("priority_rank", DESCENDING), ("_id", ASCENDING)], name="live_by_priority"
        )
        await tasks.create_index(
            [
                ("tenant_id", ASCENDING),
                ("integration_id", ASCENDING),
                ("integration_generation", ASCENDING),
            ],
            name="by_integration",
        )
        await tasks.create_index(
            "deleted_at",
            expireAfterSeconds=int(self._tombstone_retention.total_seconds()),
            name="tombstone_retention",
        )
        # Documents from before versioned writes (development data) rank below any event.
        await tasks.update_many(
            {"version": {"$exists": False}}, {"$set": {"version": "", "deleted": False}}
        )

    async def fences(self, integrations: Collection[IntegrationKey]) -> dict[IntegrationKey, int]:
        """Per integration, the newest disconnected generation (absent: never)."""
        if not integrations:
            return {}
        ids = [_fence_id(*key) for key in integrations]
        return {
            (doc["tenant_id"], doc["integration_id"]): int(doc["disconnected_generation"])
            async for doc in self._fences.find({"_id": {"$in": ids}})
        }

    async def write(self, latest: Sequence[Latest]) -> Written:
        """Store each task's winning change unless the stored version is newer; one bulk
        request, plus one more for winners whose content is unchanged (their version
        still moves forward, so an older straggler cannot overwrite them later)."""
        if not latest:
            return Written([])
        now = datetime.now(UTC)
        documents = [_document(item.change, now) for item in latest]
        stale, inserted = await _bulk_write(
            self._tasks,
            [
                ReplaceOne(_newer_content(item.change), document, upsert=True)
                for item, document in zip(latest, documents, strict=True)
            ],
        )
        redone: set[int] = set()
        if stale:
            # Rare (duplicates, crashes): for each refused write, was it this batch's own
            # earlier attempt (announce again), or is the content the same (move the
            # version on)? Each filter matches or is refused as a duplicate, per write.
            order = sorted(stale)
            not_redone, _ = await _bulk_write(
                self._tasks,
                [ReplaceOne(_written_by(latest[i]), documents[i], upsert=True) for i in order],
            )
            redone = {i for n, i in enumerate(order) if n not in not_redone}
            await _bulk_write(
                self._tasks,
                [_advance_version(latest[order[n]].change) for n in sorted(not_redone)],
            )
        return Written(
            [
                item.change
                for i, item in enumerate(latest)
                # A tombstone for a task that was never stored announces nothing.
                if (i not in stale or i in redone)
                and not (i in inserted and item.change.task is None)
            ]
        )

    async def disconnect(
        self, tenant_id: str, integration_id: str, generation: int
    ) -> list[tuple[TaskRef, str]]:
        """Remove the tasks synced by this and earlier connections of the integration,
        and refuse their stragglers from now on; returns the deletions to announce, with their
        version (again, when a disconnect is handled twice)."""
        await self._fences.update_one(
            {"_id": _fence_id(tenant_id, integration_id)},
            {
                "$max": {"disconnected_generation": generation},
                "$set": {"tenant_id": tenant_id, "integration_id": integration_id},
            },
            upsert=True,
        )
        sweep = f"disconnect/{integration_id}/{generation}"
        version = disconnected_version(generation)
        of_integration = {"tenant_id": tenant_id, "integration_id": integration_id}
        fields = {field: True for field in TaskRef.model_fields if field != "id"}
        found = {
            doc["_id"]: doc
            for query in (
                {"deleted": False, "integration_generation": {"$lte": generation}},
                {"changed_by": sweep},  # swept before: announce again
            )
            for doc in await self._tasks.find(of_integration | query, fields).to_list()
        }
        identities = [
            TaskRef.model_validate({"id": doc.pop("_id"), **doc}) for doc in found.values()
        ]
        now = datetime.now(UTC)
        await _bulk_write(
            self._tasks,
            [
                # Up to `version`: one swept before has exactly it.
                ReplaceOne(
                    {"_id": identity.id, "version": {"$lte": version}},
                    _tombstone(identity, generation, version, sweep, now),
                )
                for identity in identities
            ],
        )
        return [(identity, version) for identity in identities]


def _newer_content(change: Change) -> Document:
    """Replace when the version is newer and the task differs. (No `$or` in a filter: the
    embedded database then scans the whole collection.)"""
    return {
        "_id": change.identity.id,
        "version": {"$lt": change.version},
        "content_hash": {"$ne": change.content_hash},
    }


def _written_by(item: Latest) -> Document:
    """This batch wrote the task before: a crash came between the write and the
    announcement."""
    return {
        "_id": item.change.identity.id,
        "changed_by": {"$in": sorted(item.positions)},
        "version": {"$lte": item.change.version},
    }


def _advance_version(change: Change) -> UpdateOne:
    return UpdateOne(
        {
            "_id": change.identity.id,
            "version": {"$lt": change.version},
            "content_hash": change.content_hash,
        },
        {"$set": {"version": change.version, "integration_generation": change.generation}},
    )


def _document(change: Change, now: datetime) -> Document:
    identity, task = change.identity, change.task
    if task is None:
        return _tombstone(identity, change.generation, change.version, change.position, now)
    return {
        "_id": identity.id,
        **task.model_dump(mode="python", exclude={"id"}),
        "deleted": False,
        "priority_rank": PRIORITY_RANK[task.priority],
        **_bookkeeping(change.generation, change.version, change.content_hash, change.position),
    }


def _tombstone(
    identity: TaskRef, generation: int, version: str, changed_by: str, now: datetime
) -> Document:
    return {
        "_id": identity.id,
        **identity.model_dump(mode="json", exclude={"id"}),
        "deleted": True,
        "deleted_at": now,
        **_bookkeeping(generation, version, DELETED, changed_by),
    }


def _bookkeeping(generation: int, version: str, content_hash: str, changed_by: str) -> Document:
    return {
        "integration_generation": generation,
        "version": version,
        "content_hash": content_hash,
        "changed_by": changed_by,
    }


async def _bulk_write(
    collection: AsyncCollection[Document], operations: Sequence[ReplaceOne[Document] | UpdateOne]
) -> tuple[set[int], set[int]]:
    """Run the writes unordered; the indexes refused as duplicates (stale) and the ones
    that inserted a document. Any other refusal is raised."""
    if not operations:
        return set(), set()
    try:
        result: BulkWriteResult = await collection.bulk_write(operations, ordered=False)
    except BulkWriteError as error:
        details = error.details
        others = [e for e in details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if others or details.get("writeConcernErrors"):
            raise
        stale = {int(e["index"]) for e in details.get("writeErrors", [])}
        inserted = {int(u["index"]) for u in details.get("upserted", [])}
        return stale, inserted
    return set(), set(result.upserted_ids or {})


def _fence_id(tenant_id: str, integration_id: str) -> str:
    return f"{tenant_id}/{integration_id}"
