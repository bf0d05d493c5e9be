"""Every sync run is a `sync_jobs` record (what ran, why, what it cost, how it ended) and
a `sync.started` then `sync.finished|failed` event on `syntaskio.integrations.v1`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from faststream.kafka import KafkaBroker
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common import events, topics
from syntaskio_common.integrations import JobStatus, SyncJob, Trigger
from syntaskio_common.kafka import publish
from syntaskio_common.mongo import Document

JOB_RETENTION_SECONDS = 30 * 24 * 3600


class SyncJobs:
    def __init__(self, db: AsyncDatabase[Document], broker: KafkaBroker) -> None:
        self._jobs = db["sync_jobs"]
        self._broker = broker

    async def create_indexes(self) -> None:
        await self._jobs.create_index(
            [("tenant_id", ASCENDING), ("integration_id", ASCENDING), ("started_at", DESCENDING)],
            name="history",
        )
        await self._jobs.create_index(
            "started_at", expireAfterSeconds=JOB_RETENTION_SECONDS, name="retention"
        )

    async def start(
        self,
        tenant_id: str,
        integration_id: str,
        trigger: Trigger,
        due_at: datetime | None = None,
    ) -> SyncJob:
        job = SyncJob(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            integration_id=integration_id,
            trigger=trigger,
            status=JobStatus.RUNNING,
            started_at=_stored_time(),
            due_at=_stored_time(due_at) if due_at is not None else None,
        )
        await self._jobs.insert_one({"_id": job.id, **job.model_dump(exclude={"id"})})
        await self._announce(events.SYNC_STARTED, job)
        return job

    async def finish(self, job: SyncJob, status: JobStatus, **outcome: Any) -> SyncJob:
        finished_at = _stored_time()
        duration_ms = int((finished_at - job.started_at).total_seconds() * 1000)
        fields = {
            **outcome,
            "status": status.value,
            "finished_at": finished_at,
            "duration_ms": duration_ms,
        }
        # Only this run writes its job: the finished one is known without reading it
        # back (a plain update by _id, not a find-and-modify).
        await self._jobs.update_one({"_id": job.id}, {"$set": fields})
        done = SyncJob.from_document({"_id": job.id, **job.model_dump(exclude={"id"}), **fields})
        failed = status in (JobStatus.FAILED, JobStatus.INTERRUPTED)
        kind = events.SYNC_FAILED if failed else events.SYNC_FINISHED
        await self._announce(kind, done)
        return done

    async def interrupt_abandoned(self, tenant_id: str, integration_id: str) -> int:
        """Mark the integration's jobs still `running` as interrupted, and say how many.
        Called by the holder of the integration's sync lease before its own run: whoever
        ran them no longer holds the lease (killed, restarted, or stalled past it)."""
        abandoned = self._jobs.find(
            {"tenant_id": tenant_id, "integration_id": integration_id, "status": "running"}
        )
        count = 0
        async for doc in abandoned:
            job = SyncJob.from_document(doc)
            await self.finish(
                job,
                JobStatus.INTERRUPTED,
                error="its connector stopped before it finished; this run reconciles",
            )
            count += 1
        return count

    async def history(self, tenant_id: str, integration_id: str, limit: int) -> list[SyncJob]:
        cursor = (
            self._jobs.find({"tenant_id": tenant_id, "integration_id": integration_id})
            .sort("started_at", DESCENDING)
            .limit(limit)
        )
        return [SyncJob.from_document(doc) async for doc in cursor]

    async def _announce(self, event_type: str, job: SyncJob) -> None:
        record = events.encode_event(
            event_id=f"{job.id}:{job.status.value}",
            source="/syntaskio/connector-connectwise",
            event_type=event_type,
            subject=f"integration/{job.integration_id}",
            key=job.integration_id,
            data=job.model_dump(mode="json"),
        )
        await publish(self._broker, topics.INTEGRATIONS, record)


def _stored_time(at: datetime | None = None) -> datetime:
    """`at` (now by default) to the millisecond, as the database keeps it: a job built
    here equals the one read back."""
    at = at or datetime.now(UTC)
    return at.replace(microsecond=at.microsecond // 1000 * 1000)
