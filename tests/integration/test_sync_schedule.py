"""The sync schedule on the real database: a run answers the requests it saw, and only
those — a "sync now" or a full resync asked for after the schedule was read (while the
replica was still busy with other integrations) keeps its own run."""

import uuid
from datetime import UTC, datetime, timedelta

from pymongo import AsyncMongoClient

from syntaskio_common.integrations import Trigger
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.sync import SyncSchedule


def schedule_of(mongo: AsyncMongoClient[Document], settings: ServiceSettings) -> SyncSchedule:
    return SyncSchedule(mongo[settings.mongodb_database])


async def test_a_run_clears_the_request_it_saw(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    schedule = schedule_of(mongo, settings)
    integration = str(uuid.uuid4())
    await schedule.request(integration, Trigger.MANUAL, resync=True)

    [due] = await schedule.due([integration], datetime.now(UTC))
    assert (due.trigger, due.full, due.resync) == (Trigger.MANUAL, True, True)
    started = datetime.now(UTC)
    await schedule.ran(integration, started + timedelta(minutes=5), started, due.seen_at)

    assert await schedule.due([integration], datetime.now(UTC)) == []


async def test_a_request_made_after_the_schedule_was_read_keeps_its_own_run(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    schedule = schedule_of(mongo, settings)
    integration = str(uuid.uuid4())
    [seen] = await schedule.due([integration], datetime.now(UTC))  # never ran: due
    assert (seen.trigger, seen.resync) == (Trigger.SCHEDULED, False)

    # Asked for while the replica was busy, before this integration's run started.
    await schedule.request(integration, Trigger.MANUAL, resync=True)
    started = datetime.now(UTC)
    await schedule.ran(integration, started + timedelta(minutes=5), started, seen.seen_at)

    [again] = await schedule.due([integration], datetime.now(UTC))
    assert (again.trigger, again.full, again.resync) == (Trigger.MANUAL, True, True)
