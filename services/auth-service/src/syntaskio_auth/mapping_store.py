"""MongoDB persistence of a tenant connection's member mappings (`member_mappings`):
one document per connection and user (`_id` = "{integration_id}/{user_id}"). A member is
confirmed for at most one user of a connection (a unique index over confirmed ones)."""

from __future__ import annotations

from collections.abc import Collection

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from syntaskio_common.integrations import Integration
from syntaskio_common.mappings import MappingState, MemberMapping, TeamMember
from syntaskio_common.mongo import Document


class MemberTaken(Exception):
    """The member is already confirmed for another user of the connection."""


def mapping_id(integration_id: str, user_id: str) -> str:
    return f"{integration_id}/{user_id}"


class MappingStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._mappings = db["member_mappings"]

    async def create_indexes(self) -> None:
        await self._mappings.create_index(
            [("integration_id", ASCENDING), ("member_identifier", ASCENDING)],
            unique=True,
            partialFilterExpression={"state": MappingState.CONFIRMED.value},
            name="one_user_per_confirmed_member",
        )
        await self._mappings.create_index(
            [("integration_id", ASCENDING), ("user_id", ASCENDING)], name="by_integration"
        )

    def _scope(self, integration: Integration) -> Document:
        return {"integration_id": integration.id, "tenant_id": integration.tenant_id}

    async def of_integration(self, integration: Integration) -> list[MemberMapping]:
        cursor = self._mappings.find(self._scope(integration)).sort("user_id", ASCENDING)
        return [MemberMapping.model_validate(doc) async for doc in cursor]

    async def get(self, integration: Integration, user_id: str) -> MemberMapping | None:
        doc = await self._mappings.find_one(
            {"_id": mapping_id(integration.id, user_id), **self._scope(integration)}
        )
        return MemberMapping.model_validate(doc) if doc else None

    async def holder(
        self, integration: Integration, member_identifier: str
    ) -> MemberMapping | None:
        """The mapping that holds the member confirmed, if any."""
        doc = await self._mappings.find_one(
            {
                **self._scope(integration),
                "member_identifier": member_identifier,
                "state": MappingState.CONFIRMED.value,
            }
        )
        return MemberMapping.model_validate(doc) if doc else None

    async def team(self, integration: Integration) -> list[TeamMember]:
        """The confirmed mappings, as the credential lease carries them."""
        cursor = self._mappings.find(
            {**self._scope(integration), "state": MappingState.CONFIRMED.value}
        ).sort("user_id", ASCENDING)
        return [
            TeamMember(identifier=doc["member_identifier"], user_id=doc["user_id"])
            async for doc in cursor
        ]

    async def put(
        self, mapping: MemberMapping, *, over: Collection[MappingState] | None = None
    ) -> bool:
        """Write the user's mapping, replacing one in a state of `over` (None: whatever it
        was). False when the user's mapping is in another state, and so stays (the upsert
        met its `_id`); MemberTaken when a confirmed member is someone else's."""
        key: Document = {"_id": mapping_id(mapping.integration_id, mapping.user_id)}
        if over is not None:
            key["state"] = {"$in": [state.value for state in over]}
        try:
            await self._mappings.update_one(key, {"$set": _document(mapping)}, upsert=True)
        except DuplicateKeyError as error:
            if over is None:  # only the confirmed members' index can refuse it
                raise MemberTaken from error
            return False
        return True

    async def delete(self, integration: Integration, user_id: str) -> MemberMapping | None:
        doc = await self._mappings.find_one_and_delete(
            {"_id": mapping_id(integration.id, user_id), **self._scope(integration)}
        )
        return MemberMapping.model_validate(doc) if doc else None


def _document(mapping: MemberMapping) -> Document:
    # JSON-mode values (enums as their strings) but the timestamp as a BSON date.
    return {**mapping.model_dump(mode="json"), "updated_at": mapping.updated_at}
