"""Write-back requests in the gateway: one command per user and Idempotency-Key, recorded
in the database before it is published, and published again on a retry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pymongo import AsyncMongoClient

from syntaskio_common import events
from syntaskio_common.commands import CommandAction, CommandStatus, NoteInput, TimeEntryInput
from syntaskio_common.events import KafkaRecord
from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.task import SourceType, Task, TaskPriority, TaskSource, TaskStatus, task_id
from syntaskio_gateway.commands import CommandRequests, IdempotencyKeyReused, NotWritable

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def ticket(user: UserSession, external_id: str, source_type: SourceType) -> Task:
    return Task(
        id=task_id(user.tenant_id, user.user_id, TaskSource.CONNECTWISE, source_type, external_id),
        tenant_id=user.tenant_id,
        user_id=user.user_id,
        integration_id="integration-1",
        source=TaskSource.CONNECTWISE,
        source_type=source_type,
        external_id=external_id,
        title="Printer on fire",
        status=TaskStatus.PENDING,
        priority=TaskPriority.HIGH,
        source_updated_at=NOW,
    )


@pytest.fixture
def published() -> list[KafkaRecord]:
    return []


@pytest.fixture
async def requests(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, published: list[KafkaRecord]
) -> CommandRequests:
    async def publish(record: KafkaRecord) -> None:
        published.append(record)

    commands = CommandRequests(mongo[settings.mongodb_database], publish, clock=lambda: NOW)
    await commands.create_indexes()
    return commands


def published_commands(records: list[KafkaRecord]) -> list[dict[str, object]]:
    decoded = [events.decode_event(r.headers, r.value) for r in records]
    assert all(e.type == events.TASK_COMMAND_REQUESTED for e in decoded)
    return [e.data for e in decoded]


async def test_a_request_becomes_a_published_command_for_the_task(
    requests: CommandRequests, published: list[KafkaRecord], tenant: str
) -> None:
    alex = UserSession(tenant_id=tenant, user_id="alex")
    task = ticket(alex, "4711", SourceType.SERVICE_TICKET)
    note = NoteInput(text="Replaced the toner", internal=True)

    command = await requests.request(alex, task, CommandAction.ADD_NOTE, "key-00000001", note=note)

    [data] = published_commands(published)
    assert data["command_id"] == command.command_id
    assert data["tenant_id"] == tenant
    assert data["user_id"] == "alex"
    assert data["integration_id"] == "integration-1"
    assert (data["source_type"], data["external_id"]) == ("service_ticket", "4711")
    assert data["note"] == {"text": "Replaced the toner", "internal": True, "resolution": False}
    assert published[0].key == b"integration-1/service_ticket/4711"
    requested = await requests.find(alex, command.command_id)
    assert requested is not None
    assert requested.task_id == task.id
    view = requested.view(None)
    assert (view.status, view.action, view.requested_at) == (
        CommandStatus.PENDING,
        CommandAction.ADD_NOTE,
        NOW,
    )


async def test_a_retry_with_the_same_key_publishes_the_same_command_again(
    requests: CommandRequests, published: list[KafkaRecord], tenant: str
) -> None:
    alex = UserSession(tenant_id=tenant, user_id="alex")
    task = ticket(alex, "4712", SourceType.PROJECT_TICKET)

    first = await requests.request(alex, task, CommandAction.COMPLETE, "key-00000002")
    again = await requests.request(alex, task, CommandAction.COMPLETE, "key-00000002")

    assert again == first
    # Published twice (the first answer may have been lost after the record was made);
    # the connector executes a command id once.
    assert [d["command_id"] for d in published_commands(published)] == [first.command_id] * 2


async def test_the_same_key_for_a_different_request_is_refused_and_publishes_nothing(
    requests: CommandRequests, published: list[KafkaRecord], tenant: str
) -> None:
    alex = UserSession(tenant_id=tenant, user_id="alex")
    task = ticket(alex, "4713", SourceType.SERVICE_TICKET)
    hours = TimeEntryInput(hours=1.5)
    await requests.request(
        alex, task, CommandAction.ADD_TIME_ENTRY, "key-00000003", time_entry=hours
    )
    published.clear()

    other_hours = TimeEntryInput(hours=2)
    with pytest.raises(IdempotencyKeyReused):
        await requests.request(
            alex, task, CommandAction.ADD_TIME_ENTRY, "key-00000003", time_entry=other_hours
        )
    other_task = ticket(alex, "4714", SourceType.SERVICE_TICKET)
    with pytest.raises(IdempotencyKeyReused):
        await requests.request(
            alex, other_task, CommandAction.ADD_TIME_ENTRY, "key-00000003", time_entry=hours
        )
    assert published == []


async def test_keys_and_commands_are_each_users_own(
    requests: CommandRequests, published: list[KafkaRecord], tenant: str
) -> None:
    alex = UserSession(tenant_id=tenant, user_id="alex")
    sam = UserSession(tenant_id=tenant, user_id="sam")
    alex_in_other_tenant = UserSession(tenant_id=f"{tenant}-other", user_id="alex")

    alexs = await requests.request(
        alex,
        ticket(alex, "4715", SourceType.SERVICE_TICKET),
        CommandAction.COMPLETE,
        "shared-key-1",
    )
    sams = await requests.request(
        sam, ticket(sam, "4715", SourceType.SERVICE_TICKET), CommandAction.COMPLETE, "shared-key-1"
    )

    assert sams.command_id != alexs.command_id
    assert await requests.find(sam, alexs.command_id) is None
    assert await requests.find(alex_in_other_tenant, alexs.command_id) is None
    assert await requests.find(alex, alexs.command_id) is not None


async def test_a_project_phase_cannot_be_changed_from_here(
    requests: CommandRequests, published: list[KafkaRecord], tenant: str
) -> None:
    alex = UserSession(tenant_id=tenant, user_id="alex")
    phase = ticket(alex, "77", SourceType.PROJECT_PHASE)

    with pytest.raises(NotWritable):
        await requests.request(alex, phase, CommandAction.COMPLETE, "key-00000006")
    assert published == []


async def test_a_key_used_again_after_its_record_expired_is_a_new_command(
    requests: CommandRequests,
    published: list[KafkaRecord],
    mongo: AsyncMongoClient[Document],
    settings: ServiceSettings,
    tenant: str,
) -> None:
    alex = UserSession(tenant_id=tenant, user_id="alex")
    task = ticket(alex, "4716", SourceType.SERVICE_TICKET)
    first = await requests.request(alex, task, CommandAction.COMPLETE, "key-00000007")
    # What the retention index does after a day.
    await mongo[settings.mongodb_database]["command_requests"].delete_many(
        {"command_id": first.command_id}
    )

    later = await requests.request(alex, task, CommandAction.COMPLETE, "key-00000007")

    # The connector executes a command id once: an old id would make this a no-op.
    assert later.command_id != first.command_id
    assert await requests.find(alex, first.command_id) is None
    assert await requests.find(alex, later.command_id) is not None
