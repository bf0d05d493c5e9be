"""Raw ConnectWise events as the connector publishes them (built with its own functions),
and the reference model the aggregator's results are compared with."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from syntaskio_aggregator.normalize import normalize
from syntaskio_common import events, task_events
from syntaskio_common.events import KafkaRecord
from syntaskio_common.task import Task
from syntaskio_connector.assignment import (
    Assignment,
    Entity,
    IntegrationRef,
    fingerprint,
    removed_event,
    upserted_event,
)

T0 = datetime(2026, 11, 1, 8, tzinfo=UTC)


def integration(tenant: str, user: str = "u1", generation: int = 1) -> IntegrationRef:
    return IntegrationRef(
        integration_id=f"i-{user}",
        tenant_id=tenant,
        user_id=user,
        member_identifier="atech",
        api_base_url="https://cw.example/v2025_1/apis/3.0/",
        company_id="acme",
        generation=generation,
    )


def ticket(ticket_id: int, updated: datetime, summary: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": ticket_id,
        "summary": summary,
        "board": {"id": 1, "name": "Service Desk"},
        "status": {"id": 2, "name": "New"},
        "priority": {"id": 3, "name": "Priority 3 - Normal Response"},
        "company": {"id": 7, "identifier": "AcmeCorp", "name": "Acme Corp"},
        "owner": {"id": 1, "identifier": "atech"},
        "closedFlag": False,
        "_info": {"lastUpdated": updated.strftime("%Y-%m-%dT%H:%M:%SZ")},
    } | fields


def upserted(
    ref: IntegrationRef,
    record: dict[str, Any],
    observed: datetime,
    reasons: Sequence[str] = ("owner",),
) -> KafkaRecord:
    (member,) = ref.members
    assigned = Assignment(tuple(reasons))
    version = fingerprint(record, {member: assigned})
    return upserted_event(
        ref, member, Entity.SERVICE_TICKET, record, assigned, version, {}, observed
    )


def removed(
    ref: IntegrationRef, ticket_id: int, observed: datetime, last_updated: datetime
) -> KafkaRecord:
    stamp = last_updated.strftime("%Y-%m-%dT%H:%M:%SZ")
    return removed_event(
        ref, ref.user_id, Entity.SERVICE_TICKET, str(ticket_id), f"v-{stamp}", observed, stamp
    )


def decoded(record: KafkaRecord) -> events.Event:
    return events.decode_event(record.headers, record.value)


def history(ref: IntegrationRef, tickets: int, steps: int, seed: int) -> list[KafkaRecord]:
    """A plausible production order of raw events for `tickets` tickets: edits (newer
    `lastUpdated`), assignment changes that leave the ticket untouched, closes (removals)
    and reopens. Observation times only move forward, as they do in one connector."""
    rng = random.Random(seed)
    clock = T0
    updated = dict.fromkeys(range(1, tickets + 1), T0)
    open_ = dict.fromkeys(updated, False)
    edits = dict.fromkeys(updated, 0)
    produced: list[KafkaRecord] = []
    for _ in range(steps):
        for ticket_id in rng.sample(sorted(updated), k=max(1, tickets // 2)):
            clock += timedelta(seconds=rng.randint(1, 90))
            action = rng.choice(
                ["edit", "edit", "reassign", "close"] if open_[ticket_id] else ["open"]
            )
            if action in ("edit", "open"):
                updated[ticket_id] = clock - timedelta(seconds=rng.randint(0, 1))
                edits[ticket_id] += 1
            if action == "close":
                updated[ticket_id] = clock
                produced.append(removed(ref, ticket_id, clock, updated[ticket_id]))
                open_[ticket_id] = False
                continue
            open_[ticket_id] = True
            reasons = ["owner", "resource"] if action == "reassign" else ["owner"]
            record = ticket(ticket_id, updated[ticket_id], f"#{ticket_id} edit {edits[ticket_id]}")
            produced.append(upserted(ref, record, clock, reasons))
    return produced


def shuffled_within_keys(records: Sequence[KafkaRecord], seed: int) -> list[KafkaRecord]:
    """Each key's records in a random order, keys interleaved at random."""
    rng = random.Random(seed)
    by_key: dict[bytes | None, list[KafkaRecord]] = {}
    for record in records:
        by_key.setdefault(record.key, []).append(record)
    for group in by_key.values():
        rng.shuffle(group)
    slots = [key for key, group in by_key.items() for _ in group]
    rng.shuffle(slots)
    return [by_key[key].pop(0) for key in slots]


@dataclass(frozen=True)
class Reference:
    """What the dashboard must show: each record applied once, in production order."""

    tasks: dict[str, Task]

    @classmethod
    def of(cls, records: Iterable[KafkaRecord]) -> Reference:
        tasks: dict[str, Task] = {}
        for record in records:
            event = decoded(record)
            if event.type == events.CONNECTWISE_RECORD_UPSERTED:
                task = normalize(event.data)
                tasks[task.id] = task
            else:
                for task_id, task in list(tasks.items()):
                    if task.external_id == event.data["external_id"] and (
                        task.user_id == event.data["user_id"]
                    ):
                        del tasks[task_id]
        return cls(tasks)


def task_of(doc: dict[str, Any]) -> Task:
    """A stored document as the task it holds (without the aggregator's bookkeeping)."""
    fields = {key: value for key, value in doc.items() if key in Task.model_fields}
    return Task.model_validate({**fields, "id": doc["_id"]})


def rebuilt_from_feed(feed: Iterable[events.Event], tenant: str) -> dict[str, Task]:
    """A subscriber of `syntaskio.tasks.v1` alone: per task, the event with the greatest
    version wins; what is left is the tenant's dashboard."""
    newest: dict[str, task_events.TaskEvent] = {}
    for event in feed:
        parsed = task_events.parse(event)
        if parsed is None:
            continue
        task_id = parsed.task.id if isinstance(parsed, task_events.TaskUpserted) else parsed.id
        if task_id not in newest or parsed.version > newest[task_id].version:
            newest[task_id] = parsed
    return {
        task_id: Task.model_validate(item.task.model_dump())
        for task_id, item in newest.items()
        if isinstance(item, task_events.TaskUpserted) and item.task.tenant_id == tenant
    }
