"""ConnectWise callbacks (webhooks): registered for each connection, removed when it is
disconnected, and deliveries verified before they trigger a targeted fetch.

A delivery is trusted only when its `x-content-signature` is base64(HMAC-SHA256(key =
SHA-256(signing key), message = the raw body)) and the signing key came from the
delivery's `Metadata.key_url` on the integration's own API host: a forger can name any
key_url, so one pointing anywhere else is refused before it is fetched. Keys are cached,
and an unknown key is fetched at most once per `key_fetch_interval` per integration,
so forged deliveries cannot spend the integration's request budget.

The receiver only verifies and queues (`SyncScheduler.notify`); the fetch happens in a
sync run, well inside ConnectWise's 5-second delivery timeout. It refuses cheaply first:
a delivery without a well-formed signature or with a body that is not a callback is
refused before anything is leased, stored or asked; then deliveries are rationed per
integration and per source address; only then is the integration's site looked up (kept
for a few minutes, so a verified delivery with a known key leases nothing).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from limits import parse as parse_limit
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from syntaskio_common.connectwise import (
    BadRequest,
    ConnectWiseClient,
    ConnectWiseError,
    Forbidden,
    NotFound,
    RetryPolicy,
)
from syntaskio_common.connectwise_conditions import F
from syntaskio_common.credentials import CredentialLease
from syntaskio_common.egress import SiteRejected
from syntaskio_common.mongo import Document
from syntaskio_common.telemetry import meter
from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.assignment import Entity, IntegrationRef
from syntaskio_connector.engine import Changed

logger = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "x-content-signature"
KEY_PATH: Final = "system/callbackKeys/"
_KEY_ID: Final = re.compile(r"[A-Za-z0-9_-]{1,128}")
# The callback types we register (each delivery's `ID` names a record of that type).
CALLBACK_TYPES: Final = ("Ticket", "ProjectTicket", "Schedule", "Project")
# A key fetch must leave time to answer within ConnectWise's 5-second timeout.
KEY_FETCH_RETRY: Final = RetryPolicy(max_attempts=1)
REGISTRATION_RETRY: Final = timedelta(hours=1)
TOMBSTONE_KEPT: Final = timedelta(days=1)


def signature(body: bytes, signing_key: str) -> str:
    """The `x-content-signature` ConnectWise sends with `body`."""
    key = hashlib.sha256(signing_key.encode()).digest()
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode("ascii")


def receiver_url(base_url: str, integration_id: str) -> str:
    return f"{base_url.rstrip('/')}/webhooks/connectwise/{integration_id}"


DELIVERIES = meter.create_counter(
    "syntaskio.webhook.deliveries",
    unit="{delivery}",
    description="ConnectWise callback deliveries by outcome: accepted, or why refused",
)


class Rejection(StrEnum):
    UNSIGNED = "unsigned"
    FORGED = "forged"  # bad signature, a key_url off the integration's host, wrong company
    MALFORMED = "malformed"
    UNKNOWN_INTEGRATION = "unknown_integration"
    UNVERIFIABLE = "unverifiable"  # the signing key could not be fetched just now
    RATIONED = "rationed"  # too many deliveries for this integration or from this address


# Refused before any lease, database write or request: counted in metrics only.
CHEAP_REJECTIONS: Final = frozenset({Rejection.UNSIGNED, Rejection.MALFORMED, Rejection.RATIONED})
# base64 of an HMAC-SHA256: 43 characters and one "=".
_SIGNATURE: Final = re.compile(r"[A-Za-z0-9+/]{43}=")


class DeliveryRejected(Exception):
    def __init__(self, reason: Rejection, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail

    @property
    def status_code(self) -> int:
        """ConnectWise retries failed deliveries: worth it only when we could not check."""
        return {
            Rejection.UNSIGNED: 401,
            Rejection.FORGED: 401,
            Rejection.MALFORMED: 400,
            Rejection.UNKNOWN_INTEGRATION: 404,
            Rejection.UNVERIFIABLE: 503,
            Rejection.RATIONED: 429,
        }[self.reason]

    @property
    def headers(self) -> dict[str, str] | None:
        """When ConnectWise may try again, for the answers it retries."""
        if self.reason is Rejection.RATIONED:
            return {"Retry-After": "60"}
        if self.reason is Rejection.UNVERIFIABLE:
            return {"Retry-After": "5"}
        return None

    @property
    def may_hide_a_change(self) -> bool:
        """A genuine delivery refused because we could not check it (auth-service, the
        database or ConnectWise unavailable): worth a reconciliation, since ConnectWise
        stops retrying. Not so for a rationed key fetch, which anyone can cause by
        making up key ids."""
        return self.reason is Rejection.UNVERIFIABLE


class _Metadata(BaseModel):
    model_config = ConfigDict(extra="ignore")

    key_url: str = Field(min_length=1, max_length=2000)


class Delivery(BaseModel):
    """What ConnectWise posts; `Entity` (the record as a JSON string) is not used: the
    record is fetched, so what reaches the dashboard always comes from the API."""

    model_config = ConfigDict(extra="ignore")

    Action: str = Field(max_length=50)
    Type: str = Field(max_length=50)
    ID: int
    CompanyId: str = Field(max_length=100)
    Metadata: _Metadata

    def changed(self) -> Changed:
        """What to fetch again: the ticket; the member's schedule (a schedule entry's
        change is picked up by listing it again); or the project and its phases."""
        match self.Type:
            case "Ticket":
                return Changed(tickets={Entity.SERVICE_TICKET: frozenset({self.ID})})
            case "ProjectTicket":
                return Changed(tickets={Entity.PROJECT_TICKET: frozenset({self.ID})})
            case "Schedule":
                return Changed(schedule=True)
            case "Project":
                return Changed(projects=frozenset({self.ID}))
        return Changed()


class FetchRationed(DeliveryRejected):
    """A key fetch was due but this integration had one too recently."""

    @property
    def may_hide_a_change(self) -> bool:
        return False


@dataclass
class _CachedKey:
    secret: str
    fetched_at: float


class SigningKeys:
    """Signing keys by key_url, cached; fetches of unknown keys are rationed per
    integration (a forger can make up key ids, but not make us spend budget on them).
    Deliveries that arrive while their key is being fetched wait for that fetch."""

    def __init__(
        self,
        *,
        ttl_seconds: float = 3600.0,
        fetch_interval_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._interval = fetch_interval_seconds
        self._clock = clock
        self._keys: dict[tuple[str, str], _CachedKey] = {}
        self._last_fetch: dict[str, float] = {}
        self._fetching: dict[tuple[str, str], asyncio.Future[str]] = {}

    def cached(self, integration_id: str, path: str) -> str | None:
        found = self._keys.get((integration_id, path))
        if found is None or self._clock() - found.fetched_at > self._ttl:
            return None
        return found.secret

    def may_fetch(self, integration_id: str, path: str) -> bool:
        """Whether `fetch` would go ahead (or join a fetch under way) rather than be
        rationed: asked before leasing the credentials a fetch needs."""
        if (integration_id, path) in self._fetching:
            return True
        last = self._last_fetch.get(integration_id)
        return last is None or self._clock() - last >= self._interval

    async def fetch(self, client: ConnectWiseClient, integration_id: str, path: str) -> str:
        key = (integration_id, path)
        fetching = self._fetching.get(key)
        if fetching is None:
            if not self.may_fetch(integration_id, path):
                raise FetchRationed(Rejection.UNVERIFIABLE, "signing key fetches are rationed")
            now = self._clock()
            self._last_fetch[integration_id] = now
            fetching = asyncio.ensure_future(self._fetch(client, integration_id, path, now))
            self._fetching[key] = fetching
            fetching.add_done_callback(lambda _: self._fetching.pop(key, None))
        # Shielded: a waiter that gives up does not cancel the fetch the others wait for.
        return await asyncio.shield(fetching)

    async def _fetch(
        self, client: ConnectWiseClient, integration_id: str, path: str, now: float
    ) -> str:
        try:
            answer = await client.get(path)
        except NotFound:
            raise DeliveryRejected(Rejection.FORGED, "no such signing key") from None
        except (ConnectWiseError, SiteRejected) as error:
            raise DeliveryRejected(
                Rejection.UNVERIFIABLE, f"signing key unavailable: {error}"
            ) from None
        secret = answer.get("signing_key") if isinstance(answer, dict) else None
        if not isinstance(secret, str) or not secret:
            raise DeliveryRejected(Rejection.UNVERIFIABLE, "the key_url answered without a key")
        self._keys[(integration_id, path)] = _CachedKey(secret, now)
        return secret


def signing_key_path(key_url: str, api_base_url: str) -> str | None:
    """`system/callbackKeys/{id}` if `key_url` is exactly that under the integration's
    own API base; None for anything else (another host, port, scheme or path)."""
    url, own = urlsplit(key_url), urlsplit(api_base_url.rstrip("/") + "/")
    if (url.scheme, url.netloc.lower()) != (own.scheme, own.netloc.lower()):
        return None
    prefix = own.path + KEY_PATH
    if url.query or url.fragment or not url.path.startswith(prefix):
        return None
    key_id = url.path[len(prefix) :]
    return KEY_PATH + key_id if _KEY_ID.fullmatch(key_id) else None


class WebhookStats:
    """Deliveries accepted and rejected per integration (`webhook_stats`), shared by the
    replicas; rejections for integrations we do not know are counted under `unknown`."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._stats = db["webhook_stats"]

    async def accepted(self, integration_id: str) -> None:
        await self._stats.update_one(
            {"_id": integration_id},
            {"$inc": {"accepted": 1}, "$set": {"last_accepted_at": datetime.now(UTC)}},
            upsert=True,
        )

    async def rejected(self, integration_id: str | None, rejection: DeliveryRejected) -> None:
        await self._stats.update_one(
            {"_id": integration_id or "unknown"},
            {
                "$inc": {f"rejected.{rejection.reason.value}": 1},
                "$set": {
                    "last_rejected_at": datetime.now(UTC),
                    "last_rejection": rejection.reason.value,
                },
            },
            upsert=True,
        )

    async def get(self, integration_id: str) -> Document:
        doc = await self._stats.find_one({"_id": integration_id}) or {}
        return {"accepted": doc.get("accepted", 0), "rejected": doc.get("rejected", {})}


@dataclass(frozen=True)
class DeliveryLimits:
    """Deliveries taken per moving minute before the rest are refused with 429 (each
    replica on its own). ConnectWise delivers every tenant's callbacks from a few
    addresses: the per-address limit is for floods, far above a busy company's rate."""

    per_integration: str = "300/minute"
    per_source: str = "3000/minute"
    site_ttl_seconds: float = 300.0


@dataclass(frozen=True)
class _Site:
    """What a delivery is checked against: not secret, kept so a delivery whose key is
    known needs no credential lease."""

    api_base_url: str
    company_id: str
    seen_at: float


class WebhookReceiver:
    def __init__(
        self,
        access: ConnectWiseAccess,
        stats: WebhookStats,
        keys: SigningKeys | None = None,
        limits: DeliveryLimits | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._access = access
        self._stats = stats
        self._keys = keys or SigningKeys()
        self._limits = limits or DeliveryLimits()
        self._per_integration = parse_limit(self._limits.per_integration)
        self._per_source = parse_limit(self._limits.per_source)
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._clock = clock
        self._sites: dict[str, _Site] = {}

    async def receive(
        self, integration_id: str, body: bytes, signed: str | None, source: str
    ) -> Changed:
        """The verified delivery's changes; raises `DeliveryRejected` (and counts it)."""
        try:
            delivery = _well_formed(body, signed)
            await self._ration(integration_id, source)
            await self._verify(integration_id, delivery, body, signed or "")
        except DeliveryRejected as rejection:
            DELIVERIES.add(1, {"outcome": rejection.reason.value})
            if rejection.reason not in CHEAP_REJECTIONS:
                known = rejection.reason is not Rejection.UNKNOWN_INTEGRATION
                await self._stats.rejected(integration_id if known else None, rejection)
            if rejection.reason is not Rejection.RATIONED:  # a flood is one metric, not lines
                logger.warning(
                    "webhook delivery rejected",
                    extra={"integration_id": integration_id, "reason": rejection.reason.value},
                )
            raise
        DELIVERIES.add(1, {"outcome": "accepted"})
        await self._stats.accepted(integration_id)
        return delivery.changed()

    async def _ration(self, integration_id: str, source: str) -> None:
        limiter = self._limiter
        if not (
            await limiter.hit(self._per_source, "source", source)
            and await limiter.hit(self._per_integration, "integration", integration_id)
        ):
            raise DeliveryRejected(Rejection.RATIONED, "too many deliveries; try again later")

    async def _verify(
        self, integration_id: str, delivery: Delivery, body: bytes, signed: str
    ) -> None:
        lease = None
        site = self._site(integration_id)
        if site is None:
            lease = await self._lease(integration_id)
            site = self._remember(lease)
        path = signing_key_path(delivery.Metadata.key_url, site.api_base_url)
        if path is None:
            raise DeliveryRejected(Rejection.FORGED, "key_url is not on the integration's host")
        if delivery.CompanyId.casefold() != site.company_id.casefold():
            raise DeliveryRejected(Rejection.FORGED, "the delivery is for another company")
        cached = self._keys.cached(integration_id, path)
        if cached is not None and _matches(body, cached, signed):
            return
        # Unknown or rotated key: fetch it (rationed, and decided before leasing the
        # credentials the fetch needs), then check again.
        if not self._keys.may_fetch(integration_id, path):
            if cached is None:
                raise FetchRationed(Rejection.UNVERIFIABLE, "signing key fetches are rationed")
            raise DeliveryRejected(Rejection.FORGED, "the signature does not match")
        lease = lease or await self._lease(integration_id)
        client = self._access.client(lease, retry=KEY_FETCH_RETRY)
        secret = await self._keys.fetch(client, integration_id, path)
        if not _matches(body, secret, signed):
            raise DeliveryRejected(Rejection.FORGED, "the signature does not match")

    async def _lease(self, integration_id: str) -> CredentialLease:
        try:
            lease = await self._access.lease(integration_id, purpose="webhook")
        except httpx.HTTPError as error:
            # auth-service unreachable or down (its database, say): ConnectWise retries.
            raise DeliveryRejected(
                Rejection.UNVERIFIABLE, f"the connection cannot be checked now: {error}"
            ) from None
        if lease is None:
            self._sites.pop(integration_id, None)
            raise DeliveryRejected(Rejection.UNKNOWN_INTEGRATION, "no such active connection")
        return lease

    def _site(self, integration_id: str) -> _Site | None:
        site = self._sites.get(integration_id)
        if site is None or self._clock() - site.seen_at > self._limits.site_ttl_seconds:
            return None
        return site

    def _remember(self, lease: CredentialLease) -> _Site:
        site = _Site(lease.api_base_url, lease.company_id, self._clock())
        self._sites[lease.integration_id] = site
        return site


def _well_formed(body: bytes, signed: str | None) -> Delivery:
    """A delivery that could be genuine, judged from the request alone."""
    if not signed:
        raise DeliveryRejected(Rejection.UNSIGNED, f"no {SIGNATURE_HEADER} header")
    if not _SIGNATURE.fullmatch(signed.strip()):
        raise DeliveryRejected(Rejection.UNSIGNED, "the signature is not a base64 HMAC-SHA256")
    return _parse(body)


def _matches(body: bytes, secret: str, signed: str) -> bool:
    return hmac.compare_digest(signature(body, secret).encode(), signed.strip().encode())


def _parse(body: bytes) -> Delivery:
    try:
        return Delivery.model_validate(json.loads(body))
    except (ValueError, ValidationError) as error:
        raise DeliveryRejected(
            Rejection.MALFORMED, f"not a ConnectWise callback: {error}"
        ) from None


class WebhookRegistrations:
    """The callbacks registered for each integration (`webhook_registrations`): made on
    the first full sync of a connection's generation, removed on disconnect.

    A disconnect leaves a tombstone (`removed_at`) rather than no record, so a sync
    still running on a lease taken before it cannot register them again: one that
    starts later sees the tombstone, and one already registering finds it when it
    records what it made, and takes that back."""

    def __init__(self, db: AsyncDatabase[Document], base_url: str | None) -> None:
        self._registrations = db["webhook_registrations"]
        self.base_url = base_url  # None: webhooks are off, polling alone keeps up
        # integration → (generation, url) known registered: its later runs read nothing.
        # A disconnect stops its runs; a reconnect is a new generation.
        self._done: dict[str, tuple[int, str]] = {}

    async def create_indexes(self) -> None:
        # A sync runs for minutes at most: a day outlives any that saw the connection.
        await self._registrations.create_index(
            "removed_at", expireAfterSeconds=int(TOMBSTONE_KEPT.total_seconds()), name="expiry"
        )

    async def ensure(self, client: ConnectWiseClient, ref: IntegrationRef) -> None:
        """Register whichever callback is missing, once per generation
        (no API request when they are known to be there). A refusal (say, the member
        may not manage callbacks) is recorded and tried again an hour later; syncing
        goes on without webhooks meanwhile."""
        if self.base_url is None:
            return
        url = receiver_url(self.base_url, ref.integration_id)
        if self._done.get(ref.integration_id) == (ref.generation, url):
            return
        known = await self._registrations.find_one({"_id": ref.integration_id}) or {}
        if "removed_at" in known:
            return
        if known.get("generation") == ref.generation and known.get("url") == url:
            retry_at = known.get("retry_at")
            if retry_at is None:
                self._remember(ref.integration_id, (ref.generation, url))
                return
            if retry_at > datetime.now(UTC):
                return
        record: Document = {"tenant_id": ref.tenant_id, "generation": ref.generation, "url": url}
        try:
            record["callbacks"] = await self._register(client, url)
        except (BadRequest, Forbidden, NotFound) as error:
            logger.warning(
                "cannot register ConnectWise callbacks",
                extra={"integration_id": ref.integration_id, "error": str(error)},
            )
            record |= {"error": str(error), "retry_at": datetime.now(UTC) + REGISTRATION_RETRY}
        record["registered_at"] = datetime.now(UTC)
        try:
            await self._registrations.replace_one(
                {"_id": ref.integration_id, "removed_at": {"$exists": False}}, record, upsert=True
            )
            if "error" not in record:
                self._remember(ref.integration_id, (ref.generation, url))
        except DuplicateKeyError:
            # Disconnected while we registered: the tombstone's _id blocked the upsert.
            await self._delete_ours(client, url)

    async def _register(self, client: ConnectWiseClient, url: str) -> dict[str, int]:
        existing = await _ours(client, url)
        types = {str(c.get("type", "")).casefold(): int(c["id"]) for c in existing}
        callbacks: dict[str, int] = {}
        for callback_type in CALLBACK_TYPES:
            callback_id = types.get(callback_type.casefold())
            if callback_id is None:
                created = await client.post(
                    "system/callbacks",
                    {
                        "url": url,
                        "objectId": 1,
                        "type": callback_type,
                        "level": "Owner",
                        "description": "Syntaskio task dashboard",
                    },
                )
                callback_id = int(created["id"])
            callbacks[callback_type] = callback_id
        return callbacks

    def _remember(self, integration_id: str, registered: tuple[int, str]) -> None:
        if len(self._done) >= 100_000:
            self._done.clear()  # rare: each costs one read to learn again
        self._done[integration_id] = registered

    async def registration(self, integration_id: str) -> Document | None:
        return await self._registrations.find_one({"_id": integration_id})

    async def remove(self, client: ConnectWiseClient, integration_id: str) -> int:
        """Delete our callbacks for the integration; how many were deleted."""
        self._done.pop(integration_id, None)
        await self._registrations.replace_one(
            {"_id": integration_id}, {"removed_at": datetime.now(UTC)}, upsert=True
        )
        if self.base_url is None:
            return 0
        return await self._delete_ours(client, receiver_url(self.base_url, integration_id))

    async def _delete_ours(self, client: ConnectWiseClient, url: str) -> int:
        removed = 0
        for callback in await _ours(client, url):
            try:
                await client.delete(f"system/callbacks/{int(callback['id'])}")
                removed += 1
            except NotFound:
                pass  # removed in ConnectWise already
        return removed


async def _ours(client: ConnectWiseClient, url: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    async for page in client.pages("system/callbacks", conditions=F("url") == url):
        found.extend(page)
    return found
