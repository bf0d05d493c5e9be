"""The per-integration ConnectWise request budget and circuit breaker, shared by every
connector replica through one MongoDB document per integration (`connectwise_budgets`).

- **Budget**: at most `requests_per_hour` requests in any rolling hour. The document keeps
  the time of each request of the last hour; a request is admitted by a compare-and-set
  on the document's revision, so replicas never admit more than the limit between them.
  A run sure to make several requests reserves them in one compare-and-set (each is
  counted from the latest time it may be sent) and gives back what it did not send.
- **Pause**: a 429 sets `paused_until` (from `Retry-After`); every replica honours it.
- **Circuit breaker**: consecutive 5xx answers or timeouts open the circuit; while open,
  nothing is sent until `open_until`, then one request (the probe) goes through. A probe
  that fails opens it again for twice as long (capped); any sane answer closes it.

Every refusal is a `SyncDeferred` carrying when to come back, so the scheduler reschedules
instead of failing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from syntaskio_common.mongo import Document

HOUR = 3600.0
# Reads a user asks for (a ticket's detail, a search) stop while less than this share of
# the hour's budget is left: the rest is the syncs', so a user opening ticket after ticket
# or searching and searching cannot stop the dashboard's updates.
SYNC_RESERVE = 0.2
RESERVE_RETRY = timedelta(minutes=1)
# Requests reserved at once may be sent within this long; each is counted from its end,
# so the rolling hour never forgets a request sooner than an hour after it was sent.
RESERVATION = timedelta(seconds=60)


class SyncDeferred(Exception):
    """ConnectWise may not be called for this integration until `until`."""

    def __init__(self, until: datetime, reason: str) -> None:
        super().__init__(f"{reason} (until {until.isoformat()})")
        self.until = until
        self.reason = reason


class BudgetExhausted(SyncDeferred):
    pass


class Paused(SyncDeferred):
    pass


class CircuitOpen(SyncDeferred):
    pass


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"  # one probe request is in flight


@dataclass(frozen=True)
class BudgetPolicy:
    requests_per_hour: int = 1000
    pause_without_retry_after: float = 60.0
    failures_to_open: int = 5
    open_seconds: float = 30.0
    max_open_seconds: float = 600.0
    probe_timeout_seconds: float = 60.0


@dataclass(frozen=True)
class BudgetStatus:
    limit: int
    used_last_hour: int
    paused_until: datetime | None
    circuit: CircuitState
    circuit_open_until: datetime | None
    reason: str | None

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used_last_hour)

    @property
    def degraded(self) -> bool:
        return self.circuit is not CircuitState.CLOSED


@dataclass(frozen=True)
class Reservation:
    document: Document  # the budget document as admitted
    extra: int  # requests reserved beyond the one about to be sent
    until: float  # when they must be sent by: what they are counted as (a timestamp)


Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ApiBudget:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        policy: BudgetPolicy | None = None,
        clock: Clock = _utc_now,
    ) -> None:
        self._budgets = db["connectwise_budgets"]
        self.policy = policy or BudgetPolicy()
        self._clock = clock

    def gate(self, integration_id: str, tenant_id: str, reserve: int = 1) -> IntegrationGate:
        return IntegrationGate(self, integration_id, tenant_id, reserve)

    def now(self) -> datetime:
        return self._clock()

    async def status(self, integration_id: str) -> BudgetStatus:
        return self.status_of(await self._budgets.find_one({"_id": integration_id}) or {})

    def status_of(self, doc: Document) -> BudgetStatus:
        """The status as the budget document `doc` says."""
        now = self._clock()
        circuit = doc.get("circuit") or {}
        paused_until = doc.get("paused_until")
        return BudgetStatus(
            limit=self.policy.requests_per_hour,
            used_last_hour=len(_recent(doc, now)),
            paused_until=paused_until if paused_until and paused_until > now else None,
            circuit=CircuitState(circuit.get("state", CircuitState.CLOSED)),
            circuit_open_until=circuit.get("open_until"),
            reason=circuit.get("reason"),
        )

    async def keep_sync_reserve(self, integration_id: str, cost: int) -> None:
        """BudgetExhausted unless `cost` requests fit beside the syncs' reserve: checked
        before anything is leased or asked, so a refusal costs one database read."""
        spent = await self.status(integration_id)
        if spent.remaining < cost + spent.limit * SYNC_RESERVE:
            raise BudgetExhausted(
                self._clock() + RESERVE_RETRY, "the hour's requests left are kept for syncing"
            )

    # -- the compare-and-set every change goes through ----------------------------------

    async def _change(
        self,
        integration_id: str,
        tenant_id: str,
        mutate: Callable[[Document, datetime], Document | None],
        known: Document | None = None,
    ) -> Document | None:
        """Apply `mutate(doc, now)` → fields to set (None: nothing to change), retrying
        when another replica changed the document in between; the document as written
        (None: not written). `known`: the document as this caller last wrote it, tried
        first without reading it (the compare-and-set on its revision says whether it
        is still current); anything decided on it but a write is decided again on a
        fresh read."""
        while True:
            doc, trusted = (known, False) if known is not None else (None, True)
            known = None
            if trusted:
                doc = await self._budgets.find_one({"_id": integration_id})
            now = self._clock()
            try:
                fields = mutate(doc or {}, now)
            except SyncDeferred:
                if trusted:
                    raise
                continue
            if fields is None:
                if trusted:
                    return None
                continue
            if doc is None:
                written = {"_id": integration_id, "tenant_id": tenant_id, "rev": 1, **fields}
                try:
                    await self._budgets.insert_one(written)
                    return written
                except DuplicateKeyError:
                    continue
            result = await self._budgets.update_one(
                {"_id": integration_id, "rev": doc["rev"]},
                {"$set": fields, "$inc": {"rev": 1}},
            )
            if result.modified_count == 1:
                return {**doc, **fields, "rev": doc["rev"] + 1}

    async def admit(
        self, integration_id: str, tenant_id: str, known: Document | None = None
    ) -> Document:
        """Count one request, or raise `SyncDeferred` if it may not be sent now; the
        document as admitted (`known`: as this caller last had it, see `_change`)."""
        return (await self.reserve(integration_id, tenant_id, 1, known)).document

    async def reserve(
        self, integration_id: str, tenant_id: str, count: int, known: Document | None = None
    ) -> Reservation:
        """Count the request about to be sent and up to `count - 1` more to be sent within
        `RESERVATION` (fewer if the hour has fewer left; none while the circuit has seen
        failures: it lets one request through at a time), or raise `SyncDeferred`."""
        policy = self.policy
        extra, reserved_until = 0, 0.0  # as decided by the call that was written

        def admit_one(doc: Document, now: datetime) -> Document:
            nonlocal extra, reserved_until
            paused_until = doc.get("paused_until")
            if paused_until and paused_until > now:
                raise Paused(paused_until, doc.get("pause_reason") or "paused by ConnectWise")
            circuit: dict[str, Any] = dict(doc.get("circuit") or {})
            state = CircuitState(circuit.get("state", CircuitState.CLOSED))
            fields: Document = {}
            if state is CircuitState.OPEN:
                open_until = circuit.get("open_until") or now
                if now < open_until:
                    raise CircuitOpen(open_until, circuit.get("reason") or "ConnectWise is down")
                probe_until = now + timedelta(seconds=policy.probe_timeout_seconds)
                fields["circuit"] = {
                    **circuit,
                    "state": CircuitState.HALF_OPEN.value,
                    "probe_until": probe_until,
                }
            elif state is CircuitState.HALF_OPEN:
                probe_until = circuit.get("probe_until") or now
                if now < probe_until:
                    raise CircuitOpen(probe_until, "waiting for the probe request's answer")
                # The probe never reported back (its replica died): send another.
                fields["circuit"] = {
                    **circuit,
                    "probe_until": now + timedelta(seconds=policy.probe_timeout_seconds),
                }
            recent = _recent(doc, now)
            if len(recent) >= policy.requests_per_hour:
                oldest_counted = recent[len(recent) - policy.requests_per_hour]
                until = datetime.fromtimestamp(oldest_counted + HOUR, UTC)
                raise BudgetExhausted(
                    until, f"the budget of {policy.requests_per_hour} requests/hour is used up"
                )
            extra = 0
            if state is CircuitState.CLOSED and not circuit.get("failures"):
                extra = max(0, min(count, policy.requests_per_hour - len(recent)) - 1)
            if extra > 0:
                reserved_until = (now + RESERVATION).timestamp()
                fields["stamps"] = [*recent, *[reserved_until] * (extra + 1)]
            else:
                fields["stamps"] = [*recent, now.timestamp()]
            return fields

        admitted = await self._change(integration_id, tenant_id, admit_one, known)
        assert admitted is not None  # admit_one always writes
        return Reservation(admitted, extra, reserved_until)

    async def record(
        self,
        integration_id: str,
        tenant_id: str,
        status: int | None,
        retry_after: float | None,
        known: Document | None = None,
    ) -> Document | None:
        """Learn from an answer (`status` None: no answer — a timeout or broken
        connection); the document if it was written."""
        policy = self.policy

        def learn(doc: Document, now: datetime) -> Document | None:
            circuit: dict[str, Any] = dict(doc.get("circuit") or {})
            state = CircuitState(circuit.get("state", CircuitState.CLOSED))
            if status == 429:
                wait = retry_after if retry_after is not None else policy.pause_without_retry_after
                until = now + timedelta(seconds=wait)
                current = doc.get("paused_until")
                if current and current >= until:
                    return None
                return {
                    "paused_until": until,
                    "pause_reason": "ConnectWise asked us to slow down (429 Too Many Requests)",
                }
            if status is None or status >= 500:
                failures = int(circuit.get("failures", 0)) + 1
                what = "did not answer" if status is None else f"answered {status}"
                if state is CircuitState.HALF_OPEN or failures >= policy.failures_to_open:
                    times_opened = int(circuit.get("times_opened", 0))
                    seconds = min(policy.max_open_seconds, policy.open_seconds * 2**times_opened)
                    return {
                        "circuit": {
                            "state": CircuitState.OPEN.value,
                            "failures": failures,
                            "times_opened": times_opened + 1,
                            "open_until": now + timedelta(seconds=seconds),
                            "reason": f"ConnectWise {what} {failures} times in a row; "
                            f"retrying in {seconds:.0f} s",
                        }
                    }
                return {"circuit": {**circuit, "failures": failures}}
            if state is CircuitState.CLOSED and not circuit.get("failures"):
                return None
            return {"circuit": {"state": CircuitState.CLOSED.value, "failures": 0}}

        return await self._change(integration_id, tenant_id, learn, known)

    async def release(
        self,
        integration_id: str,
        tenant_id: str,
        unsent: Counter[float],
        known: Document | None = None,
    ) -> Document | None:
        """Give back reserved requests that were not sent (`unsent`: how many of each
        reservation's stamp); the document if it was written."""

        def give_back(doc: Document, now: datetime) -> Document | None:
            stamps, left = [], Counter(unsent)
            for stamp in doc.get("stamps", []):
                if left[stamp] > 0:
                    left[stamp] -= 1
                else:
                    stamps.append(stamp)
            return {"stamps": stamps} if len(stamps) < len(doc.get("stamps", [])) else None

        return await self._change(integration_id, tenant_id, give_back, known)


@dataclass
class IntegrationGate:
    """The client's `RequestGate` for one integration: every attempt is admitted by the
    shared budget first, and every answer is reported back to it.

    With `reserve` above 1 (a run sure to make that many requests), the first attempt
    reserves that many at once while the connection is healthy, and the next ones are
    sent on the reservation without a database write; `settle` gives back what was not
    sent (a replica that dies first leaves them counted for their hour: fewer requests
    than allowed, never more). Any failure or 429 ends the reservation: from then on
    each attempt is admitted on its own, so pauses and the circuit breaker act as before.

    The gate keeps the budget document as it last wrote it, so the next admission is one
    compare-and-set instead of a read and a write while nobody else changed it. A sane
    answer to a request admitted with the circuit closed and no failures counted
    changes nothing, and is not written: a failure another replica recorded meanwhile
    came from a request admitted after this one."""

    budget: ApiBudget
    integration_id: str
    tenant_id: str
    reserve: int = 1
    _known: Document | None = None
    _admitted_healthy: bool = False
    _unsent: Counter[float] = field(default_factory=Counter)  # reserved, by stamp
    _reservation: float | None = None  # the stamp of the one being sent on

    async def before_request(self) -> None:
        if self._send_on_reservation():
            return
        reserved = await self.budget.reserve(
            self.integration_id, self.tenant_id, self.reserve, self._known
        )
        self._known = reserved.document
        circuit = self._known.get("circuit") or {}
        self._admitted_healthy = circuit.get(
            "state", CircuitState.CLOSED
        ) == CircuitState.CLOSED and not circuit.get("failures")
        self._reservation = reserved.until if reserved.extra else None
        if reserved.extra:
            self._unsent[reserved.until] += reserved.extra

    def _send_on_reservation(self) -> bool:
        """Take one request of the current reservation, if it is still good."""
        until = self._reservation
        if until is None or not self._admitted_healthy or not self._unsent[until]:
            return False
        if self.budget.now().timestamp() >= until:
            return False
        self._unsent[until] -= 1
        return True

    async def after_response(self, status: int | None, retry_after: float | None) -> None:
        sane = status is not None and status < 500 and status != 429
        if sane and self._admitted_healthy:
            return
        self._admitted_healthy = False
        written = await self.budget.record(
            self.integration_id, self.tenant_id, status, retry_after, self._known
        )
        self._known = written or self._known

    async def settle(self) -> BudgetStatus:
        """Give back the reserved requests not sent; the budget as it then stands (as
        last written here, without reading it again when it was)."""
        unsent = +self._unsent  # only the positive counts
        self._unsent.clear()
        self._reservation = None
        if unsent:
            written = await self.budget.release(
                self.integration_id, self.tenant_id, unsent, self._known
            )
            self._known = written or self._known
        if self._known is None:
            return await self.budget.status(self.integration_id)
        return self.budget.status_of(self._known)


def _recent(doc: Document, now: datetime) -> list[float]:
    """The stamps still counted, oldest first (a reservation's lie ahead of later ones)."""
    since = now.timestamp() - HOUR
    return sorted(stamp for stamp in doc.get("stamps", []) if stamp > since)
