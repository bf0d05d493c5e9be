"""MongoDB persistence: connections (`integrations`), sealed secrets (`credentials`),
in-flight OAuth flows (`oauth_states`) and the audit trail (`audit_log`)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.integrations import (
    TENANT_CONNECTION_USER,
    ConnectionScope,
    Integration,
    IntegrationStatus,
)
from syntaskio_common.mappings import AuditRecord
from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession

Sealed = dict[str, Any]
# The one source system connections are made to so far.
PROVIDER = "connectwise"
# Audit records outlive a yearly access review.
AUDIT_RETENTION_SECONDS = 400 * 24 * 3600


@dataclass(frozen=True)
class Owner:
    """Whose connection it is: one user's own, or the tenant's (connected by an admin for
    everyone, `user_id` = TENANT_CONNECTION_USER). One connection per owner and provider."""

    tenant_id: str
    user_id: str
    scope: ConnectionScope = ConnectionScope.PERSONAL

    @classmethod
    def user(cls, session: UserSession) -> Owner:
        return cls(session.tenant_id, session.user_id, ConnectionScope.PERSONAL)

    @classmethod
    def tenant(cls, tenant_id: str) -> Owner:
        return cls(tenant_id, TENANT_CONNECTION_USER, ConnectionScope.TENANT)


@dataclass(frozen=True)
class AuditQuery:
    """Which audit records an admin asks for: always one tenant's, newest first."""

    tenant_id: str
    integration_id: str | None = None
    action: str | None = None
    user_id: str | None = None
    since: datetime | None = None
    limit: int = 100


@dataclass(frozen=True)
class StoredCredentials:
    """One integration's sealed secrets. `version` grows with every write, so a renewal
    can write only if nobody else renewed since it read."""

    integration_id: str
    tenant_id: str
    version: int
    secrets: dict[str, Sealed]
    expires_at: datetime | None
    renewal_failures: int

    @classmethod
    def from_document(cls, doc: Document) -> StoredCredentials:
        return cls(
            integration_id=doc["_id"],
            tenant_id=doc["tenant_id"],
            version=int(doc.get("version", 0)),
            secrets=dict(doc.get("secrets", {})),
            expires_at=doc.get("expires_at"),
            renewal_failures=int(doc.get("renewal_failures", 0)),
        )


class IntegrationRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._integrations = db["integrations"]
        self._credentials = db["credentials"]
        self._states = db["oauth_states"]
        self._audit = db["audit_log"]

    async def create_indexes(self) -> None:
        await self._integrations.create_index(
            [("tenant_id", ASCENDING), ("user_id", ASCENDING), ("provider", ASCENDING)],
            unique=True,
            name="one_connection_per_user_and_provider",
        )
        await self._integrations.create_index([("status", ASCENDING)], name="by_status")
        # Housekeeping only: an expired state is refused by its `expires_at` either way.
        await self._states.create_index("expires_at", expireAfterSeconds=0, name="expiry")
        await self._audit.create_index(
            [("tenant_id", ASCENDING), ("integration_id", ASCENDING), ("at", ASCENDING)],
            name="by_integration",
        )
        # The admin's audit log: one tenant's records, newest first, optionally filtered.
        await self._audit.create_index(
            [("tenant_id", ASCENDING), ("at", DESCENDING)], name="by_tenant_newest"
        )
        await self._audit.create_index(
            "at", expireAfterSeconds=AUDIT_RETENTION_SECONDS, name="retention"
        )

    # -- connections -------------------------------------------------------------------

    async def find_for_owner(self, owner: Owner, provider: str) -> Integration | None:
        doc = await self._integrations.find_one(
            {"tenant_id": owner.tenant_id, "user_id": owner.user_id, "provider": provider}
        )
        return Integration.from_document(doc) if doc else None

    async def get_for_user(
        self, tenant_id: str, user_id: str, integration_id: str
    ) -> Integration | None:
        doc = await self._integrations.find_one(
            {"_id": integration_id, "tenant_id": tenant_id, "user_id": user_id}
        )
        return Integration.from_document(doc) if doc else None

    async def list_for_user(self, tenant_id: str, user_id: str) -> list[Integration]:
        cursor = self._integrations.find({"tenant_id": tenant_id, "user_id": user_id})
        return [Integration.from_document(doc) async for doc in cursor]

    async def acts_as_member(self, integration: Integration) -> bool:
        """Whether its stored credentials are its member's own (recorded on connect;
        a connection stored before that was recorded counts as not)."""
        doc = await self._integrations.find_one({"_id": integration.id}, {"acts_as_member": 1})
        return bool(doc and doc.get("acts_as_member"))

    async def get_for_tenant(self, tenant_id: str, integration_id: str) -> Integration | None:
        """Any connection of the tenant (anyone's, or the tenant's own)."""
        doc = await self._integrations.find_one({"_id": integration_id, "tenant_id": tenant_id})
        return Integration.from_document(doc) if doc else None

    async def list_for_tenant(self, tenant_id: str) -> list[Integration]:
        cursor = self._integrations.find({"tenant_id": tenant_id}).sort("created_at", 1)
        return [Integration.from_document(doc) async for doc in cursor]

    async def list_by_status(self, status: IntegrationStatus) -> list[Integration]:
        cursor = self._integrations.find({"status": status.value})
        return [Integration.from_document(doc) async for doc in cursor]

    async def get(self, integration_id: str) -> Integration | None:
        doc = await self._integrations.find_one({"_id": integration_id})
        return Integration.from_document(doc) if doc else None

    async def ensure_pending(self, owner: Owner, provider: str, fields: dict[str, Any]) -> None:
        """Show a connection in progress, unless the owner already has a live one (which a
        failed reconnect must leave untouched)."""
        existing = await self.find_for_owner(owner, provider)
        if existing and existing.status is not IntegrationStatus.DISCONNECTED:
            return
        now = datetime.now(UTC)
        await self._integrations.update_one(
            {"tenant_id": owner.tenant_id, "user_id": owner.user_id, "provider": provider},
            {
                "$set": {
                    **fields,
                    "scope": owner.scope.value,
                    "status": IntegrationStatus.PENDING.value,
                    "last_error": None,
                    "updated_at": now,
                },
                "$setOnInsert": {"_id": new_integration_id(), "created_at": now},
            },
            upsert=True,
        )

    async def set_status(
        self,
        integration_id: str,
        status: IntegrationStatus,
        last_error: str | None,
        *,
        only_if: IntegrationStatus | None = None,
    ) -> Integration | None:
        query: dict[str, Any] = {"_id": integration_id}
        if only_if is not None:
            query["status"] = only_if.value
        update: dict[str, Any] = {
            "status": status.value,
            "last_error": last_error,
            "updated_at": datetime.now(UTC),
        }
        if status is IntegrationStatus.DISCONNECTED:
            update["disconnected_at"] = update["updated_at"]
        doc = await self._integrations.find_one_and_update(
            query, {"$set": update}, return_document=ReturnDocument.AFTER
        )
        return Integration.from_document(doc) if doc else None

    async def integration_id_for(self, owner: Owner, provider: str) -> str:
        """The id the owner's connection has or will have: reconnecting keeps it, so the
        sealed secrets (bound to it), the tasks synced under it and a tenant connection's
        member mappings stay one record."""
        existing = await self.find_for_owner(owner, provider)
        return existing.id if existing else new_integration_id()

    async def save_connection(
        self,
        fields: dict[str, Any],
        secrets: dict[str, Sealed],
        integration_id: str,
        *,
        expires_at: datetime | None = None,
    ) -> Integration:
        """Upsert the owner's connection for the provider: reconnecting replaces the
        credentials of the existing record instead of creating a twin. A connection an admin
        paused stays paused (reconnecting is no way around a pause); any other is active."""
        now = datetime.now(UTC)
        key = {k: fields[k] for k in ("tenant_id", "user_id", "provider")}
        existing = await self._integrations.find_one(key, {"status": 1})
        paused = existing is not None and existing.get("status") == IntegrationStatus.PAUSED
        status = IntegrationStatus.PAUSED if paused else IntegrationStatus.ACTIVE
        doc = await self._integrations.find_one_and_update(
            key,
            {
                "$set": {
                    **fields,
                    "status": status.value,
                    "last_error": None,
                    "updated_at": now,
                    "last_validated_at": now,
                    "disconnected_at": None,
                },
                "$setOnInsert": {"_id": integration_id, "created_at": now},
                "$inc": {"generation": 1},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        await self._credentials.update_one(
            {"_id": doc["_id"]},
            {
                "$set": {
                    "tenant_id": fields["tenant_id"],
                    "secrets": secrets,
                    "expires_at": expires_at,
                    "renewal_failures": 0,
                    "updated_at": now,
                },
                "$inc": {"version": 1},
            },
            upsert=True,
        )
        return Integration.from_document(doc)

    # -- credentials ---------------------------------------------------------------------

    async def credentials(self, integration: Integration) -> StoredCredentials | None:
        doc = await self._credentials.find_one(
            {"_id": integration.id, "tenant_id": integration.tenant_id}
        )
        return StoredCredentials.from_document(doc) if doc else None

    async def replace_secrets(
        self,
        current: StoredCredentials,
        secrets: dict[str, Sealed],
        expires_at: datetime | None,
    ) -> bool:
        """Write renewed secrets only if nobody wrote since `current` was read."""
        result = await self._credentials.update_one(
            {"_id": current.integration_id, "version": current.version},
            {
                "$set": {
                    "secrets": {**current.secrets, **secrets},
                    "expires_at": expires_at,
                    "renewal_failures": 0,
                    "updated_at": datetime.now(UTC),
                },
                "$inc": {"version": 1},
            },
        )
        return result.modified_count == 1

    async def count_renewal_failure(self, current: StoredCredentials) -> int:
        doc = await self._credentials.find_one_and_update(
            {"_id": current.integration_id},
            {"$inc": {"renewal_failures": 1}},
            return_document=ReturnDocument.AFTER,
        )
        return int(doc["renewal_failures"]) if doc else 0

    async def delete_credentials(self, integration: Integration) -> None:
        await self._credentials.delete_one(
            {"_id": integration.id, "tenant_id": integration.tenant_id}
        )

    # -- OAuth flows ---------------------------------------------------------------------

    async def save_state(self, state: dict[str, Any]) -> None:
        await self._states.insert_one(state)

    async def take_state(self, state_id: str, tenant_id: str, user_id: str) -> Document | None:
        """Single use: the state is deleted as it is read, and only its owner can take it."""
        return await self._states.find_one_and_delete(
            {"_id": state_id, "tenant_id": tenant_id, "user_id": user_id}
        )

    # -- audit ---------------------------------------------------------------------------

    async def audit_records(self, query: AuditQuery) -> list[AuditRecord]:
        wanted: dict[str, Any] = {"tenant_id": query.tenant_id}
        for name in ("integration_id", "action", "user_id"):
            if (value := getattr(query, name)) is not None:
                wanted[name] = value
        if query.since is not None:
            since = query.since
            wanted["at"] = {"$gte": since if since.tzinfo else since.replace(tzinfo=UTC)}
        cursor = self._audit.find(wanted).sort("at", DESCENDING).limit(query.limit)
        return [AuditRecord.from_document(doc) async for doc in cursor]

    async def audit(
        self,
        action: str,
        *,
        tenant_id: str,
        integration_id: str | None = None,
        user_id: str | None = None,
        **detail: Any,
    ) -> None:
        await self._audit.insert_one(
            {
                "_id": str(uuid.uuid4()),
                "at": datetime.now(UTC),
                "action": action,
                "tenant_id": tenant_id,
                "integration_id": integration_id,
                "user_id": user_id,
                "detail": detail,
            }
        )


def new_integration_id() -> str:
    return str(uuid.uuid4())
