"""The example feed subscriber (`examples/feed_subscriber.py`), run as a program against
the embedded broker: it prints one company's task changes and nothing of another's, and
keeps per task only the greatest version (a repeat, or an older version arriving late,
changes nothing)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer

from syntaskio_common import task_events
from syntaskio_common.events import KafkaRecord
from syntaskio_common.kafka import ensure_topics
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.task import SourceType, Task, TaskPriority, TaskSource, TaskStatus

EXAMPLE = Path(__file__).parents[2] / "examples" / "feed_subscriber.py"


def task(task_id: str, tenant: str, title: str, status: TaskStatus = TaskStatus.PENDING) -> Task:
    return Task(
        id=task_id,
        tenant_id=tenant,
        user_id=f"tech@{tenant}.example",
        integration_id=f"i-{tenant}",
        source=TaskSource.CONNECTWISE,
        source_type=SourceType.SERVICE_TICKET,
        external_id=task_id.rsplit("-", 1)[1],
        title=title,
        status=status,
        priority=TaskPriority.MEDIUM,
        source_updated_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


async def publish(bootstrap: str, topic: str, records: list[KafkaRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for record in records:
            await producer.send_and_wait(
                topic,
                record.value,
                key=record.key,
                headers=[(k, v.encode()) for k, v in record.headers.items()],
            )
    finally:
        await producer.stop()


async def test_the_example_prints_one_companys_changes_once_each(
    settings: ServiceSettings,
) -> None:
    topic = f"test.tasks.{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic])
    printer = task("acme-1", "acme", "Printer on fire")
    fixed = printer.model_copy(update={"title": "Printer fixed", "status": TaskStatus.IN_PROGRESS})
    vpn = task("acme-2", "acme", "VPN down")
    theirs = task("globex-3", "globex", "Globex's own ticket")
    await publish(
        settings.kafka_bootstrap_servers,
        topic,
        [
            task_events.upserted_event(printer, "0001/a"),
            task_events.upserted_event(theirs, "0001/a"),
            task_events.upserted_event(fixed, "0001/b"),
            task_events.upserted_event(printer, "0001/a"),  # a repeat after a crash
            task_events.upserted_event(vpn, "0001/a"),
            task_events.deleted_event(vpn, "0001/~"),
            task_events.upserted_event(vpn, "0001/a"),  # older than the deletion
            task_events.deleted_event(theirs, "0001/~"),
        ],
    )
    program = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--tenant",
        "acme",
        "--bootstrap",
        settings.kafka_bootstrap_servers,
        "--topic",
        topic,
        "--until-idle",
        "3",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(program.communicate(), timeout=120)
    assert program.returncode == 0, err.decode()
    printed = out.decode()
    lines = printed.splitlines()
    per_task = {
        task_id: [line for line in lines if line.split()[1] == task_id]
        for task_id in ("acme-1", "acme-2")
    }
    assert per_task["acme-1"] == [
        "upserted acme-1 tech@acme.example pending Printer on fire",
        "upserted acme-1 tech@acme.example in_progress Printer fixed",
    ]
    assert per_task["acme-2"] == [
        "upserted acme-2 tech@acme.example pending VPN down",
        "deleted  acme-2 tech@acme.example",
    ]
    assert len(lines) == 4
    assert "globex" not in printed
