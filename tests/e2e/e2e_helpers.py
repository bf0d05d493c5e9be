"""What the end-to-end tests share: signing in, talking to the sandbox, waiting."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from syntaskio_common import events
from syntaskio_devstack.stack import DEV_CONNECTWISE_CLIENT_ID, EmbeddedStack, dev_secrets


def eventually(check: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(interval)


@contextmanager
def signed_in(
    system: EmbeddedStack,
    user_id: str,
    tenant_id: str,
    roles: tuple[str, ...] = ("technician",),
    email: str | None = None,
    address: str | None = None,
) -> Iterator[httpx.Client]:
    """A browser-like client holding the session cookie (with `email`, verified as an
    identity provider would say). With `address`, it comes from there (the gateway trusts
    a loopback proxy's X-Forwarded-For): sign-ins are limited to 20 a minute per address."""
    headers = {"X-Forwarded-For": address} if address else {}
    with httpx.Client(base_url=system.url("gateway"), timeout=30, headers=headers) as client:
        body: dict[str, Any] = {"user_id": user_id, "tenant_id": tenant_id, "roles": list(roles)}
        if email is not None:
            body["email"] = email
        response = client.post("/api/v1/session/dev-login", json=body)
        assert response.status_code == 201, response.text
        yield client


def sandbox_keys(system: EmbeddedStack, member: str) -> dict[str, Any]:
    keys = httpx.get(f"{system.url('sandbox')}/_sandbox/api-keys").json()
    found: dict[str, Any] = next(k for k in keys if k["member_identifier"] == member)
    return found


def connect(client: httpx.Client, system: EmbeddedStack, member: str) -> httpx.Response:
    keys = sandbox_keys(system, member)
    return client.post(
        "/api/v1/integrations/connectwise/api-key",
        json={
            "site": f"http://{system.sandbox_site}",
            "company_id": keys["company_id"],
            "public_key": keys["public_key"],
            "private_key": keys["private_key"],
        },
    )


TICKET_TYPES = ("service_ticket", "project_ticket")


def _sandbox_listing(
    system: EmbeddedStack, member: str
) -> Callable[[str, str], list[dict[str, Any]]]:
    """Listings asked of the sandbox's API as the member, one page of up to 1000."""
    keys = sandbox_keys(system, member)
    info = httpx.get(f"{system.url('sandbox')}/login/companyinfo/{keys['company_id']}").json()

    def listing(path: str, conditions: str) -> list[dict[str, Any]]:
        response = httpx.get(
            f"{system.url('sandbox')}/{info['Codebase']}apis/3.0/{path}",
            params={"conditions": conditions, "pageSize": 1000},
            auth=(f"{keys['company_id']}+{keys['public_key']}", keys["private_key"]),
            headers={"clientId": DEV_CONNECTWISE_CLIENT_ID},
        )
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        assert len(found) < 1000, "more than one page: page through it"
        return found

    return listing


def _assigned_open_tickets(system: EmbeddedStack, member: str) -> list[dict[str, Any]]:
    listing = _sandbox_listing(system, member)
    entries = listing(
        "schedule/entries",
        f'type/identifier = "S" and member/identifier = "{member}" and doneFlag = false',
    )
    scheduled = {entry["objectId"] for entry in entries}
    mine: list[dict[str, Any]] = []
    for path in ("service/tickets", "project/tickets"):
        for ticket in listing(path, "closedFlag = false"):
            owner = (ticket.get("owner") or {}).get("identifier")
            resources = [r.strip() for r in ticket.get("resources", "").split(",")]
            if owner == member or member in resources or ticket["id"] in scheduled:
                mine.append(ticket)
    return mine


def assigned_open_ticket_ids(system: EmbeddedStack, member: str) -> set[str]:
    """What is the member's, asking the sandbox directly as ConnectWise would answer and
    working it out here independently: open service and project tickets they own or are
    a resource on, plus open ones they have an open "S" schedule entry for."""
    return {str(ticket["id"]) for ticket in _assigned_open_tickets(system, member)}


def assigned_open_phase_ids(system: EmbeddedStack, member: str) -> set[str]:
    """The open phases of the open projects the member works on (has an open project
    ticket of theirs in), asked of the sandbox one project at a time. A phase has no
    `closedFlag`: it is open while its status is not a closed phase status."""
    worked_on = {
        t["project"]["id"] for t in _assigned_open_tickets(system, member) if "project" in t
    }
    listing = _sandbox_listing(system, member)
    closed = {status["id"] for status in listing("project/phaseStatuses", "closedFlag = true")}
    return {
        str(phase["id"])
        for project in listing("project/projects", "closedFlag = false")
        if project["id"] in worked_on
        for phase in listing(f"project/projects/{project['id']}/phases", "id > 0")
        if (phase.get("status") or {}).get("id") not in closed
    }


def connectwise(
    system: EmbeddedStack, member: str, path: str, *, post: Any = None, **params: Any
) -> Any:
    """What the sandbox's ConnectWise API answers the member (with their own keys): a GET,
    or with `post` a POST of that body (a change the member makes in ConnectWise)."""
    keys = sandbox_keys(system, member)
    info = httpx.get(f"{system.url('sandbox')}/login/companyinfo/{keys['company_id']}").json()
    response = httpx.request(
        "GET" if post is None else "POST",
        f"{system.url('sandbox')}/{info['Codebase']}apis/3.0/{path}",
        params=params or None,  # an empty dict would drop a query written into `path`
        json=post,
        auth=(f"{keys['company_id']}+{keys['public_key']}", keys["private_key"]),
        headers={"clientId": DEV_CONNECTWISE_CLIENT_ID},
    )
    response.raise_for_status()
    return response.json()


def connect_company(
    system: EmbeddedStack, admin: httpx.Client, mappings: dict[str, str], prefix: str = "/v1"
) -> str:
    """An admin (a client of auth-service, or with `prefix="/api/v1"` of the gateway)
    connects the company with the sandbox's API member and maps each user to a member
    (confirmed); the connection's id."""
    keys = sandbox_keys(system, "syntaskio-api")
    connected = admin.post(
        f"{prefix}/admin/integrations/connectwise/api-key",
        json={
            "site": f"http://{system.sandbox_site}",
            "company_id": keys["company_id"],
            "public_key": keys["public_key"],
            "private_key": keys["private_key"],
        },
    )
    assert connected.status_code == 201, connected.text
    integration_id: str = connected.json()["id"]
    for user_id, member in mappings.items():
        mapped = admin.put(
            f"{prefix}/admin/integrations/{integration_id}/mappings/{user_id}",
            json={"member_identifier": member},
        )
        assert mapped.status_code == 200, mapped.text
        assert mapped.json()["state"] == "confirmed"
    return integration_id


def unassigned_open_ticket(system: EmbeddedStack, member: str) -> dict[str, Any]:
    """An open service ticket with no owner, resource or schedule entry: nobody's work
    (listed as `member` sees them)."""
    tickets = connectwise(
        system, member, "service/tickets", conditions="closedFlag = false", pageSize=1000
    )
    scheduled = {
        e["objectId"]
        for e in connectwise(
            system, member, "schedule/entries", conditions='type/identifier = "S"', pageSize=1000
        )
    }
    return next(
        t
        for t in tickets
        if not t.get("owner")
        and not str(t.get("resources") or "").strip()
        and t["id"] not in scheduled
    )


def sandbox(system: EmbeddedStack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    response = httpx.request(method, f"{system.url('sandbox')}/_sandbox{path}", **kwargs)
    assert response.is_success, response.text
    return response


def connector(system: EmbeddedStack, method: str, path: str, **kwargs: Any) -> httpx.Response:
    token = dev_secrets(system.config.data_dir)["INTERNAL_API_TOKEN"]
    return httpx.request(
        method,
        f"{system.url('connector')}/internal/v1{path}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        **kwargs,
    )


def jobs(system: EmbeddedStack, integration_id: str, tenant: str = "acme") -> list[dict[str, Any]]:
    response = connector(
        system, "GET", f"/integrations/{integration_id}/sync-jobs", params={"tenant_id": tenant}
    )
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def sync_now(system: EmbeddedStack, integration_id: str) -> str:
    """Ask for a run; the id of the newest job before it, to wait for a later one."""
    before = jobs(system, integration_id)
    assert connector(system, "POST", f"/integrations/{integration_id}/sync").status_code == 202
    return before[0]["id"] if before else ""


def next_job(system: EmbeddedStack, integration_id: str, after: str) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        for job in jobs(system, integration_id):
            if job["id"] == after:
                return None
            if job["status"] != "running":
                return job
        return None

    job: dict[str, Any] = eventually(finished)
    assert job, "no sync finished"
    return job


def dashboard_tasks(client: httpx.Client) -> list[dict[str, Any]]:
    """Every task on the user's dashboard, page after page."""
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 500}
    while True:
        response = client.get("/api/v1/tasks", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        if not page.get("next_cursor"):
            return items
        params["cursor"] = page["next_cursor"]


def topic_events(system: EmbeddedStack, topic: str) -> list[events.Event]:
    """Every event on `topic` so far, in order per partition."""

    async def read() -> list[events.Event]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=system.kafka_bootstrap_servers, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await consumer.topics()  # fetches the cluster metadata
            partitions = [
                TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()
            ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            seen: list[events.Event] = []

            async def behind() -> bool:
                return any([await consumer.position(p) < end[p] for p in partitions])

            while await behind():
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    seen += [events.decode_event(dict(r.headers), r.value or b"") for r in records]
            return seen
        finally:
            await consumer.stop()

    return asyncio.run(read())


def dashboard_ids(client: httpx.Client) -> set[str]:
    """The tickets on the dashboard (service and project; phases have their own ids)."""
    return {t["external_id"] for t in dashboard_tasks(client) if t["source_type"] in TICKET_TYPES}


def dashboard_phase_ids(client: httpx.Client) -> set[str]:
    return {
        t["external_id"] for t in dashboard_tasks(client) if t["source_type"] == "project_phase"
    }


def auth_service(
    system: EmbeddedStack,
    user_id: str,
    tenant_id: str,
    *,
    roles: tuple[str, ...] = ("technician",),
    email: str | None = None,
) -> httpx.Client:
    """A client of auth-service itself, holding a dev session as a bearer token (with
    `email` the session has it verified, as an identity provider would say)."""
    body: dict[str, Any] = {"user_id": user_id, "tenant_id": tenant_id, "roles": list(roles)}
    if email is not None:
        body["email"] = email
    issued = httpx.post(f"{system.url('auth')}/v1/dev/sessions", json=body)
    assert issued.status_code == 201, issued.text
    return httpx.Client(
        base_url=system.url("auth"),
        headers={"Authorization": f"Bearer {issued.json()['access_token']}"},
        timeout=30,
    )


def lease(
    system: EmbeddedStack, integration_id: str, rejected: int | None = None
) -> httpx.Response:
    """What the connector is answered when it leases the integration's credentials."""
    token = dev_secrets(system.config.data_dir)["INTERNAL_API_TOKEN"]
    return httpx.post(
        f"{system.url('auth')}/internal/v1/integrations/{integration_id}/credentials/lease",
        json={"rejected_version": rejected},
        headers={"Authorization": f"Bearer {token}", "X-Syntaskio-Caller": "e2e-test"},
        timeout=30,
    )


class _FormFields(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.fields: dict[str, str] = {}
        self.action: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "form":
            self.action = found.get("action")
        if tag == "input" and found.get("type") == "hidden" and found.get("name"):
            self.fields[str(found["name"])] = found.get("value") or ""


def answer_consent(authorization_url: str, decision: str, member: str = "atech") -> str:
    """Do what a user does on the sandbox's consent page; return where it redirects."""
    page = httpx.get(authorization_url)
    assert page.status_code == 200, page.text
    form = _FormFields()
    form.feed(page.text)
    action = urljoin(authorization_url, form.action or urlsplit(authorization_url).path)
    answer = httpx.post(action, data={**form.fields, "decision": decision, "member": member})
    assert answer.status_code in (302, 303), answer.text
    return answer.headers["location"]


def callback_params(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


class EventStream:
    """The gateway's task stream (Server-Sent Events) as a browser holds it open, read in
    a thread so the test can wait for an event with a deadline."""

    def __init__(self, client: httpx.Client, last_event_id: str | None = None) -> None:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        # Its own connection, with the browser's session cookie.
        self._client = httpx.Client(
            base_url=client.base_url,
            cookies=client.cookies,
            headers=headers,
            # Reads wait for changes; the gateway sends a keep-alive comment every 15 s.
            timeout=httpx.Timeout(10.0, read=60.0),
        )
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._response: httpx.Response | None = None

    def __enter__(self) -> EventStream:
        self._reader.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()  # ends the reader's stream
        self._reader.join(timeout=10)

    def _read(self) -> None:
        fields: dict[str, str] = {}
        try:
            with self._client.stream("GET", "/api/v1/tasks/stream") as response:
                self._events.put({"event": "status", "data": response.status_code})
                for line in response.iter_lines():
                    if line == "" and "event" in fields:
                        data = json.loads(fields.get("data", "null"))
                        self._events.put({**fields, "data": data})
                        fields = {}
                    elif line and not line.startswith(":"):
                        name, _, value = line.partition(":")
                        fields[name] = value.removeprefix(" ")
        except (httpx.HTTPError, RuntimeError):
            return  # closed by the test

    def next(self, *names: str, timeout: float = 60.0) -> dict[str, Any]:
        """The next event with one of `names` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {names} event within {timeout:.0f}s")
            try:
                event = self._events.get(timeout=left)
            except queue.Empty:
                continue
            if event["event"] in names:
                return event
