"""PUT /api/v1/integrations/{id}/sync-options and the options in the integration view: the
gateway's own app, with auth-service and the connector answering from here."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from gateway_sessions import TokensAreUserNames

from syntaskio_gateway.app import create_app
from syntaskio_gateway.connector import ConnectorApi
from syntaskio_gateway.settings import GatewaySettings

PROBLEM_JSON = "application/problem+json"
MINE = "3f0c9d7e-1111-4a8b-9c2d-000000000001"
STATUS = {
    "state": "idle",
    "reason": None,
    "last_job": None,
    "next_sync_at": None,
    "budget": {"limit_per_hour": 1000, "used_last_hour": 3, "remaining": 997, "paused_until": None},
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
        "id": MINE,
        "tenant_id": "acme",
        "user_id": "alex",
        "provider": "connectwise",
        "auth_method": "api_key",
        "site": "na.myconnectwise.net",
        "site_url": "https://na.myconnectwise.net",
        "company_id": "acme",
        "codebase": "v2025_1/",
        "api_base_url": "https://api-na.myconnectwise.net/v2025_1/apis/3.0",
        "status": status,
        "created_at": "2025-01-01T00:00:00Z",
        "updated_at": "2025-01-01T00:00:00Z",
    }


@dataclass
class Upstreams:
    """auth-service (Alex of acme owns MINE) and the connector (options kept in memory)."""

    status: str = "active"
    options: dict[str, Any] = field(
        default_factory=lambda: {"project_phases": False, "sync_interval_minutes": None}
    )
    connector_down: Callable[[], httpx.Response] | None = None
    connector_calls: list[httpx.Request] = field(default_factory=list)

    def auth_service(self, request: httpx.Request) -> httpx.Response:
        alex = request.headers.get("authorization") == "Bearer acme:alex"
        if request.url.path == "/v1/integrations":
            return httpx.Response(200, json=[integration(self.status)] if alex else [])
        if request.url.path != f"/v1/integrations/{MINE}" or not alex:
            return httpx.Response(404, json={"status": 404, "detail": "No such integration."})
        return httpx.Response(200, json=integration(self.status))

    def connector(self, request: httpx.Request) -> httpx.Response:
        self.connector_calls.append(request)
        if self.connector_down:
            return self.connector_down()
        base = f"/internal/v1/integrations/{MINE}"
        assert request.url.params["tenant_id"] == "acme"
        if request.method == "PUT" and request.url.path == f"{base}/sync-options":
            self.options = json.loads(request.content)
            return httpx.Response(200, json=self.options)
        if request.method == "GET" and request.url.path == f"{base}/sync-status":
            return httpx.Response(200, json={**STATUS, "options": self.options})
        return httpx.Response(404, json={"detail": "Not Found"})


def unreachable() -> httpx.Response:
    raise httpx.ConnectError("connection refused")


@pytest.fixture
def upstreams() -> Upstreams:
    return Upstreams()


@pytest.fixture
async def client(upstreams: Upstreams) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(GatewaySettings(environment="development"))  # not started: no lifespan
    app.state.verifier = TokensAreUserNames()
    async with (
        httpx.AsyncClient(
            transport=httpx.MockTransport(upstreams.auth_service), base_url="http://auth"
        ) as auth_service,
        httpx.AsyncClient(
            transport=httpx.MockTransport(upstreams.connector), base_url="http://connector"
        ) as connector,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway",
            headers={"Authorization": "Bearer acme:alex"},
        ) as http,
    ):
        app.state.auth_service = auth_service
        app.state.connector = ConnectorApi(connector)
        yield http


def path(integration_id: str = MINE) -> str:
    return f"/api/v1/integrations/{integration_id}/sync-options"


async def test_the_options_are_set_and_shown_in_the_integration(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    shown = (await client.get(f"/api/v1/integrations/{MINE}")).json()
    assert shown["options"] == {"project_phases": False, "sync_interval_minutes": None}

    turned_on = await client.put(
        path(), json={"project_phases": True, "sync_interval_minutes": None}
    )
    assert turned_on.status_code == 200, turned_on.text
    assert turned_on.json() == {"project_phases": True, "sync_interval_minutes": None}
    [sent] = [r for r in upstreams.connector_calls if r.method == "PUT"]
    assert sent.url.path == f"/internal/v1/integrations/{MINE}/sync-options"
    assert json.loads(sent.content) == {"project_phases": True, "sync_interval_minutes": None}
    shown = (await client.get(f"/api/v1/integrations/{MINE}")).json()
    assert shown["options"] == {"project_phases": True, "sync_interval_minutes": None}
    assert shown["sync"]["options"] == {"project_phases": True, "sync_interval_minutes": None}
    [listed] = (await client.get("/api/v1/integrations")).json()
    assert listed["options"] == {"project_phases": True, "sync_interval_minutes": None}

    # Every option is sent: one left out takes its default.
    assert (await client.put(path(), json={})).json() == {
        "project_phases": False,
        "sync_interval_minutes": None,
    }
    shown = (await client.get(f"/api/v1/integrations/{MINE}")).json()
    assert shown["options"] == {"project_phases": False, "sync_interval_minutes": None}


async def test_a_connection_syncs_at_its_own_interval_within_bounds(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    for refused in (1, 0, 24 * 60 + 1, "soon"):
        answer = await client.put(path(), json={"sync_interval_minutes": refused})
        assert answer.status_code == 422, refused
        assert answer.headers["content-type"] == "application/problem+json"
    assert [r for r in upstreams.connector_calls if r.method == "PUT"] == []

    every_quarter = await client.put(path(), json={"sync_interval_minutes": 15})
    assert every_quarter.status_code == 200, every_quarter.text
    [sent] = [r for r in upstreams.connector_calls if r.method == "PUT"]
    assert json.loads(sent.content)["sync_interval_minutes"] == 15
    shown = (await client.get(f"/api/v1/integrations/{MINE}")).json()
    assert shown["options"]["sync_interval_minutes"] == 15


@pytest.mark.parametrize(
    ("token", "integration_id"),
    [
        ("acme:sam", MINE),  # a colleague in the same tenant
        ("globex:alex", MINE),  # the same user id in another tenant
        ("acme:alex", "3f0c9d7e-1111-4a8b-9c2d-000000000002"),  # no such integration
    ],
)
async def test_only_the_users_own_integration_is_changed(
    client: httpx.AsyncClient, upstreams: Upstreams, token: str, integration_id: str
) -> None:
    refused = await client.put(
        path(integration_id),
        json={"project_phases": True, "sync_interval_minutes": None},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert refused.status_code == 404, refused.text
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert upstreams.connector_calls == []
    assert upstreams.options == {"project_phases": False, "sync_interval_minutes": None}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"project_phases": true, "everything": true}', 422),  # unknown option
        (b'{"project_phases": [true]}', 422),
        (b'{"project_phases": ', 422),  # not JSON
        (b"[]", 422),
        (b"", 422),
    ],
)
async def test_a_bad_body_is_a_problem_and_changes_nothing(
    client: httpx.AsyncClient, upstreams: Upstreams, body: bytes, status: int
) -> None:
    refused = await client.put(path(), content=body, headers={"Content-Type": "application/json"})
    assert refused.status_code == status, refused.text
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert refused.json()["status"] == status
    assert not [r for r in upstreams.connector_calls if r.method == "PUT"]


async def test_without_a_session_it_is_refused(
    client: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    refused = await client.put(
        path(),
        json={"project_phases": True, "sync_interval_minutes": None},
        headers={"Authorization": "Bearer garbage"},
    )
    assert refused.status_code == 401
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert upstreams.connector_calls == []


@pytest.mark.parametrize("status", ["pending", "disconnected"])
async def test_a_connection_not_connected_has_no_options_to_set(
    client: httpx.AsyncClient, upstreams: Upstreams, status: str
) -> None:
    upstreams.status = status
    refused = await client.put(path(), json={"project_phases": True, "sync_interval_minutes": None})
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"] == PROBLEM_JSON
    assert upstreams.connector_calls == []


@pytest.mark.parametrize("status", ["expired", "error"])
async def test_a_connection_to_reconnect_keeps_its_options_settable(
    client: httpx.AsyncClient, upstreams: Upstreams, status: str
) -> None:
    upstreams.status = status
    assert (
        await client.put(path(), json={"project_phases": True, "sync_interval_minutes": None})
    ).status_code == 200
    assert upstreams.options == {"project_phases": True, "sync_interval_minutes": None}


@pytest.mark.parametrize(
    "answer",
    [
        unreachable,
        lambda: httpx.Response(500, json={"detail": "boom"}),
        lambda: httpx.Response(200, json={"project_phases": "maybe"}),
    ],
)
async def test_an_unavailable_connector_is_a_503_and_the_view_shows_defaults(
    client: httpx.AsyncClient, upstreams: Upstreams, answer: Callable[[], httpx.Response]
) -> None:
    upstreams.options = {"project_phases": True, "sync_interval_minutes": None}
    upstreams.connector_down = answer
    refused = await client.put(
        path(), json={"project_phases": False, "sync_interval_minutes": None}
    )
    assert refused.status_code == 503, refused.text
    assert refused.headers["content-type"] == PROBLEM_JSON
    # The connection is still shown; its options are the defaults, with `sync` null.
    shown = await client.get(f"/api/v1/integrations/{MINE}")
    assert shown.status_code == 200, shown.text
    assert shown.json()["sync"] is None
    assert shown.json()["options"] == {"project_phases": False, "sync_interval_minutes": None}
