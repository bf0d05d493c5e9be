"""What telemetry costs: the same two measurements with it off (`OTEL_SDK_DISABLED=true`),
on (every span exported over OTLP/HTTP to the test trace sink, as to a Collector, and the
metrics recorded), and sampled (the same, but one trace in ten kept:
`OTEL_TRACES_SAMPLER=parentbased_traceidratio`, `OTEL_TRACES_SAMPLER_ARG=0.1`):

- the aggregator's drain rate (`aggregator_throughput.py`: a backlog of raw events, each
  of which now gets a span of its own, plus FastStream's and PyMongo's spans);
- the gateway's `GET /tasks` and `/tasks/facets` latency under load (`gateway_queries.py`:
  a server span, PyMongo spans and a call to auth-service per request).

Each mode runs on a fresh embedded stack; the figures are the overhead of "on" and
"sampled" against "off". Smaller than the two benches' defaults, so it runs in about half
an hour on 2 cores; `--tasks 0` measures the aggregator alone (about 10 minutes).

    uv run python bench/tracing_overhead.py [--events 30000] [--tasks 20000] [--users 20]
        [--requests 10] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import aggregator_throughput
import gateway_queries
from bench_stack import bench_stack

from syntaskio_devstack.stack import EmbeddedStack

MODES = ("off", "on", "sampled")


@dataclass
class Mode:
    events_per_second: float = 0.0
    tasks_median_ms: float = 0.0
    tasks_p95_ms: float = 0.0
    tasks_p99_ms: float = 0.0
    facets_median_ms: float = 0.0
    facets_p95_ms: float = 0.0
    facets_p99_ms: float = 0.0
    gateway_per_second: float = 0.0
    spans_exported: int = 0


@dataclass
class Results:
    events: int
    tasks: int
    users: int
    modes: dict[str, Mode] = field(default_factory=dict)
    # per mode but "off": percent worse than "off"
    overhead: dict[str, dict[str, float]] = field(default_factory=dict)


@contextmanager
def tracing(stack: EmbeddedStack, mode: str) -> Iterator[None]:
    """The services started inside inherit the mode (the stack passes the environment
    on); with "on", the trace sink is started first and they export to it."""
    before = dict(os.environ)
    if mode == "off":
        os.environ["OTEL_SDK_DISABLED"] = "true"
    else:
        if mode == "sampled":
            os.environ["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
            os.environ["OTEL_TRACES_SAMPLER_ARG"] = "0.1"
        stack.start_all([stack.trace_sink()])
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(before)


def exported(stack: EmbeddedStack) -> int:
    if "trace_sink" not in stack.processes:
        return 0
    import httpx

    count: int = httpx.get(f"{stack.url('trace_sink')}/health").json()["spans"]
    return count


def measure_mode(mode: str, args: argparse.Namespace) -> Mode:
    found = Mode()
    drain = argparse.Namespace(
        events=args.events, batch_size=500, consumers=1, users=20, timeout=900.0
    )
    with bench_stack(f"tracing-{mode}-drain-", keep=False) as stack, tracing(stack, mode):
        print(f"{mode}: aggregator drain of {args.events:,} events …", file=sys.stderr)
        drained = asyncio.run(aggregator_throughput.measure(stack, drain))
        found.events_per_second = drained.events_per_second
        found.spans_exported += exported(stack)
    if not args.tasks:
        return found  # the aggregator only
    queries = argparse.Namespace(
        tasks=args.tasks,
        users=args.users,
        requests=args.requests,
        alone=0,
        batch_size=1000,
    )
    with bench_stack(f"tracing-{mode}-queries-", keep=False) as stack, tracing(stack, mode):
        print(f"{mode}: gateway queries, {args.users} users …", file=sys.stderr)
        served = asyncio.run(gateway_queries.measure(stack, queries))
        tasks, facets = served.gateway.figures["/tasks"], served.gateway.figures["/tasks/facets"]
        found.tasks_median_ms, found.tasks_p95_ms = tasks.median_ms, tasks.p95_ms
        found.tasks_p99_ms = tasks.p99_ms
        found.facets_median_ms, found.facets_p95_ms = facets.median_ms, facets.p95_ms
        found.facets_p99_ms = facets.p99_ms
        found.gateway_per_second = served.gateway.per_second
        found.spans_exported += exported(stack)
    return found


def overhead(on: float, off: float, *, higher_is_better: bool = False) -> float:
    """How much worse "on" is than "off", in percent."""
    if higher_is_better:
        return round((off / on - 1) * 100, 1) if on else float("inf")
    return round((on / off - 1) * 100, 1) if off else float("inf")


def overheads(on: Mode, off: Mode) -> dict[str, float]:
    return {
        "drain": overhead(on.events_per_second, off.events_per_second, higher_is_better=True),
        "tasks_median": overhead(on.tasks_median_ms, off.tasks_median_ms),
        "tasks_p95": overhead(on.tasks_p95_ms, off.tasks_p95_ms),
        "tasks_p99": overhead(on.tasks_p99_ms, off.tasks_p99_ms),
        "facets_median": overhead(on.facets_median_ms, off.facets_median_ms),
        "facets_p95": overhead(on.facets_p95_ms, off.facets_p95_ms),
        "gateway_throughput": overhead(
            on.gateway_per_second, off.gateway_per_second, higher_is_better=True
        ),
    }


def summary(r: Results) -> str:
    off = r.modes["off"]
    lines = [
        f"telemetry off (OTEL_SDK_DISABLED) vs on (every span exported over OTLP/HTTP) vs "
        f"sampled (1 trace in 10); {r.events:,} raw events, {r.tasks:,} tasks, {r.users} users"
    ]
    for name in ("on", "sampled"):
        m, o = r.modes[name], r.overhead[name]
        lines.append(
            f"{name}: aggregator drain {off.events_per_second:,.0f} -> {m.events_per_second:,.0f} "
            f"events/s ({o['drain']:+.1f}% time per event)"
        )
        if not r.tasks:
            continue
        lines += [
            f"{name}: GET /tasks median {off.tasks_median_ms:.0f} -> {m.tasks_median_ms:.0f} ms "
            f"({o['tasks_median']:+.1f}%), p95 {off.tasks_p95_ms:.0f} -> {m.tasks_p95_ms:.0f} ms "
            f"({o['tasks_p95']:+.1f}%), p99 {off.tasks_p99_ms:.0f} -> {m.tasks_p99_ms:.0f} ms "
            f"({o['tasks_p99']:+.1f}%)",
            f"{name}: GET /tasks/facets median {off.facets_median_ms:.0f} -> "
            f"{m.facets_median_ms:.0f} ms ({o['facets_median']:+.1f}%); gateway "
            f"{off.gateway_per_second:.1f} -> {m.gateway_per_second:.1f} req/s "
            f"({o['gateway_throughput']:+.1f}% time per request); spans exported "
            f"{m.spans_exported:,}",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument("--tasks", type=int, default=20_000, help="0: the aggregator only")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--requests", type=int, default=10, help="views per user")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = Results(events=args.events, tasks=args.tasks, users=args.users)
    for mode in MODES:
        results.modes[mode] = measure_mode(mode, args)
    off = results.modes["off"]
    results.overhead = {name: overheads(results.modes[name], off) for name in MODES[1:]}
    print(json.dumps(asdict(results), indent=2) if args.json else summary(results))


if __name__ == "__main__":
    main()
