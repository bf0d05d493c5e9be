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
import time
from collections import Counter
from typing import Any

from bench_dashboard import DashboardUser, progress, start_services, stats, stats_line
from bench_stack import bench_stack

TENANT = "acme-msp"
USER = "detail-bench@acme-msp.example"


class Bench:
    def __init__(self, user: DashboardUser, args: argparse.Namespace) -> None:
        self.user = user
        self.args = args
        self.results: dict[str, Any] = {}
        self.lines: list[str] = []

    async def run(self) -> None:
        tickets = (await self.user.connect(self.args.member))[: self.args.tickets]
        progress(f"{len(tickets)} tickets; cold reads")
        cold: list[float] = []
        per_detail: Counter[str] = Counter()
        sizes: Counter[int] = Counter()
        for task in tickets:
            before = await self.user.requests_made()
            cold.append(await self.user.timed_get(f"/api/v1/tasks/{task['id']}/detail"))
            made = await self.user.requests_made() - before
            per_detail += made
            sizes[sum(made.values())] += 1
        progress("warm reads")
        before = await self.user.requests_made()
        warm: list[float] = []
        task_only: list[float] = []
        for _ in range(self.args.rounds):
            for task in tickets:
                warm.append(await self.user.timed_get(f"/api/v1/tasks/{task['id']}/detail"))
                task_only.append(await self.user.timed_get(f"/api/v1/tasks/{task['id']}"))
        during_warm = await self.user.requests_made() - before

        self.lines += [
            f"member {self.args.member}: {len(tickets)} service tickets, one request at a time",
            "",
            stats_line("detail, cold", cold),
            stats_line("detail, warm (cached)", warm),
            stats_line("task alone (GET /tasks/{id})", task_only),
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
            "cold": stats(cold),
            "warm": stats(warm),
            "task_alone": stats(task_only),
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
        start_services(stack)
        progress(f"stack up in {time.monotonic() - started:.1f}s (data in {stack.config.data_dir})")
        bench = Bench(DashboardUser(stack, TENANT, USER), args)

        async def measure() -> None:
            try:
                await bench.run()
            finally:
                await bench.user.close()

        asyncio.run(measure())
    print(json.dumps(bench.results, indent=2) if args.json else "\n".join(bench.lines))


if __name__ == "__main__":
    main()
