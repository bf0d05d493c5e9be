"""Whether the shared ConnectWise request budget holds: three connector replicas (three
`ApiBudget`s, each with its own database connection, as separate processes would have)
hammer one integration with concurrent workers while the sandbox answers a 429 storm
and bursts of 500s. ConnectWise's own count (the sandbox's per-caller request stats) must
not exceed the hourly limit, and nothing may be admitted while a 429 pause is in force.

The sandbox runs in-process and the embedded database is started here. The storm starts
once a fifth of the budget is used, so it lands mid-run on any machine.

    uv run python bench/connector_budget.py [--limit 1000] [--replicas 3] [--workers 4]
        [--seconds 60] [--storm-seconds 10] [--retry-after 1]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
import uuid
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from connectwise_sandbox.state import SandboxState
from syntaskio_common.connectwise import (
    ApiKeyCredentials,
    ConnectWiseClient,
    ConnectWiseError,
    RateLimited,
    parse_retry_after,
)
from syntaskio_common.mongo import Document
from syntaskio_connector.budget import (
    ApiBudget,
    BudgetExhausted,
    BudgetPolicy,
    IntegrationGate,
    SyncDeferred,
)
from syntaskio_devstack.ports import Ports
from syntaskio_devstack.stack import EmbeddedStack, StackConfig

MEMBER = "atech"
BASE = "http://sandbox.bench"
TENANT = "bench"
SERVER_ERROR_BURST = 3  # below the breaker's 5 consecutive failures: retries, no opening


@dataclass
class Attempt:
    """One HTTP attempt the budget admitted (wall-clock seconds)."""

    replica: int
    admit_started: float
    admitted: float
    arrived: float | None = None
    answered: float | None = None
    status: int | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class Pause:
    """A 429 reported to the budget: in force from `committed` (when `record` returned)
    until at least `recorded_from + seconds` (the budget's clock ran between the two)."""

    recorded_from: float
    committed: float
    seconds: float


@dataclass
class Replica:
    index: int
    admitted: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    raised: Counter[str] = field(default_factory=Counter)
    exhausted: bool = False


@dataclass
class Log:
    attempts: list[Attempt] = field(default_factory=list)
    pauses: list[Pause] = field(default_factory=list)
    unmatched: int = 0  # API requests that reached the transport without an admission


_attempt: ContextVar[Attempt | None] = ContextVar("attempt", default=None)


class CountingGate:
    """The replica's `IntegrationGate`, with the admissions and pauses written down."""

    def __init__(self, inner: IntegrationGate, replica: Replica, log: Log) -> None:
        self._inner = inner
        self._replica = replica
        self._log = log
        self._default_pause = inner.budget.policy.pause_without_retry_after

    async def before_request(self) -> None:
        started = time.time()
        try:
            await self._inner.before_request()
        except SyncDeferred as deferred:
            self._replica.refused[type(deferred).__name__] += 1
            raise
        attempt = Attempt(self._replica.index, started, time.time())
        self._replica.admitted += 1
        self._log.attempts.append(attempt)
        _attempt.set(attempt)  # the same task sends the request next

    async def after_response(self, status: int | None, retry_after: float | None) -> None:
        begun = time.time()
        await self._inner.after_response(status, retry_after)
        if status == 429:
            seconds = self._default_pause if retry_after is None else retry_after
            self._log.pauses.append(Pause(begun, time.time(), seconds))


class StampingTransport(httpx.AsyncBaseTransport):
    """When each admitted request reached the sandbox and what it answered."""

    def __init__(self, inner: httpx.AsyncBaseTransport, log: Log, api_prefix: str) -> None:
        self._inner = inner
        self._log = log
        self._api_prefix = api_prefix

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempt = _attempt.get()
        _attempt.set(None)
        arrived = time.time()
        response = await self._inner.handle_async_request(request)
        if request.url.path.startswith(self._api_prefix):
            if attempt is None:
                self._log.unmatched += 1
            else:
                attempt.arrived, attempt.answered = arrived, time.time()
                attempt.status = response.status_code
                attempt.retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return response


async def work(
    client: ConnectWiseClient,
    replica: Replica,
    ticket_ids: list[int],
    deadline: float,
    rng: random.Random,
) -> None:
    """Keep calling ConnectWise; a deferral is handled as the runner and scheduler do:
    come back at `until` (an exhausted budget's `until` is beyond the run: stop)."""
    while time.time() < deadline:
        try:
            if rng.random() < 0.5:
                await client.get(f"service/tickets/{rng.choice(ticket_ids)}")
            else:
                page = rng.randint(1, max(1, len(ticket_ids) // 25))
                await client.get(
                    "service/tickets", {"page": page, "pageSize": 25, "orderBy": "id asc"}
                )
        except BudgetExhausted:
            replica.exhausted = True
            return
        except SyncDeferred as deferred:
            wait = deferred.until.timestamp() - time.time()
            await asyncio.sleep(max(0.0, min(wait, deadline - time.time())))
        except RateLimited as limited:
            replica.raised["RateLimited"] += 1
            wait = limited.retry_after if limited.retry_after is not None else 60.0
            await asyncio.sleep(max(0.0, min(wait, deadline - time.time())))
        except ConnectWiseError as error:
            replica.raised[type(error).__name__] += 1


async def inject(
    admin: httpx.AsyncClient,
    log: Log,
    limit: int,
    storm_seconds: float,
    retry_after: int,
    done: asyncio.Event,
) -> list[str]:
    """500 bursts at 10%, 50% and 70% of the budget; the 429 storm from 20%."""
    plan: list[tuple[float, dict[str, Any]]] = [
        (0.1, {"status": 500, "count": SERVER_ERROR_BURST}),
        (0.2, {"status": 429, "duration_seconds": storm_seconds, "retry_after": retry_after}),
        (0.5, {"status": 500, "count": SERVER_ERROR_BURST}),
        (0.7, {"status": 500, "count": SERVER_ERROR_BURST}),
    ]
    started = time.time()
    events: list[str] = []
    for fraction, fault in plan:
        while len(log.attempts) < fraction * limit:
            if done.is_set():
                return events
            await asyncio.sleep(0.02)
        response = await admin.post("/_sandbox/faults", json=fault)
        response.raise_for_status()
        events.append(f"t={time.time() - started:5.1f}s at {len(log.attempts)} admitted: {fault}")
    return events


def pause_figures(log: Log) -> tuple[int, int]:
    """(requests that reached ConnectWise within an earlier 429's Retry-After, requests
    admitted after a pause was recorded and before it ended)."""
    answers = sorted(
        (a.answered, a.retry_after or 0.0)
        for a in log.attempts
        if a.status == 429 and a.answered is not None
    )
    within_retry_after = sum(
        1
        for a in log.attempts
        if a.arrived is not None
        and any(r < a.arrived < r + wait for r, wait in answers if r < a.arrived)
    )
    admitted_in_pause = sum(
        1
        for a in log.attempts
        if any(p.committed < a.admit_started < p.recorded_from + p.seconds for p in log.pauses)
    )
    return within_retry_after, admitted_in_pause


def millis(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(args: argparse.Namespace, mongodb_url: str) -> None:
    app = create_app(Settings(tickets=args.tickets, seed=42, client_ids=DEV_CLIENT_ID))
    state: SandboxState = app.state.sandbox
    key = next(k for k in state.store.api_keys if k.member_identifier == MEMBER)
    credentials = ApiKeyCredentials(state.settings.company_id, key.public_key, key.private_key)
    caller = f"{state.settings.company_id}+{key.public_key}"
    ticket_ids = [int(ticket["id"]) for ticket in state.store.tickets()]
    integration_id = str(uuid.uuid4())
    database = f"bench_{uuid.uuid4().hex[:8]}"
    policy = BudgetPolicy(requests_per_hour=args.limit)
    log = Log()
    transport = StampingTransport(
        httpx.ASGITransport(app=app), log, state.settings.api_prefix + "/"
    )
    mongos: list[AsyncMongoClient[Document]] = []
    https: list[httpx.AsyncClient] = []
    replicas: list[Replica] = []
    tasks: list[asyncio.Task[None]] = []
    rng = random.Random(7)
    deadline = time.time() + args.seconds
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as admin:
        started = time.time()
        for index in range(args.replicas):
            # A replica of its own: its own connection pool, budget object and HTTP client.
            mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_url, tz_aware=True)
            http = httpx.AsyncClient(transport=transport, base_url=BASE)
            mongos.append(mongo)
            https.append(http)
            replica = Replica(index)
            replicas.append(replica)
            gate = CountingGate(
                ApiBudget(mongo[database], policy).gate(integration_id, TENANT), replica, log
            )
            for _ in range(args.workers):
                client = ConnectWiseClient(
                    http,
                    f"{BASE}{state.settings.api_prefix}/",
                    credentials,
                    DEV_CLIENT_ID,
                    gate=gate,
                )
                worker = work(client, replica, ticket_ids, deadline, random.Random(rng.random()))
                tasks.append(asyncio.create_task(worker))
        done = asyncio.Event()
        injector = asyncio.create_task(
            inject(admin, log, args.limit, args.storm_seconds, args.retry_after, done)
        )
        await asyncio.gather(*tasks)
        elapsed = time.time() - started
        done.set()
        events = await injector
        stats = (await admin.get("/_sandbox/stats")).json()
        status = await ApiBudget(mongos[0][database], policy).status(integration_id)
    mine = stats["by_caller"].get(caller, {})
    received = int(mine.get("requests", 0))
    admitted = sum(r.admitted for r in replicas)
    within_retry_after, admitted_in_pause = pause_figures(log)
    admit_seconds = [a.admitted - a.admit_started for a in log.attempts]
    refused: Counter[str] = sum((r.refused for r in replicas), Counter())
    raised: Counter[str] = sum((r.raised for r in replicas), Counter())

    print(
        f"{args.replicas} replicas x {args.workers} workers, one integration, "
        f"limit {args.limit}/hour, run limit {args.seconds:.0f} s"
    )
    for line in events:
        print(f"  injected {line}")
    rows = [
        ("limit (requests/hour)", str(args.limit)),
        ("admitted by the gates", f"{admitted}"),
        *(
            (
                f"  replica {r.index}",
                f"{r.admitted} admitted; refused {dict(r.refused) or 0}"
                f"{'; budget exhausted' if r.exhausted else ''}",
            )
            for r in replicas
        ),
        ("received by ConnectWise (sandbox)", f"{received} (all callers: {stats['total']})"),
        ("  answered 429 / 5xx", f"{mine.get('rate_limited', 0)} / {mine.get('server_errors', 0)}"),
        ("  by status", str(mine.get("by_status", {}))),
        ("budget document's count", f"{status.used_last_hour} (remaining {status.remaining})"),
        ("deferrals (gate refusals)", f"{sum(refused.values())} {dict(refused)}"),
        ("errors raised to the worker", f"{sum(raised.values())} {dict(raised)}"),
        ("pauses recorded (429s)", str(len(log.pauses))),
        ("sent within an earlier 429's Retry-After", f"{within_retry_after} (in flight)"),
        ("admitted while a recorded pause was in force", str(admitted_in_pause)),
        ("requests that bypassed the gate", str(log.unmatched)),
        (
            "admit latency p50 / p95 / max",
            f"{millis(admit_seconds, 0.5):.0f} / {millis(admit_seconds, 0.95):.0f} / "
            f"{millis(admit_seconds, 1.0):.0f} ms"
            + (f" (mean {1000 * statistics.fmean(admit_seconds):.0f})" if admit_seconds else ""),
        ),
        ("elapsed", f"{elapsed:.1f} s"),
        ("limit held", "yes" if received <= args.limit else f"NO: {received - args.limit} over"),
        ("pauses honoured", "yes" if admitted_in_pause == 0 else "NO"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for http in https:
        await http.aclose()
    await mongos[0].drop_database(database)
    for mongo in mongos:
        await mongo.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=1000, help="requests per hour")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4, help="concurrent workers per replica")
    parser.add_argument("--seconds", type=float, default=60.0, help="stop after this long")
    parser.add_argument("--storm-seconds", type=float, default=10.0, help="429 storm length")
    parser.add_argument("--retry-after", type=int, default=1, help="the storm's Retry-After")
    parser.add_argument("--tickets", type=int, default=1000, help="sandbox service tickets")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data_dir:
        stack = EmbeddedStack(
            StackConfig(data_dir=Path(data_dir), ports=Ports.free(), environment="test")
        )
        try:
            stack.start_data_stores()
            asyncio.run(measure(args, stack.mongodb_url))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
