"""Connecting ConnectWise for real: the OAuth2 + PKCE flow against the sandbox's consent
page and token endpoint, API-member keys, impersonation, renewal, disconnect — with
auth-service, the connector and the gateway running as their own processes."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2e_helpers import (
    TICKET_TYPES,
    answer_consent,
    assigned_open_ticket_ids,
    auth_service,
    callback_params,
    dashboard_ids,
    eventually,
    lease,
    sandbox_keys,
    signed_in,
    topic_events,
)
from pymongo import MongoClient
from pymongo.database import Database

from syntaskio_auth.vault import Vault
from syntaskio_common import events, topics
from syntaskio_devstack.stack import DEV_CONNECTWISE_CLIENT_ID, EmbeddedStack, dev_secrets

SCOPES = ["ConnectWiseManageCallback", "ServiceTicket", "ProjectTask"]


@pytest.fixture(scope="module")
def db(system: EmbeddedStack) -> Iterator[Database[dict[str, Any]]]:
    client: MongoClient[dict[str, Any]] = MongoClient(system.mongodb_url, tz_aware=True)
    yield client[system.config.database_name]
    client.close()


def new_tenant() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


def site(system: EmbeddedStack) -> dict[str, str]:
    return {"site": f"http://{system.sandbox_site}", "company_id": "syntaskio"}


def oauth_stats(system: EmbeddedStack) -> dict[str, Any]:
    stats: dict[str, Any] = httpx.get(f"{system.url('sandbox')}/_sandbox/oauth").json()
    return stats


def start(client: httpx.Client, system: EmbeddedStack) -> str:
    response = client.post("/v1/integrations/connectwise/oauth/start", json=site(system))
    assert response.status_code == 200, response.text
    url: str = response.json()["authorization_url"]
    return url


def finish(client: httpx.Client, params: dict[str, str]) -> str:
    """Call the callback as the browser would; return the settings-page status."""
    response = client.get("/v1/integrations/connectwise/oauth/callback", params=params)
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith("/settings?connectwise=")
    return callback_params(location)["connectwise"]


def connect_oauth(
    client: httpx.Client, system: EmbeddedStack, member: str = "atech"
) -> dict[str, Any]:
    location = answer_consent(start(client, system), "approve", member)
    assert finish(client, callback_params(location)) == "connected"
    [integration] = client.get("/v1/integrations").json()
    return dict(integration)


def vault(system: EmbeddedStack) -> Vault:
    secrets = dev_secrets(system.config.data_dir)
    keys = {k: base64.b64decode(v) for k, v in json.loads(secrets["VAULT_KEYS"]).items()}
    return Vault(keys, secrets["VAULT_PRIMARY_KEY_ID"])


def stored_secrets(
    system: EmbeddedStack, db: Database[dict[str, Any]], integration: dict[str, Any]
) -> dict[str, str]:
    doc = db["credentials"].find_one({"_id": integration["id"]})
    assert doc is not None
    return vault(system).open_fields(doc["secrets"], integration["tenant_id"], integration["id"])


def expire_soon(db: Database[dict[str, Any]], integration_id: str) -> None:
    """As if an hour had passed: the access token is about to expire."""
    db["credentials"].update_one(
        {"_id": integration_id}, {"$set": {"expires_at": datetime.now(UTC) + timedelta(seconds=5)}}
    )


def integration_events(system: EmbeddedStack, integration_id: str) -> list[str]:
    """The lifecycle event types auth-service published about one integration, in order
    (the connector's sync events share the topic)."""

    return [
        event.type
        for event in topic_events(system, topics.INTEGRATIONS)
        if event.subject == f"integration/{integration_id}"
        and event.source == "/syntaskio/auth-service"
    ]


def test_oauth_connects_through_the_gateway_and_tickets_appear(system: EmbeddedStack) -> None:
    with signed_in(system, "olivia@acme-msp.example", new_tenant()) as browser:
        started = browser.post("/api/v1/integrations/connectwise/oauth/start", json=site(system))
        assert started.status_code == 200, started.text
        url = started.json()["authorization_url"]
        query = callback_params(url)
        assert url.startswith(f"{system.url('sandbox')}/v2025_1/apis/3.0/system/oauth/authorize?")
        assert query["code_challenge_method"] == "S256"
        assert query["scope"].split() == SCOPES
        assert query["redirect_uri"] == system.oauth_redirect_uri
        assert "code_verifier" not in url
        assert "client_secret" not in url

        location = answer_consent(url, "approve", "atech")
        assert location.startswith(system.oauth_redirect_uri)
        landed = browser.get(location)  # the provider's redirect, followed by the browser
        assert landed.status_code == 303, landed.text
        assert landed.headers["location"] == "/settings?connectwise=connected"

        [integration] = browser.get("/api/v1/integrations").json()
        assert integration["auth_method"] == "oauth2"
        assert integration["status"] == "active"
        assert integration["member_identifier"] == "atech"
        assert integration["scopes"] == SCOPES
        # The connector syncs with the OAuth access token.
        expected = assigned_open_ticket_ids(system, "atech")
        assert eventually(lambda: dashboard_ids(browser) == expected)


def test_denying_access_connects_nothing(
    system: EmbeddedStack, db: Database[dict[str, Any]]
) -> None:
    with auth_service(system, "dan@acme-msp.example", new_tenant()) as client:
        params = callback_params(answer_consent(start(client, system), "deny"))
        assert params["error"] == "access_denied"
        assert finish(client, params) == "denied"
        [integration] = client.get("/v1/integrations").json()
        assert integration["status"] == "error"
        assert "access_denied" in integration["last_error"]
        assert db["credentials"].find_one({"_id": integration["id"]}) is None


def test_a_state_is_single_use(system: EmbeddedStack) -> None:
    with auth_service(system, "sam@acme-msp.example", new_tenant()) as client:
        params = callback_params(answer_consent(start(client, system), "approve"))
        assert finish(client, params) == "connected"
        [before] = client.get("/v1/integrations").json()
        assert finish(client, params) == "expired_state"
        [after] = client.get("/v1/integrations").json()
        assert after == before


def test_an_expired_state_is_refused(system: EmbeddedStack, db: Database[dict[str, Any]]) -> None:
    tenant = new_tenant()
    with auth_service(system, "eve@acme-msp.example", tenant) as client:
        url = start(client, system)
        # Eleven minutes later (the state lives for ten):
        db["oauth_states"].update_many(
            {"tenant_id": tenant},
            {"$set": {"expires_at": datetime.now(UTC) - timedelta(minutes=1)}},
        )
        assert finish(client, callback_params(answer_consent(url, "approve"))) == "expired_state"
        [integration] = client.get("/v1/integrations").json()
        assert integration["status"] == "error"
        assert "too long" in integration["last_error"]


def test_a_state_only_works_for_the_user_who_started_the_flow(system: EmbeddedStack) -> None:
    tenant = new_tenant()
    with (
        auth_service(system, "victim@acme-msp.example", tenant) as victim,
        auth_service(system, "attacker@acme-msp.example", tenant) as attacker,
    ):
        params = callback_params(answer_consent(start(victim, system), "approve"))
        assert finish(attacker, params) == "expired_state"
        assert attacker.get("/v1/integrations").json() == []
        assert finish(victim, params) == "connected"


def test_a_code_redeemed_with_another_flows_verifier_fails(system: EmbeddedStack) -> None:
    """Code injection: PKCE ties each code to the verifier of the flow that asked for it."""
    with auth_service(system, "pkce@acme-msp.example", new_tenant()) as client:
        first = callback_params(answer_consent(start(client, system), "approve"))
        second = callback_params(answer_consent(start(client, system), "approve"))
        swapped = {"state": first["state"], "code": second["code"]}
        assert finish(client, swapped) == "exchange_failed"
        [integration] = client.get("/v1/integrations").json()
        assert integration["status"] == "error"


def test_workers_refreshing_at_once_cause_one_refresh(
    system: EmbeddedStack, db: Database[dict[str, Any]]
) -> None:
    with auth_service(system, "rita@acme-msp.example", new_tenant()) as client:
        integration = connect_oauth(client, system)
        before = stored_secrets(system, db, integration)
        refreshes = oauth_stats(system)["grants"]["refresh_token"]
        expire_soon(db, integration["id"])
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(lambda _: lease(system, integration["id"]), range(8)))
        assert [a.status_code for a in answers] == [200] * 8
        assert oauth_stats(system)["grants"]["refresh_token"] == refreshes + 1
        tokens = {a.json()["access_token"] for a in answers}
        after = stored_secrets(system, db, integration)
        assert tokens == {after["access_token"]}
        assert after["access_token"] != before["access_token"]
        assert after["refresh_token"] != before["refresh_token"]  # rotated


def test_a_reused_refresh_token_expires_the_connection(
    system: EmbeddedStack, db: Database[dict[str, Any]]
) -> None:
    with auth_service(system, "rex@acme-msp.example", new_tenant()) as client:
        integration = connect_oauth(client, system)
        stolen = stored_secrets(system, db, integration)["refresh_token"]
        expire_soon(db, integration["id"])
        renewed = lease(system, integration["id"])
        assert renewed.status_code == 200
        # Someone replays the old refresh token: the provider revokes the whole family.
        replay = httpx.post(
            f"{integration['api_base_url']}system/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": stolen},
            auth=(
                DEV_CONNECTWISE_CLIENT_ID,
                dev_secrets(system.config.data_dir)["OAUTH_CLIENT_SECRET"],
            ),
        )
        assert replay.status_code == 400
        assert replay.json()["error"] == "invalid_grant"
        # ConnectWise now rejects our token; whoever reports it first (this call or the
        # connector's next sync) finds the refresh refused: 409, or 404 once expired.
        refused = lease(system, integration["id"], rejected=renewed.json()["version"])
        assert refused.status_code in (404, 409)
        [expired] = client.get("/v1/integrations").json()
        assert expired["status"] == "expired"
        assert "Reconnect" in expired["last_error"]
        assert integration_events(system, integration["id"])[-1] == events.INTEGRATION_EXPIRED
        # Reconnecting brings the same connection back, not a twin.
        again = connect_oauth(client, system)
        assert again["id"] == integration["id"]
        assert again["status"] == "active"


def test_disconnect_revokes_forgets_and_announces(
    system: EmbeddedStack, db: Database[dict[str, Any]]
) -> None:
    with auth_service(system, "dora@acme-msp.example", new_tenant()) as client:
        integration = connect_oauth(client, system)
        synced = {
            "tenant_id": integration["tenant_id"],
            "integration_id": integration["id"],
            "deleted": False,
        }
        assert eventually(lambda: db["tasks"].count_documents(synced) > 0)
        revoked = oauth_stats(system)["revoked_families"]
        response = client.delete(f"/v1/integrations/{integration['id']}")
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "disconnected"
        assert oauth_stats(system)["revoked_families"] == revoked + 1
        assert db["credentials"].find_one({"_id": integration["id"]}) is None
        assert lease(system, integration["id"]).status_code == 404
        assert db["audit_log"].find_one(
            {"integration_id": integration["id"], "action": "disconnected"}
        )
        assert eventually(
            lambda: (
                integration_events(system, integration["id"])[-1:]
                == [events.INTEGRATION_DISCONNECTED]
            )
        )
        # The aggregator takes the integration's tasks off the dashboard, and records
        # the connection was still sending when it was cut off do not bring them back.
        assert eventually(lambda: db["tasks"].count_documents(synced) == 0)
        time.sleep(3)
        assert db["tasks"].count_documents(synced) == 0
        # Reconnecting syncs everything again (the old checkpoint belongs to the old
        # connection), so the member's tickets are all back, once each (phases are off).
        assert connect_oauth(client, system)["id"] == integration["id"]
        expected = assigned_open_ticket_ids(system, "atech")
        tickets = synced | {"source_type": {"$in": list(TICKET_TYPES)}}
        assert eventually(lambda: db["tasks"].count_documents(tickets) == len(expected))
        assert {t["external_id"] for t in db["tasks"].find(tickets)} == expected
        assert db["tasks"].count_documents(synced) == len(expected)


def test_another_tenant_cannot_see_or_disconnect_an_integration(system: EmbeddedStack) -> None:
    with auth_service(system, "owner@acme-msp.example", new_tenant()) as owner:
        integration = connect_oauth(owner, system)
        for outsider in (
            auth_service(
                system, "owner@acme-msp.example", new_tenant()
            ),  # same user id, other tenant
            auth_service(system, "colleague@acme-msp.example", integration["tenant_id"]),
        ):
            with outsider:
                assert outsider.get(f"/v1/integrations/{integration['id']}").status_code == 404
                assert outsider.delete(f"/v1/integrations/{integration['id']}").status_code == 404
        assert owner.get(f"/v1/integrations/{integration['id']}").json()["status"] == "active"


def test_impersonation_mints_short_lived_member_keys_and_renews_them(system: EmbeddedStack) -> None:
    api_member = sandbox_keys(system, "syntaskio-api")
    with auth_service(system, "ivan@acme-msp.example", new_tenant()) as client:
        response = client.post(
            "/v1/integrations/connectwise/api-key",
            json={
                **site(system),
                "public_key": api_member["public_key"],
                "private_key": api_member["private_key"],
                "member": "atech",
                "impersonate": True,
            },
        )
        assert response.status_code == 201, response.text
        integration = response.json()
        assert (integration["auth_method"], integration["member_identifier"]) == (
            "impersonation",
            "atech",
        )
        first = lease(system, integration["id"]).json()
        assert first["scheme"] == "basic"
        assert first["public_key"] != api_member["public_key"]
        assert acting_member(system, first) == "atech"

        httpx.post(f"{system.url('sandbox')}/_sandbox/member-tokens/expire").raise_for_status()
        renewed = lease(system, integration["id"], rejected=first["version"]).json()
        assert renewed["public_key"] != first["public_key"]
        assert acting_member(system, renewed) == "atech"


def acting_member(system: EmbeddedStack, leased: dict[str, Any]) -> str:
    response = httpx.get(
        f"{leased['api_base_url']}system/myMembers",
        auth=(f"{leased['company_id']}+{leased['public_key']}", leased["private_key"]),
        headers={"clientId": leased["client_id"]},
    )
    response.raise_for_status()
    found = response.json()
    return str((found[0] if isinstance(found, list) else found)["identifier"])


def test_api_member_keys_can_name_the_member_by_email(system: EmbeddedStack) -> None:
    api_member = sandbox_keys(system, "syntaskio-api")
    atech = next(
        m
        for m in httpx.get(
            f"{system.url('sandbox')}/v2025_1/apis/3.0/system/members",
            params={"conditions": 'identifier = "atech"'},
            auth=(f"syntaskio+{api_member['public_key']}", api_member["private_key"]),
            headers={"clientId": DEV_CONNECTWISE_CLIENT_ID},
        ).json()
    )
    with auth_service(system, "ella@acme-msp.example", new_tenant()) as client:
        response = client.post(
            "/v1/integrations/connectwise/api-key",
            json={**site(system), "public_key": api_member["public_key"],
                  "private_key": api_member["private_key"], "member": atech["officeEmail"]},
        )  # fmt: skip
        assert response.status_code == 201, response.text
        assert (response.json()["auth_method"], response.json()["member_identifier"]) == (
            "api_key",
            "atech",
        )
        unknown = client.post(
            "/v1/integrations/connectwise/api-key",
            json={**site(system), "public_key": api_member["public_key"],
                  "private_key": api_member["private_key"], "member": 'nobody" or "1"="1'},
        )  # fmt: skip
        assert unknown.status_code == 400
        assert unknown.json()["title"] == "Unknown member"


def test_connect_endpoints_are_rate_limited(system: EmbeddedStack) -> None:
    with auth_service(system, "rapid@acme-msp.example", new_tenant()) as client:
        answers = [
            client.post("/v1/integrations/connectwise/oauth/start", json=site(system)).status_code
            for _ in range(11)
        ]
        assert answers[:10] == [200] * 10
        assert answers[10] == 429
        limited = client.post("/v1/integrations/connectwise/oauth/start", json=site(system))
        assert int(limited.headers["retry-after"]) > 0


def test_the_gateway_callback_sends_a_signed_out_browser_to_sign_in(system: EmbeddedStack) -> None:
    gateway = system.url("gateway")
    response = httpx.get(
        f"{gateway}/api/v1/integrations/connectwise/oauth/callback",
        params={"state": "s", "code": "c"},
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_the_session_cookie_is_http_only_and_same_site_lax(system: EmbeddedStack) -> None:
    response = httpx.post(
        f"{system.url('gateway')}/api/v1/session/dev-login",
        json={"user_id": "cookie@acme-msp.example", "tenant_id": new_tenant()},
    )
    assert response.status_code == 201
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie


def test_the_gateway_refuses_malformed_integration_ids(system: EmbeddedStack) -> None:
    with signed_in(system, "ids@acme-msp.example", new_tenant()) as browser:
        for bad in ("a.b", "x" * 65, "..%2Finternal"):
            assert browser.get(f"/api/v1/integrations/{bad}").status_code in (404, 422)
            assert browser.delete(f"/api/v1/integrations/{bad}").status_code in (404, 422)
        assert browser.get("/settings").status_code == 200


def test_internal_endpoints_need_the_service_token(system: EmbeddedStack) -> None:
    auth = system.url("auth")
    for headers in ({}, {"Authorization": "Bearer not-the-token"}):
        assert httpx.get(f"{auth}/internal/v1/integrations", headers=headers).status_code == 401
        leased = httpx.post(f"{auth}/internal/v1/integrations/x/credentials/lease", headers=headers)
        assert leased.status_code == 401


def test_the_gateways_token_reaches_only_what_the_gateway_needs(system: EmbeddedStack) -> None:
    gateway_token = dev_secrets(system.config.data_dir)["CONNECTOR_API_TOKEN"]
    headers = {"Authorization": f"Bearer {gateway_token}"}
    connector = f"{system.url('connector')}/internal/v1"
    status = httpx.get(f"{connector}/integrations/x/sync-jobs?tenant_id=t", headers=headers)
    assert status.status_code == 200
    # Not credentials, nor the connector's other internal endpoints.
    leased = httpx.post(
        f"{system.url('auth')}/internal/v1/integrations/x/credentials/lease", headers=headers
    )
    assert leased.status_code == 401
    assert httpx.delete(f"{connector}/integrations/x/webhooks", headers=headers).status_code == 401


def test_the_dashboard_page_is_served_with_a_content_security_policy(system: EmbeddedStack) -> None:
    page = httpx.get(f"{system.url('gateway')}/settings")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_no_secret_ever_reaches_a_log(system: EmbeddedStack, db: Database[dict[str, Any]]) -> None:
    """Runs last in this module: every key and token used above must be absent from
    every service's log output."""
    secrets = {
        k["private_key"] for k in httpx.get(f"{system.url('sandbox')}/_sandbox/api-keys").json()
    }
    secrets |= {
        k["public_key"] for k in httpx.get(f"{system.url('sandbox')}/_sandbox/api-keys").json()
    }
    secrets.add(dev_secrets(system.config.data_dir)["OAUTH_CLIENT_SECRET"])
    secrets.add(dev_secrets(system.config.data_dir)["INTERNAL_API_TOKEN"])
    secrets.add(dev_secrets(system.config.data_dir)["CONNECTOR_API_TOKEN"])
    opened = 0
    # The connections made through the running services (other tests' records, sealed
    # under their own keys, share the database).
    sandbox = {"site_url": {"$regex": re.escape(system.sandbox_site)}}
    ours = db["integrations"].distinct("_id", sandbox)
    for doc in db["credentials"].find({"_id": {"$in": ours}}):
        secrets |= set(
            vault(system).open_fields(doc["secrets"], doc["tenant_id"], doc["_id"]).values()
        )
        opened += 1
    assert opened >= 5
    logs = system.config.data_dir / "logs"
    for name in ("auth", "connector", "aggregator", "gateway"):
        text = (logs / f"{name}.log").read_text()
        assert text, f"{name} wrote no log at all"
        leaked = [s[:4] + "…" for s in secrets if s in text]
        assert not leaked, f"{name}.log contains secrets {leaked}"
