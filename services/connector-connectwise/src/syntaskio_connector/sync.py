"""Runs syncs: on a schedule, and at once when asked (a new connection, "sync now")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from faststream.kafka import KafkaBroker

from syntaskio_common import topics
from syntaskio_common.connectwise import ConnectWiseClient, ConnectWiseError
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.egress import SiteRejected
from syntaskio_common.kafka import publish
from syntaskio_connector.auth_client import AuthServiceClient
from syntaskio_connector.checkpoints import Checkpoints
from syntaskio_connector.tickets import (
    SERVICE_TICKET,
    IntegrationRef,
    assigned_open_tickets,
    plan_sync,
    removed_event,
    upserted_event,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SyncResult:
    integration_id: str
    fetched: int
    published: int
    removed: int
    api_requests: int


@dataclass
class TicketSync:
    auth: AuthServiceClient
    http: httpx.AsyncClient
    broker: KafkaBroker
    checkpoints: Checkpoints

    async def sync(self, integration_id: str) -> SyncResult | None:
        lease = await self.auth.lease(integration_id)
        if lease is None:
            return None  # disconnected meanwhile
        ref = IntegrationRef(
            integration_id=lease.integration_id,
            tenant_id=lease.tenant_id,
            user_id=lease.user_id,
            member_identifier=lease.member_identifier,
            api_base_url=lease.api_base_url,
            company_id=lease.company_id,
            generation=lease.generation,
        )
        try:
            client, tickets = await self._fetch(lease, ref)
        except ConnectWiseError as error:
            if error.status != 401:
                raise
            # Rejected credentials: have auth-service renew them (once, however many
            # replicas report the same version) and try again.
            lease = await self.auth.lease(integration_id, rejected_version=lease.version)
            if lease is None:
                return None  # expired: the user has to reconnect
            client, tickets = await self._fetch(lease, ref)
        published = await self.checkpoints.published_versions(
            integration_id, ref.generation, SERVICE_TICKET
        )
        plan = plan_sync(published, tickets)
        for ticket in plan.changed:
            await publish(self.broker, topics.CONNECTWISE_RAW, upserted_event(ref, ticket))
        now = datetime.now(UTC)
        for ticket_id in plan.removed_ids:
            record = removed_event(ref, ticket_id, published[ticket_id], now)
            await publish(self.broker, topics.CONNECTWISE_RAW, record)
        await self.checkpoints.save(ref, SERVICE_TICKET, plan.versions)
        return SyncResult(
            integration_id,
            len(tickets),
            len(plan.changed),
            len(plan.removed_ids),
            client.requests_made,
        )

    async def _fetch(
        self, lease: CredentialLease, ref: IntegrationRef
    ) -> tuple[ConnectWiseClient, list[dict[str, Any]]]:
        client = _client(self.http, lease)
        tickets: list[dict[str, Any]] = []
        async for page in client.pages(
            "service/tickets", conditions=assigned_open_tickets(ref.member_identifier)
        ):
            tickets.extend(page)
        return client, tickets


def _client(http: httpx.AsyncClient, lease: CredentialLease) -> ConnectWiseClient:
    return ConnectWiseClient(http, lease.api_base_url, lease.credentials(), lease.client_id)


class SyncScheduler:
    """Syncs every active integration each interval; `request()` wakes it early."""

    def __init__(self, sync: TicketSync, interval_seconds: float) -> None:
        self._sync = sync
        self._interval = interval_seconds
        self._wake = asyncio.Event()
        self._requested: set[str] = set()

    def request(self, integration_id: str) -> None:
        self._requested.add(integration_id)
        self._wake.set()

    async def run_forever(self) -> None:
        while True:
            requested, self._requested = self._requested, set()
            if requested:
                ids = sorted(requested)
            else:
                try:
                    ids = await self._sync.auth.active_integration_ids()
                except httpx.HTTPError as error:
                    logger.warning("cannot list integrations: %s", error)
                    ids = []
            for integration_id in ids:
                await self._run_one(integration_id)
            self._wake.clear()
            if self._requested:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)

    async def _run_one(self, integration_id: str) -> None:
        try:
            result = await self._sync.sync(integration_id)
        except (ConnectWiseError, httpx.HTTPError, SiteRejected) as error:
            # The next cycle tries again; issue-level retry/budget policy lives here later.
            logger.warning(
                "sync failed", extra={"integration_id": integration_id, "error": str(error)}
            )
            return
        except Exception:
            logger.exception("sync crashed", extra={"integration_id": integration_id})
            return
        if result is not None:
            logger.info("sync finished", extra=result.__dict__)
