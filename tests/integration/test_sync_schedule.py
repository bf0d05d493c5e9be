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


async def test_a_silent_fleet_reconciles_every_connection_once(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    """No connector beat for longer than the outage limit (all were down, or the
    database was): exactly one replica finds out, and every connection's next run
    reconciles — until one such run succeeds."""
    db = mongo[f"{settings.mongodb_database}_beat_{uuid.uuid4().hex[:6]}"]
    schedule = SyncSchedule(db)
    quiet, limit = datetime.now(UTC), timedelta(seconds=15)
    integrations = [str(uuid.uuid4()) for _ in range(3)]
    for integration in integrations:
        await schedule.ran(integration, quiet + timedelta(minutes=5), quiet, quiet)
    assert await schedule.beat(quiet, limit) is False  # the first beat
    assert await schedule.beat(quiet + timedelta(seconds=10), limit) is False
    assert await schedule.due(integrations, quiet + timedelta(seconds=11)) == []

    back = quiet + timedelta(seconds=40)
    found = [await schedule.beat(back, limit), await schedule.beat(back, limit)]
    assert found == [True, False]  # one replica acts on it
    due = await schedule.due(integrations, back)
    assert sorted(d.integration_id for d in due) == sorted(integrations)
    assert all(d.reconcile and d.full for d in due)

    first = due[0]
    await schedule.ran(first.integration_id, back, back, first.seen_at, reconciled=False)
    failed_again = await schedule.due([first.integration_id], back)
    assert [d.reconcile for d in failed_again] == [True]  # a failed run leaves it owed
    await schedule.ran(first.integration_id, back, back, first.seen_at, reconciled=True)
    after = await schedule.due([first.integration_id], back + timedelta(minutes=10))
    assert [d.reconcile for d in after] == [False]
    await mongo.drop_database(db.name)


async def test_a_request_whose_run_crashed_keeps_its_run(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> None:
    """The run that saw a "sync now" crashed before it could start a job (auth-service
    unreachable): the request is not dropped, the next run answers it."""
    schedule = schedule_of(mongo, settings)
    integration = str(uuid.uuid4())
    await schedule.request(integration, Trigger.MANUAL)
    [seen] = await schedule.due([integration], datetime.now(UTC))
    started = datetime.now(UTC)
    await schedule.ran(
        integration, started + timedelta(minutes=5), started, seen.seen_at, answered=False
    )
    [again] = await schedule.due([integration], datetime.now(UTC))
    assert (again.trigger, again.full) == (Trigger.MANUAL, True)
