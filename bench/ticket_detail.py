"""Ticket detail: what opening a ticket costs, cold (read in ConnectWise) and warm (from
the connector's cache), through the gateway on the embedded stack.

The whole stack runs (broker, database, sandbox, the four services) with a scheduled
sync interval of an hour, so nothing but the bench asks the sandbox anything after the
initial sync. A user signs in and connects `--member` with API keys; once the initial
sync has succeeded and the dashboard's task list is stable, the bench takes up to
`--tickets` of the member's service tickets and, one request at a time:

- cold: `GET /api/v1/tasks/{id}/detail` for each ticket once (nothing cached), with the
  sandbox's request counts (`/_sandbox/stats`) read before and after each, so every
  ConnectWise request a detail made is itemised by endpoint;
- warm: `--rounds` more passes over the same tickets (all cached), counting the
  ConnectWise requests made meanwhile (expected: none);
- for comparison, `GET /api/v1/tasks/{id}` (the task alone, from the gateway's database)
  for each ticket, `--rounds` passes.

The gateway runs with its per-user, per-session and per-address rates raised to
1,000,000/minute (still counted, never refused). Each request is timed from sending it
to having read the whole answer on one `httpx.AsyncClient` (the session cookie);
reported as median, p95, p99 and max ms. All on one machine (the client shares its
CPU). `--json` prints the figures as JSON (progress goes to stderr). A measurement: it
prints figures and asserts no timings.

    uv run python bench/ticket_detail.py [--tickets 40] [--rounds 10] [--member atech]
        [--json] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from bench_stack import bench_stack

from syntaskio_devstack.stack import SERVICES, EmbeddedStack, dev_secrets

TENANT = "acme-msp"
USER = "detail-bench@acme-msp.example"
SETUP_SECONDS = 120.0
RATE_LIMIT = "1000000/minute"
RATE_LIMITS = ("USER_RATE_LIMIT", "SESSION_RATE_LIMIT", "ADDRESS_RATE_LIMIT")
T = TypeVar("T")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


async def _until(check: Callable[[], Awaitable[T]], what: str) -> T:
    deadline = time.monotonic() + SETUP_SECONDS
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        await asyncio.sleep(0.5)
    raise SystemExit(f"timed out waiting for {what}")


def _stats(values: list[float]) -> dict[str, float]:
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


def _line(name: str, values: list[float]) -> str:
    s = _stats(values)
    return (
        f"  {name:<28}{s['count']:>5}  median {s['median_ms']:>7.1f}  p95 {s['p95_ms']:>7.1f}"
        f"  p99 {s['p99_ms']:>7.1f}  max {s['max_ms']:>7.1f} ms"
    )


class Bench:
    def __init__(self, stack: EmbeddedStack, args: argparse.Namespace) -> None:
        self.stack = stack
        self.args = args
        self.sandbox = httpx.AsyncClient(base_url=stack.url("sandbox"), timeout=30)
        self.gateway = httpx.AsyncClient(base_url=stack.url("gateway"), timeout=30)
        token = dev_secrets(stack.config.data_dir)["INTERNAL_API_TOKEN"]
        self.connector = httpx.AsyncClient(
            base_url=f"{stack.url('connector')}/internal/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        self.results: dict[str, Any] = {}
        self.lines: list[str] = []

    async def close(self) -> None:
        for client in (self.sandbox, self.gateway, self.connector):
            await client.aclose()

    async def connect(self) -> list[dict[str, Any]]:
        """Sign in, connect the member, wait for the initial sync; the member's service
        tickets as the dashboard shows them, once stable."""
        login = {"user_id": USER, "tenant_id": TENANT}
        (await self.gateway.post("/api/v1/session/dev-login", json=login)).raise_for_status()
        keys = next(
            k
            for k in (await self.sandbox.get("/_sandbox/api-keys")).json()
            if k["member_identifier"] == self.args.member
        )
        connected = await self.gateway.post(
            "/api/v1/integrations/connectwise/api-key",
            json={
                "site": f"http://{self.stack.sandbox_site}",
                "company_id": keys["company_id"],
                "public_key": keys["public_key"],
                "private_key": keys["private_key"],
            },
        )
        assert connected.status_code == 201, connected.text
        [integration] = (await self.gateway.get("/api/v1/integrations")).json()

        async def synced() -> bool:
            jobs = (
                await self.connector.get(
                    f"/integrations/{integration['id']}/sync-jobs", params={"tenant_id": TENANT}
                )
            ).json()
            return any(j["trigger"] == "connected" and j["status"] == "succeeded" for j in jobs)

        await _until(synced, "the initial sync")
        previous: list[str] = []

        async def stable() -> list[dict[str, Any]]:
            nonlocal previous
            items = (await self.gateway.get("/api/v1/tasks", params={"limit": 500})).json()
            tickets = [t for t in items["items"] if t["source_type"] == "service_ticket"]
            ids = sorted(t["id"] for t in tickets)
            done = tickets if tickets and ids == previous else []
            previous = ids
            return done

        tickets: list[dict[str, Any]] = await _until(stable, "the member's tasks")
        return sorted(tickets, key=lambda t: int(t["external_id"]))[: self.args.tickets]

    async def requests_made(self) -> Counter[str]:
        """The sandbox's API requests so far, by endpoint without the API root."""
        stats = (await self.sandbox.get("/_sandbox/stats")).json()
        return Counter(
            {
                f"{endpoint.split(' ', 1)[0]} {endpoint.split('apis/3.0/', 1)[-1]}": count
                for endpoint, count in stats["by_endpoint"].items()
            }
        )

    async def timed_get(self, path: str) -> float:
        started = time.perf_counter()
        response = await self.gateway.get(path)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (path, response.status_code, response.text)
        return elapsed

    async def run(self) -> None:
        tickets = await self.connect()
        progress(f"{len(tickets)} tickets; cold reads")
        cold: list[float] = []
        per_detail: Counter[str] = Counter()
        sizes: Counter[int] = Counter()
        for task in tickets:
            before = await self.requests_made()
            cold.append(await self.timed_get(f"/api/v1/tasks/{task['id']}/detail"))
            made = await self.requests_made() - before
            per_detail += made
            sizes[sum(made.values())] += 1
        progress("warm reads")
        before = await self.requests_made()
        warm: list[float] = []
        task_only: list[float] = []
        for _ in range(self.args.rounds):
            for task in tickets:
                warm.append(await self.timed_get(f"/api/v1/tasks/{task['id']}/detail"))
                task_only.append(await self.timed_get(f"/api/v1/tasks/{task['id']}"))
        during_warm = await self.requests_made() - before

        self.lines += [
            f"member {self.args.member}: {len(tickets)} service tickets, one request at a time",
            "",
            _line("detail, cold", cold),
            _line("detail, warm (cached)", warm),
            _line("task alone (GET /tasks/{id})", task_only),
            "",
            "ConnectWise requests per cold detail (all tickets):",
            *(f"  {n} requests: {count} details" for n, count in sorted(sizes.items())),
            "by endpoint, per detail:",
            *(
                f"  {endpoint:<40}{count / len(tickets):.2f}"
                for endpoint, count in sorted(per_detail.items())
            ),
            f"ConnectWise requests during the {len(warm)} warm reads: {sum(during_warm.values())}",
        ]
        self.results = {
            "member": self.args.member,
            "tickets": len(tickets),
            "cold": _stats(cold),
            "warm": _stats(warm),
            "task_alone": _stats(task_only),
            "requests_per_cold_detail": {str(n): c for n, c in sorted(sizes.items())},
            "requests_by_endpoint_per_detail": {
                e: round(c / len(tickets), 2) for e, c in sorted(per_detail.items())
            },
            "requests_during_warm": sum(during_warm.values()),
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tickets", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--member", default="atech")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs/)")
    args = parser.parse_args()
    if args.tickets < 1 or args.rounds < 1:
        parser.error("--tickets and --rounds must be at least 1")
    started = time.monotonic()
    with bench_stack("detail-bench-", keep=args.keep, sync_interval_seconds=3600.0) as stack:
        stack.start_sandbox()
        # The limiters still count every request, but never refuse one: at the defaults
        # (300 a minute per user) the warm passes would be refused.
        services = [stack.service(name) for name in SERVICES]
        for process in services:
            if process.name == "gateway":
                process.env = {**process.env, **{name: RATE_LIMIT for name in RATE_LIMITS}}
        stack.start_all([stack.identity_provider(), stack.trace_sink()])
        stack.start_all(services)
        progress(f"stack up in {time.monotonic() - started:.1f}s (data in {stack.config.data_dir})")
        bench = Bench(stack, args)

        async def measure() -> None:
            try:
                await bench.run()
            finally:
                await bench.close()

        asyncio.run(measure())
    print(json.dumps(bench.results, indent=2) if args.json else "\n".join(bench.lines))


if __name__ == "__main__":
    main()
