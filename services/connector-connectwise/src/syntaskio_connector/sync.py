"""Who syncs what, when: every replica runs a `SyncScheduler`; an integration is synced
by whichever replica takes its lease (`sync:{id}`), when it is due or someone asked.

`sync_schedule` (one document per integration, shared by the replicas) holds when the
next run is due and whether a run was requested ("sync now", a new connection), so a
request that reached one replica is served by whichever one gets the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import httpx
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.connectwise import (
    ConnectWiseClient,
    ConnectWiseError,
    RateLimited,
    Unauthorized,
)
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.egress import SiteRejected
from syntaskio_common.integrations import ConnectionScope, JobStatus, SyncJob, Trigger
from syntaskio_common.leases import Leases
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
from syntaskio_connector.budget import SyncDeferred
from syntaskio_connector.engine import NOTHING_CHANGED, Changed, IntegrationSync, RunCounts
from syntaskio_connector.jobs import SyncJobs
from syntaskio_connector.options import SyncOptionsStore
from syntaskio_connector.webhooks import WebhookRegistrations

logger = logging.getLogger(__name__)
# The traces a run links to: the latest requests that named its records.
MAX_PENDING_TRACES: Final = 32
# Integrations remembered for a reconciliation while their deliveries cannot be taken.
MAX_MISSED: Final = 10_000

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
    ) -> SyncJob | None:
        """The finished job, or None when the integration is no longer active (or
        paused). A full run syncs everything due and then `changed`; otherwise only
        `changed`. `resync` lists everything again with its body (an admin's "full
        resync"); `reconcile` lists every id (callbacks were refused: what they named,
        deletions included, is noticed now). A run that finds an earlier one left
        `running` (its connector stopped) marks it interrupted and reconciles too."""
        lease = await self.access.lease(integration_id)
        if lease is None:
            return None
        abandoned = await self.jobs.interrupt_abandoned(lease.tenant_id, integration_id)
        reconcile = reconcile or abandoned > 0
        full = full or reconcile
        job = await self.jobs.start(lease.tenant_id, integration_id, trigger)
        client = self.access.client(lease)
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
                    lease = await self.access.lease(integration_id, rejected_version=lease.version)
                    if lease is None:
                        return await self._finish(job, client, JobStatus.FAILED, error="expired")
                    client = self.access.client(lease, spent=client.requests_made)
                    counts = await work(client, integration_ref(lease))
        except TimeoutError:
            # Where it was stuck is in the traceback: the await the timeout cancelled.
            logger.warning(
                "sync timed out", exc_info=True, extra={"integration_id": integration_id}
            )
            seconds = self.run_timeout.total_seconds()
            return await self._finish(
                job, client, JobStatus.INTERRUPTED, error=f"timed out after {seconds:.0f} s"
            )
        except SyncDeferred as deferred:
            return await self._finish(
                job, client, JobStatus.DEFERRED, error=deferred.reason, retry_at=deferred.until
            )
        except RateLimited as limited:
            # A long Retry-After: the budget has paused the integration; come back then.
            wait = timedelta(seconds=limited.retry_after or 60)
            return await self._finish(
                job,
                client,
                JobStatus.DEFERRED,
                error=str(limited),
                retry_at=datetime.now(UTC) + wait,
            )
        except (ConnectWiseError, httpx.HTTPError, SiteRejected) as error:
            logger.warning(
                "sync failed", extra={"integration_id": integration_id, "error": str(error)}
            )
            return await self._finish(job, client, JobStatus.FAILED, error=str(error))
        return await self._finish(job, client, JobStatus.SUCCEEDED, counts=counts)

    async def _finish(
        self,
        job: SyncJob,
        client: ConnectWiseClient,
        status: JobStatus,
        *,
        counts: RunCounts | None = None,
        error: str | None = None,
        retry_at: datetime | None = None,
    ) -> SyncJob:
        budget = await self.access.budget.status(job.integration_id)
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
    # not answer it (the run may start long after, behind other integrations').
    seen_at: datetime
    resync: bool = False  # everything listed again with its body
    reconcile: bool = False  # every id listed (deliveries were refused while we were down)


class SyncSchedule:
    """When each integration is next due, pending requests for a full run ("sync now",
    a new connection), and records named by webhooks or write-backs (`sync_schedule`)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._schedule = db["sync_schedule"]
        self._heartbeat = db["connector_heartbeat"]

    async def request(
        self,
        integration_id: str,
        trigger: Trigger,
        *,
        resync: bool = False,
        reconcile: bool = False,
    ) -> None:
        """Ask for a full run (`resync`: listing everything again, `reconcile`: every id;
        a later plain request takes neither back)."""
        fields: Document = {"requested": trigger.value, "requested_at": datetime.now(UTC)}
        if resync:
            fields["resync"] = True
        if reconcile:
            fields["reconcile"] = True
        await self._schedule.update_one({"_id": integration_id}, {"$set": fields}, upsert=True)

    async def notify(self, integration_id: str, changed: Changed, trigger: Trigger) -> None:
        """Remember records to fetch again; notifications that arrive before the next
        run are fetched together."""
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
        traceparent = current_traceparent().get("traceparent")
        if traceparent:
            update["$push"] = {
                "pending_traces": {"$each": [traceparent], "$slice": -MAX_PENDING_TRACES}
            }
        await self._schedule.update_one({"_id": integration_id}, update, upsert=True)

    async def take_changes(self, integration_id: str) -> tuple[Changed, list[str]]:
        """The pending records and the traces that named them, removed from the
        schedule (a failed run gives the records back with `notify`)."""
        doc = await self._schedule.find_one_and_update(
            {"_id": integration_id},
            {"$unset": {"pending": "", "pending_trigger": "", "pending_traces": ""}},
        )
        pending = (doc or {}).get("pending") or {}
        changed = Changed(
            tickets={
                entity: frozenset(int(i) for i in pending.get(entity.value, ()))
                for entity in TICKET_ENTITIES
            },
            schedule=bool(pending.get("schedule")),
            projects=frozenset(int(i) for i in pending.get("projects", ())),
        )
        return changed, [str(t) for t in (doc or {}).get("pending_traces") or ()]

    async def due(self, integration_ids: list[str], now: datetime) -> list[Due]:
        """Requested full runs first, then those whose time has come (or never ran),
        then targeted runs for pending records."""
        docs = {
            doc["_id"]: doc async for doc in self._schedule.find({"_id": {"$in": integration_ids}})
        }
        requested, scheduled, targeted = [], [], []
        for integration_id in integration_ids:
            doc = docs.get(integration_id, {})
            if doc.get("requested"):
                requested.append(
                    Due(
                        integration_id,
                        Trigger(doc["requested"]),
                        full=True,
                        resync=bool(doc.get("resync")),
                        reconcile=bool(doc.get("reconcile") or doc.get("reconcile_since")),
                        seen_at=now,
                    )
                )
            elif doc.get("next_sync_at") is None or doc["next_sync_at"] <= now:
                scheduled.append(
                    Due(
                        integration_id,
                        Trigger.SCHEDULED,
                        full=True,
                        reconcile=bool(doc.get("reconcile_since")),
                        seen_at=now,
                    )
                )
            elif doc.get("pending") and (doc.get("not_before") or now) <= now:
                trigger = Trigger(doc.get("pending_trigger") or Trigger.WEBHOOK)
                targeted.append(Due(integration_id, trigger, full=False, seen_at=now))
        return requested + scheduled + targeted

    async def ran(
        self,
        integration_id: str,
        next_sync_at: datetime,
        started: datetime,
        seen_at: datetime,
        *,
        reconciled: bool = False,
        answered: bool = True,
    ) -> None:
        """Clear a request only if the run saw it (made before `seen_at`, when the
        schedule was read): a newer one, perhaps for a resync, still needs its run. An
        outage's reconciliation is cleared only by one that succeeded."""
        await self._schedule.update_one(
            {"_id": integration_id},
            {"$set": {"next_sync_at": next_sync_at, "last_run_at": started}},
            upsert=True,
        )
        if answered:
            await self._schedule.update_one(
                {"_id": integration_id, "requested_at": {"$lte": seen_at}},
                {"$set": {"requested": None, "resync": False, "reconcile": False}},
            )
        if reconciled:
            await self._schedule.update_one(
                {"_id": integration_id, "reconcile_since": {"$lte": seen_at}},
                {"$unset": {"reconcile_since": ""}},
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
            {}, {"$set": {"reconcile_since": now, "next_sync_at": now}}
        )
        logger.warning(
            "no connector was listening for %.0f s: every connection reconciles",
            (now - last["at"]).total_seconds(),
        )
        return True

    async def defer(self, integration_id: str, until: datetime) -> None:
        """No targeted runs before `until` (the budget is spent or ConnectWise paused us);
        their records wait in `pending`."""
        await self._schedule.update_one(
            {"_id": integration_id}, {"$set": {"not_before": until}}, upsert=True
        )

    async def get(self, integration_id: str) -> Document | None:
        return await self._schedule.find_one({"_id": integration_id})


class SyncScheduler:
    """Each replica's loop: find due integrations, take their lease, run them — up to
    `concurrency` at once, so one slow ConnectWise holds up only its own slot."""

    def __init__(
        self,
        runner: SyncRunner,
        schedule: SyncSchedule,
        leases: Leases,
        *,
        interval: timedelta,
        poll_seconds: float = 5.0,
        concurrency: int = 8,
    ) -> None:
        self._runner = runner
        self._schedule = schedule
        self._leases = leases
        self._interval = interval
        self._poll = poll_seconds
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self.running: set[str] = set()
        # Integrations whose deliveries were refused while the database (or auth-service)
        # was down: each gets a reconciliation once the schedule can be written again.
        self._missed: set[str] = set()

    async def request(self, integration_id: str, trigger: Trigger, *, resync: bool = False) -> None:
        await self._schedule.request(integration_id, trigger, resync=resync)
        self._wake.set()

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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self._poll)
        finally:
            beating.cancel()
            for task in list(self._in_flight.values()):
                task.cancel()

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
        await self._request_missed_reconciliations()
        try:
            active = await self._runner.access.auth.active_integration_ids()
        except httpx.HTTPError as error:
            logger.warning("cannot list integrations: %s", error)
            return
        for due in await self._schedule.due(active, datetime.now(UTC)):
            if due.integration_id in self._in_flight:
                continue  # still running here; its next turn comes after
            await self._slots.acquire()  # waits while every slot is busy
            task = asyncio.create_task(self._run_in_slot(due))
            self._in_flight[due.integration_id] = task

    async def _run_in_slot(self, due: Due) -> None:
        try:
            async with self._leases.kept(f"sync:{due.integration_id}") as ours:
                if ours:
                    await self._run_one(due)
        except UNAVAILABLE as error:
            logger.warning("sync not run: %s", type(error).__name__)
        except Exception:
            logger.exception("sync could not be run", extra={"integration_id": due.integration_id})
        finally:
            self._slots.release()
            del self._in_flight[due.integration_id]

    async def _run_one(self, due: Due) -> None:
        integration_id, started = due.integration_id, datetime.now(UTC)
        changed, traces = await self._schedule.take_changes(integration_id)
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
            outcome = job.status.value if job else "crashed"
            span.set_attribute("syntaskio.sync.status", outcome)
        _count_run(due, job, outcome, started)
        if changed and (job is None or job.status is not JobStatus.SUCCEEDED):
            await self._schedule.notify(integration_id, changed, due.trigger)
        retry_at = job.retry_at if job is not None else None
        if due.full:
            succeeded = job is not None and job.status is JobStatus.SUCCEEDED
            await self._schedule.ran(
                integration_id,
                retry_at or started + self._interval,
                started,
                seen_at=due.seen_at,
                reconciled=due.reconcile and succeeded,
                # A run that crashed (auth-service unreachable, say) did not answer the
                # "sync now" or resync it saw: that request gets the next run.
                answered=not crashed,
            )
        if retry_at is not None:
            await self._schedule.defer(integration_id, retry_at)
        if job is not None:
            logger.info(
                "sync %s", job.status.value, extra=job.model_dump(mode="json", exclude={"modes"})
            )


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
