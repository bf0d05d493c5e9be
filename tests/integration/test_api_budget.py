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
