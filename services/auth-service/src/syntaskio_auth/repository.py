"""MongoDB persistence of connections (`integrations`) and sealed secrets (`credentials`)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_auth.models import Integration, IntegrationStatus
from syntaskio_common.mongo import Document


class IntegrationRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._integrations = db["integrations"]
        self._credentials = db["credentials"]

    async def create_indexes(self) -> None:
        await self._integrations.create_index(
            [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("provider", ASCENDING)],
            unique=True,
            name="one_connection_per_user_and_provider",
        )
        await self._integrations.create_index([("status", ASCENDING)], name="by_status")

    async def find_for_user(
        self, tenant_id: str, user_id: str, provider: str
    ) -> Integration | None:
        doc = await self._integrations.find_one(
            {"tenant_id": tenant_id, "user_id": user_id, "provider": provider}
        )
        return Integration.from_document(doc) if doc else None

    async def list_for_user(self, tenant_id: str, user_id: str) -> list[Integration]:
        cursor = self._integrations.find({"tenant_id": tenant_id, "user_id": user_id})
        return [Integration.from_document(doc) async for doc in cursor]

    async def list_by_status(self, status: IntegrationStatus) -> list[Integration]:
        cursor = self._integrations.find({"status": status.value})
        return [Integration.from_document(doc) async for doc in cursor]

    async def get(self, integration_id: str) -> Integration | None:
        doc = await self._integrations.find_one({"_id": integration_id})
        return Integration.from_document(doc) if doc else None

    async def save_connection(
        self, fields: dict[str, Any], secrets: dict[str, dict[str, Any]], integration_id: str
    ) -> Integration:
        """Upsert the user's connection for the provider: reconnecting replaces the
        credentials of the existing record instead of creating a twin."""
        now = datetime.now(UTC)
        key = {k: fields[k] for k in ("tenant_id", "user_id", "provider")}
        doc = await self._integrations.find_one_and_update(
            key,
            {
                "$set": {**fields, "updated_at": now, "last_validated_at": now},
                "$setOnInsert": {"_id": integration_id, "created_at": now},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        await self._credentials.replace_one(
            {"_id": doc["_id"]},
            {
                "_id": doc["_id"],
                "tenant_id": fields["tenant_id"],
                "secrets": secrets,
                "updated_at": now,
            },
            upsert=True,
        )
        return Integration.from_document(doc)

    async def sealed_secrets(self, integration: Integration) -> dict[str, dict[str, Any]]:
        doc = await self._credentials.find_one(
            {"_id": integration.id, "tenant_id": integration.tenant_id}
        )
        return dict(doc["secrets"]) if doc else {}


def new_integration_id() -> str:
    return str(uuid.uuid4())
