"""Webhook verification pieces: the signature, which key_urls may be fetched, what a
delivery names, and how signing-key fetches are rationed."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from credential_leases import api_key_lease
from hypothesis import given
from hypothesis import strategies as st

from syntaskio_common.connectwise import ConnectWiseClient
from syntaskio_connector.assignment import Entity
from syntaskio_connector.engine import Changed
from syntaskio_connector.webhooks import (
    Delivery,
    DeliveryLimits,
    DeliveryRejected,
    FetchRationed,
    Rejection,
    SigningKeys,
    WebhookReceiver,
    signature,
    signing_key_path,
)

BASE = "https://api-na.myconnectwise.net/v2025_1/apis/3.0/"


def test_signature_is_the_hmac_of_the_body_under_the_hashed_key() -> None:
    body, key = b'{"ID": 7}', "s3cret"
    expected = hmac.new(hashlib.sha256(key.encode()).digest(), body, hashlib.sha256).digest()
    assert signature(body, key) == base64.b64encode(expected).decode()
    assert signature(body + b" ", key) != signature(body, key)
    assert signature(body, key + "x") != signature(body, key)


@pytest.mark.parametrize(
    "key_url",
    [
        f"{BASE}system/callbackKeys/abc123",
        f"{BASE}system/callbackKeys/0f3a-9c_e1",
        f"{BASE.upper()[:8].lower()}API-NA.myconnectwise.net/v2025_1/apis/3.0/system/callbackKeys/k",
    ],
)
def test_key_urls_under_the_integrations_own_api_are_allowed(key_url: str) -> None:
    path = signing_key_path(key_url, BASE)
    assert path is not None
    assert path == "system/callbackKeys/" + key_url.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    "key_url",
    [
        "https://evil.example/v2025_1/apis/3.0/system/callbackKeys/abc",
        "http://api-na.myconnectwise.net/v2025_1/apis/3.0/system/callbackKeys/abc",
        "https://api-na.myconnectwise.net:8443/v2025_1/apis/3.0/system/callbackKeys/abc",
        "https://api-na.myconnectwise.net.evil.example/v2025_1/apis/3.0/system/callbackKeys/a",
        "https://api-na.myconnectwise.net@evil.example/v2025_1/apis/3.0/system/callbackKeys/a",
        f"{BASE}system/members/abc",
        f"{BASE}system/callbackKeys/",
        f"{BASE}system/callbackKeys/../../members",
        f"{BASE}system/callbackKeys/abc?x=1",
        f"{BASE}system/callbackKeys/abc#frag",
        f"{BASE}system/callbackKeys/a/b",
        "https://169.254.169.254/latest/meta-data/",
    ],
)
def test_key_urls_anywhere_else_are_refused(key_url: str) -> None:
    assert signing_key_path(key_url, BASE) is None


@given(st.text(max_size=200))
def test_no_key_url_off_the_api_prefix_is_ever_allowed(suffix: str) -> None:
    key_url = "https://api-na.myconnectwise.net/" + suffix
    path = signing_key_path(key_url, BASE)
    if path is not None:
        assert key_url == BASE + path


def delivery(callback_type: str, record_id: int = 42) -> Delivery:
    return Delivery.model_validate(
        {
            "Action": "updated",
            "Type": callback_type,
            "ID": record_id,
            "CompanyId": "acme",
            "MemberId": "atech",
            "Entity": "{}",
            "Metadata": {"key_url": f"{BASE}system/callbackKeys/k"},
        }
    )


def test_a_delivery_names_the_record_to_fetch_again() -> None:
    assert delivery("Ticket").changed() == Changed(tickets={Entity.SERVICE_TICKET: frozenset({42})})
    assert delivery("ProjectTicket", 7).changed() == Changed(
        tickets={Entity.PROJECT_TICKET: frozenset({7})}
    )
    assert delivery("Schedule").changed() == Changed(schedule=True)
    assert delivery("Project", 9).changed() == Changed(projects=frozenset({9}))
    assert not delivery("Company").changed()


class FakeClient:
    """Answers the key path with a key, counting calls (the part of
    `ConnectWiseClient` that `SigningKeys` uses)."""

    base_url = BASE

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.paths: list[str] = []

    async def get(self, path: str) -> Any:
        self.paths.append(path)
        return self.answer


def as_client(fake: FakeClient) -> ConnectWiseClient:
    return fake  # type: ignore[return-value]


async def test_key_fetches_are_rationed_per_integration_and_cached() -> None:
    now = [1000.0]
    keys = SigningKeys(ttl_seconds=3600, fetch_interval_seconds=30, clock=lambda: now[0])
    fake = FakeClient({"signing_key": "k1"})
    path = "system/callbackKeys/k"
    assert await keys.fetch(as_client(fake), "int-1", path) == "k1"
    assert fake.paths == [path]
    assert keys.cached("int-1", path) == "k1"
    assert keys.cached("int-2", path) is None  # keys are per integration
    # Another made-up key for the same integration within the interval: not fetched.
    with pytest.raises(FetchRationed):
        await keys.fetch(as_client(fake), "int-1", "system/callbackKeys/other")
    assert len(fake.paths) == 1
    # Another integration has its own ration.
    assert await keys.fetch(as_client(fake), "int-2", path) == "k1"
    now[0] += 31
    assert await keys.fetch(as_client(fake), "int-1", "system/callbackKeys/other")
    now[0] += 3600
    assert keys.cached("int-1", path) is None  # expired


async def test_a_key_url_that_answers_without_a_key_is_unverifiable() -> None:
    keys = SigningKeys()
    with pytest.raises(DeliveryRejected) as raised:
        await keys.fetch(
            as_client(FakeClient({"nope": 1})), "int-1", f"{BASE}system/callbackKeys/k"
        )
    assert raised.value.reason is Rejection.UNVERIFIABLE
    assert raised.value.status_code == 503


def test_rejections_map_to_statuses_connectwise_understands() -> None:
    assert DeliveryRejected(Rejection.FORGED, "x").status_code == 401
    assert DeliveryRejected(Rejection.UNSIGNED, "x").status_code == 401
    assert DeliveryRejected(Rejection.MALFORMED, "x").status_code == 400
    assert json.dumps({"reason": Rejection.FORGED}) == '{"reason": "forged"}'


async def test_deliveries_waiting_for_the_same_key_share_one_fetch() -> None:
    keys = SigningKeys(fetch_interval_seconds=30)
    release = asyncio.Event()

    class SlowClient(FakeClient):
        async def get(self, path: str) -> Any:
            self.paths.append(path)
            await release.wait()
            return self.answer

    slow = SlowClient({"signing_key": "k1"})
    path = "system/callbackKeys/k"
    waiting = [asyncio.create_task(keys.fetch(as_client(slow), "int-1", path)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()

    # All three verified with the one fetch (none refused as "rationed").
    assert await asyncio.gather(*waiting) == ["k1", "k1", "k1"]
    assert slow.paths == [path]


class FakeAccess:
    """The receiver's access port: counts leases; the integration's site is BASE."""

    def __init__(self) -> None:
        self.leases = 0
        self.client_answer: Any = {"signing_key": "real"}

    async def lease(self, integration_id: str, **_: Any) -> Any:
        self.leases += 1
        return api_key_lease(integration_id, api_base_url=BASE)

    def client(self, lease: Any, **_: Any) -> FakeClient:
        return FakeClient(self.client_answer)


class FakeStats:
    def __init__(self) -> None:
        self.writes: list[str] = []

    async def accepted(self, integration_id: str) -> None:
        self.writes.append("accepted")

    async def rejected(self, integration_id: str | None, rejection: DeliveryRejected) -> None:
        self.writes.append(rejection.reason.value)


def receiver(limits: DeliveryLimits | None = None) -> tuple[WebhookReceiver, FakeAccess, FakeStats]:
    access, stats = FakeAccess(), FakeStats()
    made = WebhookReceiver(access, stats, SigningKeys(), limits)  # type: ignore[arg-type]
    return made, access, stats


def genuine(record_id: int = 1) -> bytes:
    return json.dumps(
        {
            "Action": "updated",
            "Type": "Ticket",
            "ID": record_id,
            "CompanyId": "acme",
            "Metadata": {"key_url": f"{BASE}system/callbackKeys/k1"},
        }
    ).encode()


@pytest.mark.parametrize(
    ("body", "signed", "reason"),
    [
        (genuine(), None, Rejection.UNSIGNED),
        (genuine(), "", Rejection.UNSIGNED),
        (genuine(), "c2ln", Rejection.UNSIGNED),  # not the shape of an HMAC-SHA256
        (genuine(), "x" * 43 + "=" + "x", Rejection.UNSIGNED),
        (b"<xml/>", signature(b"<xml/>", "real"), Rejection.MALFORMED),
        (b'{"ID": 1}', signature(b'{"ID": 1}', "real"), Rejection.MALFORMED),
    ],
)
async def test_what_the_request_alone_refutes_is_refused_before_any_lease_or_write(
    body: bytes, signed: str | None, reason: Rejection
) -> None:
    receive, access, stats = receiver()
    with pytest.raises(DeliveryRejected) as raised:
        await receive.receive("int-1", body, signed, "203.0.113.9")
    assert raised.value.reason is reason
    assert access.leases == 0
    assert stats.writes == []


async def test_a_verified_delivery_leases_once_then_rides_on_the_known_site_and_key() -> None:
    receive, access, stats = receiver()
    for record_id in (1, 2, 3):
        body = genuine(record_id)
        changed = await receive.receive("int-1", body, signature(body, "real"), "203.0.113.9")
        assert changed.tickets[Entity.SERVICE_TICKET] == frozenset({record_id})
    assert access.leases == 1
    assert stats.writes == ["accepted"] * 3


async def test_deliveries_are_rationed_per_integration_and_per_source() -> None:
    limits = DeliveryLimits(per_integration="3/minute", per_source="5/minute")
    receive, access, _ = receiver(limits)
    body = genuine()
    signed = signature(body, "real")
    for _ in range(3):
        await receive.receive("int-1", body, signed, "203.0.113.9")
    with pytest.raises(DeliveryRejected) as raised:
        await receive.receive("int-1", body, signed, "198.51.100.7")  # another address
    assert raised.value.reason is Rejection.RATIONED
    assert raised.value.status_code == 429
    assert raised.value.headers == {"Retry-After": "60"}
    # The first address has used 3 of its 5: two more for other integrations, then no.
    await receive.receive("int-2", body, signed, "203.0.113.9")
    await receive.receive("int-3", body, signed, "203.0.113.9")
    with pytest.raises(DeliveryRejected) as again:
        await receive.receive("int-4", body, signed, "203.0.113.9")
    assert again.value.reason is Rejection.RATIONED
    assert access.leases == 3  # int-1, int-2 and int-3; nothing for the rationed


async def test_a_made_up_key_is_neither_fetched_nor_leased_for_within_the_interval() -> None:
    receive, access, _ = receiver()
    body = genuine()
    await receive.receive("int-1", body, signature(body, "real"), "203.0.113.9")
    other = body.replace(b"callbackKeys/k1", b"callbackKeys/made-up")
    for _ in range(3):
        with pytest.raises(DeliveryRejected) as raised:
            await receive.receive("int-1", other, signature(other, "guess"), "203.0.113.9")
        assert raised.value.reason is Rejection.UNVERIFIABLE  # its fetch is rationed
        # ...and a forger making up key ids must not cost a reconciliation each time.
        assert not raised.value.may_hide_a_change
    # The one lease of the first delivery: the rationed fetches were decided unleased.
    assert access.leases == 1


async def test_a_delivery_we_could_not_check_asks_for_a_reconciliation() -> None:
    class UnreachableAuthService(FakeAccess):
        async def lease(self, integration_id: str, **_: Any) -> Any:
            raise httpx.ConnectError("auth-service is down")

    stats = FakeStats()
    receive = WebhookReceiver(UnreachableAuthService(), stats, SigningKeys())  # type: ignore[arg-type]
    body = genuine()
    with pytest.raises(DeliveryRejected) as raised:
        await receive.receive("int-1", body, signature(body, "real"), "203.0.113.9")
    assert raised.value.reason is Rejection.UNVERIFIABLE
    assert raised.value.status_code == 503  # ConnectWise retries a while...
    assert raised.value.may_hide_a_change  # ...and then a reconciliation catches up
