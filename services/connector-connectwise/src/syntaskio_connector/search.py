"""Find any ticket: one ConnectWise request per distinct query per member, every
`FRESH_FOR` at most, made with credentials acting as the member (auth-service's acting
lease), so it finds exactly what that member may see.

The answer is cached in `ticket_searches` under (connection, member, ticket type, the
query's normal form). Asking again within `FRESH_FOR` is answered from the cache; the
same query asked at once on several replicas waits for the first (a lease per key), so
however the requests arrive ConnectWise is asked once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.connectwise import Unauthorized
from syntaskio_common.connectwise_links import ticket_url
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.leases import Leases
from syntaskio_common.mongo import Document
from syntaskio_common.task import SourceType, parse_timestamp
from syntaskio_common.ticket_search import (
    MOST_RESULTS,
    FoundTicket,
    TicketQuery,
    TicketSearchResults,
)
from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.assignment import PATHS, Entity
from syntaskio_connector.details import name_of, text_of

FRESH_FOR: Final = timedelta(seconds=30)
SEARCH_COST: Final = 1  # request: one page, newest first
# What a result shows, asked for by name so a search moves little data.
_FIELDS: Final = {
    Entity.SERVICE_TICKET: "id,summary,company,board,status,priority,owner,closedFlag,_info",
    Entity.PROJECT_TICKET: (
        "id,summary,company,board,status,priority,owner,closedFlag,project,_info"
    ),
}


class TicketSearch:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        access: ConnectWiseAccess,
        leases: Leases,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._cache = db["ticket_searches"]
        self._access = access
        self._leases = leases
        self._clock = clock

    async def create_indexes(self) -> None:
        # Housekeeping only: freshness is checked against FRESH_FOR when read.
        await self._cache.create_index(
            "searched_at", expireAfterSeconds=int(FRESH_FOR.total_seconds()) * 4, name="expiry"
        )

    async def search(
        self, tenant_id: str, user_id: str, source_type: SourceType, query: TicketQuery
    ) -> TicketSearchResults:
        """Raises LookupError (no connection syncs the user), CannotAct, SyncDeferred
        (budget, pause) or a ConnectWise/HTTP error."""
        lease = await self._access.acting(tenant_id, user_id, "search")
        entity = Entity(source_type.value)
        key = _key(lease, entity, query)
        cached = await self._fresh(key, tenant_id)
        if cached is not None:
            return cached
        async with self._leases.hold(f"ticket-search:{key}", wait_seconds=30):
            cached = await self._fresh(key, tenant_id)
            if cached is not None:
                return cached
            await self._access.budget.keep_sync_reserve(lease.integration_id, SEARCH_COST)
            try:
                rows = await self._ask(lease, entity, query)
            except Unauthorized:
                # The acting keys were revoked or expired early: new ones, once.
                self._access.forget_acting(tenant_id, user_id)
                lease = await self._access.acting(tenant_id, user_id, "search")
                rows = await self._ask(lease, entity, query)
            results = TicketSearchResults(
                integration_id=lease.integration_id,
                member=lease.member_identifier,
                query=query.normal,
                source_type=source_type,
                tickets=[_found(entity, row, lease) for row in rows[:MOST_RESULTS]],
                more=len(rows) > MOST_RESULTS,
                searched_at=self._clock(),
            )
            await self._cache.replace_one(
                {"_id": key},
                {
                    "tenant_id": tenant_id,
                    "results": results.model_dump(mode="json"),
                    "searched_at": results.searched_at,
                },
                upsert=True,
            )
            return results

    async def _ask(
        self, lease: CredentialLease, entity: Entity, query: TicketQuery
    ) -> list[dict[str, Any]]:
        # One more than is shown, to tell whether there are more.
        params: dict[str, str | int] = {"pageSize": MOST_RESULTS + 1, "orderBy": "id desc"}
        answer = await self._access.client(lease).get(
            PATHS[entity], params, conditions=query.condition(), fields=_FIELDS[entity]
        )
        return [row for row in answer if isinstance(row, dict)] if isinstance(answer, list) else []

    async def _fresh(self, key: str, tenant_id: str) -> TicketSearchResults | None:
        doc = await self._cache.find_one({"_id": key, "tenant_id": tenant_id})
        if doc is None or doc["searched_at"] <= self._clock() - FRESH_FOR:
            return None
        return TicketSearchResults.model_validate(doc["results"])


def _key(lease: CredentialLease, entity: Entity, query: TicketQuery) -> str:
    """Per connection and member: another member may see other tickets."""
    name = "\x1f".join((lease.integration_id, lease.member_identifier, entity.value, query.normal))
    return hashlib.sha256(name.encode()).hexdigest()


def _found(entity: Entity, row: dict[str, Any], lease: CredentialLease) -> FoundTicket:
    ticket_id = int(row["id"])
    info = row["_info"] if isinstance(row.get("_info"), dict) else {}
    owner = row.get("owner")
    return FoundTicket(
        source_type=SourceType(entity.value),
        ticket_id=ticket_id,
        summary=text_of(row.get("summary")) or f"Ticket #{ticket_id}",
        company=name_of(row.get("company")),
        board=name_of(row.get("board")),
        status=name_of(row.get("status")),
        priority=name_of(row.get("priority")),
        project=name_of(row.get("project")),
        owner=text_of(owner.get("identifier")) if isinstance(owner, dict) else None,
        closed=bool(row.get("closedFlag")),
        updated_at=parse_timestamp(info.get("lastUpdated")),
        url=ticket_url(lease.api_base_url, lease.company_id, str(ticket_id)),
    )
