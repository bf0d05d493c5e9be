"""The tenant's people (`tenant_users`): everyone who has signed in, as their latest
session named them. An admin maps these users to ConnectWise members; a member is
proposed by the e-mail the identity provider verified, never by one a user typed."""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mappings import TenantUser
from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession


def _key(tenant_id: str, user_id: str) -> str:
    # Tenant ids hold no "/", so the key is unambiguous whatever the user id holds.
    return f"{tenant_id}/{user_id}"


class TenantUsers:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._users = db["tenant_users"]

    async def create_indexes(self) -> None:
        await self._users.create_index(
            [("tenant_id", ASCENDING), ("user_id", ASCENDING)], unique=True, name="by_tenant"
        )

    async def signed_in(self, session: UserSession) -> TenantUser:
        """Record a successful sign-in: name, verified e-mail (None when the session has
        none, so a lost verification is not kept) and roles as the session has them."""
        now = datetime.now(UTC)
        user = TenantUser(
            tenant_id=session.tenant_id,
            user_id=session.user_id,
            name=session.name,
            email=session.email,
            roles=session.roles,
            last_signed_in_at=now,
        )
        await self._users.update_one(
            {"_id": _key(session.tenant_id, session.user_id)},
            {
                "$set": user.model_dump(mode="json", exclude={"last_signed_in_at"})
                | {"last_signed_in_at": now},
                "$setOnInsert": {"first_signed_in_at": now},
            },
            upsert=True,
        )
        return user

    async def in_tenant(self, tenant_id: str) -> list[TenantUser]:
        cursor = self._users.find({"tenant_id": tenant_id}).sort("user_id", ASCENDING)
        return [TenantUser.model_validate(doc) async for doc in cursor]

    async def get(self, tenant_id: str, user_id: str) -> TenantUser | None:
        doc = await self._users.find_one({"_id": _key(tenant_id, user_id), "tenant_id": tenant_id})
        return TenantUser.model_validate(doc) if doc else None
