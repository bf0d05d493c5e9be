"""A signed-in dashboard user for benches that measure the gateway's API: the embedded
stack with every service started (the gateway's request limiters raised so a bench is
never refused), a user who connects a ConnectWise member with API keys and waits for the
initial sync, the sandbox's request counts, and the figures benches print."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from syntaskio_devstack.stack import SERVICES, EmbeddedStack, dev_secrets

SETUP_SECONDS = 120.0
# Still counted by the limiters, never refused: at the defaults (300 a minute per user)
# repeated passes would be.
RATE_LIMIT = "1000000/minute"
RATE_LIMITS = ("USER_RATE_LIMIT", "SESSION_RATE_LIMIT", "ADDRESS_RATE_LIMIT")
T = TypeVar("T")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def until(check: Callable[[], Awaitable[T]], what: str) -> T:
    deadline = time.monotonic() + SETUP_SECONDS
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    return {
        "count": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p95_ms": round(at(0.95), 1),
        "p99_ms": round(at(0.99), 1),
        "max_ms": round(ordered[-1], 1),
    }


def stats_line(name: str, values: list[float]) -> str:
    s = stats(values)
    return (
        f"  {name:<28}{s['count']:>5}  median {s['median_ms']:>7.1f}  p95 {s['p95_ms']:>7.1f}"
        f"  p99 {s['p99_ms']:>7.1f}  max {s['max_ms']:>7.1f} ms"
    )


def start_services(stack: EmbeddedStack) -> None:
    """The sandbox, the identity provider, the trace sink and the four services."""
    stack.start_sandbox()
    services = [stack.service(name) for name in SERVICES]
    for process in services:
        if process.name == "gateway":
            process.env = {**process.env, **{name: RATE_LIMIT for name in RATE_LIMITS}}
    stack.start_all([stack.identity_provider(), stack.trace_sink()])
    stack.start_all(services)


class DashboardUser:
    """One user's browser-like client of the gateway (the session cookie), with the
    sandbox's and the connector's APIs beside it."""

    def __init__(self, stack: EmbeddedStack, tenant_id: str, user_id: str) -> None:
        self.stack = stack
        self.tenant_id = tenant_id
        self.user_id = user_id
        self.sandbox = httpx.AsyncClient(base_url=stack.url("sandbox"), timeout=30)
        self.gateway = httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30)
        token = dev_secrets(stack.config.data_dir)["INTERNAL_API_TOKEN"]
        self.connector = httpx.AsyncClient(
            base_url=f"{stack.url('connector')}/internal/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )

    async def close(self) -> None:
        for client in (self.sandbox, self.gateway, self.connector):
            await client.aclose()

    async def sign_in(self, *roles: str) -> None:
        login = {"user_id": self.user_id, "tenant_id": self.tenant_id, "roles": list(roles)}
        if not roles:
            del login["roles"]
        (await self.gateway.post("/api/v1/session/dev-login", json=login)).raise_for_status()

    async def api_keys(self, member: str) -> dict[str, Any]:
        keys: dict[str, Any] = next(
            k
            for k in (await self.sandbox.get("/_sandbox/api-keys")).json()
            if k["member_identifier"] == member
        )
        return keys

    async def connect_keys(self, path: str, member: str) -> str:
        """POST `member`'s API keys to the gateway's connect route at `path`; the id."""
        keys = await self.api_keys(member)
        connected = await self.gateway.post(
            path,
            json={
                "site": f"http://{self.stack.sandbox_site}",
                "company_id": keys["company_id"],
                "public_key": keys["public_key"],
                "private_key": keys["private_key"],
            },
        )
        assert connected.status_code == 201, connected.text
        integration_id: str = connected.json()["id"]
        return integration_id

    async def connect(self, member: str) -> list[dict[str, Any]]:
        """Sign in, connect `member` with their API keys, wait for the initial sync; the
        member's service tickets as the dashboard shows them, once stable."""
        await self.sign_in()
        await self.connect_keys("/api/v1/integrations/connectwise/api-key", member)
        [integration] = (await self.gateway.get("/api/v1/integrations")).json()

        async def synced() -> bool:
            jobs = (
                await self.connector.get(
                    f"/integrations/{integration['id']}/sync-jobs",
                    params={"tenant_id": self.tenant_id},
                )
            ).json()
            return any(j["trigger"] == "connected" and j["status"] == "succeeded" for j in jobs)

        await until(synced, "the initial sync")
        previous: list[str] = []

        async def stable() -> list[dict[str, Any]]:
            nonlocal previous
            items = (await self.gateway.get("/api/v1/tasks", params={"limit": 500})).json()
            tickets = [t for t in items["items"] if t["source_type"] == "service_ticket"]
            ids = sorted(t["id"] for t in tickets)
            done = tickets if tickets and ids == previous else []
            previous = ids
            return done

        tickets: list[dict[str, Any]] = await until(stable, "the member's tasks")
        return sorted(tickets, key=lambda t: int(t["external_id"]))

    async def requests_made(self) -> Counter[str]:
        """The sandbox's API requests so far, by endpoint without the API root."""
        found = (await self.sandbox.get("/_sandbox/stats")).json()
        return Counter(
            {
                f"{endpoint.split(' ', 1)[0]} {endpoint.split('apis/3.0/', 1)[-1]}": count
                for endpoint, count in found["by_endpoint"].items()
            }
        )

    async def timed_get(self, path: str, **params: str) -> float:
        started = time.perf_counter()
        response = await self.gateway.get(path, params=params or None)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (path, response.status_code, response.text)
        return elapsed
