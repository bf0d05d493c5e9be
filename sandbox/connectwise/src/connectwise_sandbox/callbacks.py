"""Callbacks (ConnectWise's webhooks): registrations made through
`POST /system/callbacks`, the signing keys behind their `key_url`, and turning a change
event into signed deliveries. No HTTP here; `deliveries.py` sends.

Types and the records they cover: "Ticket" service tickets, "ProjectTicket" project
tickets, "Schedule" schedule entries, "Project" projects. Levels "Owner" and "All"
cover every record of the type; "Board" and "Company" only records whose `board/id` /
`company/id` equals the callback's `objectId`.

A callback belongs to the member whose credentials registered it: only that member
lists, reads or deletes it (the real product shows a company's callbacks to any member
allowed to; scoping them keeps parallel test integrations apart). Each owner has one
signing key, fetched from `key_url` = `{api base}/system/callbackKeys/{keyId}`.

Signature: `x-content-signature` = base64(HMAC-SHA256(key=SHA-256(signing key as UTF-8
bytes), message=the raw request body)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from connectwise_sandbox.deliveries import Deliverer, Delivery
from connectwise_sandbox.events import Action, ChangeEvent, EntityType
from connectwise_sandbox.records import JsonObject, format_timestamp
from connectwise_sandbox.schema import model_schema

LEVELS: Final = ("Owner", "Board", "Company", "All")
_EVERY_RECORD: Final = frozenset({"Owner", "All"})
KEY_PATH: Final = "/system/callbackKeys"


def sign(body: bytes, signing_key: str) -> str:
    """The `x-content-signature` of `body`."""
    key = hashlib.sha256(signing_key.encode()).digest()
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


@dataclass(frozen=True)
class Callback:
    id: int
    url: str
    object_id: int
    type: EntityType
    level: str
    description: str | None
    owner_id: int
    owner_identifier: str
    caller: str  # the caller key (see `callers.py`) of the credentials that registered it
    api_base: str  # absolute: scheme, host and API prefix the registration came through
    self_suppressed: bool
    inactive: bool
    created: str

    def record(self) -> JsonObject:
        """The `CallbackEntry` shape the API returns."""
        entry: JsonObject = {
            "id": self.id,
            "url": self.url,
            "objectId": self.object_id,
            "type": self.type.value,
            "level": self.level,
            "memberId": self.owner_id,
            "inactiveFlag": self.inactive,
            "isSoapCallbackFlag": False,
            "isSelfSuppressedFlag": self.self_suppressed,
        }
        if self.description is not None:
            entry["description"] = self.description
        entry["_info"] = {
            "lastUpdated": self.created,
            "updatedBy": self.owner_identifier,
            "dateEntered": self.created,
        }
        return entry

    def covers(self, event: ChangeEvent) -> bool:
        if self.inactive or event.entity is not self.type:
            return False
        if self.self_suppressed and event.actor == self.owner_identifier:
            return False
        if self.level in _EVERY_RECORD:
            return True
        reference = event.record.get("board" if self.level == "Board" else "company")
        return isinstance(reference, dict) and reference.get("id") == self.object_id


class DuplicateCallback(ValueError):
    pass


@dataclass(frozen=True)
class SigningKey:
    key_id: str
    secret: str


class CallbackRegistry:
    def __init__(
        self,
        *,
        company_id: str,
        deliverer: Deliverer,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.company_id = company_id
        self.deliverer = deliverer
        self._clock = clock or (lambda: datetime.now(UTC))
        self.schema = model_schema("CallbackEntry")
        # Not `reset()`: a fleet company's registry shares the deliverer, whose log a new
        # registry must leave alone.
        self._forget()

    def _forget(self) -> None:
        with self._lock:
            self._callbacks: dict[int, Callback] = {}
            self._keys: dict[int, SigningKey] = {}  # by owner member id
            self._next_id = 1

    def reset(self) -> None:
        """Forget every callback and signing key (and the delivery log)."""
        self._forget()
        self.deliverer.clear()

    # --- registrations -----------------------------------------------------------------

    def register(
        self,
        *,
        url: str,
        object_id: int,
        type_: EntityType,
        level: str,
        description: str | None,
        owner: JsonObject,
        caller: str,
        api_base: str,
        self_suppressed: bool = False,
        inactive: bool = False,
    ) -> Callback:
        with self._lock:
            for existing in self._callbacks.values():
                same = (existing.url, existing.type, existing.level, existing.object_id)
                if existing.owner_id == owner["id"] and same == (url, type_, level, object_id):
                    raise DuplicateCallback(
                        f"A {type_.value} callback to this url at level {level} already "
                        f"exists (id {existing.id})"
                    )
            callback = Callback(
                id=self._next_id,
                url=url,
                object_id=object_id,
                type=type_,
                level=level,
                description=description,
                owner_id=owner["id"],
                owner_identifier=owner["identifier"],
                caller=caller,
                api_base=api_base.rstrip("/"),
                self_suppressed=self_suppressed,
                inactive=inactive,
                created=format_timestamp(self._clock()),
            )
            self._callbacks[callback.id] = callback
            self._next_id += 1
            self._key_of(owner["id"])
        return callback

    def owned_by(self, member_id: int) -> list[Callback]:
        with self._lock:
            return [c for c in self._callbacks.values() if c.owner_id == member_id]

    def get(self, callback_id: int, member_id: int) -> Callback | None:
        with self._lock:
            callback = self._callbacks.get(callback_id)
        return callback if callback is not None and callback.owner_id == member_id else None

    def delete(self, callback_id: int, member_id: int) -> bool:
        with self._lock:
            callback = self._callbacks.get(callback_id)
            if callback is None or callback.owner_id != member_id:
                return False
            del self._callbacks[callback_id]
            return True

    def every(self) -> list[Callback]:
        with self._lock:
            return list(self._callbacks.values())

    # --- signing keys ------------------------------------------------------------------

    def _key_of(self, member_id: int) -> SigningKey:
        """The owner's key, made on first use. Caller holds the lock."""
        key = self._keys.get(member_id)
        if key is None:
            key = SigningKey(secrets.token_hex(16), secrets.token_urlsafe(32))
            self._keys[member_id] = key
        return key

    def key_id_of(self, member_id: int) -> str | None:
        with self._lock:
            key = self._keys.get(member_id)
        return key.key_id if key else None

    def signing_key(self, key_id: str) -> str | None:
        """The secret behind `key_id`; None for an unknown or rotated-away key."""
        with self._lock:
            for key in self._keys.values():
                if hmac.compare_digest(key.key_id.encode(), key_id.encode()):
                    return key.secret
        return None

    def rotate(self, member_id: int | None = None) -> list[int]:
        """New keys (and key ids) for one owner, or all; old key urls stop answering.
        Returns the member ids whose keys changed."""
        with self._lock:
            owners = [member_id] if member_id is not None else list(self._keys)
            rotated = [owner for owner in owners if owner in self._keys]
            for owner in rotated:
                del self._keys[owner]
                self._key_of(owner)
        return rotated

    # --- deliveries --------------------------------------------------------------------

    def on_change(self, event: ChangeEvent) -> None:
        """A store listener: one signed delivery per callback covering `event`."""
        with self._lock:
            matching = [c for c in self._callbacks.values() if c.covers(event)]
            keys = {c.owner_id: self._key_of(c.owner_id) for c in matching}
        if not matching:
            return
        entity = None
        if event.action is not Action.DELETED:
            entity = json.dumps(event.record, ensure_ascii=False, separators=(",", ":"))
        for callback in matching:
            key = keys[callback.owner_id]
            body = json.dumps(
                {
                    "Action": event.action.value,
                    "Type": event.entity.value,
                    "ID": event.record_id,
                    "CompanyId": self.company_id,
                    "MemberId": event.actor or callback.owner_identifier,
                    "Entity": entity,
                    "Metadata": {"key_url": f"{callback.api_base}{KEY_PATH}/{key.key_id}"},
                },
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
            self.deliverer.submit(
                Delivery(
                    callback_id=callback.id,
                    url=callback.url,
                    body=body,
                    signature=sign(body, key.secret),
                    action=event.action.value,
                    entity_type=event.entity.value,
                    record_id=event.record_id,
                )
            )
