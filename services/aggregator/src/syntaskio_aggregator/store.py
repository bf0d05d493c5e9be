"""The `tasks` collection: one document per (tenant, user, source, type, record), written
in one bulk request per batch, each write guarded by version.

A write lands only when its version is newer than the stored one (see `changes`), so
redelivered, reordered or replayed events never overwrite newer data. A batch reads the
stored versions of its tasks, decides each (`changes.decide`), and writes in one bulk
request: a new task is inserted, a stored one replaced only if its version is still the
one read (compare-and-set). Either is refused as a duplicate `_id` when another writer got
there first, and is then decided again. (Reading first is also what the embedded
database does fastest: inserts, and point reads by `_id`.) A removed task stays as a
tombstone (so a late, older upsert cannot bring it back) until `tombstone_retention` has
passed.

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

from pymongo import ASCENDING, DESCENDING, InsertOne, ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from syntaskio_aggregator.changes import (
    DELETED,
    Change,
    Decision,
    Latest,
    Stored,
    decide,
    disconnected_version,
)
from syntaskio_common.mongo import Document
from syntaskio_common.task import TaskPriority, TaskRef

DUPLICATE_KEY: Final = 11000
MAX_ROUNDS: Final = 10  # of conflicts with other writers before the batch is redone
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
        tie-break of keyset pagination, or by their next SLA target."""
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
            [*live, ("sla.due_at", ASCENDING), ("_id", ASCENDING)], name="live_by_sla"
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
            {"version": {"$exists": False}},
            {"$set": {"version": "", "content_hash": "", "changed_by": "", "deleted": False}},
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
        """Store each task's winning change unless what is stored is as new: one read of
        the stored versions, then one bulk request of inserts and compare-and-set
        replaces. A write another writer got in before (a rebalance's overlap, a
        disconnect) is decided again against what it wrote."""
        changed: list[Change] = []
        pending = list(latest)
        for _ in range(MAX_ROUNDS):
            if not pending:
                break
            stored = await self._stored([item.change.identity.id for item in pending])
            now = datetime.now(UTC)
            writes: list[tuple[Latest, Decision]] = []
            operations: list[InsertOne[Document] | ReplaceOne[Document]] = []
            for item in pending:
                current = stored.get(item.change.identity.id)
                decision = decide(item, current)
                if decision.write:
                    writes.append((item, decision))
                    operations.append(_operation(item.change, current, now))
                elif decision.announce:
                    changed.append(item.change)
            conflicts = await _bulk_write(self._tasks, operations)
            changed += [
                item.change
                for n, (item, decision) in enumerate(writes)
                if decision.announce and n not in conflicts
            ]
            pending = [writes[n][0] for n in sorted(conflicts)]
        if pending:
            raise RuntimeError(f"{len(pending)} tasks kept changing under the write; redo it")
        return Written(changed)

    async def _stored(self, ids: list[str]) -> dict[str, Stored]:
        found = self._tasks.find(
            {"_id": {"$in": ids}}, {"version": True, "content_hash": True, "changed_by": True}
        )
        return {
            doc["_id"]: Stored(doc["version"], doc["content_hash"], doc["changed_by"])
            async for doc in found
        }

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


def _operation(
    change: Change, stored: Stored | None, now: datetime
) -> InsertOne[Document] | ReplaceOne[Document]:
    """Insert a new task; replace a stored one only if it is still the version read (else
    the upsert collides on `_id`: a conflict)."""
    document = _document(change, now)
    if stored is None:
        return InsertOne(document)
    if stored.content_hash == change.content_hash:
        # Only the version moves on: the write that changed the content stays named.
        document["changed_by"] = stored.changed_by
    return ReplaceOne({"_id": change.identity.id, "version": stored.version}, document, upsert=True)


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
    collection: AsyncCollection[Document],
    operations: Sequence[InsertOne[Document] | ReplaceOne[Document]],
) -> set[int]:
    """Run the writes unordered; returns the indexes of those refused as a duplicate
    `_id` (another writer got there first). Any other refusal is raised."""
    if not operations:
        return set()
    try:
        await collection.bulk_write(operations, ordered=False)
    except BulkWriteError as error:
        details = error.details
        others = [e for e in details.get("writeErrors", []) if e.get("code") != DUPLICATE_KEY]
        if others or details.get("writeConcernErrors"):
            raise
        return {int(e["index"]) for e in details.get("writeErrors", [])}
    return set()


def _fence_id(tenant_id: str, integration_id: str) -> str:
    return f"{tenant_id}/{integration_id}"
