"""What one idle scheduled sync costs besides its ConnectWise requests: database commands
(by name, the connector's and auth-service's), auth-service calls (credential leases),
Kafka records published, ConnectWise requests, and the run's wall time.

The embedded stack runs for real: broker, database, the ConnectWise sandbox (300
tickets), auth-service, the connector (`SYNC_INTERVAL_SECONDS` = `--interval`,
`SYNC_POLL_SECONDS` 1) and the gateway (only to sign users in and connect them). First
the connector is watched with nothing connected for `--baseline` seconds: what it does
on its own (its heartbeat and polls), per second. Then `--members` technicians each
connect their sandbox member with API keys; once every initial sync and one scheduled
run each have succeeded (caches warm, callbacks registered), the bench reads each
service's `/metrics` (`syntaskio_mongodb_commands_total` by command,
`syntaskio_sync_runs_total`, `syntaskio_connectwise_requests_total`, FastStream's
published messages, auth-service's lease route) and again `--seconds` later. Nothing
changes in the sandbox meanwhile, so every run is idle.

Per scheduled run: the window's counts, less the baseline's per-second rate over the
window, divided by the runs that succeeded in it (runs of any other trigger or outcome
are printed and would make the figures meaningless). Wall time: the connector's run
duration (claim to end, its histogram's mean) and each job's own `duration_ms`
(median, p95) from the connector's sync-jobs API. Counts, plus timings that depend on
the machine; it asserts nothing. About three minutes with the defaults.

    uv run python bench/idle_sync.py [--members 3] [--interval 5] [--seconds 60]
        [--baseline 15] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

import httpx
from bench_dashboard import DashboardUser, progress, until
from bench_stack import bench_stack
from prometheus_client.parser import text_string_to_metric_families

from syntaskio_devstack.stack import EmbeddedStack

TENANT = "acme-msp"
LEASE_ROUTE = "/internal/v1/integrations/{integration_id}/credentials/lease"


def scrape(stack: EmbeddedStack, service: str) -> defaultdict[str, float]:
    """The counters this bench reads, as `name{label}` → value."""
    text = httpx.get(stack.metrics_url(service), timeout=10).text
    found: defaultdict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "syntaskio_mongodb_commands_total":
                found[f"db {s.labels['command']}"] += s.value
            elif s.name == "syntaskio_sync_runs_total":
                found[f"runs {s.labels['trigger']} {s.labels['outcome']}"] += s.value
            elif s.name == "syntaskio_sync_run_duration_seconds_sum":
                found["run seconds"] += s.value
            elif s.name == "syntaskio_connectwise_requests_total":
                found["connectwise"] += s.value
            elif s.name == "messaging_publish_messages_message_total":
                found[f"kafka {s.labels.get('messaging_destination_name', '?')}"] += s.value
            elif s.name == "http_server_request_duration_seconds_count" and (
                s.labels.get("http_route") == LEASE_ROUTE
            ):
                found["leases"] += s.value
    return found


def snapshot(stack: EmbeddedStack) -> dict[str, defaultdict[str, float]]:
    return {service: scrape(stack, service) for service in ("connector", "auth")}


def delta(
    after: dict[str, defaultdict[str, float]], before: dict[str, defaultdict[str, float]]
) -> dict[str, defaultdict[str, float]]:
    return {
        service: defaultdict(float, {k: v - before[service][k] for k, v in after[service].items()})
        for service in after
    }


async def connect_members(stack: EmbeddedStack, count: int) -> list[tuple[DashboardUser, str]]:
    """`count` technicians, each connecting their own sandbox member with API keys."""
    probe = DashboardUser(stack, TENANT, "idle-bench-probe@acme-msp.example")
    keys = (await probe.sandbox.get("/_sandbox/api-keys")).json()
    await probe.close()
    members = [k["member_identifier"] for k in keys if k.get("license_class") != "A"][:count]
    connected = []
    for member in members:
        user = DashboardUser(stack, TENANT, f"idle-bench-{member}@acme-msp.example")
        await user.sign_in()
        integration_id = await user.connect_keys("/api/v1/integrations/connectwise/api-key", member)
        connected.append((user, integration_id))
        progress(f"connected {member}")
    return connected


async def jobs_of(user: DashboardUser, integration_id: str) -> list[dict[str, Any]]:
    response = await user.connector.get(
        f"/integrations/{integration_id}/sync-jobs",
        params={"tenant_id": user.tenant_id, "limit": 100},
    )
    response.raise_for_status()
    jobs: list[dict[str, Any]] = response.json()
    return jobs


async def measure(stack: EmbeddedStack, args: argparse.Namespace) -> dict[str, Any]:
    progress(f"baseline: nothing connected, {args.baseline:.0f} s")
    start = snapshot(stack)
    await asyncio.sleep(args.baseline)
    background = delta(snapshot(stack), start)
    per_second = {
        service: {k: v / args.baseline for k, v in counts.items()}
        for service, counts in background.items()
    }
    connected = await connect_members(stack, args.members)

    async def warm() -> bool:
        for user, integration_id in connected:
            jobs = await jobs_of(user, integration_id)
            done = {(j["trigger"], j["status"]) for j in jobs}
            if not {("connected", "succeeded"), ("scheduled", "succeeded")} <= done:
                return False
        return True

    await until(warm, "the initial syncs and a scheduled run each")
    progress(f"measuring {args.seconds:.0f} s of idle scheduled syncs")
    started = time.time()
    before = snapshot(stack)
    await asyncio.sleep(args.seconds)
    window = delta(snapshot(stack), before)
    elapsed = time.time() - started

    durations: list[float] = []
    for user, integration_id in connected:
        for job in await jobs_of(user, integration_id):
            at = datetime.fromisoformat(job["started_at"]).timestamp()
            if job["trigger"] == "scheduled" and at >= started and job.get("duration_ms"):
                durations.append(float(job["duration_ms"]))
    for user, _ in connected:
        await user.close()

    connector = window["connector"]
    runs = connector["runs scheduled succeeded"]
    others = {
        k.removeprefix("runs "): v
        for k, v in connector.items()
        if k.startswith("runs ") and k != "runs scheduled succeeded" and v
    }

    def per_run(service: str, key: str) -> float:
        net = window[service][key] - per_second[service].get(key, 0.0) * elapsed
        return max(0.0, net) / runs if runs else float("nan")

    commands = sorted(
        {k for service in window for k in window[service] if k.startswith("db ")},
        key=lambda k: -(window["connector"][k] + window["auth"][k]),
    )
    return {
        "members": args.members,
        "interval_s": args.interval,
        "window_s": round(elapsed, 1),
        "runs": runs,
        "other_runs": others,
        "background_per_s": {
            service: {k: round(v, 2) for k, v in counts.items() if k.startswith("db ")}
            for service, counts in per_second.items()
        },
        "per_run": {
            "db_commands": {
                k.removeprefix("db "): {
                    "connector": round(per_run("connector", k), 2),
                    "auth": round(per_run("auth", k), 2),
                }
                for k in commands
            },
            "db_connector": round(sum(per_run("connector", k) for k in commands), 1),
            "db_auth": round(sum(per_run("auth", k) for k in commands), 1),
            "lease_calls": round(per_run("auth", "leases"), 2),
            "kafka_published": {
                k.removeprefix("kafka "): round(per_run("connector", k), 2)
                for k in connector
                if k.startswith("kafka ")
            },
            "connectwise_requests": round(per_run("connector", "connectwise"), 2),
            "run_mean_ms": round(1000 * connector["run seconds"] / runs, 1) if runs else None,
            "job_median_ms": round(statistics.median(durations), 1) if durations else None,
            "job_p95_ms": round(sorted(durations)[int(0.95 * (len(durations) - 1))], 1)
            if durations
            else None,
        },
    }


def report(figures: dict[str, Any]) -> None:
    per = figures["per_run"]
    print(
        f"\nIdle scheduled syncs: {figures['members']} members, interval {figures['interval_s']} s,"
        f" {figures['runs']:.0f} runs in {figures['window_s']} s"
        + (f" (other runs: {figures['other_runs']})" if figures["other_runs"] else "")
    )
    print("\n| per idle scheduled sync | connector | auth-service | total |")
    print("|---|---|---|---|")
    print(
        f"| **database commands** | **{per['db_connector']}** | **{per['db_auth']}** |"
        f" **{per['db_connector'] + per['db_auth']:.1f}** |"
    )
    for name, counts in per["db_commands"].items():
        if counts["connector"] or counts["auth"]:
            both = counts["connector"] + counts["auth"]
            print(f"| · {name} | {counts['connector']} | {counts['auth']} | {both:.2f} |")
    print(f"| auth-service calls (credential leases) | {per['lease_calls']} | | |")
    for topic, count in per["kafka_published"].items():
        print(f"| Kafka records published ({topic}) | {count} | | |")
    print(f"| ConnectWise requests | {per['connectwise_requests']} | | |")
    print(
        f"| wall time: run (claim to end, mean) | {per['run_mean_ms']} ms | | |\n"
        f"| wall time: job (median / p95) | {per['job_median_ms']} / {per['job_p95_ms']} ms | | |"
    )
    background = figures["background_per_s"]
    print(
        "\nSubtracted, as the connector's own background with nothing connected (per second):"
        f" connector {background['connector']}, auth-service {background['auth']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description="Database commands, auth-service calls, Kafka records, ConnectWise "
        "requests and wall time per idle scheduled sync, on the embedded stack."
    )
    parser.add_argument("--members", type=int, default=3, help="members connected (3)")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="SYNC_INTERVAL_SECONDS of the connector (5)"
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="measured window (60)")
    parser.add_argument(
        "--baseline", type=float, default=15.0, help="window with nothing connected (15)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs)")
    args = parser.parse_args()
    with bench_stack(
        "idle-sync-bench-", keep=args.keep, sync_interval_seconds=args.interval
    ) as stack:
        stack.start_sandbox()
        services = [stack.service(name) for name in ("auth", "connector", "gateway")]
        for process in services:
            if process.name == "connector":
                process.env = {**process.env, "SYNC_POLL_SECONDS": "1"}
        stack.start_all(services)
        figures = asyncio.run(measure(stack, args))
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        report(figures)


if __name__ == "__main__":
    main()
