"""A ConnectWise ticket reaches the dashboard: sandbox → connector → Kafka → aggregator →
MongoDB → gateway, with every service running as its own process."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from e2e_helpers import (
    assigned_open_phase_ids,
    assigned_open_ticket_ids,
    connect,
    dashboard_ids,
    dashboard_phase_ids,
    dashboard_tasks,
    eventually,
    sandbox_keys,
    signed_in,
)

from syntaskio_devstack.stack import EmbeddedStack


@pytest.fixture(scope="module")
def alex(system: EmbeddedStack) -> Iterator[httpx.Client]:
    with signed_in(system, "alex@acme-msp.example", "acme-msp") as client:
        response = connect(client, system, "atech")
        assert response.status_code == 201, response.text
        yield client


def test_the_members_open_tickets_appear_on_the_dashboard(
    system: EmbeddedStack, alex: httpx.Client
) -> None:
    expected = assigned_open_ticket_ids(system, "atech")
    assert len(expected) >= 25
    assert eventually(lambda: dashboard_ids(alex) == expected), (
        f"dashboard {sorted(dashboard_ids(alex))} != sandbox {sorted(expected)}"
    )
    service_ticket = min(expected, key=int)  # service ticket ids are below project ones
    task = next(t for t in dashboard_tasks(alex) if t["external_id"] == service_ticket)
    assert task["source"] == "connectwise"
    assert task["source_type"] == "service_ticket"
    assert task["url"].startswith(f"http://{system.sandbox_site}/")
    integrations = alex.get("/api/v1/integrations").json()
    assert [(i["member_identifier"], i["status"]) for i in integrations] == [("atech", "active")]
    assert "private_key" not in str(integrations)
    assert "public_key" not in str(integrations)


def test_a_ticket_closed_in_connectwise_leaves_the_dashboard(
    system: EmbeddedStack, alex: httpx.Client
) -> None:
    expected = assigned_open_ticket_ids(system, "atech")
    assert eventually(lambda: dashboard_ids(alex) == expected)
    closing = sorted(expected)[0]
    httpx.post(f"{system.url('sandbox')}/_sandbox/tickets/{closing}/close").raise_for_status()
    assert eventually(lambda: closing not in dashboard_ids(alex))
    assert dashboard_ids(alex) == expected - {closing}


def test_a_new_ticket_assigned_in_connectwise_appears(
    system: EmbeddedStack, alex: httpx.Client
) -> None:
    created = httpx.post(
        f"{system.url('sandbox')}/_sandbox/tickets",
        json={"summary": "Printer on 3rd floor jams", "owner": "atech"},
    )
    assert created.status_code == 201, created.text
    new_id = str(created.json()["id"])
    assert eventually(lambda: new_id in dashboard_ids(alex))
    task = next(
        t
        for t in dashboard_tasks(alex)
        if t["external_id"] == new_id and t["source_type"] == "service_ticket"
    )
    assert task["title"] == "Printer on 3rd floor jams"


def test_the_phases_of_the_members_projects_appear_when_turned_on(
    system: EmbeddedStack, alex: httpx.Client
) -> None:
    [integration] = alex.get("/api/v1/integrations").json()
    options = f"/api/v1/integrations/{integration['id']}/sync-options"
    assert alex.put(options, json={"project_phases": True}).status_code == 200
    expected = assigned_open_phase_ids(system, "atech")
    assert expected
    assert eventually(lambda: dashboard_phase_ids(alex) == expected), (
        f"dashboard {sorted(dashboard_phase_ids(alex))} != sandbox {sorted(expected)}"
    )
    phases = [t for t in dashboard_tasks(alex) if t["source_type"] == "project_phase"]
    for task in phases:
        project = task["source_data"]["project"]
        assert task["title"].endswith(f" — {project['name']}")
        assert f"recordType=ProjectHeaderFV&recid={project['id']}" in task["url"]
        assert task["url"].startswith(f"http://{system.sandbox_site}/")


def test_users_never_see_each_others_tasks(system: EmbeddedStack, alex: httpx.Client) -> None:
    assert eventually(lambda: len(dashboard_ids(alex)) > 0)
    task_id = dashboard_tasks(alex)[0]["id"]
    assert alex.get(f"/api/v1/tasks/{task_id}").status_code == 200
    # Same user id in another tenant, and another user in the same tenant.
    with signed_in(system, "alex@acme-msp.example", "other-msp") as other_tenant:
        assert dashboard_tasks(other_tenant) == []
        assert other_tenant.get("/api/v1/integrations").json() == []
        assert other_tenant.get(f"/api/v1/tasks/{task_id}").status_code == 404
        assert other_tenant.get("/api/v1/tasks/facets").json()["board"] == []
    with signed_in(system, "bob@acme-msp.example", "acme-msp") as colleague:
        assert dashboard_tasks(colleague) == []
        assert colleague.get(f"/api/v1/tasks/{task_id}").status_code == 404


def test_the_dashboard_api_filters_counts_and_pages_the_tasks(
    system: EmbeddedStack, alex: httpx.Client
) -> None:
    expected = assigned_open_ticket_ids(system, "atech")
    assert eventually(lambda: dashboard_ids(alex) == expected)
    everything = {t["id"] for t in dashboard_tasks(alex)}

    # Pages of 7 in due order: every task once.
    shown: list[str] = []
    params: dict[str, str | int] = {"sort": "due", "limit": 7}
    while True:
        page = alex.get("/api/v1/tasks", params=params).json()
        shown += [t["id"] for t in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert sorted(shown) == sorted(everything)

    # A board from the facets shows exactly as many tasks as its count, all of it.
    boards = alex.get("/api/v1/tasks/facets").json()["board"]
    assert sum(board["count"] for board in boards) == len(everything)
    board = boards[-1]
    on_board = alex.get("/api/v1/tasks", params={"board": board["value"], "limit": 500}).json()
    assert len(on_board["items"]) == board["count"]
    assert {t["source_data"]["board"]["name"] for t in on_board["items"]} == {board["label"]}

    # One task in full, with its deep link.
    task = alex.get(f"/api/v1/tasks/{on_board['items'][0]['id']}").json()
    assert task["url"].startswith(f"http://{system.sandbox_site}/")

    # Bad input: a clear problem, never a server error.
    for bad, status in [
        ({"cursor": "forged"}, 400),
        ({"limit": 0}, 422),
        ({"tz": "Mars/Olympus"}, 422),
        ({"status": "someday"}, 422),
        ({"colour": "red"}, 422),
    ]:
        response = alex.get("/api/v1/tasks", params=bad)
        assert response.status_code == status, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"


def test_requests_without_a_valid_session_are_refused(system: EmbeddedStack) -> None:
    gateway = system.url("gateway")
    assert httpx.get(f"{gateway}/api/v1/tasks").status_code == 401
    forged = httpx.get(f"{gateway}/api/v1/tasks", headers={"Authorization": "Bearer a.b.c"})
    assert forged.status_code == 401
    assert forged.headers["content-type"] == "application/problem+json"


def test_bad_keys_get_a_clear_error_and_store_nothing(system: EmbeddedStack) -> None:
    with signed_in(system, "carol@acme-msp.example", "acme-msp") as carol:
        keys = sandbox_keys(system, "atech")
        response = carol.post(
            "/api/v1/integrations/connectwise/api-key",
            json={
                "site": f"http://{system.sandbox_site}",
                "company_id": keys["company_id"],
                "public_key": keys["public_key"],
                "private_key": "wrong",
            },
        )
        assert response.status_code == 400
        assert response.json()["title"] == "Invalid credentials"
        assert "wrong" not in response.text
        refused = carol.post(
            "/api/v1/integrations/connectwise/api-key",
            json={
                "site": "https://169.254.169.254",
                "company_id": "x",
                "public_key": "p",
                "private_key": "q",
            },
        )
        assert refused.status_code == 400
        assert carol.get("/api/v1/integrations").json() == []


@pytest.mark.parametrize("service", ["gateway", "auth", "connector", "aggregator"])
def test_every_service_is_ready_only_with_its_database_and_kafka_checked(
    system: EmbeddedStack, service: str
) -> None:
    ready = httpx.get(f"{system.url(service)}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ready"
    checks = ready.json()["checks"]
    assert checks["mongodb"] is True
    assert checks["kafka"] is True


@pytest.mark.parametrize("service", ["gateway", "auth", "connector", "aggregator"])
def test_no_service_redirects_to_the_host_a_request_names(
    system: EmbeddedStack, service: str
) -> None:
    """Starlette would redirect `/readyz/` to `http://<Host header>/readyz`."""
    answer = httpx.get(
        f"{system.url(service)}/readyz/", headers={"Host": "evil.example"}, timeout=10
    )
    assert answer.status_code == 404
    assert "location" not in answer.headers
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("service", ["gateway", "auth", "connector", "aggregator"])
def test_a_wrong_method_is_a_405_that_says_what_is_allowed(
    system: EmbeddedStack, service: str
) -> None:
    answer = httpx.delete(f"{system.url(service)}/healthz", timeout=10)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET"
    assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("service", ["gateway", "auth", "connector"])
def test_every_error_answer_is_documented_as_a_problem(system: EmbeddedStack, service: str) -> None:
    schema = httpx.get(f"{system.url(service)}/openapi.json", timeout=10).json()
    assert "Problem" in schema["components"]["schemas"]
    errors = [
        (path, method, status, answer)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        for status, answer in operation["responses"].items()
        if status[0] in "45"
    ]
    assert errors
    for path, method, status, answer in errors:
        kinds = set(answer["content"])
        assert "application/problem+json" in kinds or "text/html" in kinds, (path, method, status)
