"""The shared ConnectWise budget, pause and circuit breaker, on the real database, with
several `ApiBudget`s standing in for connector replicas."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings
from syntaskio_connector.budget import (
    RESERVATION,
    ApiBudget,
    BudgetExhausted,
    BudgetPolicy,
    CircuitOpen,
    CircuitState,
    Paused,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 22, 12, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def replicas(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, clock: Clock, **policy: float
) -> list[ApiBudget]:
    db = mongo[settings.mongodb_database]
    return [ApiBudget(db, BudgetPolicy(**policy), clock) for _ in range(3)]  # type: ignore[arg-type]


async def test_replicas_together_never_exceed_the_hourly_budget(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, clock: Clock
) -> None:
    budgets = replicas(mongo, settings, clock, requests_per_hour=50)
    integration = str(uuid.uuid4())

    async def attempt(budget: ApiBudget) -> datetime | None:
        """None if admitted, else when the budget said to come back."""
        try:
            await budget.admit(integration, "t1")
        except BudgetExhausted as refused:
            return refused.until
        return None

    outcomes = await asyncio.gather(*(attempt(budgets[i % 3]) for i in range(80)))
    assert outcomes.count(None) == 50
    assert set(outcomes) - {None} == {clock.now + timedelta(hours=1)}
    assert (await budgets[0].status(integration)).remaining == 0
    # The window rolls: an hour later the budget is there again.
    clock.advance(3600.001)
    await budgets[1].admit(integration, "t1")
    assert (await budgets[2].status(integration)).used_last_hour == 1


async def test_a_429_pauses_every_replica_until_retry_after(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, clock: Clock
) -> None:
    first, second, _ = replicas(mongo, settings, clock)
    integration = str(uuid.uuid4())
    await first.record(integration, "t1", 429, 30.0)
    with pytest.raises(Paused) as paused:
        await second.admit(integration, "t1")
    assert paused.value.until == clock.now + timedelta(seconds=30)
    # A shorter Retry-After never shortens a pause already in force.
    await second.record(integration, "t1", 429, 5.0)
    clock.advance(29)
    with pytest.raises(Paused):
        await first.admit(integration, "t1")
    clock.advance(1.5)
    await first.admit(integration, "t1")


async def test_a_failing_server_opens_the_circuit_and_is_probed_not_hammered(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, clock: Clock
) -> None:
    first, second, third = replicas(mongo, settings, clock, failures_to_open=3, open_seconds=30)
    integration = str(uuid.uuid4())
    for status in (500, None, 503):
        await first.admit(integration, "t1")
        await first.record(integration, "t1", status, None)
    state = await second.status(integration)
    assert state.circuit is CircuitState.OPEN
    assert state.degraded
    assert "3 times in a row" in (state.reason or "")
    with pytest.raises(CircuitOpen):
        await second.admit(integration, "t1")
    clock.advance(31)
    await second.admit(integration, "t1")  # the probe
    with pytest.raises(CircuitOpen):
        await third.admit(integration, "t1")  # only one probe at a time
    await second.record(integration, "t1", 502, None)  # the probe failed: open for longer
    clock.advance(31)
    with pytest.raises(CircuitOpen):
        await third.admit(integration, "t1")
    clock.advance(30)
    await third.admit(integration, "t1")
    await third.record(integration, "t1", 200, None)
    healthy = await first.status(integration)
    assert healthy.circuit is CircuitState.CLOSED
    assert not healthy.degraded
    await first.admit(integration, "t1")


async def rev(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, integration: str
) -> int:
    """The budget document's revision: how many times it has been written."""
    doc = await mongo[settings.mongodb_database]["connectwise_budgets"].find_one(
        {"_id": integration}
    )
    return int((doc or {}).get("rev", 0))


async def test_a_run_reserves_its_requests_in_one_write_and_gives_back_the_unsent(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, clock: Clock
) -> None:
    budget, other, _ = replicas(mongo, settings, clock)
    integration = str(uuid.uuid4())
    gate = budget.gate(integration, "t1", reserve=3)
    for _ in range(3):
        await gate.before_request()
        await gate.after_response(200, None)
    assert await rev(mongo, settings, integration) == 1
    # Counted from the latest they may be sent: an hour after that, not before.
    clock.advance(3600 + RESERVATION.total_seconds() - 1)
    assert (await other.status(integration)).used_last_hour == 3
    clock.advance(2)
    assert (await other.status(integration)).used_last_hour == 0
    # A fourth request reserves three more; the two not sent are given back.
    await gate.before_request()
    assert (await other.status(integration)).used_last_hour == 3
    settled = await gate.settle()
    assert settled.used_last_hour == 1
    assert (await other.status(integration)).used_last_hour == 1
    assert await rev(mongo, settings, integration) == 3


async def test_a_reservation_is_not_sent_on_after_its_time_or_a_failure(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, clock: Clock
) -> None:
    budget, other, _ = replicas(mongo, settings, clock, failures_to_open=2)
    integration = str(uuid.uuid4())
    gate = budget.gate(integration, "t1", reserve=3)
    await gate.before_request()
    clock.advance(RESERVATION.total_seconds())
    await gate.before_request()  # too late for the first reservation: a new one
    assert await rev(mongo, settings, integration) == 2
    await gate.after_response(500, None)
    # After a failure each request is admitted on its own, and the circuit opens as it
    # would have without the reservation.
    await gate.before_request()
    await gate.after_response(None, None)
    with pytest.raises(CircuitOpen):
        await gate.before_request()
    # Sent: 3; reserved and not sent: 1 of the first reservation and 2 of the second.
    assert (await gate.settle()).used_last_hour == 3
    assert (await other.status(integration)).used_last_hour == 3


async def test_replicas_reserving_together_never_exceed_the_hourly_budget(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, clock: Clock
) -> None:
    budgets = replicas(mongo, settings, clock, requests_per_hour=40)
    integration = str(uuid.uuid4())

    async def run(budget: ApiBudget, requests: int) -> int:
        """One run on a reserving gate: how many of its requests were sent."""
        gate, sent = budget.gate(integration, "t1", reserve=3), 0
        for _ in range(requests):
            try:
                await gate.before_request()
            except BudgetExhausted:
                break
            sent += 1
            await gate.after_response(200, None)
        await gate.settle()
        return sent

    # Runs of 1, 2 and 4 requests (reservations too large, exact and too small), more
    # than the hour allows. A reservation not yet given back may turn another run away,
    # so fewer may be sent together; never more, and what was not sent is given back.
    sent = await asyncio.gather(*(run(budgets[i % 3], (1, 2, 4)[i % 3]) for i in range(24)))
    assert 0 < sum(sent) <= 40
    assert (await budgets[0].status(integration)).used_last_hour == sum(sent)
    assert await run(budgets[1], 100) == 40 - sum(sent)
    assert (await budgets[2].status(integration)).remaining == 0
