"""The admin console's API (/api/v1/admin) and a technician's view of the company's
connection: the gateway's own app, with auth-service and the connector answering from
here. The role is checked before anything is asked; the connector is called only for an
integration auth-service says is the admin's company's, with that company's tenant id;
auth-service's answers are passed on as documented."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest
from gateway_sessions import TokensAreUserNames

from syntaskio_gateway.app import create_app
from syntaskio_gateway.connector import ConnectorApi
from syntaskio_gateway.settings import GatewaySettings

PROBLEM_JSON = "application/problem+json"
COMPANY = "3f0c9d7e-2222-4a8b-9c2d-000000000001"
ADMIN = {"Authorization": "Bearer acme:ada:admin"}
TECHNICIAN = {"Authorization": "Bearer acme:tom"}
NOW = "2026-11-23T09:00:00Z"
STATUS = {
    "state": "idle",
    "reason": None,
    "last_job": None,
    "next_sync_at": None,
    "budget": {"limit_per_hour": 1000, "used_last_hour": 7, "remaining": 993, "paused_until": None},
    "webhooks": {
        "enabled": False,
        "registered": False,
        "error": None,
        "accepted": 0,
        "rejected": {},
    },
}


def integration(status: str = "active") -> dict[str, Any]:
    return {
        "id": COMPANY,
        "tenant_id": "acme",
        "user_id": "",
        "scope": "tenant",
        "connected_by": "ada",
        "provider": "connectwise",
        "auth_method": "api_key",
        "site": "na.myconnectwise.net",
        "site_url": "https://na.myconnectwise.net",
        "company_id": "acme",
        "codebase": "v2025_1/",
        "api_base_url": "https://api-na.myconnectwise.net/v2025_1/apis/3.0",
        "member_identifier": "syntaskio-api",
        "status": status,
        "created_at": NOW,
        "updated_at": NOW,
    }


def mapping(user_id: str, member: str, state: str = "confirmed") -> dict[str, Any]:
    return {
        "integration_id": COMPANY,
        "tenant_id": "acme",
        "user_id": user_id,
        "member_identifier": member,
        "state": state,
        "origin": "admin",
        "updated_at": NOW,
        "updated_by": "ada",
    }


def problem(status: int, detail: str) -> httpx.Response:
    body = {"type": "about:blank", "title": "x", "status": status, "detail": detail}
    return httpx.Response(status, json=body, headers={"content-type": PROBLEM_JSON})


@dataclass
class Upstreams:
    """auth-service (Ada is an admin of acme, whose company connection is COMPANY) and
    the connector; every request each was sent."""

    status: str = "active"
    auth_calls: list[httpx.Request] = field(default_factory=list)
    connector_calls: list[httpx.Request] = field(default_factory=list)
    answers: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = field(
        default_factory=dict
    )

    def auth_service(self, request: httpx.Request) -> httpx.Response:
        self.auth_calls.append(request)
        answer = self.answers.get((request.method, request.url.path))
        if answer is not None:
            return answer(request)
        if request.headers.get("authorization") != ADMIN["Authorization"]:
            return problem(404, "No integration with this id.")
        if request.url.path == f"/v1/admin/integrations/{COMPANY}":
            return httpx.Response(200, json=integration(self.status))
        return problem(404, "No integration with this id.")

    def connector(self, request: httpx.Request) -> httpx.Response:
        self.connector_calls.append(request)
        assert request.url.params["tenant_id"] == "acme"
        if request.url.path.endswith("/sync-status"):
            return httpx.Response(200, json=STATUS)
        if request.url.path.endswith("/sync-jobs"):
            return httpx.Response(200, json=[])
        return httpx.Response(404, json={"detail": "Not Found"})


@pytest.fixture
def upstreams() -> Upstreams:
    return Upstreams()


@pytest.fixture
async def client(upstreams: Upstreams) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(GatewaySettings(environment="development"))  # not started: no lifespan
    app.state.verifier = TokensAreUserNames()

    def connector(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/sync"):
            upstreams.connector_calls.append(request)
            return httpx.Response(202, json={"status": "queued"})
        return upstreams.connector(request)

    async with (
        httpx.AsyncClient(
            transport=httpx.MockTransport(upstreams.auth_service), base_url="http://auth"
        ) as auth_service,
        httpx.AsyncClient(
            transport=httpx.MockTransport(connector), base_url="http://connector"
        ) as connector_http,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers=ADMIN
        ) as http,
    ):
        app.state.auth_service = auth_service
        app.state.connector = ConnectorApi(connector_http)
        yield http


ADMIN_ROUTES = [
    ("GET", "/api/v1/admin/users", None),
    ("GET", "/api/v1/admin/integrations", None),
    ("GET", f"/api/v1/admin/integrations/{COMPANY}", None),
    ("DELETE", f"/api/v1/admin/integrations/{COMPANY}", None),
    ("POST", f"/api/v1/admin/integrations/{COMPANY}/pause", None),
    ("POST", f"/api/v1/admin/integrations/{COMPANY}/resume", None),
    ("GET", f"/api/v1/admin/integrations/{COMPANY}/sync-jobs", None),
    ("POST", f"/api/v1/admin/integrations/{COMPANY}/sync?resync=true", None),
    ("GET", f"/api/v1/admin/integrations/{COMPANY}/mappings", None),
    ("POST", f"/api/v1/admin/integrations/{COMPANY}/mappings/propose", None),
    ("PUT", f"/api/v1/admin/integrations/{COMPANY}/mappings/tom", {"member_identifier": "atech"}),
    ("DELETE", f"/api/v1/admin/integrations/{COMPANY}/mappings/tom", None),
    ("GET", "/api/v1/admin/audit", None),
    (
        "POST",
        "/api/v1/admin/integrations/connectwise/api-key",
        {
            "site": "na.myconnectwise.net",
            "company_id": "acme",
            "public_key": "p",
            "private_key": "s",
        },
    ),
    (
        "POST",
        "/api/v1/admin/integrations/connectwise/oauth/start",
        {"site": "na.myconnectwise.net", "company_id": "acme"},
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_a_technician_is_refused_before_anything_is_asked(
    client: httpx.AsyncClient,
    upstreams: Upstreams,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    refused = await client.request(method, path, json=body, headers=TECHNICIAN)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert refused.json()["detail"] == "This needs the admin role in your company."
    assert upstreams.auth_calls == []
    assert upstreams.connector_calls == []


async def test_the_overview_asks_the_connector_only_after_auth_service(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    shown = await client.get(f"/api/v1/admin/integrations/{COMPANY}")
    assert shown.status_code == 200, shown.text
    view = shown.json()
    assert (view["state"], view["scope"], view["connected_by"]) == ("active", "tenant", "ada")
    assert view["sync"]["budget"]["used_last_hour"] == 7
    [asked] = upstreams.auth_calls
    assert asked.url.path == f"/v1/admin/integrations/{COMPANY}"
    assert asked.headers["authorization"] == ADMIN["Authorization"]
    [status] = upstreams.connector_calls
    assert status.url.params["tenant_id"] == "acme"


@pytest.mark.parametrize(
    ("method", "tail"), [("GET", ""), ("GET", "/sync-jobs"), ("POST", "/sync?resync=true")]
)
async def test_another_companys_integration_is_not_found_and_the_connector_not_asked(
    client: httpx.AsyncClient, upstreams: Upstreams, method: str, tail: str
) -> None:
    other = "3f0c9d7e-2222-4a8b-9c2d-000000000002"  # auth-service: not acme's
    refused = await client.request(method, f"/api/v1/admin/integrations/{other}{tail}")
    assert refused.status_code == 404, refused.text
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert upstreams.connector_calls == []


@pytest.mark.parametrize(("query", "resync"), [("?resync=true", "true"), ("", None)])
async def test_sync_now_and_full_resync(
    client: httpx.AsyncClient, upstreams: Upstreams, query: str, resync: str | None
) -> None:
    queued = await client.post(f"/api/v1/admin/integrations/{COMPANY}/sync{query}")
    assert queued.status_code == 202, queued.text
    assert queued.json() == {
        "status": "queued",
        "integration_id": COMPANY,
        "resync": resync == "true",
    }
    [sent] = upstreams.connector_calls
    assert sent.url.path == f"/internal/v1/integrations/{COMPANY}/sync"
    assert sent.url.params.get("resync") == resync


@pytest.mark.parametrize("status", ["paused", "expired", "disconnected", "pending"])
async def test_only_an_active_connection_is_synced(
    client: httpx.AsyncClient, upstreams: Upstreams, status: str
) -> None:
    upstreams.status = status
    refused = await client.post(f"/api/v1/admin/integrations/{COMPANY}/sync?resync=true")
    assert refused.status_code == 409, refused.text
    assert status in refused.json()["detail"]
    assert upstreams.connector_calls == []


async def test_a_paused_connection_still_shows_its_budget(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    upstreams.status = "paused"
    view = (await client.get(f"/api/v1/admin/integrations/{COMPANY}")).json()
    assert view["state"] == "paused"
    assert view["sync"]["budget"]["limit_per_hour"] == 1000


@pytest.mark.parametrize(
    "user_id", ["tom", "auth0|5f1e", "grace+ops@acme-msp.example", "okta/00u1", "a b?c#d%20"]
)
async def test_a_user_id_travels_upstream_as_one_segment(
    client: httpx.AsyncClient, upstreams: Upstreams, user_id: str
) -> None:
    path = f"/v1/admin/integrations/{COMPANY}/mappings/"

    def confirmed(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=mapping(user_id, "atech"))

    upstreams.answers = {
        ("PUT", path + user_id): confirmed,
        ("DELETE", path + user_id): lambda _: httpx.Response(204),
    }
    gateway = f"/api/v1/admin/integrations/{COMPANY}/mappings/{quote(user_id, safe='')}"
    if " " in user_id:
        # Whitespace is no identity provider's `sub`: refused, nothing asked.
        refused = await client.put(gateway, json={"member_identifier": "atech"})
        assert refused.status_code == 422, refused.text
        assert upstreams.auth_calls == []
        return
    saved = await client.put(gateway, json={"member_identifier": "atech"})
    assert saved.status_code == 200, saved.text
    assert saved.json()["user_id"] == user_id
    removed = await client.delete(gateway)
    assert removed.status_code == 204, removed.text
    assert removed.content == b""
    for sent in upstreams.auth_calls:
        raw = sent.url.raw_path.decode()
        assert raw.count("/") == path.count("/"), raw  # the id is one segment
        assert unquote(raw.rsplit("/", 1)[1]) == user_id


@pytest.mark.parametrize("user_id", ["..", ".", "%2E%2E", "./.."])
async def test_path_steps_are_not_user_ids(
    client: httpx.AsyncClient, upstreams: Upstreams, user_id: str
) -> None:
    refused = await client.put(
        f"/api/v1/admin/integrations/{COMPANY}/mappings/{user_id}",
        json={"member_identifier": "atech"},
    )
    assert refused.status_code in (404, 405, 422), refused.text
    assert upstreams.auth_calls == []


@pytest.mark.parametrize(
    "body",
    [
        {"member_identifier": 'atech" or 1=1'},
        {"member_identifier": ""},
        {"member_identifier": "x" * 31},
        {"member_identifier": "atech", "state": "confirmed"},
        {},
    ],
)
async def test_a_bad_mapping_is_refused_here(
    client: httpx.AsyncClient, upstreams: Upstreams, body: dict[str, Any]
) -> None:
    refused = await client.put(f"/api/v1/admin/integrations/{COMPANY}/mappings/tom", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert upstreams.auth_calls == []


async def test_auth_services_refusal_is_passed_on_in_its_words(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    path = f"/v1/admin/integrations/{COMPANY}/mappings/tom"
    upstreams.answers = {("PUT", path): lambda _: problem(422, "ConnectWise has no member 'zz'.")}
    refused = await client.put(
        f"/api/v1/admin/integrations/{COMPANY}/mappings/tom", json={"member_identifier": "zz"}
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert refused.json()["detail"] == "ConnectWise has no member 'zz'."
    [sent] = upstreams.auth_calls
    assert json.loads(sent.content) == {"member_identifier": "zz"}


async def test_an_unexpected_answer_is_a_502_never_passed_on(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    leaked = {**integration(), "status": "whatever", "private_key": "s3cret"}
    upstreams.answers = {
        ("POST", f"/v1/admin/integrations/{COMPANY}/pause"): lambda _: httpx.Response(
            200, json=leaked
        )
    }
    answered = await client.post(f"/api/v1/admin/integrations/{COMPANY}/pause")
    assert answered.status_code == 502, answered.text
    assert "s3cret" not in answered.text


async def test_pausing_answers_the_connection_without_what_auth_service_added(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    paused = {**integration("paused"), "internal_note": "not for browsers"}
    upstreams.answers = {
        ("POST", f"/v1/admin/integrations/{COMPANY}/pause"): lambda _: httpx.Response(
            200, json=paused
        )
    }
    answered = await client.post(f"/api/v1/admin/integrations/{COMPANY}/pause")
    assert answered.status_code == 200, answered.text
    assert answered.json()["status"] == "paused"
    assert "internal_note" not in answered.json()


async def test_the_audit_filters_are_passed_on(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    record = {
        "id": "a-1",
        "at": NOW,
        "action": "paused",
        "tenant_id": "acme",
        "integration_id": COMPANY,
        "user_id": "ada",
        "detail": {},
    }
    upstreams.answers = {("GET", "/v1/admin/audit"): lambda _: httpx.Response(200, json=[record])}
    listed = await client.get(
        "/api/v1/admin/audit",
        params={
            "integration_id": COMPANY,
            "action": "mapping.confirmed",
            "user_id": "auth0|ada",
            "since": "2026-11-01T00:00:00Z",
            "limit": 5,
        },
    )
    assert listed.status_code == 200, listed.text
    assert listed.json()[0]["action"] == "paused"
    [sent] = upstreams.auth_calls
    assert dict(sent.url.params) == {
        "integration_id": COMPANY,
        "action": "mapping.confirmed",
        "user_id": "auth0|ada",
        "since": "2026-11-01T00:00:00+00:00",
        "limit": "5",
    }
    assert (await client.get("/api/v1/admin/audit", params={"limit": 501})).status_code == 422
    assert (await client.get("/api/v1/admin/audit", params={"action": "a b"})).status_code == 422


async def test_connecting_the_company_sends_the_keys_once_and_answers_201(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    upstreams.answers = {
        ("POST", "/v1/admin/integrations/connectwise/api-key"): lambda _: httpx.Response(
            201, json=integration()
        )
    }
    body = {"site": "na.myconnectwise.net", "company_id": "acme", "public_key": "p"}
    connected = await client.post(
        "/api/v1/admin/integrations/connectwise/api-key", json={**body, "private_key": "s"}
    )
    assert connected.status_code == 201, connected.text
    assert connected.json()["scope"] == "tenant"
    [sent] = upstreams.auth_calls
    assert json.loads(sent.content) == {
        **body,
        "private_key": "s",
        "member": None,
        "impersonate": False,
    }


async def test_a_technician_sees_the_company_connection_not_an_integration_called_tenant(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    view = {
        "integration_id": COMPANY,
        "site": "na.myconnectwise.net",
        "company_id": "acme",
        "status": "active",
        "mapping": mapping("tom", "atech", "requested"),
    }
    upstreams.answers = {
        ("GET", "/v1/integrations/tenant"): lambda _: httpx.Response(200, json=view),
        ("POST", "/v1/integrations/tenant/mapping-request"): lambda request: httpx.Response(
            200, json=mapping("tom", json.loads(request.content)["member_identifier"], "requested")
        ),
    }
    shown = await client.get("/api/v1/integrations/tenant", headers=TECHNICIAN)
    assert shown.status_code == 200, shown.text
    assert shown.json()["mapping"]["state"] == "requested"
    requested = await client.post(
        "/api/v1/integrations/tenant/mapping-request",
        json={"member_identifier": " bjones "},
        headers=TECHNICIAN,
    )
    assert requested.status_code == 200, requested.text
    assert requested.json()["member_identifier"] == "bjones"
    assert [r.url.path for r in upstreams.auth_calls] == [
        "/v1/integrations/tenant",
        "/v1/integrations/tenant/mapping-request",
    ]
    assert json.loads(upstreams.auth_calls[1].content) == {"member_identifier": "bjones"}


async def test_no_company_connection_is_a_404(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    upstreams.answers = {
        ("GET", "/v1/integrations/tenant"): lambda _: problem(
            404, "Your company has not connected ConnectWise."
        )
    }
    missing = await client.get("/api/v1/integrations/tenant", headers=TECHNICIAN)
    assert missing.status_code == 404
    assert missing.json()["detail"] == "Your company has not connected ConnectWise."
