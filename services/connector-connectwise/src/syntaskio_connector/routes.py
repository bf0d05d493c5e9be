"""The connector's HTTP routes: ConnectWise callback deliveries (the one public route) and
the internal ones auth-service and the gateway call."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Literal

import httpx
from fastapi import APIRouter, Depends, Header, Path, Query, Request, status

from syntaskio_common.commands import CommandOutcome
from syntaskio_common.connectwise import ConnectWiseError
from syntaskio_common.egress import SiteRejected
from syntaskio_common.integrations import (
    SyncBudget,
    SyncJob,
    SyncOptions,
    SyncStatus,
    Trigger,
    WebhookStatus,
)
from syntaskio_common.problems import UNAVAILABLE, UNAVAILABLE_RETRY_AFTER, Problem
from syntaskio_common.service_auth import internal_caller
from syntaskio_common.task import SourceType
from syntaskio_common.ticket_detail import TicketDetail
from syntaskio_common.ticket_search import (
    MOST_QUERY_CHARACTERS,
    InvalidSearch,
    TicketQuery,
    TicketSearchResults,
)
from syntaskio_connector.assignment import Entity
from syntaskio_connector.auth_client import CannotAct
from syntaskio_connector.budget import SyncDeferred
from syntaskio_connector.components import Components
from syntaskio_connector.details import NoConnection, TicketGone
from syntaskio_connector.engine import Changed
from syntaskio_connector.settings import ConnectorSettings
from syntaskio_connector.webhooks import DeliveryRejected

INTEGRATION_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
TenantId = Annotated[str, Query(min_length=1, max_length=64)]
UserId = Annotated[str, Query(min_length=1, max_length=128)]
TicketEntity = Literal["service_ticket", "project_ticket"]


def create_router(settings: ConnectorSettings, parts: Components) -> APIRouter:
    router = APIRouter()
    scheduler, schedule, access, jobs = parts.scheduler, parts.schedule, parts.access, parts.jobs
    registrations, receiver, journal = parts.registrations, parts.receiver, parts.journal
    budget, webhook_stats, sync_options = parts.budget, parts.webhook_stats, parts.sync_options
    details, searches = parts.details, parts.searches
    internal = [Depends(internal_caller(settings.internal_api_token))]
    # What the gateway calls for its users (after checking they own what is named); the
    # back-end services' token is accepted too.
    for_gateway = [
        Depends(internal_caller(settings.internal_api_token, settings.connector_api_token))
    ]

    @router.post(
        "/internal/v1/integrations/{integration_id}/sync",
        status_code=status.HTTP_202_ACCEPTED,
        dependencies=for_gateway,
        tags=["internal"],
    )
    async def sync_now(integration_id: str, resync: bool = False) -> dict[str, str]:
        """Run a sync as soon as a replica is free (the caller checked ownership);
        `resync`: list everything again with its body, whatever the cursors say."""
        await scheduler.request(integration_id, Trigger.MANUAL, resync=resync)
        return {"status": "queued", "integration_id": integration_id}

    @router.post(
        "/webhooks/connectwise/{integration_id}",
        tags=["webhooks"],
        responses={400: {}, 401: {}, 404: {}, 413: {}, 429: {}, 503: {}},
    )
    async def connectwise_callback(
        integration_id: Annotated[str, Path(pattern=INTEGRATION_ID_PATTERN)],
        request: Request,
        x_content_signature: Annotated[str | None, Header()] = None,
    ) -> dict[str, str]:
        """A ConnectWise callback delivery: verified, then the record it names is fetched
        again by the next sync run (answered at once; ConnectWise waits 5 s at most)."""
        body = await request.body()
        source = request.client.host if request.client else "unknown"
        try:
            changed = await receiver.receive(integration_id, body, x_content_signature, source)
            if changed:
                await details.forget(integration_id, changed)
                await scheduler.notify(integration_id, changed, Trigger.WEBHOOK)
        except DeliveryRejected as rejected:
            if rejected.may_hide_a_change:
                scheduler.missed(integration_id)
            raise Problem(rejected.status_code, rejected.detail, headers=rejected.headers) from None
        except UNAVAILABLE:
            # Answered 503 (ConnectWise retries, then gives up): what it named is
            # reconciled once the database answers again.
            scheduler.missed(integration_id)
            raise
        return {"status": "accepted"}

    @router.delete(
        "/internal/v1/integrations/{integration_id}/webhooks",
        dependencies=internal,
        tags=["internal"],
    )
    async def remove_webhooks(integration_id: str) -> dict[str, int]:
        """Called by auth-service while a disconnect still has credentials (a paused
        connection's too)."""
        lease = await access.lease(integration_id, cleanup=True, purpose="cleanup")
        if lease is None:
            raise Problem(404, "No active connection with this id.")
        removed = await registrations.remove(access.client(lease), integration_id)
        return {"removed": removed}

    @router.get("/internal/v1/commands/{command_id}", dependencies=for_gateway, tags=["internal"])
    async def command_outcome(
        command_id: str, tenant_id: TenantId, user_id: UserId
    ) -> CommandOutcome:
        """How a write-back command went (404 until the connector has seen it)."""
        outcome = await journal.outcome(tenant_id, user_id, command_id)
        if outcome is None:
            raise Problem(404, "No such command (yet).")
        return outcome

    @router.get(
        "/internal/v1/integrations/{integration_id}/tickets/{source_type}/{ticket_id}",
        dependencies=for_gateway,
        tags=["internal"],
        responses={404: {}, 409: {}, 502: {}, 503: {}},
    )
    async def ticket_detail(
        integration_id: Annotated[str, Path(pattern=INTEGRATION_ID_PATTERN)],
        source_type: TicketEntity,
        ticket_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
        tenant_id: TenantId,
        known_updated_at: datetime | None = None,
        acting_for: UserId | None = None,
    ) -> TicketDetail:
        """A ticket's detail (the caller checked it is one of its user's tasks, or one
        its user found: then `acting_for` names them, and the ticket is read as their
        member), read from ConnectWise unless a fresh enough copy is cached.
        `known_updated_at`: the ticket's last change the dashboard has seen; an older
        copy is not served."""
        entity = Entity(source_type)
        with _upstream_problems():
            try:
                return await details.get(
                    tenant_id,
                    integration_id,
                    entity,
                    ticket_id,
                    known_updated_at,
                    acting_for=acting_for,
                )
            except NoConnection:
                raise Problem(409, "No active ConnectWise connection with this id.") from None
            except TicketGone:
                if acting_for is None:
                    # Gone while we were not told: the next run removes its task.
                    changed = Changed(tickets={entity: frozenset({ticket_id})})
                    await scheduler.notify(integration_id, changed, Trigger.DETAIL)
                raise Problem(404, "The ticket no longer exists in ConnectWise.") from None

    @router.get(
        "/internal/v1/ticket-search",
        dependencies=for_gateway,
        tags=["internal"],
        responses={409: {}, 422: {}, 502: {}, 503: {}},
    )
    async def search_tickets(
        tenant_id: TenantId,
        user_id: UserId,
        q: Annotated[str, Query(max_length=MOST_QUERY_CHARACTERS * 2)],
        source_type: TicketEntity = "service_ticket",
    ) -> TicketSearchResults:
        """Tickets by number or summary words, as the user's own ConnectWise member sees
        them (at most one request per distinct query per 30 s for that member)."""
        try:
            query = TicketQuery.parse(q)
        except InvalidSearch as invalid:
            raise Problem(422, str(invalid)) from None
        with _upstream_problems():
            try:
                return await searches.search(tenant_id, user_id, SourceType(source_type), query)
            except LookupError:
                raise Problem(409, "No active ConnectWise connection syncs this user.") from None

    @router.get(
        "/internal/v1/integrations/{integration_id}/sync-jobs",
        dependencies=for_gateway,
        tags=["internal"],
    )
    async def sync_history(
        integration_id: str,
        tenant_id: TenantId,
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> list[SyncJob]:
        return await jobs.history(tenant_id, integration_id, limit)

    @router.get(
        "/internal/v1/integrations/{integration_id}/sync-status",
        dependencies=for_gateway,
        tags=["internal"],
    )
    async def sync_status(integration_id: str, tenant_id: TenantId) -> SyncStatus:
        spent = await budget.status(integration_id)
        recent = await jobs.history(tenant_id, integration_id, 1)
        last = recent[0] if recent else None
        planned = await schedule.get(integration_id) or {}
        if integration_id in scheduler.running:
            state, reason = "syncing", None
        elif spent.degraded:
            state, reason = "degraded", spent.reason
        elif spent.paused_until is not None:
            state, reason = "paused", "ConnectWise asked us to slow down"
        else:
            state, reason = "idle", last.error if last else None
        registered = await registrations.registration(integration_id) or {}
        return SyncStatus(
            webhooks=WebhookStatus(
                enabled=registrations.base_url is not None,
                registered=bool(registered.get("callbacks")),
                error=registered.get("error"),
                **await webhook_stats.get(integration_id),
            ),
            state=state,
            reason=reason,
            last_job=last,
            next_sync_at=planned.get("next_sync_at"),
            budget=SyncBudget(
                limit_per_hour=spent.limit,
                used_last_hour=spent.used_last_hour,
                remaining=spent.remaining,
                paused_until=spent.paused_until,
            ),
            options=await sync_options.get(integration_id),
        )

    @router.put(
        "/internal/v1/integrations/{integration_id}/sync-options",
        dependencies=for_gateway,
        tags=["internal"],
    )
    async def set_sync_options(
        integration_id: str, tenant_id: TenantId, options: SyncOptions
    ) -> SyncOptions:
        """What the connection syncs and how often (the caller checked ownership); a
        change is synced at once (phases listed, or tombstoned), and the next runs come
        at the new interval."""
        if await sync_options.set(tenant_id, integration_id, options):
            await scheduler.request(integration_id, Trigger.MANUAL)
        return options

    return router


@contextmanager
def _upstream_problems() -> Iterator[None]:
    """What a read a user asked for can meet on the way to ConnectWise, as problems."""
    try:
        yield
    except CannotAct as refused:
        raise Problem(409, str(refused), title="Cannot act as the member") from None
    except SyncDeferred as deferred:
        wait = math.ceil(max((deferred.until - datetime.now(UTC)).total_seconds(), 1))
        raise Problem(
            503,
            f"ConnectWise is not taking requests for this connection now: {deferred.reason}.",
            headers={"Retry-After": str(wait)},
        ) from None
    except httpx.HTTPError:
        raise Problem(
            503,
            "The connection's credentials are unavailable right now.",
            headers={"Retry-After": UNAVAILABLE_RETRY_AFTER},
        ) from None
    except (ConnectWiseError, SiteRejected) as failed:
        raise Problem(502, f"ConnectWise did not answer as expected: {failed}") from None
