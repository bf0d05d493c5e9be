"""A company's settings (`tenant_settings`, one document per tenant; absent = the
defaults). Turning ConnectWise off stops every connection of the company at once: their
leases are refused, so nothing syncs and nothing is written back, and their tasks stay."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document
from syntaskio_common.tenant_settings import TenantSettings


class CompanySettings:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._settings = db["tenant_settings"]

    async def get(self, tenant_id: str) -> TenantSettings:
        doc = await self._settings.find_one({"_id": tenant_id}, {"settings": 1})
        return TenantSettings.model_validate((doc or {}).get("settings") or {})

    async def replace(self, tenant_id: str, settings: TenantSettings, by: str) -> TenantSettings:
        """Store the settings; the ones they replaced."""
        doc = await self._settings.find_one_and_update(
            {"_id": tenant_id},
            {
                "$set": {
                    "settings": settings.model_dump(mode="json"),
                    "updated_at": datetime.now(UTC),
                    "updated_by": by,
                }
            },
            upsert=True,
        )
        return TenantSettings.model_validate((doc or {}).get("settings") or {})
