"""My day through the running gateway: a task pinned, ordered, snoozed and cleared with
PUT and DELETE (the same request twice, the same plan); bad input answered as problems;
a ticket closed in ConnectWise takes its plan with it (the live feed removes the plan
without My day being read); and nothing of a plan is ever sent towards ConnectWise."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2e_helpers import connect, dashboard_tasks, eventually, sandbox, signed_in, topic_events
from pymongo import MongoClient

from syntaskio_common import topics
from syntaskio_devstack.stack import EmbeddedStack

MEMBER = "hnguyen"  # the tickets planned here are made for the test, and closed after it
PROBLEM_JSON = "application/problem+json"
GROUPS = ("overdue", "today", "this_week", "later", "no_date", "set_aside")
LONDON = {"tz": "Europe/London"}


@dataclass
class Planner:
    client: httpx.Client
    user_id: str
    tenant_id: str
    tasks: list[dict[str, Any]]  # the tickets made for the test, as tasks


@pytest.fixture(scope="module")
def planner(system: EmbeddedStack) -> Iterator[Planner]:
    user, tenant = f"pat-{uuid.uuid4().hex[:6]}@acme-msp.example", f"plan-{uuid.uuid4().hex[:8]}"
    made = [
        str(sandbox(system, "POST", "/tickets", json={"summary": s, "owner": MEMBER}).json()["id"])
        for s in (f"Plan the rollout {uuid.uuid4().hex[:6]}", f"Swap a disk {uuid.uuid4().hex[:6]}")
    ]
    with signed_in(system, user, tenant) as client:
        assert connect(client, system, MEMBER).status_code == 201

        def synced() -> list[dict[str, Any]]:
            found = {t["external_id"]: t for t in dashboard_tasks(client)}
            return [found[n] for n in made] if set(made) <= found.keys() else []

        tasks = eventually(synced, interval=2)
        assert tasks, "the tickets never synced"
        yield Planner(client, user, tenant, tasks)
        [integration] = client.get("/api/v1/integrations").json()
        assert client.delete(f"/api/v1/integrations/{integration['id']}").status_code == 200
    for number in made:
        sandbox(system, "POST", f"/tickets/{number}/close")


def day(client: httpx.Client) -> dict[str, list[str]]:
    """Task ids per group."""
    response = client.get("/api/v1/my-day", params=LONDON)
    assert response.status_code == 200, response.text
    body = response.json()
    return {group: [t["id"] for t in body[group]] for group in GROUPS}


def group_of(client: httpx.Client, task_id: str) -> str | None:
    return next((g for g, ids in day(client).items() if task_id in ids), None)


def plan_path(task: dict[str, Any]) -> str:
    return f"/api/v1/tasks/{task['id']}/plan"


def test_a_task_is_pinned_ordered_snoozed_and_cleared(planner: Planner) -> None:
    client, (first, second) = planner.client, planner.tasks
    pinned = client.put(plan_path(first), params=LONDON, json={"pinned": True})
    assert pinned.status_code == 200, pinned.text
    assert pinned.json() == {"pinned": True, "snoozed_until": None, "hidden": False, "order": None}
    assert (
        client.put(plan_path(first), params=LONDON, json={"pinned": True}).json() == pinned.json()
    )
    assert client.put(plan_path(second), params=LONDON, json={"pinned": True}).status_code == 200
    assert {group_of(client, first["id"]), group_of(client, second["id"])} == {"today"}

    # Today's order: the second first.
    ordered = client.put(
        "/api/v1/my-day/order", params=LONDON, json={"task_ids": [second["id"], first["id"]]}
    )
    assert ordered.status_code == 200, ordered.text
    today = [t["id"] for t in ordered.json()["today"]]
    assert today.index(second["id"]) < today.index(first["id"])
    assert [t["plan"]["order"] for t in ordered.json()["today"] if t["id"] == second["id"]] == [0]

    # Snoozed until tomorrow: set aside, with its time.
    until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    snoozed = client.put(
        plan_path(second), params=LONDON, json={"snoozed_until": until.isoformat()}
    )
    assert snoozed.status_code == 200, snoozed.text
    assert datetime.fromisoformat(snoozed.json()["snoozed_until"]) == until
    assert group_of(client, second["id"]) == "set_aside"
    # Only today's tasks are ordered.
    refused = client.put("/api/v1/my-day/order", params=LONDON, json={"task_ids": [second["id"]]})
    assert (refused.status_code, refused.headers["content-type"]) == (422, PROBLEM_JSON)

    # Hidden until it changes; brought back (nothing set: the plan goes, the order stays).
    assert client.put(plan_path(second), params=LONDON, json={"hidden": True}).json()["hidden"]
    assert group_of(client, second["id"]) == "set_aside"
    back = client.put(plan_path(second), params=LONDON, json={})
    assert back.json() == {"pinned": False, "snoozed_until": None, "hidden": False, "order": 0}

    # Cleared, twice: the same 204.
    for _ in range(2):
        assert client.delete(plan_path(first)).status_code == 204
    listed = client.get("/api/v1/my-day", params=LONDON).json()
    plans = [t["plan"] for group in GROUPS for t in listed[group] if t["id"] == first["id"]]
    assert plans == [{"pinned": False, "snoozed_until": None, "hidden": False, "order": None}]


@pytest.mark.parametrize(
    ("method", "path", "request_", "status"),
    [
        ("GET", "/api/v1/my-day", {"params": {"tz": "Mars/Olympus"}}, 422),
        ("GET", "/api/v1/my-day", {"params": {"tz": "x" * 65}}, 422),
        # A folder of zones, not a zone (it was once a server error).
        ("GET", "/api/v1/my-day", {"params": {"tz": "America"}}, 422),
        ("GET", "/api/v1/tasks", {"params": {"due": "today", "tz": "Etc"}}, 422),
        ("PUT", "{plan}", {"json": {"pinned": True, "hidden": True}}, 422),
        ("PUT", "{plan}", {"json": {"snoozed_until": "2020-01-01T08:00:00Z"}}, 422),
        ("PUT", "{plan}", {"json": {"snoozed_until": "2099-01-01T08:00:00Z"}}, 422),
        ("PUT", "{plan}", {"json": {"snoozed_until": "2030-01-01T08:00:00"}}, 422),
        ("PUT", "{plan}", {"json": {"pinned": True, "note": "x"}}, 422),
        ("PUT", "{plan}", {"json": {"pinned": "sometimes"}}, 422),
        ("PUT", "{plan}", {"content": b"{" + b" " * 70_000 + b"}"}, 413),
        ("PUT", "/api/v1/tasks/not-a-task/plan", {"json": {"pinned": True}}, 404),
        ("DELETE", "/api/v1/tasks/not-a-task/plan", {}, 404),
        ("PUT", "/api/v1/tasks/a%2Fb/plan", {"json": {"pinned": True}}, 404),
        ("PUT", "/api/v1/my-day/order", {"json": {"task_ids": ["not-a-task"]}}, 404),
        ("PUT", "/api/v1/my-day/order", {"json": {"task_ids": ["a", "a"]}}, 422),
        ("PUT", "/api/v1/my-day/order", {"json": {"task_ids": ["a"] * 201}}, 422),
        ("PUT", "/api/v1/my-day/order", {"json": {"order": []}}, 422),
    ],
)
def test_bad_input_is_answered_as_a_problem(
    planner: Planner, method: str, path: str, request_: dict[str, Any], status: int
) -> None:
    url = path.format(plan=plan_path(planner.tasks[0]))
    headers = {"Content-Type": "application/json"} if "content" in request_ else {}
    response = planner.client.request(method, url, headers=headers, **request_)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_JSON


def test_a_closed_ticket_takes_its_plan_with_it(system: EmbeddedStack, planner: Planner) -> None:
    client, closing = planner.client, planner.tasks[1]
    assert client.put(plan_path(closing), params=LONDON, json={"pinned": True}).status_code == 200
    mongo: MongoClient[dict[str, Any]] = MongoClient(system.mongodb_url, tz_aware=True)
    try:
        plans = mongo[system.config.database_name]["task_plans"]
        mine = {"tenant_id": planner.tenant_id, "user_id": planner.user_id}
        assert plans.count_documents({**mine, "task_id": closing["id"]}) == 1
        sandbox(system, "POST", f"/tickets/{closing['external_id']}/close")
        assert eventually(
            lambda: closing["id"] not in {t["id"] for t in dashboard_tasks(client)}
        ), "the closed ticket stayed on the dashboard"
        # The gateway heard of the removal on the task feed: the plan is gone before
        # anyone reads My day.
        gone = eventually(lambda: plans.count_documents({**mine, "task_id": closing["id"]}) == 0)
        assert gone, "the closed ticket's plan stayed"
    finally:
        mongo.close()
    assert group_of(client, closing["id"]) is None
    assert client.put(plan_path(closing), params=LONDON, json={"pinned": True}).status_code == 404


def test_no_plan_is_sent_towards_connectwise(system: EmbeddedStack, planner: Planner) -> None:
    # (After the tests above: every plan change this user made.)
    client = planner.client
    assert client.put(plan_path(planner.tasks[0]), params=LONDON, json={"pinned": True}).is_success
    commands = [
        e.data
        for e in topic_events(system, topics.TASK_COMMANDS)
        if e.data.get("tenant_id") == planner.tenant_id
    ]
    assert commands == []
