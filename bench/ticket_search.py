"""Find any ticket: what a search costs in ConnectWise requests and in time, through the
gateway on the embedded stack, for a technician on their own connection and one on
their company's (whose searches are made with keys the company's API member mints).

The whole stack runs (broker, database, sandbox, the four services) with a scheduled
sync interval of an hour, so nothing but the bench asks the sandbox anything after the
initial syncs. Two users of one company:

- `own`: connects `--member` with that member's own API keys;
- `company`: an admin connects the company's API member (`syntaskio-api`) and maps the
  user to `--company-member`.

Each user searches `--queries` distinct queries (half ticket numbers, half summary words
taken from the sandbox's tickets), one request at a time. Each query is sent once (cold:
ConnectWise is asked) and then `--repeats` times at once more within its 30 s (warm:
the connector's cache answers), with the sandbox's request counts (`/_sandbox/stats`)
read around each, so every ConnectWise request is itemised: per distinct query, per
repeat, and the member-key mints (`POST system/members/{id}/tokens`).

Timed from sending a request to having read the whole answer (one `httpx.AsyncClient`);
median, p95, p99 and max ms. All on one machine. `--json` prints the figures as JSON.
A measurement: it prints figures and asserts no timings.

    uv run python bench/ticket_search.py [--queries 40] [--repeats 5] [--member atech]
        [--company-member bjones] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench_dashboard import DashboardUser, progress, start_services, stats, stats_line, until
from bench_stack import bench_stack

from syntaskio_devstack.stack import DEV_CONNECTWISE_CLIENT_ID, EmbeddedStack

TENANT = "search-msp"
API_MEMBER = "syntaskio-api"


def is_mint(endpoint: str) -> bool:
    """`POST system/members/{identifier}/tokens` (the sandbox names the member)."""
    return endpoint.startswith("POST system/members/") and endpoint.endswith("/tokens")


def queries(tickets: list[dict[str, Any]], count: int) -> list[str]:
    """Half ticket numbers, half two words from summaries: `count` distinct ones."""
    numbers = [f"#{t['id']}" for t in tickets[:: max(1, len(tickets) // count)]]
    phrases: list[str] = []
    for ticket in tickets:
        words = [w for w in str(ticket["summary"]).split() if len(w) > 3][:2]
        phrase = " ".join(words).casefold()
        if len(words) == 2 and phrase not in phrases:
            phrases.append(phrase)
    half = count // 2
    return numbers[: count - half] + phrases[:half]


async def map_company_user(stack: EmbeddedStack, user: DashboardUser, member: str) -> None:
    """An admin connects the company's API member and maps `user` to `member`; returns
    once the connection's syncs are done (so none runs while the bench measures)."""
    admin = DashboardUser(stack, TENANT, "admin@search-msp")
    try:
        await admin.sign_in("technician", "admin")
        integration_id = await admin.connect_keys(
            "/api/v1/admin/integrations/connectwise/api-key", API_MEMBER
        )
        mapped = await admin.gateway.put(
            f"/api/v1/admin/integrations/{integration_id}/mappings/{user.user_id}",
            json={"member_identifier": member},
        )
        assert mapped.status_code == 200, mapped.text
        mapped_at = datetime.now(UTC)

        async def quiet() -> bool:
            jobs = (
                await user.connector.get(
                    f"/integrations/{integration_id}/sync-jobs", params={"tenant_id": TENANT}
                )
            ).json()
            after = [j for j in jobs if datetime.fromisoformat(j["started_at"]) > mapped_at]
            return any(j["status"] == "succeeded" for j in after) and all(
                j["status"] != "running" for j in jobs
            )

        await until(quiet, "the company connection's syncs")
    finally:
        await admin.close()


async def sandbox_tickets(user: DashboardUser) -> list[dict[str, Any]]:
    """The sandbox's service tickets, as the company's API member lists them."""
    keys = await user.api_keys(API_MEMBER)
    info = (await user.sandbox.get(f"/login/companyinfo/{keys['company_id']}")).json()
    listed = await user.sandbox.get(
        f"/{info['Codebase']}apis/3.0/service/tickets",
        params={"pageSize": 1000, "fields": "id,summary"},
        auth=(f"{keys['company_id']}+{keys['public_key']}", keys["private_key"]),
        headers={"clientId": DEV_CONNECTWISE_CLIENT_ID},
    )
    listed.raise_for_status()
    found: list[dict[str, Any]] = listed.json()
    return found


async def measure(user: DashboardUser, asked: list[str], repeats: int) -> dict[str, Any]:
    cold: list[float] = []
    warm: list[float] = []
    per_query: Counter[int] = Counter()
    by_endpoint: Counter[str] = Counter()
    during_warm: Counter[str] = Counter()
    for query in asked:
        before = await user.requests_made()
        cold.append(await user.timed_get("/api/v1/tickets/search", q=query))
        made = await user.requests_made() - before
        by_endpoint += made
        per_query[sum(n for e, n in made.items() if not is_mint(e))] += 1
        before = await user.requests_made()
        for _ in range(repeats):
            warm.append(await user.timed_get("/api/v1/tickets/search", q=query))
        during_warm += await user.requests_made() - before
    return {
        "cold": cold,
        "warm": warm,
        "requests_per_distinct_query": dict(sorted(per_query.items())),
        "requests_during_repeats": sum(during_warm.values()),
        "requests_by_endpoint": dict(sorted(by_endpoint.items())),
        "member_key_mints": sum(n for e, n in by_endpoint.items() if is_mint(e)),
    }


async def run(stack: EmbeddedStack, args: argparse.Namespace) -> tuple[list[str], dict[str, Any]]:
    own = DashboardUser(stack, TENANT, "own@search-msp")
    company = DashboardUser(stack, TENANT, "company@search-msp")
    try:
        await own.connect(args.member)
        await company.sign_in()
        await map_company_user(stack, company, args.company_member)
        asked = queries(await sandbox_tickets(own), args.queries)
        progress(f"{len(asked)} distinct queries, {args.repeats} repeats each")
        results: dict[str, Any] = {}
        lines: list[str] = []
        for name, user in (("own connection", own), ("company connection", company)):
            found = await measure(user, asked, args.repeats)
            lines += [
                f"{name}:",
                stats_line("search, cold", found["cold"]),
                stats_line("search, repeated (cached)", found["warm"]),
                "  ConnectWise requests per distinct query: "
                + ", ".join(
                    f"{n}: {c} queries" for n, c in found["requests_per_distinct_query"].items()
                ),
                f"  during the {len(found['warm'])} repeats: {found['requests_during_repeats']}",
                "  by endpoint, all cold queries: "
                + ", ".join(f"{e}: {n}" for e, n in found["requests_by_endpoint"].items()),
                f"  member-key mints: {found['member_key_mints']}",
                "",
            ]
            results[name.split()[0]] = {
                **found,
                "cold": stats(found["cold"]),
                "warm": stats(found["warm"]),
            }
        return lines, {"queries": len(asked), "repeats": args.repeats, **results}
    finally:
        await own.close()
        await company.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--member", default="atech")
    parser.add_argument("--company-member", default="bjones")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs/)")
    args = parser.parse_args()
    if args.queries < 2 or args.repeats < 1:
        parser.error("--queries must be at least 2 and --repeats at least 1")
    started = time.monotonic()
    with bench_stack("search-bench-", keep=args.keep, sync_interval_seconds=3600.0) as stack:
        start_services(stack)
        progress(f"stack up in {time.monotonic() - started:.1f}s (data in {stack.config.data_dir})")
        lines, results = asyncio.run(run(stack, args))
    print(json.dumps(results, indent=2) if args.json else "\n".join(lines))


if __name__ == "__main__":
    main()
