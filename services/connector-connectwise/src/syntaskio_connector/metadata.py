"""ConnectWise metadata a record only points at — board statuses (which are closed),
priorities (their sort order), work types (what time is logged as) and, when phases are
synced, phase statuses (which are closed) — cached per integration in `connectwise_metadata` with a
time to live, so a sync asks for each at most once per TTL instead of once per ticket.
Each replica also keeps the latest entries it read in memory until the same expiry, so
an idle sync does not read them from the database either."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.connectwise import ConnectWiseClient
from syntaskio_common.mongo import Document
from syntaskio_connector.assignment import PHASE_STATUSES_PATH, IntegrationRef

WORK_TYPES_PATH = "time/workTypes"

# Housekeeping only: an entry older than its TTL is refetched either way.
_KEEP_UNUSED = timedelta(days=7)
# Entries each replica keeps in memory (the least recently used go first): a few per
# connection, a few KiB each.
MAX_REMEMBERED: Final = 30_000


class MetadataCache:
    def __init__(self, db: AsyncDatabase[Document], ttl: timedelta) -> None:
        self._cache = db["connectwise_metadata"]
        self._ttl = ttl
        # key → (fetched_at, items): as stored, so it expires when the stored one does.
        self._remembered: OrderedDict[str, tuple[datetime, list[dict[str, Any]]]] = OrderedDict()

    async def create_indexes(self) -> None:
        await self._cache.create_index(
            "fetched_at", expireAfterSeconds=int(_KEEP_UNUSED.total_seconds()), name="expiry"
        )
        await self._cache.create_index([("integration_id", ASCENDING)], name="by_integration")

    async def board_statuses(
        self, client: ConnectWiseClient, ref: IntegrationRef, board_ids: Iterable[int]
    ) -> dict[int, dict[int, dict[str, Any]]]:
        """Board id → status id → status, for the given boards."""
        return {
            board_id: _by_id(
                await self._cached(
                    client,
                    ref,
                    f"board_statuses/{board_id}",
                    f"service/boards/{board_id}/statuses",
                )
            )
            for board_id in sorted(set(board_ids))
        }

    async def priorities(
        self, client: ConnectWiseClient, ref: IntegrationRef
    ) -> dict[int, dict[str, Any]]:
        return _by_id(await self._cached(client, ref, "priorities", "service/priorities"))

    async def work_types(
        self, client: ConnectWiseClient, ref: IntegrationRef
    ) -> dict[int, dict[str, Any]]:
        """What time may be logged as (`time/workTypes`), inactive ones too."""
        return _by_id(await self._cached(client, ref, "work_types", WORK_TYPES_PATH))

    async def phase_statuses(
        self, client: ConnectWiseClient, ref: IntegrationRef
    ) -> dict[int, dict[str, Any]]:
        return _by_id(await self._cached(client, ref, "phase_statuses", PHASE_STATUSES_PATH))

    async def _cached(
        self,
        client: ConnectWiseClient,
        ref: IntegrationRef,
        kind: str,
        path: str,
    ) -> list[dict[str, Any]]:
        key = f"{ref.integration_id}/{kind}"
        now = datetime.now(UTC)
        if (remembered := self._remembered.get(key)) and remembered[0] > now - self._ttl:
            self._remembered.move_to_end(key)
            return list(remembered[1])
        doc = await self._cache.find_one({"_id": key})
        if doc and doc["fetched_at"] > now - self._ttl:
            self._remember(key, doc["fetched_at"], doc["items"])
            return list(doc["items"])
        items: list[dict[str, Any]] = []
        async for page in client.pages(path):
            items.extend(page)
        await self._cache.replace_one(
            {"_id": key},
            {
                "tenant_id": ref.tenant_id,
                "integration_id": ref.integration_id,
                "kind": kind,
                "items": items,
                "fetched_at": now,
            },
            upsert=True,
        )
        self._remember(key, now, items)
        return items

    def _remember(self, key: str, fetched_at: datetime, items: list[dict[str, Any]]) -> None:
        self._remembered[key] = (fetched_at, items)
        self._remembered.move_to_end(key)
        if len(self._remembered) > MAX_REMEMBERED:
            self._remembered.popitem(last=False)


def _by_id(items: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    return {int(item["id"]): dict(item) for item in items if isinstance(item.get("id"), int)}


def closed_status_ids(statuses: Mapping[int, Mapping[int, Mapping[str, Any]]]) -> set[int]:
    return {
        status_id
        for board in statuses.values()
        for status_id, status in board.items()
        if status.get("closedStatus") is True
    }


def closed_phase_status_ids(statuses: Mapping[int, Mapping[str, Any]]) -> set[int]:
    return {status_id for status_id, status in statuses.items() if status.get("closedFlag") is True}
