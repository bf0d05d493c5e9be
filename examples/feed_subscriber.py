"""A subscriber of the public task feed (`syntaskio.tasks.v1`) that keeps one company's
tasks and prints each change as it is applied:

    upserted <task id> <user id> <status> <title>
    deleted  <task id> <user id>

The feed carries every company's tasks: whoever may read the topic sees them all (see
docs/events.md, "Who may read the feed"). A subscriber that serves one company keeps only
its tenant's events — `task.tenant_id` of an upsert, `tenant_id` of a deletion — and,
per task, only the event with the greatest `version` (which makes repeats, duplicates
and interleavings harmless).

    uv run python examples/feed_subscriber.py --tenant acme-msp \\
        [--bootstrap 127.0.0.1:9092] [--group my-service] [--until-idle 5]

Without `--group` it reads the whole topic from the beginning (a fresh copy each start);
with one, it goes on from the group's committed position. `--until-idle N` stops after N
seconds without events (for scripts and tests); otherwise it runs until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from dataclasses import dataclass, field
from typing import TextIO

from aiokafka import AIOKafkaConsumer

from syntaskio_common import events, task_events, topics
from syntaskio_common.task_events import TaskDeleted, TaskUpserted


@dataclass
class TenantTasks:
    """One tenant's tasks as the feed says, by task id (the greatest version wins)."""

    tenant_id: str
    out: TextIO = sys.stdout
    versions: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, TaskUpserted] = field(default_factory=dict)

    def apply(self, event: events.Event) -> bool:
        """Apply one feed event; True when it changed this tenant's tasks."""
        try:
            change = task_events.parse(event)
        except ValueError:
            return False  # malformed: not ours to fix, and never applied
        if change is None:
            return False  # a type this reader does not know
        task_id = change.task.id if isinstance(change, TaskUpserted) else change.id
        tenant = change.task.tenant_id if isinstance(change, TaskUpserted) else change.tenant_id
        if tenant != self.tenant_id or change.version <= self.versions.get(task_id, ""):
            return False
        self.versions[task_id] = change.version
        if isinstance(change, TaskDeleted):
            self.tasks.pop(task_id, None)
            print(f"deleted  {task_id} {change.user_id}", file=self.out, flush=True)
        else:
            self.tasks[task_id] = change
            task = change.task
            line = f"upserted {task_id} {task.user_id} {task.status.value} {task.title}"
            print(line, file=self.out, flush=True)
        return True


async def follow(
    tenant: TenantTasks,
    bootstrap: str,
    topic: str = topics.TASKS,
    group: str | None = None,
    until_idle: float | None = None,
) -> None:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=group is not None,
    )
    await consumer.start()
    try:
        while True:
            batch = await consumer.getmany(timeout_ms=int((until_idle or 1) * 1000))
            if not batch and until_idle is not None:
                return
            for records in batch.values():
                for record in records:
                    try:
                        event = events.decode_event(dict(record.headers), record.value or b"")
                    except events.InvalidEvent:
                        continue
                    tenant.apply(event)
    finally:
        await consumer.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tenant", required=True, help="the company (tenant id) to keep")
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--topic", default=topics.TASKS)
    parser.add_argument("--group", help="a consumer group, to go on from where it stopped")
    parser.add_argument("--until-idle", type=float, help="stop after this many idle seconds")
    args = parser.parse_args(argv)
    tenant = TenantTasks(args.tenant)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(follow(tenant, args.bootstrap, args.topic, args.group, args.until_idle))


if __name__ == "__main__":
    main()
