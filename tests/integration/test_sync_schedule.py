"""The sync schedule on the real database: what is due is claimed by one replica at a
time, through the claim index; a run answers the requests it saw, and only those — a
"sync now" or a full resync asked for while it ran keeps its own run; a lapsed claim is
taken over; only active connections are claimed."""

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.integrations import Trigger
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.assignment import Entity
from syntaskio_connector.engine import Changed
from syntaskio_connector.sync import Due, SyncSchedule

LEASE = timedelta(minutes=2)


@pytest.fixture
async def db(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings
) -> AsyncIterator[AsyncDatabase[Document]]:
    """A database of its own: `claimable` looks at every integration in it."""
    name = f"{settings.mongodb_database}_schedule_{uuid.uuid4().hex[:6]}"
    yield mongo[name]
    await mongo.drop_database(name)


@pytest.fixture
async def schedule(db: AsyncDatabase[Document]) -> SyncSchedule:
    made = SyncSchedule(db)
    await made.create_indexes()
    return made


async def claimable_ids(schedule: SyncSchedule, at: datetime | None = None) -> list[str]:
    return [c.integration_id for c in await schedule.claimable(at or datetime.now(UTC), 100)]


async def claim(schedule: SyncSchedule, integration: str, at: datetime | None = None) -> Due:
    due = await schedule.claim(integration, at or datetime.now(UTC), LEASE)
    assert due is not None
    return due


def names(changed: Changed) -> tuple[dict[Entity, frozenset[int]], bool, frozenset[int]]:
    tickets = {entity: ids for entity, ids in changed.tickets.items() if ids}
    return tickets, changed.schedule, changed.projects


async def finish(schedule: SyncSchedule, due: Due, *, answered: bool = True) -> None:
    started = datetime.now(UTC)
    await schedule.ran(
        due.integration_id, due.claim, started + timedelta(minutes=5), started, due.seen_at,
        requests_seen=due.requests_seen, answered=answered,
    )  # fmt: skip


async def test_a_run_clears_the_request_it_saw(schedule: SyncSchedule) -> None:
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    await schedule.request(integration, Trigger.MANUAL, resync=True)

    due = await claim(schedule, integration)
    assert (due.trigger, due.full, due.resync) == (Trigger.MANUAL, True, True)
    await finish(schedule, due)

    assert await claimable_ids(schedule) == []
    planned = await schedule.get(integration)
    assert planned is not None
    assert planned["due_at"] == planned["next_sync_at"]


async def test_a_request_made_while_the_run_lasts_keeps_its_own_run(
    schedule: SyncSchedule,
) -> None:
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    seen = await claim(schedule, integration)
    assert (seen.trigger, seen.resync) == (Trigger.CONNECTED, False)

    # Asked for while the run lasts: not claimable meanwhile (nobody runs it twice) ...
    await schedule.request(integration, Trigger.MANUAL, resync=True)
    assert await claimable_ids(schedule) == []
    assert await schedule.claim(integration, datetime.now(UTC), LEASE) is None
    await finish(schedule, seen)

    # ... and due as soon as it ends.
    assert await claimable_ids(schedule) == [integration]
    again = await claim(schedule, integration)
    assert (again.trigger, again.full, again.resync) == (Trigger.MANUAL, True, True)


async def test_a_request_whose_run_crashed_keeps_its_run(schedule: SyncSchedule) -> None:
    """The run that saw a "sync now" crashed before it could start a job (auth-service
    unreachable): the request is not dropped, the next run answers it."""
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    await schedule.request(integration, Trigger.MANUAL)
    seen = await claim(schedule, integration)
    await finish(schedule, seen, answered=False)

    again = await claim(schedule, integration)
    assert (again.trigger, again.full) == (Trigger.MANUAL, True)


async def test_records_named_during_a_run_get_a_targeted_run_after_it(
    schedule: SyncSchedule,
) -> None:
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    running = await claim(schedule, integration)
    named = Changed(tickets={Entity.SERVICE_TICKET: frozenset({7})})
    await schedule.notify(integration, named, Trigger.WEBHOOK)
    assert await claimable_ids(schedule) == []  # it is being run
    await finish(schedule, running)

    targeted = await claim(schedule, integration)
    assert (targeted.trigger, targeted.full) == (Trigger.WEBHOOK, False)
    assert targeted.changed.tickets[Entity.SERVICE_TICKET] == {7}
    # A targeted run leaves the full run where it was planned.
    planned = (await schedule.get(integration) or {})["next_sync_at"]
    await schedule.ran(integration, targeted.claim, None, None, targeted.seen_at)
    after = await schedule.get(integration)
    assert after is not None
    assert (after["next_sync_at"], after["due_at"]) == (planned, planned)


async def test_records_held_by_a_deferral_are_due_when_it_ends(schedule: SyncSchedule) -> None:
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    running = await claim(schedule, integration)
    started, retry_at = datetime.now(UTC), datetime.now(UTC) + timedelta(minutes=3)
    await schedule.ran(
        integration, running.claim, retry_at, started, running.seen_at,
        requests_seen=running.requests_seen, not_before=retry_at,
    )  # fmt: skip
    await schedule.notify(
        integration, Changed(tickets={Entity.SERVICE_TICKET: frozenset({9})}), Trigger.WEBHOOK
    )
    assert await claimable_ids(schedule) == []
    assert await claimable_ids(schedule, retry_at) == [integration]


async def test_only_active_connections_are_claimed(schedule: SyncSchedule) -> None:
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    await schedule.deactivate(integration)
    await schedule.request(integration, Trigger.MANUAL)
    await schedule.notify(integration, Changed(schedule=True), Trigger.WEBHOOK)
    assert await claimable_ids(schedule) == []
    assert await schedule.claim(integration, datetime.now(UTC), LEASE) is None

    await schedule.activate(integration, Trigger.RESUMED)
    assert await claimable_ids(schedule) == [integration]


async def test_a_lapsed_claim_is_taken_over_and_its_holder_can_no_longer_end_it(
    schedule: SyncSchedule,
) -> None:
    """The replica that claimed it died (or stalled) without keeping its claim."""
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    now = datetime.now(UTC)
    dead = await claim(schedule, integration, now)
    assert await claimable_ids(schedule, now + LEASE - timedelta(seconds=1)) == []

    later = now + LEASE + timedelta(seconds=1)
    assert await claimable_ids(schedule, later) == [integration]
    alive = await claim(schedule, integration, later)
    assert alive.claim != dead.claim
    assert not await schedule.keep(integration, dead.claim, later + LEASE)
    await finish(schedule, dead)  # matches nothing: the live claim stands
    doc = await schedule.get(integration)
    assert doc is not None
    assert doc["claimed_by"] == alive.claim


async def test_claimable_is_the_longest_waiting_first_through_the_claim_index(
    schedule: SyncSchedule, db: AsyncDatabase[Document]
) -> None:
    now = datetime.now(UTC)
    waiting = [str(uuid.uuid4()) for _ in range(5)]
    for integration in waiting:
        await schedule.activate(integration, Trigger.CONNECTED)
    for integration in waiting[::-1]:  # the last one activated has waited longest
        due = await claim(schedule, integration)
        await schedule.ran(
            integration, due.claim, now, None, due.seen_at, requests_seen=due.requests_seen
        )
        now -= timedelta(seconds=1)
    resting = str(uuid.uuid4())  # active, not due
    await schedule.activate(resting, Trigger.CONNECTED)
    rested = await claim(schedule, resting)
    await finish(schedule, rested)

    later = datetime.now(UTC)
    assert await claimable_ids(schedule, later) == waiting
    assert [c.integration_id for c in await schedule.claimable(later, 2)] == waiting[:2]
    plan = await db.command(
        "explain",
        {"find": "sync_schedule", "filter": {"active": True, "due_at": {"$lte": later}}},
    )
    assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"])


async def test_a_silent_fleet_reconciles_every_connection_once(schedule: SyncSchedule) -> None:
    """No connector beat for longer than the outage limit (all were down, or the
    database was): exactly one replica finds out, and every connection's next run
    reconciles — until one such run succeeds."""
    integrations = [str(uuid.uuid4()) for _ in range(3)]
    for integration in integrations:
        await schedule.activate(integration, Trigger.CONNECTED)
    quiet, limit = datetime.now(UTC), timedelta(seconds=15)
    for integration in integrations:
        first = await claim(schedule, integration, quiet)
        await schedule.ran(
            integration, first.claim, quiet + timedelta(minutes=5), quiet, quiet,
            requests_seen=first.requests_seen,
        )  # fmt: skip
    assert await schedule.beat(quiet, limit) is False  # the first beat
    assert await schedule.beat(quiet + timedelta(seconds=10), limit) is False
    assert await claimable_ids(schedule, quiet + timedelta(seconds=11)) == []

    back = quiet + timedelta(seconds=40)
    found = [await schedule.beat(back, limit), await schedule.beat(back, limit)]
    assert found == [True, False]  # one replica acts on it
    assert sorted(await claimable_ids(schedule, back)) == sorted(integrations)
    due = [await claim(schedule, integration, back) for integration in integrations]
    assert all(d.reconcile and d.full for d in due)

    failed = due[0]
    await schedule.ran(failed.integration_id, failed.claim, back, back, back, reconciled=False)
    again = await claim(schedule, failed.integration_id, back)
    assert again.reconcile  # a failed run leaves it owed
    await schedule.ran(failed.integration_id, again.claim, back, back, back, reconciled=True)
    after = await claim(schedule, failed.integration_id, back + timedelta(minutes=10))
    assert not after.reconcile


async def test_records_named_while_the_claim_is_taken_are_kept_for_the_next_run(
    schedule: SyncSchedule,
) -> None:
    """The claim takes the records named so far in the same write: one named a moment
    later is not the run's, and is owed by the next one, however the two interleave."""
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    await finish(schedule, await claim(schedule, integration))
    first = Changed(tickets={Entity.SERVICE_TICKET: frozenset({1, 2})}, schedule=True)
    await schedule.notify(integration, first, Trigger.WEBHOOK)
    due = await claim(schedule, integration)
    later = Changed(tickets={Entity.SERVICE_TICKET: frozenset({2, 3})}, projects=frozenset({5}))
    await schedule.notify(integration, later, Trigger.WRITE_BACK)
    assert (due.full, names(due.changed), due.taken_over) == (False, names(first), False)
    await schedule.ran(integration, due.claim, None, None, due.seen_at)

    again = await claim(schedule, integration)
    assert (again.trigger, again.full) == (Trigger.WRITE_BACK, False)
    assert names(again.changed) == names(later)
    await schedule.ran(integration, again.claim, None, None, again.seen_at)
    left = await schedule.get(integration) or {}
    assert not {"pending", "claimed_pending", "claimed_by", "taken_over"} & left.keys()


async def test_records_held_by_a_deferral_stay_pending_when_claimed_early(
    schedule: SyncSchedule,
) -> None:
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    running = await claim(schedule, integration)
    started, retry_at = datetime.now(UTC), datetime.now(UTC) + timedelta(minutes=3)
    await schedule.ran(
        integration, running.claim, retry_at, started, running.seen_at,
        requests_seen=running.requests_seen, not_before=retry_at,
    )  # fmt: skip
    named = Changed(tickets={Entity.PROJECT_TICKET: frozenset({4})})
    await schedule.notify(integration, named, Trigger.WEBHOOK)
    # Claimed when nothing is owed yet (due_at brought forward by hand): given back.
    await schedule._schedule.update_one({"_id": integration}, {"$set": {"due_at": started}})
    assert await schedule.claim(integration, datetime.now(UTC), LEASE) is None
    assert await claimable_ids(schedule, retry_at) == [integration]
    due = await claim(schedule, integration, retry_at)
    assert names(due.changed) == names(named)


async def test_a_claim_says_whether_it_took_over_a_lapsed_one(schedule: SyncSchedule) -> None:
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    lapsed = await claim(schedule, integration)
    assert not lapsed.taken_over
    later = datetime.now(UTC) + 2 * LEASE
    taken = await claim(schedule, integration, later)
    assert taken.taken_over
    await finish(schedule, taken)
    await schedule.request(integration, Trigger.MANUAL)
    assert not (await claim(schedule, integration)).taken_over


async def test_a_reconnect_or_a_new_team_moves_the_lease_epoch(schedule: SyncSchedule) -> None:
    """Leases cached before it are not reused (`ConnectWiseAccess.lease`)."""
    integration = str(uuid.uuid4())
    await schedule.activate(integration, Trigger.CONNECTED)
    first = await claim(schedule, integration)
    await finish(schedule, first)
    await schedule.request(integration, Trigger.MANUAL)
    plain = await claim(schedule, integration)
    assert plain.lease_epoch == first.lease_epoch
    await finish(schedule, plain)
    await schedule.request(integration, Trigger.MEMBERS_CHANGED)
    team = await claim(schedule, integration)
    assert team.lease_epoch == first.lease_epoch + 1
    await finish(schedule, team)
    await schedule.activate(integration, Trigger.CONNECTED)
    assert (await claim(schedule, integration)).lease_epoch == first.lease_epoch + 2
