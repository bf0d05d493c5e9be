"""Who syncs what, when: every replica runs a `SyncScheduler`; an integration is synced
by whichever replica claims it in `sync_schedule`, when it is due or someone asked.

`sync_schedule` (one document per integration, shared by the replicas) holds when the
next run is due, whether a run was requested ("sync now", a new connection) and who is
running it, so a request that reached one replica is served by whichever one claims it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from syntaskio_common.connectwise import (
    ConnectWiseClient,
    ConnectWiseError,
    RateLimited,
    Unauthorized,
)
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.egress import SiteRejected
from syntaskio_common.integrations import (
    ConnectionScope,
    JobStatus,
    SyncJob,
    SyncOptions,
    Trigger,
)
from syntaskio_common.leases import set_within
from syntaskio_common.mongo import Document
from syntaskio_common.problems import UNAVAILABLE
from syntaskio_common.telemetry import (
    context_of,
    current_traceparent,
    meter,
    span_context_of,
    tracer,
)
from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.assignment import TICKET_ENTITIES, IntegrationRef, Member
from syntaskio_connector.budget import IntegrationGate, SyncDeferred
from syntaskio_connector.engine import (
    NOTHING_CHANGED,
    SCHEDULED_RUN_REQUESTS,
    Changed,
    IntegrationSync,
    RunCounts,
)
from syntaskio_connector.jobs import SyncJobs
from syntaskio_connector.options import SyncOptionsStore
from syntaskio_connector.webhooks import WebhookRegistrations

logger = logging.getLogger(__name__)
# The traces a run links to: the latest requests that named its records.
MAX_PENDING_TRACES: Final = 32
# Integrations remembered for a reconciliation while their deliveries cannot be taken.
MAX_MISSED: Final = 10_000
# Each interval is drawn from ±10% of the connection's: syncs of a fleet connected at
# once spread out within a few intervals.
INTERVAL_JITTER: Final = 0.1
MIN_PAUSE_SECONDS: Final = 0.01
# How long due integrations read for claiming are tried before they are read again.
CANDIDATES_KEPT: Final = timedelta(seconds=1)

RUNS = meter.create_counter(
    "syntaskio.sync.runs", unit="{run}", description="Sync runs by trigger and outcome"
)
RUN_DURATION = meter.create_histogram(
    "syntaskio.sync.run.duration",
    unit="s",
    description="How long a sync run took, by trigger and outcome",
)
# When a connection's latest run of each kind ended, as Unix seconds (the replicas' maximum
# is the fleet's latest): failing = the latest failure is newer than the latest success.
LAST_SUCCESS = meter.create_gauge(
    "syntaskio.sync.last_success.timestamp",
    unit="s",
    description="When the connection's latest successful sync run ended",
)
LAST_FAILURE = meter.create_gauge(
    "syntaskio.sync.last_failure.timestamp",
    unit="s",
    description="When the connection's latest failed (crashed, interrupted) sync run ended",
)
SCHEDULE_LAG = meter.create_histogram(
    "syntaskio.sync.schedule.lag",
    unit="s",
    description="How long after it was due a sync run was claimed, by trigger",
    # From milliseconds (a replica keeping up) to an hour (one far behind).
    explicit_bucket_boundaries_advisory=(
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
        120,
        300,
        900,
        3600,
    ),
)
BUDGET_REMAINING = meter.create_gauge(
    "syntaskio.connectwise.budget.remaining",
    unit="{request}",
    description="ConnectWise requests left in the connection's hourly budget after its latest run",
)


@dataclass
class SyncRunner:
    """Runs one sync job for one integration, start to finish."""

    access: ConnectWiseAccess
    engine: IntegrationSync
    jobs: SyncJobs
    webhooks: WebhookRegistrations
    options: SyncOptionsStore
    run_timeout: timedelta = timedelta(minutes=15)

    async def run(
        self,
        integration_id: str,
        trigger: Trigger,
        changed: Changed = NOTHING_CHANGED,
        *,
        full: bool = True,
        resync: bool = False,
        reconcile: bool = False,
        options: SyncOptions | None = None,
        taken_over: bool = True,
        lease_epoch: int | None = None,
        due_at: datetime | None = None,
    ) -> SyncJob | None:
        """The finished job, or None when the integration is no longer active (or
        paused). A full run syncs everything due and then `changed`; otherwise only
        `changed`. `resync` lists everything again with its body (an admin's "full
        resync"); `reconcile` lists every id (callbacks were refused: what they named,
        deletions included, is noticed now). A run that `taken_over` a lapsed claim and
        finds an earlier one left `running` (its connector stopped) marks it interrupted
        and reconciles too. `options`: as the claim read them (None: read here);
        `lease_epoch`: the schedule's, as the claim read it (None: lease afresh);
        `due_at`: when the run was due (kept with its job)."""
        lease = await self.access.lease(integration_id, reuse_epoch=lease_epoch)
        if lease is None:
            return None
        if taken_over:
            # Only a claim that lapsed can have left a job running: skipped otherwise.
            abandoned = await self.jobs.interrupt_abandoned(lease.tenant_id, integration_id)
            reconcile = reconcile or abandoned > 0
        full = full or reconcile
        job = await self.jobs.start(lease.tenant_id, integration_id, trigger, due_at)
        gate = self.access.budget.gate(
            lease.integration_id, lease.tenant_id, SCHEDULED_RUN_REQUESTS if full else 1
        )
        client = self.access.client(lease, gate=gate)
        if options is None:
            options = await self.options.get(integration_id)

        async def work(client: ConnectWiseClient, ref: IntegrationRef) -> RunCounts:
            if full:
                await self.webhooks.ensure(client, ref)
                return await self.engine.run(
                    client,
                    ref,
                    changed=changed,
                    options=options,
                    reconcile=reconcile,
                    resync=resync,
                )
            return await self.engine.refresh(client, ref, changed, options)

        try:
            async with asyncio.timeout(self.run_timeout.total_seconds()):
                try:
                    counts = await work(client, integration_ref(lease))
                except Unauthorized:
                    # Rejected credentials: have auth-service renew them (once, however
                    # many replicas report the same version) and go on where the run
                    # stopped.
                    self.access.forget(integration_id)
                    lease = await self.access.lease(integration_id, rejected_version=lease.version)
                    if lease is None:
                        return await self._finish(
                            job, client, gate, JobStatus.FAILED, error="expired"
                        )
                    client = self.access.client(lease, spent=client.requests_made, gate=gate)
                    counts = await work(client, integration_ref(lease))
        except TimeoutError:
            # Where it was stuck is in the traceback: the await the timeout cancelled.
            logger.warning(
                "sync timed out", exc_info=True, extra={"integration_id": integration_id}
            )
            seconds = self.run_timeout.total_seconds()
            return await self._finish(
                job, client, gate, JobStatus.INTERRUPTED, error=f"timed out after {seconds:.0f} s"
            )
        except SyncDeferred as deferred:
            return await self._finish(
                job,
                client,
                gate,
                JobStatus.DEFERRED,
                error=deferred.reason,
                retry_at=deferred.until,
            )
        except RateLimited as limited:
            # A long Retry-After: the budget has paused the integration; come back then.
            wait = timedelta(seconds=limited.retry_after or 60)
            return await self._finish(
                job,
                client,
                gate,
                JobStatus.DEFERRED,
                error=str(limited),
                retry_at=datetime.now(UTC) + wait,
            )
        except (ConnectWiseError, httpx.HTTPError, SiteRejected) as error:
            logger.warning(
                "sync failed", extra={"integration_id": integration_id, "error": str(error)}
            )
            return await self._finish(job, client, gate, JobStatus.FAILED, error=str(error))
        return await self._finish(job, client, gate, JobStatus.SUCCEEDED, counts=counts)

    async def _finish(
        self,
        job: SyncJob,
        client: ConnectWiseClient,
        gate: IntegrationGate,
        status: JobStatus,
        *,
        counts: RunCounts | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> SyncJob:
        budget = await gate.settle()
        outcome: dict[str, Any] = {
            "api_requests": client.requests_made,
            "budget_remaining": budget.remaining,
            "error": error,
            "retry_at": retry_at,
        }
        if counts is not None:
            outcome |= {
                "fetched": counts.fetched,
                "published": counts.published,
                "tombstoned": counts.tombstoned,
                "modes": counts.modes,
            }
        return await self.jobs.finish(job, status, **outcome)


def integration_ref(lease: CredentialLease) -> IntegrationRef:
    team = (
        tuple(sorted(Member(m.identifier, m.user_id) for m in lease.members))
        if lease.scope is ConnectionScope.TENANT
        else None
    )
    return IntegrationRef(
        integration_id=lease.integration_id,
        tenant_id=lease.tenant_id,
        user_id=lease.user_id,
        member_identifier=lease.member_identifier,
        api_base_url=lease.api_base_url,
        company_id=lease.company_id,
        generation=lease.generation,
        team=team,
    )


@dataclass(frozen=True)
class Due:
    integration_id: str
    trigger: Trigger
    full: bool  # False: only the records named in `pending` are fetched again
    # When the schedule was read: a request made later was not seen, so this run does
    # not answer it.
    seen_at: datetime
    resync: bool = False  # everything listed again with its body
    reconcile: bool = False  # every id listed (deliveries were refused while we were down)
    claim: str = ""  # the claim's token: only its holder extends or ends it
    # How many requests had been made when the schedule was read: a run answers those.
    requests_seen: int = 0
    # The records named for it, taken from `pending` by the claim, and the traces of the
    # requests that named them.
    changed: Changed = NOTHING_CHANGED
    traces: tuple[str, ...] = ()
    taken_over: bool = False  # the claim had lapsed: its holder may have left a job running
    options: SyncOptions | None = None
    lease_epoch: int = 0  # bumped by a reconnect: credentials cached before are not reused
    due_at: datetime | None = None  # when it was due, as the claim found it
    suspect: bool = False  # its last run went slow and failed: it starts off the slots


@dataclass(frozen=True)
class Claimable:
    integration_id: str
    due_at: datetime


def _due_of(doc: Document, now: datetime, claim: str) -> Due | None:
    """What run a claimed schedule document calls for: a requested full run, the
    scheduled one (or the first), or a targeted run for pending records; None when
    nothing is owed yet (records held back by a deferral)."""
    changed, traces = _changes_of(doc.get("claimed_pending") or {}, doc.get("claimed_traces"))
    common: dict[str, Any] = {
        "seen_at": now,
        "claim": claim,
        "requests_seen": int(doc.get("requests", 0)),
        "changed": changed,
        "traces": traces,
        "taken_over": bool(doc.get("taken_over")),
        "options": SyncOptions.model_validate(doc.get("options") or {}),
        "lease_epoch": int(doc.get("lease_epoch", 0)),
        "suspect": bool(doc.get("suspect")),
    }
    if doc.get("requested"):
        return Due(
            doc["_id"],
            Trigger(doc["requested"]),
            full=True,
            resync=bool(doc.get("resync")),
            reconcile=bool(doc.get("reconcile") or doc.get("reconcile_since")),
            **common,
        )
    if doc.get("next_sync_at") is None or doc["next_sync_at"] <= now:
        return Due(
            doc["_id"],
            Trigger.SCHEDULED,
            full=True,
            reconcile=bool(doc.get("reconcile_since")),
            **common,
        )
    if doc.get("claimed_pending") and (doc.get("not_before") or now) <= now:
        trigger = Trigger(doc.get("claimed_trigger") or Trigger.WEBHOOK)
        return Due(doc["_id"], trigger, full=False, **common)
    return None


def _changes_of(pending: Document, traces: Any) -> tuple[Changed, tuple[str, ...]]:
    changed = Changed(
        tickets={
            entity: frozenset(int(i) for i in pending.get(entity.value, ()))
            for entity in TICKET_ENTITIES
        },
        schedule=bool(pending.get("schedule")),
        projects=frozenset(int(i) for i in pending.get("projects", ())),
    )
    return changed, tuple(str(t) for t in traces or ())


def _unless_claimed(now: datetime, earliest: Any) -> Document:
    """An update-pipeline expression: `due_at` brought forward to `earliest`, unless a
    replica holds the document (its run ends by setting `due_at` from what is then
    owed, this included)."""
    return {
        "$cond": [
            {"$gt": [{"$ifNull": ["$claimed_until", None]}, now]},
            "$due_at",
            {"$min": [{"$ifNull": ["$due_at", earliest]}, earliest]},
        ]
    }


class SyncSchedule:
    """When each integration is next due, pending requests for a full run ("sync now",
    a new connection), records named by webhooks or write-backs, and which replica is
    running it (`sync_schedule`, one document per integration).

    `due_at` is the earliest time any run is owed, kept with every write; replicas
    claim what is due with an indexed query on (`active`, `due_at`), so a poll costs
    what is due, not what is connected. A claim moves `due_at` to the end of its
    lease (`claimed_until`), kept while the run lasts: a replica that dies lets its
    claims lapse, and another takes them over. `active` follows the integration events
    (connected, resumed: on; disconnected, expired, paused, or a lease refused: off).
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._schedule = db["sync_schedule"]
        self._heartbeat = db["connector_heartbeat"]

    async def create_indexes(self) -> None:
        await self._schedule.create_index([("active", 1), ("due_at", 1)], name="claimable")
        # Documents from before claims (no `active`): synced as they were, from their
        # planned time; an integration no longer active is parked by its first run.
        now = datetime.now(UTC)
        await self._schedule.update_many(
            {"active": {"$exists": False}},
            [{"$set": {"active": True, "due_at": {"$ifNull": ["$next_sync_at", now]}}}],
        )

    async def activate(self, integration_id: str, trigger: Trigger) -> None:
        """Connected or resumed: synced from now on, and at once."""
        await self.request(integration_id, trigger, activate=True)

    async def deactivate(self, integration_id: str) -> None:
        """Disconnected, expired, paused, or its lease refused: no longer claimed (a
        webhook's pending records wait for its return)."""
        await self._schedule.update_one(
            {"_id": integration_id}, {"$set": {"active": False}}, upsert=True
        )

    async def request(
        self,
        integration_id: str,
        trigger: Trigger,
        *,
        resync: bool = False,
        reconcile: bool = False,
        activate: bool = False,
    ) -> None:
        """Ask for a full run (`resync`: listing everything again, `reconcile`: every id;
        a later plain request takes neither back)."""
        now = datetime.now(UTC)
        fields: Document = {
            "requested": trigger.value,
            "requested_at": now,
            # Counted, not timed: a request made in the millisecond the run read the
            # schedule is told from one it saw.
            "requests": {"$add": [{"$ifNull": ["$requests", 0]}, 1]},
        }
        if resync:
            fields["resync"] = True
        if reconcile:
            fields["reconcile"] = True
        if activate or trigger is Trigger.MEMBERS_CHANGED:
            # New credentials or a new team: leases cached before are not used again.
            fields["lease_epoch"] = {"$add": [{"$ifNull": ["$lease_epoch", 0]}, 1]}
        if activate:
            fields["active"] = True
        fields["due_at"] = _unless_claimed(now, now)
        await self._schedule.update_one({"_id": integration_id}, [{"$set": fields}], upsert=True)

    async def notify(
        self,
        integration_id: str,
        changed: Changed,
        trigger: Trigger,
        *,
        traces: tuple[str, ...] | None = None,
    ) -> None:
        """Remember records to fetch again; notifications that arrive before the next
        run are fetched together. `traces`: of the requests that named them (given back
        by a run that did not fetch them); the current one by default."""
        update: Document = {"$set": {"pending_trigger": trigger.value}}
        if changed.schedule:
            update["$set"]["pending.schedule"] = True
        additions = {
            f"pending.{entity.value}": {"$each": sorted(ids)}
            for entity, ids in changed.tickets.items()
            if ids
        }
        if changed.projects:
            additions["pending.projects"] = {"$each": sorted(changed.projects)}
        if additions:
            update["$addToSet"] = additions
        # The trace of whoever named them (a webhook delivery, a write-back): the run
        # that fetches them continues it.
        if traces is None:
            current = current_traceparent().get("traceparent")
            traces = (current,) if current else ()
        if traces:
            update["$push"] = {
                "pending_traces": {"$each": list(traces), "$slice": -MAX_PENDING_TRACES}
            }
        await self._schedule.update_one({"_id": integration_id}, update, upsert=True)
        # Owed now, or when a deferral ends (a separate write: `$addToSet` has no
        # pipeline form; the records are stored first, so a run claimed in between
        # takes them).
        now = datetime.now(UTC)
        earliest = {"$max": [now, {"$ifNull": ["$not_before", now]}]}
        await self._schedule.update_one(
            {"_id": integration_id}, [{"$set": {"due_at": _unless_claimed(now, earliest)}}]
        )

    async def claimable(self, now: datetime, limit: int) -> list[Claimable]:
        """Up to `limit` integrations due, the longest waiting first."""
        found = self._schedule.find(
            {"active": True, "due_at": {"$lte": now}}, {"due_at": 1}, limit=limit
        ).sort("due_at", 1)
        return [Claimable(doc["_id"], doc["due_at"]) async for doc in found]

    async def next_due_at(self, now: datetime, within: timedelta) -> datetime | None:
        """When the next active integration falls due (a claim's end included: that is
        when it is taken over) within `within` of `now`; None if none does. A narrow
        range of the claim index: it costs what falls due meanwhile."""
        doc = await self._schedule.find_one(
            {"active": True, "due_at": {"$gt": now, "$lte": now + within}},
            {"due_at": 1},
            sort=[("due_at", 1)],
        )
        return doc["due_at"] if doc else None

    async def claim(self, integration_id: str, now: datetime, lease: timedelta) -> Due | None:
        """Take the integration until `now + lease` (extended with `keep`), if it is
        still due and nobody else took it; what run it calls for. A claim that turns out
        to owe nothing yet (records held by a deferral) is given back at once."""
        token = secrets.token_hex(8)
        until = now + lease
        # One atomic write takes the claim and moves the records named so far aside
        # (`claimed_*`, the run's): one named after it goes to a fresh `pending`, for
        # the next run. `taken_over`: another replica's claim had lapsed.
        taken = await self._schedule.update_one(
            {"_id": integration_id, "active": True, "due_at": {"$lte": now}},
            [
                {
                    "$set": {
                        "taken_over": {"$gt": [{"$ifNull": ["$claimed_by", None]}, None]},
                        "claimed_by": token,
                        "claimed_until": until,
                        "due_at": until,
                        "claimed_pending": {"$ifNull": ["$pending", None]},
                        "claimed_traces": {"$ifNull": ["$pending_traces", None]},
                        "claimed_trigger": {"$ifNull": ["$pending_trigger", None]},
                    }
                },
                {"$unset": ["pending", "pending_traces", "pending_trigger"]},
            ],
        )
        if taken.modified_count != 1:
            return None
        read_at = max(now, datetime.now(UTC))
        doc = await self._schedule.find_one({"_id": integration_id}) or {}
        due = _due_of(doc, read_at, token)
        if due is None:
            # Nothing owed yet (records held by a deferral): they go back to `pending`.
            changed, traces = _changes_of(doc.get("claimed_pending") or {}, None)
            if changed:
                trigger = Trigger(doc.get("claimed_trigger") or Trigger.WEBHOOK)
                await self.notify(integration_id, changed, trigger, traces=traces)
            seen = int(doc.get("requests", 0))
            await self.ran(integration_id, token, None, None, read_at, requests_seen=seen)
        return due

    async def keep(self, integration_id: str, claim: str, until: datetime) -> bool:
        """Extend our claim; False if it lapsed and another replica took it."""
        kept = await self._schedule.update_one(
            {"_id": integration_id, "claimed_by": claim},
            {"$set": {"claimed_until": until, "due_at": until}},
        )
        return kept.matched_count == 1

    async def ran(
        self,
        integration_id: str,
        claim: str,
        next_sync_at: datetime | None,
        started: datetime | None,
        seen_at: datetime,
        *,
        requests_seen: int = 0,
        reconciled: bool = False,
        answered: bool = True,
        not_before: datetime | None = None,
        suspect: bool = False,
    ) -> None:
        """End our claim: the next full run at `next_sync_at` (None: where it was
        planned; `started` None: a targeted run, not a full one), or sooner if something
        is owed — a request the run did not see (made after `seen_at`, when the schedule
        was read, `requests_seen` then) or did not answer (it crashed), records named
        meanwhile. An outage's
        reconciliation is cleared only by one that succeeded. One atomic write, so a
        request arriving as the run ends is never lost."""
        now = datetime.now(UTC)
        seen_request = {"$lte": [{"$ifNull": ["$requests", 0]}, requests_seen]}
        answers = {"$and": [answered, seen_request]}
        ended: Document = {
            "requested": {"$cond": [answers, None, "$requested"]},
            "resync": {"$cond": [answers, False, "$resync"]},
            "reconcile": {"$cond": [answers, False, "$reconcile"]},
            "claimed_by": "$$REMOVE",
            "claimed_until": "$$REMOVE",
            "taken_over": "$$REMOVE",
            "claimed_pending": "$$REMOVE",
            "claimed_traces": "$$REMOVE",
            "claimed_trigger": "$$REMOVE",
            "suspect": suspect,
        }
        if next_sync_at is not None:
            ended["next_sync_at"] = next_sync_at
        if started is not None:
            ended["last_run_at"] = started
        if not_before is not None:
            ended["not_before"] = not_before
        if reconciled:
            cleared = {"$lte": [{"$ifNull": ["$reconcile_since", seen_at]}, seen_at]}
            ended["reconcile_since"] = {"$cond": [cleared, "$$REMOVE", "$reconcile_since"]}
        planned = {"$ifNull": ["$next_sync_at", now]}
        pending_at = {"$max": [now, {"$ifNull": ["$not_before", now]}]}
        owed = {
            "$min": [
                planned,
                {"$cond": [{"$ifNull": ["$requested", False]}, now, planned]},
                {"$cond": [{"$ifNull": ["$pending", False]}, pending_at, planned]},
            ]
        }
        await self._schedule.update_one(
            {"_id": integration_id, "claimed_by": claim},
            [{"$set": ended}, {"$set": {"due_at": owed}}],
        )

    async def beat(self, now: datetime, outage_after: timedelta) -> bool:
        """The connector fleet's heartbeat. True, for the one replica that finds the last
        beat older than `outage_after` — no connector was listening (all down, or the
        database was), so ConnectWise's callbacks may have been given up on — after it
        has scheduled every integration for a reconciliation now."""
        last = await self._heartbeat.find_one_and_update(
            {"_id": "connectors"}, {"$set": {"at": now}}, upsert=True
        )
        if last is None or now - last["at"] <= outage_after:
            return False
        await self._schedule.update_many(
            {},
            [
                {
                    "$set": {
                        "reconcile_since": now,
                        "next_sync_at": now,
                        "due_at": _unless_claimed(now, now),
                    }
                }
            ],
        )
        logger.warning(
            "no connector was listening for %.0f s: every connection reconciles",
            (now - last["at"]).total_seconds(),
        )
        return True

    async def get(self, integration_id: str) -> Document | None:
        return await self._schedule.find_one({"_id": integration_id})


class SyncScheduler:
    """Each replica's loop: claim what is due (never more than its free slots), run
    each in a slot of its own — up to `concurrency` at once — and claim again as soon as
    a slot frees. A run still going after `slow_after` (a ConnectWise that does not
    answer: 15 s timeouts, retried) goes on outside the slots, up to `slow_runs` of
    them, so servers that hang hold up nobody else's syncs for longer than that; a
    connection whose slow run failed is suspect, and its next run starts there."""

    def __init__(
        self,
        runner: SyncRunner,
        schedule: SyncSchedule,
        *,
        interval: timedelta,
        lease: timedelta,
        poll_seconds: float = 5.0,
        concurrency: int = 8,
        jitter: float = INTERVAL_JITTER,
        slow_after: timedelta = timedelta(seconds=2),
        slow_runs: int = 32,
    ) -> None:
        self._runner = runner
        self._schedule = schedule
        self._interval = interval
        self._lease = lease
        self._poll = poll_seconds
        self._concurrency = concurrency
        self._jitter = jitter
        self._slow_after = slow_after.total_seconds()
        self._slow_runs = slow_runs
        self._slow: set[str] = set()  # runs going on outside the slots
        self._wake = asyncio.Event()
        # When the next integration falls due, if this replica has a slot free for it:
        # the loop wakes then rather than at its next poll.
        self._next_due: datetime | None = None
        # Due integrations read but not yet claimed, and when they were read.
        self._candidates: list[Claimable] = []
        self._candidates_read_at = datetime.min.replace(tzinfo=UTC)
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self.running: set[str] = set()
        # Integrations whose deliveries were refused while the database (or auth-service)
        # was down: each gets a reconciliation once the schedule can be written again.
        self._missed: set[str] = set()

    async def request(self, integration_id: str, trigger: Trigger, *, resync: bool = False) -> None:
        await self._schedule.request(integration_id, trigger, resync=resync)
        self._wake.set()

    async def activate(self, integration_id: str, trigger: Trigger) -> None:
        await self._schedule.activate(integration_id, trigger)
        self._wake.set()

    async def deactivate(self, integration_id: str) -> None:
        await self._schedule.deactivate(integration_id)

    async def notify(self, integration_id: str, changed: Changed, trigger: Trigger) -> None:
        await self._schedule.notify(integration_id, changed, trigger)
        self._wake.set()

    def missed(self, integration_id: str) -> None:
        """A delivery for it could not be taken (we answered 503): reconcile it soon. Kept
        in memory, as the database may be what is down; bounded against floods."""
        if len(self._missed) < MAX_MISSED:
            self._missed.add(integration_id)

    async def _request_missed_reconciliations(self) -> None:
        for integration_id in list(self._missed):
            await self._schedule.request(integration_id, Trigger.WEBHOOK, reconcile=True)
            self._missed.discard(integration_id)

    async def run_forever(self) -> None:
        beating = asyncio.create_task(self._beat_forever())
        try:
            while True:
                self._wake.clear()
                try:
                    await self.run_due()
                except UNAVAILABLE as error:
                    logger.warning("sync scheduling paused: %s", type(error).__name__)
                except Exception:
                    logger.exception("sync scheduling failed; trying again")
                await set_within(self._wake, self._pause())
        finally:
            beating.cancel()
            for task in list(self._in_flight.values()):
                task.cancel()

    def _pause(self) -> float:
        """Seconds until the next look: the next due time, if sooner than a poll (never
        less than 10 ms: a run just ending may still hold what fell due)."""
        if self._next_due is None:
            return self._poll
        until_due = (self._next_due - datetime.now(UTC)).total_seconds()
        return min(self._poll, max(until_due, MIN_PAUSE_SECONDS))

    async def _beat_forever(self) -> None:
        """Beat every poll, whatever the runs are doing; three missed beats are an
        outage (see `SyncSchedule.beat`)."""
        outage_after = timedelta(seconds=3 * self._poll)
        while True:
            try:
                if await self._schedule.beat(datetime.now(UTC), outage_after):
                    self._wake.set()
            except UNAVAILABLE as error:
                logger.warning("connector heartbeat not written: %s", type(error).__name__)
            await asyncio.sleep(self._poll)

    async def run_due(self) -> None:
        """Claim what is due into the free slots. Candidates are read a few slots' worth
        at a time (the longest waiting first) and tried in a random order, so replicas
        reading at once mostly try different ones; a claim lost to another replica
        costs one write. While a replica is behind, what it read serves the slots that
        free up next, for a second: one read per batch, not per slot."""
        await self._request_missed_reconciliations()
        self._next_due = None
        free = self._concurrency - (len(self._in_flight) - len(self._slow))
        if free <= 0:
            return
        now = datetime.now(UTC)
        if not self._candidates or now - self._candidates_read_at > CANDIDATES_KEPT:
            self._candidates = await self._schedule.claimable(now, 4 * self._concurrency)
            self._candidates_read_at = now
            random.shuffle(self._candidates)
        while free > 0 and self._candidates:
            candidate = self._candidates.pop()
            if candidate.integration_id in self._in_flight:
                continue
            claimed = await self._schedule.claim(
                candidate.integration_id, datetime.now(UTC), self._lease
            )
            if claimed is None:
                continue  # another replica's, or no longer due
            due = replace(claimed, due_at=candidate.due_at)
            SCHEDULE_LAG.record(
                (datetime.now(UTC) - candidate.due_at).total_seconds(),
                {"trigger": due.trigger.value},
            )
            if due.suspect and len(self._slow) < self._slow_runs:
                self._slow.add(due.integration_id)  # its last run hung: no slot
            else:
                free -= 1
            task = asyncio.create_task(self._run_in_slot(due))
            self._in_flight[due.integration_id] = task
        if free > 0:
            self._next_due = await self._schedule.next_due_at(now, timedelta(seconds=self._poll))

    async def _run_in_slot(self, due: Due) -> None:
        done = asyncio.Event()
        keeper = asyncio.create_task(self._keep_claim(due, done))
        run = asyncio.create_task(self._run_one(due))
        try:
            if due.integration_id not in self._slow:
                await asyncio.wait({run}, timeout=self._slow_after)
                if not run.done() and len(self._slow) < self._slow_runs:
                    self._slow.add(due.integration_id)  # its slot goes to the next due
                    self._wake.set()
            await run
        except UNAVAILABLE as error:
            logger.warning("sync not run: %s", type(error).__name__)
        except Exception:
            logger.exception("sync could not be run", extra={"integration_id": due.integration_id})
        finally:
            # The keeper is told to stop and awaited, never cancelled (see Leases.kept).
            run.cancel()  # (done already, unless this replica is stopping)
            done.set()
            await keeper
            del self._in_flight[due.integration_id]
            self._slow.discard(due.integration_id)
            self._wake.set()

    async def _keep_claim(self, due: Due, done: asyncio.Event) -> None:
        """Extend the claim every third of a lease for as long as the run lasts."""
        every = self._lease.total_seconds() / 3
        while not await set_within(done, every):
            try:
                until = datetime.now(UTC) + self._lease
                if not await self._schedule.keep(due.integration_id, due.claim, until):
                    logger.warning("sync claim lost", extra={"integration_id": due.integration_id})
                    return
            except PyMongoError as error:  # tried again a third of a lease later
                logger.warning("sync claim not extended: %s", type(error).__name__)

    def _next_sync_at(self, due: Due, started: datetime) -> datetime:
        """A full interval on (the connection's own, or the default), give or take a
        tenth: a fleet connected at once drifts apart instead of syncing in step."""
        minutes = due.options.sync_interval_minutes if due.options else None
        interval = timedelta(minutes=minutes) if minutes else self._interval
        return started + interval * random.uniform(1 - self._jitter, 1 + self._jitter)

    async def _run_one(self, due: Due) -> None:
        integration_id, started = due.integration_id, datetime.now(UTC)
        changed, traces = due.changed, list(due.traces)
        self.running.add(integration_id)
        with _run_span(due, traces) as span:
            try:
                job = await self._runner.run(
                    integration_id,
                    due.trigger,
                    changed,
                    full=due.full,
                    resync=due.resync,
                    reconcile=due.reconcile,
                    options=due.options,
                    taken_over=due.taken_over,
                    lease_epoch=due.lease_epoch,
                    due_at=due.due_at,
                )
            except httpx.HTTPError as error:
                # auth-service unreachable, or answering 5xx (its database down, say): one
                # line, not a traceback every poll; the run comes again at the next one.
                logger.warning(
                    "sync not started: auth-service %s",
                    _described(error),
                    extra={"integration_id": integration_id},
                )
                job, crashed = None, True
            except Exception:
                logger.exception("sync crashed", extra={"integration_id": integration_id})
                job, crashed = None, True
            else:
                crashed = False
            finally:
                self.running.discard(integration_id)
            outcome = "inactive" if job is None and not crashed else _outcome(job)
            span.set_attribute("syntaskio.sync.status", outcome)
        _count_run(due, job, outcome, started)
        if changed and (job is None or job.status is not JobStatus.SUCCEEDED):
            await self._schedule.notify(integration_id, changed, due.trigger, traces=due.traces)
        if job is None and not crashed:
            # No lease: no longer active (the event saying so may still be on its way).
            await self._schedule.deactivate(integration_id)
        retry_at = job.retry_at if job is not None else None
        succeeded = job is not None and job.status is JobStatus.SUCCEEDED
        await self._schedule.ran(
            integration_id,
            due.claim,
            # A targeted run leaves the full run where it was planned.
            (retry_at or self._next_sync_at(due, started)) if due.full else None,
            started if due.full else None,
            due.seen_at,
            requests_seen=due.requests_seen,
            reconciled=due.reconcile and succeeded,
            # A run that crashed (auth-service unreachable, say) did not answer the
            # "sync now" or resync it saw: that request gets the next run.
            answered=due.full and not crashed,
            not_before=retry_at,
            # A run that went slow and did not succeed: the next one starts off the slots.
            suspect=integration_id in self._slow and not succeeded,
        )
        if job is not None:
            logger.info(
                "sync %s", job.status.value, extra=job.model_dump(mode="json", exclude={"modes"})
            )


def _outcome(job: SyncJob | None) -> str:
    return job.status.value if job else "crashed"


def _count_run(due: Due, job: SyncJob | None, outcome: str, started: datetime) -> None:
    """The run in the metrics: by trigger and outcome, and the connection's budget left
    and latest success or failure."""
    ended = datetime.now(UTC)
    labels = {"trigger": due.trigger.value, "outcome": outcome}
    RUNS.add(1, labels)
    RUN_DURATION.record((ended - started).total_seconds(), labels)
    connection = {"integration_id": due.integration_id}
    if job is not None and job.budget_remaining is not None:
        BUDGET_REMAINING.set(job.budget_remaining, connection)
    if outcome == JobStatus.SUCCEEDED.value:
        LAST_SUCCESS.set(ended.timestamp(), connection)
    elif outcome in (JobStatus.FAILED.value, JobStatus.INTERRUPTED.value, "crashed"):
        LAST_FAILURE.set(ended.timestamp(), connection)


def _described(error: httpx.HTTPError) -> str:
    """An error reaching auth-service, without its URL."""
    if isinstance(error, httpx.HTTPStatusError):
        return f"answered {error.response.status_code}"
    return f"unreachable: {type(error).__name__}"


def _run_span(due: Due, traces: list[str]) -> contextlib.AbstractContextManager[Span]:
    """A run's span. A run that fetches records a request named (a webhook delivery, a
    write-back) continues the trace of the first such request and links to the others,
    whether it is a targeted run or a full one that came first; a run that answers none
    (the schedule's, "sync now") is a trace of its own."""
    parent = context_of(traces[0]) if traces else Context()
    links = [Link(c) for c in map(span_context_of, traces) if c.is_valid]
    return tracer.start_as_current_span(
        f"sync {due.trigger.value}",
        context=parent,
        links=links,
        attributes={
            "syntaskio.integration_id": due.integration_id,
            "syntaskio.sync.trigger": due.trigger.value,
            "syntaskio.sync.full": due.full,
        },
    )
