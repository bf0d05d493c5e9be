"""Gateway task queries under load: `GET /api/v1/tasks` and `GET /api/v1/tasks/facets`
median, p95 and p99 with 50 users asking at once, against the same queries run directly
on the database in the same run (the gateway's overhead ratio).

The embedded broker and database are started, and `--tasks` (default 100,000) task
documents are written into one tenant, `--tasks / --users` for each of `--users`
(default 50, so 2,000 each). They are the documents the aggregator stores: ConnectWise
ticket records (bodies from the sandbox's seeded tickets; 80% service tickets over the
sandbox's 5 service boards by its weights, 20% project tickets of 20 projects on its 2
project boards; 40 companies, skewed; its priorities by its weights; open statuses of
the ticket's board; 70% with a `requiredDate` from 20 days ago to 40 days ahead), each
made into the connector's upserted event (`upserted_event`) and then into the stored
document by the aggregator's own `change_of` and `_document`. They are inserted with
`insert_many` in unordered bulks of `--batch-size` into the `tasks` collection after the
aggregator's `TaskStore.create_indexes()` made its indexes (as a drained backlog would
leave them; the aggregator itself does not run). Then auth-service and the gateway
start; each user gets a session from auth-service's development issuer
(`POST /v1/dev/sessions`, limited per account, not per address as the gateway's
`/session/dev-login` is) and uses it as a bearer token.

What a user does is `--requests` (default 20) dashboard views, each a page of tasks and
then the facets under the same filter; every other view is filtered (`status=pending`
and one of the sandbox's 5 service boards, taking turns), so four queries:

- `list`: `GET /api/v1/tasks?limit=50` (default order: most recently updated first);
- `list_filtered`: the same with `status=pending&board=<b>`;
- `facets`: `GET /api/v1/tasks/facets`;
- `facets_filtered`: the same with `status=pending&board=<b>`.

Each side (below) is measured twice, one phase after another, in a closed loop (a
user's next request once the previous one is answered) after an unrecorded warm-up view
per user: first one user alone for `--alone` views (default 20; 0 skips it), which is
what a request costs without queueing, then all `--users` at once for `--requests`
views each, the issue's figures. The two sides:

- direct: the gateway's own pipeline builders (`task_query.list_pipeline`,
  `facets_pipeline`, with the query parsed into `TaskListQuery` / `TaskFilters` as the
  gateway parses it) run on one shared `AsyncMongoClient` (pymongo's pool, like the
  gateway's) as one asyncio task per user, each request timed from building the
  pipeline to having the whole result as a list;
- gateway: one `httpx.AsyncClient` (its own connection) per user, each request timed
  from sending it to having read the whole answer (a 200; any other answer is counted,
  and left out of the figures). The gateway runs with `USER_RATE_LIMIT` raised to
  1,000,000/minute: the limiter still counts every request (its cost is measured) but
  never refuses one (at the default 300/minute a user would be refused once a phase
  went faster than 150 views a minute).

Reported per phase, per query, per endpoint (`/tasks`, `/tasks/facets`: filtered or
not) and for all requests: count, median, p95, p99 and max ms, and the phase's
throughput (answered requests per second, all queries together); the overhead ratio is
gateway / direct for the median and the p99 of each row. Also what the answers held on
average (page size, tasks the facets counted), to show both sides did the same work.
The bench's clients run in one process on the same machine as the gateway and the
database, so the gateway's figures include the clients' share of the CPU. Progress goes
to stderr. A measurement: it prints figures and asserts no timings.

    uv run python bench/gateway_queries.py [--tasks 100000] [--users 50] [--requests 20]
        [--alone 20] [--batch-size 1000] [--json] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from bisect import bisect
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Any, Final

import httpx
from bench_stack import bench_stack
from pymongo import AsyncMongoClient

from connectwise_sandbox.records import RECORD_TYPE_PROJECT, format_timestamp
from connectwise_sandbox.seed import Dataset, generate
from connectwise_sandbox.vocabulary import BOARDS, PRIORITIES
from syntaskio_aggregator.changes import change_of
from syntaskio_aggregator.store import TaskStore, _document
from syntaskio_common import events, topics
from syntaskio_common.mongo import Document
from syntaskio_connector.assignment import (
    Assignment,
    Entity,
    IntegrationRef,
    fingerprint,
    upserted_event,
)
from syntaskio_devstack.stack import EmbeddedStack
from syntaskio_gateway.task_query import (
    TaskFilters,
    TaskListQuery,
    facets_pipeline,
    list_pipeline,
)

TENANT: Final = "acme-msp"
SEED: Final = 42
COMPANIES: Final = 40
PROJECTS: Final = 20
PHASES_PER_PROJECT: Final = 4
PROJECT_SHARE: Final = 0.2
DUE_SHARE: Final = 0.7
PAGE: Final = 50
KINDS: Final = ("list", "list_filtered", "facets", "facets_filtered")
# The rows reported: each query, each endpoint (filtered or not), and all requests.
GROUPS: Final = {
    **{kind: (kind,) for kind in KINDS},
    "/tasks": ("list", "list_filtered"),
    "/tasks/facets": ("facets", "facets_filtered"),
    "all": KINDS,
}
RATE_LIMIT: Final = "1000000/minute"
_PROJECT_KINDS: Final = (
    "Windows 11 Rollout",
    "Firewall Replacement",
    "Microsoft 365 Migration",
    "Backup Overhaul",
    "Security Hardening",
    "Network Refresh",
    "Phone System Upgrade",
)
_PHASES: Final = ("Planning", "Build", "Rollout", "Review")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the tasks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Catalogue:
    """What the tickets refer to: boards with their open statuses, priorities, companies
    and projects (with phases), and ticket bodies to copy."""

    service_boards: list[tuple[dict[str, Any], list[dict[str, Any]]]]  # (board, open statuses)
    board_weights: list[int]  # cumulative, for the service boards
    project_statuses: dict[int, list[dict[str, Any]]]  # open statuses per project board
    priorities: list[dict[str, Any]]
    priority_weights: list[int]  # cumulative
    companies: list[dict[str, Any]]
    company_weights: list[float]  # cumulative: a few big clients, a long tail
    projects: list[dict[str, Any]]  # with "phases"
    bodies: list[dict[str, Any]]  # sandbox tickets whose other fields are copied
    statuses: dict[int, dict[str, Any]]
    priority_records: dict[int, dict[str, Any]]


def catalogue(rng: random.Random) -> Catalogue:
    dataset: Dataset = generate(seed=SEED, tickets=2000, anchor=datetime.now(UTC))
    boards = {b["id"]: {"id": b["id"], "name": b["name"]} for b in dataset.boards}
    open_statuses: dict[int, list[dict[str, Any]]] = {}
    for status in dataset.statuses:
        if not status["closedStatus"] and not status.get("inactive"):
            ref = {"id": status["id"], "name": status["name"], "sort": status["sortOrder"]}
            open_statuses.setdefault(status["board"]["id"], []).append(ref)
    service = [b for b in dataset.boards if not b["projectFlag"]]
    project_boards = [boards[b["id"]] for b in dataset.boards if b["projectFlag"]]
    companies = [
        {"id": c["id"], "identifier": c["identifier"], "name": c["name"]} for c in dataset.companies
    ]
    next_id = max(c["id"] for c in companies) + 1
    while len(companies) < COMPANIES:
        number = len(companies) + 1
        companies.append(
            {"id": next_id, "identifier": f"Client{number}", "name": f"Client {number} Ltd"}
        )
        next_id += 1
    projects = []
    for index in range(PROJECTS):
        company = companies[index % len(companies)]
        project_id = index + 1
        projects.append(
            {
                "id": project_id,
                "name": f"{company['name']} - {_PROJECT_KINDS[index % len(_PROJECT_KINDS)]}",
                "board": project_boards[index % len(project_boards)],
                "company": company,
                "phases": [
                    {"id": project_id * 10 + n, "name": name, "wbs": f"{n + 1}"}
                    for n, name in enumerate(_PHASES[:PHASES_PER_PROJECT])
                ],
            }
        )
    rng.shuffle(companies)
    return Catalogue(
        service_boards=[(boards[b["id"]], open_statuses[b["id"]]) for b in service],
        board_weights=list(accumulate(spec.weight for spec in BOARDS)),
        project_statuses={b["id"]: open_statuses[b["id"]] for b in project_boards},
        priorities=[
            {"id": p["id"], "name": p["name"], "sort": p["sortOrder"], "level": p["level"]}
            for p in dataset.priorities
        ],
        priority_weights=list(accumulate(spec.weight for spec in PRIORITIES)),
        companies=companies,
        company_weights=list(accumulate(1 / (rank + 1) ** 0.8 for rank in range(COMPANIES))),
        projects=projects,
        bodies=[dict(t) for t in dataset.tickets if not t["closedFlag"]],
        statuses={s["id"]: dict(s) for s in dataset.statuses},
        priority_records={p["id"]: dict(p) for p in dataset.priorities},
    )


def _weighted(rng: random.Random, weights: list[Any]) -> int:
    return bisect(weights, rng.random() * weights[-1])


def _integration(user: int) -> IntegrationRef:
    return IntegrationRef(
        integration_id=f"i-{user:02d}",
        tenant_id=TENANT,
        user_id=user_id(user),
        member_identifier=f"tech{user:02d}",
        api_base_url="https://cw.example/v2025_1/apis/3.0/",
        company_id="acme",
        generation=1,
    )


def user_id(user: int) -> str:
    return f"tech{user:02d}@{TENANT}.example"


def ticket(
    rng: random.Random, cat: Catalogue, ticket_id: int, member: dict[str, Any], now: datetime
) -> tuple[Entity, dict[str, Any]]:
    """One open ticket the member owns, as ConnectWise returns it."""
    record = dict(cat.bodies[ticket_id % len(cat.bodies)])
    for gone in ("project", "phase", "wbsCode", "requiredDate", "closedDate", "closedBy"):
        record.pop(gone, None)
    updated = now - timedelta(seconds=min(rng.expovariate(1 / (10 * 86_400)), 180 * 86_400))
    entered = updated - timedelta(seconds=rng.random() * 30 * 86_400)
    record |= {
        "id": ticket_id,
        "priority": cat.priorities[_weighted(rng, cat.priority_weights)],
        "company": cat.companies[_weighted(rng, cat.company_weights)],
        "owner": member,
        "resources": member["identifier"],
        "closedFlag": False,
        "_info": {
            **record["_info"],
            "lastUpdated": format_timestamp(updated),
            "dateEntered": format_timestamp(entered),
        },
    }
    if rng.random() < DUE_SHARE:
        due = now + timedelta(seconds=(rng.random() * 60 - 20) * 86_400)
        record["requiredDate"] = format_timestamp(due)
    if rng.random() < PROJECT_SHARE:
        project = rng.choice(cat.projects)
        phase = rng.choice(project["phases"])
        board = project["board"]
        record |= {
            "recordType": RECORD_TYPE_PROJECT,
            "project": {"id": project["id"], "name": project["name"]},
            "phase": {"id": phase["id"], "name": phase["name"]},
            "wbsCode": f"{phase['wbs']}.{rng.randrange(1, 9)}",
            "board": board,
            "company": project["company"],
            "status": rng.choice(cat.project_statuses[board["id"]]),
        }
        return Entity.PROJECT_TICKET, record
    board, statuses = cat.service_boards[_weighted(rng, cat.board_weights)]
    record |= {"board": board, "status": rng.choice(statuses)}
    return Entity.SERVICE_TICKET, record


def documents(tasks: int, users: int, batch_size: int) -> Iterator[list[Document]]:
    """The stored documents, in batches: `tasks // users` open tickets per user (the first
    `tasks % users` users one more), through the connector's event and the aggregator's
    `change_of` and `_document`."""
    rng = random.Random(SEED)
    cat = catalogue(rng)
    now = datetime.now(UTC)
    assigned = Assignment(("owner",))
    batch: list[Document] = []
    ticket_id = 100_000
    for user in range(users):
        ref = _integration(user)
        member = {"id": 1000 + user, "identifier": ref.member_identifier, "name": f"Tech {user}"}
        for _ in range(tasks // users + (1 if user < tasks % users else 0)):
            ticket_id += 1
            entity, record = ticket(rng, cat, ticket_id, member, now)
            context = {
                "status": cat.statuses.get(record["status"]["id"]),
                "priority": cat.priority_records.get(record["priority"]["id"]),
            }
            (mapped,) = ref.members
            version = fingerprint(record, {mapped: assigned})
            raw = upserted_event(ref, mapped, entity, record, assigned, version, context, now)
            event = events.decode_event(raw.headers, raw.value)
            position = f"{topics.CONNECTWISE_RAW}/{user % 3}/{ticket_id}"
            batch.append(_document(change_of(event, position), now))
            if len(batch) >= batch_size:
                yield batch
                batch = []
    if batch:
        yield batch


async def seed(db: Any, args: argparse.Namespace, results: Results) -> None:
    await TaskStore(db, timedelta(days=14)).create_indexes()
    tasks = db["tasks"]
    started = time.monotonic()
    building, inserted = 0.0, 0
    batches = documents(args.tasks, args.users, args.batch_size)
    while True:
        before = time.monotonic()
        batch = next(batches, None)
        building += time.monotonic() - before
        if batch is None:
            break
        await tasks.insert_many(batch, ordered=False)
        inserted += len(batch)
        if inserted % (args.batch_size * 10) == 0 or inserted == args.tasks:
            elapsed = time.monotonic() - started
            progress(f"  seeded {inserted:,} tasks in {elapsed:.0f}s")
    results.seed_seconds = time.monotonic() - started
    results.build_seconds = building
    results.stored = await tasks.count_documents({})


# -- the queries --------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    kind: str
    params: dict[str, list[str]]  # as the query string carries them

    @property
    def path(self) -> str:
        return "/api/v1/tasks/facets" if self.kind.startswith("facets") else "/api/v1/tasks"


def queries(user: int, rounds: int, boards: list[int]) -> list[Query]:
    """The user's requests: `rounds` dashboard views, each a page of tasks and the facets
    under the same filter; every other view (odd or even by user) is filtered, taking
    the service boards in turn."""
    found = []
    for turn in range(rounds):
        params: dict[str, list[str]] = {}
        if (user + turn) % 2:
            board = boards[(user + turn // 2) % len(boards)]
            params = {"status": ["pending"], "board": [str(board)]}
        suffix = "_filtered" if params else ""
        found.append(Query(f"list{suffix}", {"limit": [str(PAGE)], **params}))
        found.append(Query(f"facets{suffix}", params))
    return found


def _parsed(query: Query) -> dict[str, Any]:
    """The query string as FastAPI hands it to the model: single values for scalars."""
    return {name: values[0] if name == "limit" else values for name, values in query.params.items()}


Timed = tuple[str, float]  # (kind, seconds)


class Refused(Exception):
    """The gateway answered with something other than a 200."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# Asks one query as a user; returns the answer's size (see `Results.direct_sizes`).
Ask = Callable[[int, Query], Awaitable[int]]


@dataclass
class Run:
    timed: list[Timed]
    seconds: float  # from the first request to the last answer
    sizes: Counter[str]  # per query, summed
    refused: Counter[str]  # "kind status"


async def load(ask: Ask, users: int, views: int, boards: list[int]) -> Run:
    """Every user's views at once, each user's requests one after another (closed loop),
    after an unrecorded warm-up view each."""
    run = Run([], 0.0, Counter(), Counter())

    async def user(number: int, count: int, record: bool) -> None:
        for query in queries(number, count, boards):
            started = time.perf_counter()
            try:
                size = await ask(number, query)
            except Refused as refused:
                run.refused[f"{query.kind} {refused.status}"] += 1
                continue
            elapsed = time.perf_counter() - started
            if record:
                run.timed.append((query.kind, elapsed))
                run.sizes[query.kind] += size

    await asyncio.gather(*(user(number, 1, False) for number in range(users)))
    started = time.perf_counter()
    await asyncio.gather(*(user(number, views, True) for number in range(users)))
    run.seconds = time.perf_counter() - started
    return run


def direct(db: Any) -> Ask:
    """The gateway's pipelines on the database."""
    tasks = db["tasks"]

    async def ask(user: int, query: Query) -> int:
        """The documents of a page (one more than shown: is there another page?), or the
        tasks the status facet counted."""
        if query.kind.startswith("list"):
            listing = TaskListQuery.model_validate(_parsed(query))
            pipeline = list_pipeline(TENANT, user_id(user), listing, datetime.now(UTC))
            return len(await (await tasks.aggregate(pipeline)).to_list())
        filters = TaskFilters.model_validate(_parsed(query))
        pipeline = facets_pipeline(TENANT, user_id(user), filters, datetime.now(UTC))
        found = await (await tasks.aggregate(pipeline)).to_list()
        return sum(value["count"] for value in found[0]["status"]) if found else 0

    return ask


def gateway(clients: list[httpx.AsyncClient]) -> Ask:
    """The same over HTTP, each user with their own client (connection)."""

    async def ask(user: int, query: Query) -> int:
        answer = await clients[user].get(query.path, params=query.params)
        if answer.status_code != 200:
            raise Refused(answer.status_code)
        body = answer.json()
        if "items" in body:
            return len(body["items"])
        return sum(value["count"] for value in body["status"])

    return ask


async def sessions(stack: EmbeddedStack, users: int) -> list[str]:
    """A bearer token per user from auth-service's development issuer."""
    async with httpx.AsyncClient(base_url=stack.url("auth"), timeout=30) as auth:
        tokens = []
        for user in range(users):
            issued = await auth.post(
                "/v1/dev/sessions", json={"user_id": user_id(user), "tenant_id": TENANT}
            )
            issued.raise_for_status()
            tokens.append(str(issued.json()["access_token"]))
        return tokens


# -- figures ------------------------------------------------------------------------------


@dataclass
class Figures:
    count: int = 0
    median_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0


def figures(values: list[float]) -> Figures:
    if not values:
        return Figures()
    if len(values) == 1:
        only = values[0] * 1000
        return Figures(1, only, only, only, only)
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return Figures(
        count=len(values),
        median_ms=statistics.median(values) * 1000,
        p95_ms=cuts[94] * 1000,
        p99_ms=cuts[98] * 1000,
        max_ms=max(values) * 1000,
    )


def by_kind(timed: list[Timed]) -> dict[str, Figures]:
    return {row: figures([s for k, s in timed if k in kinds]) for row, kinds in GROUPS.items()}


@dataclass
class Phase:
    """One side (direct or gateway) of one load (alone or all users at once)."""

    users: int
    views: int
    seconds: float = 0.0
    per_second: float = 0.0  # answered requests, all queries together
    figures: dict[str, Figures] = field(default_factory=dict)  # per row of GROUPS
    # Per answer on average, to show both sides did the same work: a page's documents
    # (direct: one more than shown, whether another page follows) or items (gateway);
    # for the facets, the tasks the status facet counted.
    sizes: dict[str, float] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)  # "kind status": count


def phase(run: Run, users: int, views: int) -> Phase:
    figures = by_kind(run.timed)
    return Phase(
        users=users,
        views=views,
        seconds=run.seconds,
        per_second=len(run.timed) / run.seconds if run.seconds else 0.0,
        figures=figures,
        sizes={kind: run.sizes[kind] / max(1, figures[kind].count) for kind in KINDS},
        refused=dict(run.refused),
    )


@dataclass
class Ratios:
    """gateway / direct, per row of GROUPS."""

    median: dict[str, float] = field(default_factory=dict)
    p99: dict[str, float] = field(default_factory=dict)


def ratios(gateway_side: Phase, direct_side: Phase) -> Ratios:
    found = Ratios()
    for row in GROUPS:
        g, d = gateway_side.figures[row], direct_side.figures[row]
        found.median[row] = g.median_ms / d.median_ms if d.median_ms else 0.0
        found.p99[row] = g.p99_ms / d.p99_ms if d.p99_ms else 0.0
    return found


@dataclass
class Results:
    tasks: int
    users: int
    requests: int  # dashboard views (a page and the facets) per user
    build_seconds: float = 0.0  # making the documents (connector + aggregator functions)
    seed_seconds: float = 0.0  # building and inserting, together
    stored: int = 0
    # One user alone (no queueing): what a request costs on each side.
    alone_direct: Phase | None = None
    alone_gateway: Phase | None = None
    alone_ratio: Ratios | None = None
    # All users at once: the figures.
    direct: Phase = field(default_factory=lambda: Phase(0, 0))
    gateway: Phase = field(default_factory=lambda: Phase(0, 0))
    ratio: Ratios = field(default_factory=Ratios)


async def measure(stack: EmbeddedStack, args: argparse.Namespace) -> Results:
    results = Results(tasks=args.tasks, users=args.users, requests=args.requests)
    client: AsyncMongoClient[Document] = AsyncMongoClient(stack.mongodb_url, tz_aware=True)
    db = client[stack.config.database_name]
    clients: list[httpx.AsyncClient] = []
    try:
        progress(f"seeding {args.tasks:,} tasks for {args.users} users …")
        await seed(db, args, results)
        progress(f"seeded {results.stored:,} in {results.seed_seconds:.0f}s; starting services")
        gateway_process = stack.service("gateway")
        gateway_process.env = {**gateway_process.env, "USER_RATE_LIMIT": RATE_LIMIT}
        await asyncio.to_thread(stack.start_all, [stack.service("auth"), gateway_process])
        clients = [
            httpx.AsyncClient(
                base_url=stack.url("gateway"),
                headers={"Authorization": f"Bearer {token}"},
                timeout=httpx.Timeout(300.0),
            )
            for token in await sessions(stack, args.users)
        ]
        boards = sorted({b["id"] for b, _ in catalogue(random.Random(SEED)).service_boards})
        sides = (("direct", direct(db)), ("gateway", gateway(clients)))
        loads = [("alone", 1, args.alone), ("loaded", args.users, args.requests)]
        found: dict[str, Phase] = {}
        for name, users, views in loads:
            if views < 1:
                continue
            for side, ask in sides:
                progress(f"{name}, {side}: {users} user(s) x {views} views …")
                found[f"{name} {side}"] = measured = phase(
                    await load(ask, users, views, boards), users, views
                )
                progress(f"  {measured.per_second:.1f} req/s over {measured.seconds:.1f}s")
    finally:
        for http in clients:
            await http.aclose()
        await client.close()
    if "alone direct" in found:
        results.alone_direct, results.alone_gateway = found["alone direct"], found["alone gateway"]
        results.alone_ratio = ratios(results.alone_gateway, results.alone_direct)
    results.direct, results.gateway = found["loaded direct"], found["loaded gateway"]
    results.ratio = ratios(results.gateway, results.direct)
    return results


def _line(name: str, f: Figures) -> str:
    return (
        f"    {name:<16}n={f.count:<5} median {f.median_ms:8.1f}  p95 {f.p95_ms:8.1f}  "
        f"p99 {f.p99_ms:8.1f}  max {f.max_ms:8.1f} ms"
    )


def _phase(title: str, p: Phase) -> list[str]:
    refused = f"; refused: {p.refused}" if p.refused else ""
    sizes = ", ".join(f"{kind} {p.sizes[kind]:.0f}" for kind in KINDS)
    return [
        f"  {title}: {p.per_second:.1f} req/s over {p.seconds:.1f}s{refused}",
        *(_line(row, p.figures[row]) for row in GROUPS),
        f"    answers on average: {sizes}",
    ]


def _ratios(r: Ratios) -> list[str]:
    return [
        "  overhead ratio gateway / direct:",
        *(f"    {row:<16}median {r.median[row]:5.2f}  p99 {r.p99[row]:5.2f}" for row in GROUPS),
    ]


def summary(r: Results) -> str:
    lines = [
        f"tasks: {r.stored:,} stored in one tenant, {r.users} users "
        f"(~{r.tasks // r.users:,} each); built in {r.build_seconds:.0f}s, "
        f"built and inserted in {r.seed_seconds:.0f}s",
        "(answers: a page's documents direct, one more than shown / its items over HTTP; "
        "facets: tasks counted)",
    ]
    if r.alone_direct and r.alone_gateway and r.alone_ratio:
        lines += [
            f"one user alone, {r.alone_direct.views} views (a page and the facets; every "
            "other one filtered), one request at a time:",
            *_phase("direct (the gateway's pipelines on the database)", r.alone_direct),
            *_phase("gateway (HTTP, bearer session)", r.alone_gateway),
            *_ratios(r.alone_ratio),
        ]
    lines += [
        f"{r.users} users at once, {r.requests} views each (closed loop, after a warm-up "
        "view each):",
        *_phase("direct (the gateway's pipelines on the database)", r.direct),
        *_phase("gateway (HTTP, bearer session)", r.gateway),
        *_ratios(r.ratio),
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000, help="in the one tenant")
    parser.add_argument("--users", type=int, default=50, help="concurrent users")
    parser.add_argument(
        "--requests", type=int, default=20, help="views (a page and the facets) per user"
    )
    parser.add_argument(
        "--alone", type=int, default=20, help="views of one user alone first (0: none)"
    )
    parser.add_argument("--batch-size", type=int, default=1000, help="insert_many bulk size")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the data dir (logs/)")
    args = parser.parse_args()
    if min(args.tasks, args.users, args.requests, args.batch_size) < 1:
        parser.error("--tasks, --users, --requests and --batch-size must be at least 1")
    with bench_stack("gateway-queries-bench-", keep=args.keep) as stack:
        results = asyncio.run(measure(stack, args))
    print(json.dumps(asdict(results), indent=2) if args.json else summary(results))


if __name__ == "__main__":
    main()
