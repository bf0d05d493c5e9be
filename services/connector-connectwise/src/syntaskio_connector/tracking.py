"""What the connector has published per integration and entity (`sync_records`), and
where each entity's sync stands (`sync_cursors`): the `lastUpdated` cursor, when it was
last reconciled, and the progress of a listing under way. `sync_projects` holds, per
project the member's open tickets are in, the project as last read (None: not found),
when it was read and when its phases were last listed (only when phases are synced).

Everything here is written only after the events it describes are durable in Kafka, and
after every page, so a crash resumes from the last page instead of starting over (and
at worst publishes that page again — the events' ids make that recognisable).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from pymongo import ASCENDING, DeleteOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document
from syntaskio_connector.assignment import Entity, IntegrationRef


class Mode(StrEnum):
    FULL = "full"  # list everything assigned, with bodies (first sync, reconnect)
    INCREMENTAL = "incremental"  # what changed since the cursor
    RECONCILE = "reconcile"  # list ids only, to notice deletions and unassignments


@dataclass(frozen=True)
class Tracked:
    id: int
    version: str  # the fingerprint last published
    data: dict[str, Any] | None = None  # schedule entries keep what assignment needs


@dataclass(frozen=True)
class ProjectState:
    project_id: int
    project: dict[str, Any] | None  # as last listed (`PROJECT_FIELDS`); None: not found
    checked_at: datetime | None  # when the project was last read
    phases_at: datetime | None = None  # when its phases were last listed


@dataclass(frozen=True)
class Progress:
    run_id: str
    mode: Mode
    after_id: int  # every record up to this id is done
    since: datetime | None  # the incremental window's start

    def as_document(self) -> Document:
        return {
            "run_id": self.run_id,
            "mode": self.mode.value,
            "after_id": self.after_id,
            "since": self.since,
        }


@dataclass(frozen=True)
class Cursor:
    since: datetime | None  # the newest `lastUpdated` seen
    reconciled_at: datetime | None
    progress: Progress | None
    team: str | None = None  # the team it was listed for (`IntegrationRef.team_digest`)


NO_CURSOR: Final = Cursor(since=None, reconciled_at=None, progress=None)  # never listed


class SyncTracking:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._records = db["sync_records"]
        self._cursors = db["sync_cursors"]
        self._projects = db["sync_projects"]

    async def create_indexes(self) -> None:
        await self._records.create_index(
            [("integration_id", ASCENDING), ("entity", ASCENDING), ("seen_run", ASCENDING)],
            name="by_integration_entity",
        )
        await self._cursors.create_index([("integration_id", ASCENDING)], name="by_integration")
        await self._projects.create_index([("integration_id", ASCENDING)], name="by_integration")

    async def start(self, ref: IntegrationRef) -> dict[Entity, Cursor]:
        """A run's start: each entity's cursor, in one read. An earlier connection's
        state (another generation: the aggregator dropped its tasks, so everything is
        published again) is forgotten first — once, when the generation marker read
        with the cursors says it has not been yet."""
        cursors: dict[Entity, Cursor] = {}
        forgotten = False
        async for doc in self._cursors.find({"integration_id": ref.integration_id}):
            if doc["_id"] == _generation_id(ref):
                forgotten = doc.get("generation") == ref.generation
            elif doc.get("generation") == ref.generation:
                cursors[Entity(doc["entity"])] = _cursor_of(doc)
        if not forgotten:
            await self._forget_other_generations(ref)
        return cursors

    async def _forget_other_generations(self, ref: IntegrationRef) -> None:
        stale = {"integration_id": ref.integration_id, "generation": {"$ne": ref.generation}}
        await self._records.delete_many(stale)
        await self._cursors.delete_many(stale | {"_id": {"$ne": _generation_id(ref)}})
        await self._projects.delete_many(stale)
        # Written last: a run that stopped halfway forgets again next time.
        await self._cursors.update_one(
            {"_id": _generation_id(ref)},
            {
                "$set": {
                    "tenant_id": ref.tenant_id,
                    "integration_id": ref.integration_id,
                    "generation": ref.generation,
                }
            },
            upsert=True,
        )

    async def all_tracked(self, ref: IntegrationRef) -> dict[Entity, dict[int, Tracked]]:
        """Everything tracked for the integration, by entity, in one read."""
        found: dict[Entity, dict[int, Tracked]] = {entity: {} for entity in Entity}
        cursor = self._records.find(
            {"integration_id": ref.integration_id},
            {"entity": 1, "external_id": 1, "version": 1, "data": 1},
        )
        async for doc in cursor:
            record_id = int(doc["external_id"])
            found[Entity(doc["entity"])][record_id] = Tracked(
                record_id, doc["version"], doc.get("data")
            )
        return found

    async def tracked(
        self, ref: IntegrationRef, entity: Entity, ids: Collection[int] | None = None
    ) -> dict[int, Tracked]:
        """What is tracked for `entity` (only `ids`, if given)."""
        query: Document = {"integration_id": ref.integration_id, "entity": entity.value}
        if ids is not None:
            query["_id"] = {"$in": [_record_id(ref, entity, i) for i in ids]}
        cursor = self._records.find(
            query,
            {"external_id": 1, "version": 1, "data": 1},
        )
        return {
            int(doc["external_id"]): Tracked(
                int(doc["external_id"]), doc["version"], doc.get("data")
            )
            async for doc in cursor
        }

    async def save_page(
        self,
        ref: IntegrationRef,
        entity: Entity,
        *,
        published: list[Tracked],
        removed: list[int],
        seen: list[int],
        run_id: str,
        progress: Progress | None,
    ) -> None:
        """Record one page's outcome, then move the listing's progress past it (None: a
        targeted fetch, which is no listing)."""
        writes: list[UpdateOne | DeleteOne] = [
            UpdateOne(
                {"_id": _record_id(ref, entity, item.id)},
                {
                    "$set": {
                        "tenant_id": ref.tenant_id,
                        "integration_id": ref.integration_id,
                        "generation": ref.generation,
                        "entity": entity.value,
                        "external_id": item.id,
                        "version": item.version,
                        "data": item.data,
                        "seen_run": run_id,
                    }
                },
                upsert=True,
            )
            for item in published
        ]
        writes += [
            UpdateOne(
                {"_id": _record_id(ref, entity, record_id)},
                {"$set": {"seen_run": run_id}},
            )
            for record_id in seen
        ]
        writes += [DeleteOne({"_id": _record_id(ref, entity, record_id)}) for record_id in removed]
        if writes:
            await self._records.bulk_write(writes, ordered=True)
        if progress is not None:
            await self._save_cursor(ref, entity, {"progress": progress.as_document()})

    async def unseen(self, ref: IntegrationRef, entity: Entity, run_id: str) -> list[Tracked]:
        """Tracked records a full listing did not return: no longer the member's."""
        cursor = self._records.find(
            {
                "integration_id": ref.integration_id,
                "entity": entity.value,
                "seen_run": {"$ne": run_id},
            },
            {"external_id": 1, "version": 1, "data": 1},
        )
        return [
            Tracked(int(doc["external_id"]), doc["version"], doc.get("data"))
            async for doc in cursor
        ]

    async def set_data(
        self, ref: IntegrationRef, entity: Entity, data: Mapping[int, dict[str, Any]]
    ) -> None:
        """Replace what is kept of tracked records, leaving their published version."""
        writes = [
            UpdateOne({"_id": _record_id(ref, entity, record_id)}, {"$set": {"data": item}})
            for record_id, item in data.items()
        ]
        if writes:
            await self._records.bulk_write(writes, ordered=True)

    async def forget(self, ref: IntegrationRef, entity: Entity, ids: list[int]) -> None:
        if ids:
            await self._records.delete_many(
                {"_id": {"$in": [_record_id(ref, entity, i) for i in ids]}}
            )

    async def finish(
        self,
        ref: IntegrationRef,
        entity: Entity,
        mode: Mode,
        since: datetime | None,
        team: str,
        before: Cursor | None = None,
    ) -> None:
        """The listing is done; `before`: the cursor as the run found it, if the listing
        saved no progress (an incremental one that found nothing leaves it as it was:
        nothing to write)."""
        unchanged = (
            before is not None
            and mode is Mode.INCREMENTAL
            and before.progress is None
            and (before.since, before.team) == (since, team)
        )
        if unchanged:
            return
        fields: Document = {"progress": None, "since": since, "team": team}
        if mode is not Mode.INCREMENTAL:
            fields["reconciled_at"] = datetime.now(UTC)
        await self._save_cursor(ref, entity, fields)

    async def projects(self, ref: IntegrationRef) -> dict[int, ProjectState]:
        cursor = self._projects.find({"integration_id": ref.integration_id})
        return {
            int(doc["project_id"]): ProjectState(
                int(doc["project_id"]),
                doc.get("project"),
                doc.get("checked_at"),
                doc.get("phases_at"),
            )
            async for doc in cursor
        }

    async def save_projects(self, ref: IntegrationRef, states: Collection[ProjectState]) -> None:
        writes = [
            UpdateOne(
                {"_id": _project_id(ref, state.project_id)},
                {
                    "$set": {
                        "tenant_id": ref.tenant_id,
                        "integration_id": ref.integration_id,
                        "generation": ref.generation,
                        "project_id": state.project_id,
                        "project": state.project,
                        "checked_at": state.checked_at,
                        "phases_at": state.phases_at,
                    }
                },
                upsert=True,
            )
            for state in states
        ]
        if writes:
            await self._projects.bulk_write(writes, ordered=False)

    async def forget_projects(self, ref: IntegrationRef, ids: Collection[int]) -> None:
        if ids:
            await self._projects.delete_many({"_id": {"$in": [_project_id(ref, i) for i in ids]}})

    async def _save_cursor(self, ref: IntegrationRef, entity: Entity, fields: Document) -> None:
        await self._cursors.update_one(
            {"_id": _cursor_id(ref, entity)},
            {
                "$set": {
                    **fields,
                    "tenant_id": ref.tenant_id,
                    "integration_id": ref.integration_id,
                    "generation": ref.generation,
                    "entity": entity.value,
                    "updated_at": datetime.now(UTC),
                }
            },
            upsert=True,
        )


def _cursor_of(doc: Document) -> Cursor:
    progress = doc.get("progress")
    return Cursor(
        since=doc.get("since"),
        reconciled_at=doc.get("reconciled_at"),
        progress=Progress(
            run_id=progress["run_id"],
            mode=Mode(progress["mode"]),
            after_id=int(progress["after_id"]),
            since=progress.get("since"),
        )
        if progress
        else None,
        team=doc.get("team"),
    )


def _generation_id(ref: IntegrationRef) -> str:
    """The marker saying which generation's state the integration's documents are."""
    return f"{ref.integration_id}/generation"


def _cursor_id(ref: IntegrationRef, entity: Entity) -> str:
    return f"{ref.integration_id}/{entity.value}"


def _record_id(ref: IntegrationRef, entity: Entity, record_id: int) -> str:
    return f"{ref.integration_id}/{entity.value}/{record_id}"


def _project_id(ref: IntegrationRef, project_id: int) -> str:
    return f"{ref.integration_id}/{project_id}"
