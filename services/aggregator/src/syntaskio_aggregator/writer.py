"""Applies a batch of changes: fence, pick each task's newest change, write them in one
bulk request, then announce what changed on the public feed (`syntaskio.tasks.v1`).

The caller acknowledges the batch only after this returns, so the announcement is never
lost: a crash before it means the batch comes again, and `TaskStore.write` reports the
writes it made the first time as changed again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

from syntaskio_aggregator.changes import Change, latest_per_task
from syntaskio_aggregator.store import IntegrationKey, TaskStore
from syntaskio_common import task_events
from syntaskio_common.events import KafkaRecord

Publish = Callable[[Iterable[KafkaRecord]], Awaitable[None]]


def _integration(change: Change) -> IntegrationKey:
    return change.identity.tenant_id, change.identity.integration_id


def _announcement(change: Change) -> KafkaRecord:
    if change.task is None:
        return task_events.deleted_event(change.identity, change.version, change.traceparent)
    return task_events.upserted_event(change.task, change.version, change.traceparent)


class TaskWriter:
    def __init__(self, store: TaskStore, publish: Publish) -> None:
        self._store = store
        self._publish = publish

    async def apply(self, changes: Sequence[Change]) -> int:
        """Returns how many tasks changed."""
        integrations = {_integration(change) for change in changes}
        fences = await self._store.fences(integrations)
        admitted = [c for c in changes if c.generation > fences.get(_integration(c), -1)]
        written = await self._store.write(latest_per_task(admitted))
        await self._publish([_announcement(change) for change in written.changed])
        await self._refence(admitted)
        return len(written.changed)

    async def _refence(self, written: Sequence[Change]) -> None:
        """A disconnect handled between the fence check and the write missed what this
        batch wrote for the connection; remove it now (the fence is set before the
        disconnect's sweep, so one of the two always sees the other)."""
        fences = await self._store.fences({_integration(change) for change in written})
        for (tenant_id, integration_id), fence in fences.items():
            if any(
                _integration(c) == (tenant_id, integration_id) and c.generation <= fence
                for c in written
            ):
                await self.disconnect(tenant_id, integration_id, fence)

    async def disconnect(self, tenant_id: str, integration_id: str, generation: int) -> int:
        """Remove the integration's tasks up to `generation`; returns how many went."""
        deleted = await self._store.disconnect(tenant_id, integration_id, generation)
        await self._publish([task_events.deleted_event(item, version) for item, version in deleted])
        return len(deleted)
