"""Fleet mode: many ConnectWise companies on one sandbox host, as a SaaS serving MSPs
meets them — for benchmarks of the connector at scale (issue 19).

`fleet_companies` companies `fleet00001`, `fleet00002`, … live beside the home company.
Each has `fleet_members_per_company` technicians (`tech0001`, …, member ids from 101),
one API member (`syntaskio-api`, licence class "A") and `fleet_tickets_per_member` open
service tickets per technician, owned by them (they are its resource too). Ids start
where the home company's do: each company is its own database, as real ones are. No
projects, project tickets or schedule entries: those lists answer empty.

Everything follows from the seed: a member's API keys (`FleetSpec.member`), which
companies are down (`FleetSpec.down`), every record. A bench computes the keys with
`fleet_members(settings)` or pages them from `GET /_sandbox/fleet/members`.

ConnectWise tells companies apart by the company id in the Basic credentials
(`{companyId}+{publicKey}:{privateKey}`) and by `GET /login/companyinfo/{companyId}`;
so does the sandbox (`state.get_state`). A company's keys are unknown to every other
company: used with another company's id they are refused like any bad key.

Memory follows use: a company's records, callbacks and minted keys are built on its
first API request and kept; reference data (boards, statuses, priorities, client
companies, work types) and the model schemas are built once and shared, since records
are never changed in place.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import random
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cached_property
from types import MappingProxyType
from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from connectwise_sandbox.callbacks import CallbackRegistry
from connectwise_sandbox.faults import Fault
from connectwise_sandbox.member_tokens import MemberTokens
from connectwise_sandbox.records import (
    JsonObject,
    TimestampFormatter,
    board_ref,
    company_ref,
    member_ref,
    priority_ref,
    status_ref,
    ticket_record,
)
from connectwise_sandbox.seed import (
    FIRST_MEMBER_ID,
    FIRST_TICKET_ID,
    HISTORY,
    KEY_LENGTH,
    ApiKey,
    Dataset,
    generate,
    member_record,
)
from connectwise_sandbox.settings import Settings
from connectwise_sandbox.sla_seed import with_slas
from connectwise_sandbox.state import SandboxState
from connectwise_sandbox.store import Store
from connectwise_sandbox.vocabulary import (
    API_MEMBER,
    BOARDS,
    CONTACT_FIRST_NAMES,
    CONTACT_LAST_NAMES,
    DETAILS,
    SEVERITIES,
    SOURCES,
    MemberSpec,
)

COMPANY_PREFIX: Final = "fleet"
COMPANY_DIGITS: Final = 5  # `fleet00001`: settings cap the companies below 100 000
MEMBER_DIGITS: Final = 4  # `tech0001`: settings cap the members per company at 1000
COMPANY_STATE_KEY: Final = "cw_company_state"
_KEY_ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_DAY: Final = 86_400
_LOGIN_PATH: Final = "/login/companyinfo/"


@dataclass(frozen=True)
class FleetMember:
    """A fleet member's credentials: Basic `{company_id}+{public_key}:{private_key}`."""

    company_id: str
    member_id: int
    member_identifier: str
    email: str
    license_class: str
    public_key: str
    private_key: str = field(repr=False)
    down: bool = False  # whether its company's server is down

    def as_json(self) -> JsonObject:
        return {
            "company_id": self.company_id,
            "member_id": self.member_id,
            "member_identifier": self.member_identifier,
            "email": self.email,
            "license_class": self.license_class,
            "public_key": self.public_key,
            "private_key": self.private_key,
            "down": self.down,
        }


@dataclass(frozen=True)
class FleetSpec:
    """The fleet's shape and seed: pure, cheap, no records. Company `index` is 1-based;
    a company's members are its technicians 1…M then its API member (M+1)."""

    companies: int
    members_per_company: int
    tickets_per_member: int
    down_fraction: float
    seed: int

    @classmethod
    def from_settings(cls, settings: Settings, seed: int | None = None) -> FleetSpec:
        return cls(
            companies=settings.fleet_companies,
            members_per_company=settings.fleet_members_per_company,
            tickets_per_member=settings.fleet_tickets_per_member,
            down_fraction=settings.fleet_down_fraction,
            seed=settings.seed if seed is None else seed,
        )

    @property
    def members(self) -> int:
        """Technicians across the fleet (API members not counted)."""
        return self.companies * self.members_per_company

    def company_id(self, index: int) -> str:
        return f"{COMPANY_PREFIX}{index:0{COMPANY_DIGITS}d}"

    def company_name(self, index: int) -> str:
        return f"Fleet MSP {index:0{COMPANY_DIGITS}d}"

    def index_of(self, company_id: str) -> int | None:
        """The fleet company `company_id` names (case-insensitively), if any."""
        wanted = company_id.strip().lower()
        digits = wanted.removeprefix(COMPANY_PREFIX)
        if digits == wanted or len(digits) != COMPANY_DIGITS or not digits.isdigit():
            return None
        index = int(digits)
        return index if 1 <= index <= self.companies else None

    @cached_property
    def down(self) -> frozenset[int]:
        """The companies whose server is down: round(companies x fraction), drawn from
        the seed's own stream."""
        count = round(self.companies * self.down_fraction)
        rng = random.Random(f"fleet-down:{self.seed}")
        return frozenset(rng.sample(range(1, self.companies + 1), count))

    def member_spec(self, number: int) -> MemberSpec:
        """Member `number` (1-based) of any fleet company; past the technicians, the API
        member."""
        if number > self.members_per_company:
            return API_MEMBER
        return MemberSpec(
            f"tech{number:0{MEMBER_DIGITS}d}",
            "Tech",
            f"Number{number:0{MEMBER_DIGITS}d}",
            "Service Technician",
        )

    def member(self, index: int, number: int) -> FleetMember:
        """Member `number` (1-based; M+1 = the API member) of company `index`."""
        spec = self.member_spec(number)
        company_id = self.company_id(index)
        return FleetMember(
            company_id=company_id,
            member_id=FIRST_MEMBER_ID + number - 1,  # as `member_record` numbers them
            member_identifier=spec.identifier,
            email=_email(spec, company_id),
            license_class=spec.license_class,
            public_key=self.key(index, number, "public"),
            private_key=self.key(index, number, "private"),
            down=index in self.down,
        )

    def key(self, index: int, number: int, part: str) -> str:
        """Like the seeded keys (16 letters and digits), hashed rather than drawn, so any
        member's keys are known without generating the others'."""
        raw = f"fleet-key:{self.seed}:{index}:{number}:{part}".encode()
        digest = hashlib.sha256(raw).digest()
        return "".join(_KEY_ALPHABET[byte % len(_KEY_ALPHABET)] for byte in digest[:KEY_LENGTH])

    def technicians(self, offset: int = 0, limit: int | None = None) -> list[FleetMember]:
        """Technicians across the fleet, company by company, from `offset`."""
        stop = self.members if limit is None else min(self.members, offset + limit)
        per = self.members_per_company
        return [self.member(n // per + 1, n % per + 1) for n in range(offset, stop)]

    def api_members(self, offset: int = 0, limit: int | None = None) -> list[FleetMember]:
        """Each company's API member (one per company), company by company."""
        stop = self.companies if limit is None else min(self.companies, offset + limit)
        return [
            self.member(index, self.members_per_company + 1)
            for index in range(offset + 1, stop + 1)
        ]


def fleet_members(
    settings: Settings, offset: int = 0, limit: int | None = None
) -> list[FleetMember]:
    """Every fleet technician's credentials for `settings` (a bench's view of what
    `GET /_sandbox/fleet/members` pages), without running a sandbox."""
    return FleetSpec.from_settings(settings).technicians(offset, limit)


def _domain(company_id: str) -> str:
    return f"{company_id}.example"


def _email(spec: MemberSpec, company_id: str) -> str:
    return f"{spec.first_name.lower()}.{spec.last_name.lower()}@{_domain(company_id)}"


@dataclass(frozen=True)
class _BoardPool:
    board: JsonObject
    open_statuses: tuple[JsonObject, ...]
    summaries: tuple[str, ...]


class FleetSeeder:
    """Builds a fleet company's `Dataset`: its own members, keys and tickets over the
    reference data every company shares (the home seed's, without its tickets)."""

    def __init__(self, spec: FleetSpec, anchor: datetime) -> None:
        self.spec = spec
        self.anchor = anchor
        self.template = generate(seed=spec.seed, tickets=0, anchor=anchor)
        self._created = self.template.members[0]["hireDate"]
        boards = [b for b in self.template.boards if not b["projectFlag"]]
        self._pools = tuple(
            _BoardPool(
                board_ref(board),
                tuple(
                    status_ref(s)
                    for s in self.template.statuses
                    if s["board"]["id"] == board["id"] and not s["closedStatus"]
                ),
                spec_.summaries,
            )
            for board, spec_ in zip(boards, BOARDS, strict=True)
        )
        # Reference shapes built once and shared by every company's tickets.
        self._priorities = tuple(priority_ref(p) for p in self.template.priorities)
        self._companies = tuple(company_ref(c) for c in self.template.companies)
        self._sources = tuple({"id": i + 1, "name": name} for i, name in enumerate(SOURCES[:3]))
        self._stamp = TimestampFormatter()

    def dataset(self, index: int) -> Dataset:
        spec = self.spec
        company_id = spec.company_id(index)
        members = tuple(
            member_record(number - 1, spec.member_spec(number), self._created, _domain(company_id))
            for number in range(1, spec.members_per_company + 2)
        )
        keys = tuple(
            ApiKey(
                m["id"],
                m["identifier"],
                spec.key(index, n, "public"),
                spec.key(index, n, "private"),
            )
            for n, m in enumerate(members, start=1)
        )
        rng = random.Random(f"fleet:{spec.seed}:{index}")
        tickets, descriptions = self._tickets(rng, members[: spec.members_per_company])
        return replace(
            self.template,
            members=members,
            api_keys=keys,
            tickets=with_slas(spec.seed * 1_000_003 + index, tickets, self.anchor),
            descriptions=MappingProxyType(descriptions),
        )

    def _tickets(
        self, rng: random.Random, technicians: tuple[JsonObject, ...]
    ) -> tuple[list[JsonObject], dict[int, str]]:
        """`tickets_per_member` open tickets per technician, owned by them."""
        anchor = int(self.anchor.timestamp())
        history = int(HISTORY.total_seconds())
        stamp = self._stamp
        tickets: list[JsonObject] = []
        descriptions: dict[int, str] = {}
        for member in technicians:
            owner = member_ref(member)
            identifier = member["identifier"]
            for _ in range(self.spec.tickets_per_member):
                ticket_id = FIRST_TICKET_ID + len(tickets)
                pool = rng.choice(self._pools)
                company = rng.choice(self._companies)
                entered = anchor - rng.randrange(history)
                updated = entered + int(rng.random() * (anchor - entered))
                required = (
                    stamp(entered + rng.randrange(1, 22) * _DAY) if rng.random() < 0.7 else None
                )
                first, last = rng.choice(CONTACT_FIRST_NAMES), rng.choice(CONTACT_LAST_NAMES)
                summary = rng.choice(pool.summaries)
                budget = rng.choice((0.5, 1.0, 2.0, 4.0, 8.0))
                tickets.append(
                    ticket_record(
                        ticket_id=ticket_id,
                        summary=summary,
                        board=pool.board,
                        status=rng.choice(pool.open_statuses),
                        closed=False,
                        priority=rng.choice(self._priorities),
                        company=company,
                        contact_name=f"{first} {last}",
                        contact_email=f"{first}.{last}@{company['identifier']}.example".lower(),
                        owner=owner,
                        resources=[identifier],
                        required_date=required,
                        severity=rng.choice(SEVERITIES),
                        impact=rng.choice(SEVERITIES),
                        source=rng.choice(self._sources),
                        budget_hours=budget,
                        actual_hours=round(rng.random() * budget * 4) / 4,
                        date_entered=stamp(entered),
                        entered_by=identifier,
                        last_updated=stamp(updated),
                        updated_by=identifier,
                    )
                )
                descriptions[ticket_id] = (
                    f"{summary}. {rng.choice(DETAILS)} Contact: {first} {last}."
                )
        return tickets, descriptions


class Fleet:
    """The fleet companies of a running sandbox: each one's `SandboxState` (store,
    callbacks, minted keys of its own; faults, stats, OAuth and the callback deliverer
    shared with the home company), built on first use."""

    def __init__(self, spec: FleetSpec, home: SandboxState) -> None:
        self._lock = threading.Lock()
        self._home = home
        self.hang_seconds = home.settings.fleet_down_hang_seconds
        self._use(spec)

    def _use(self, spec: FleetSpec) -> None:
        self.spec = spec
        self._seeder = FleetSeeder(spec, self._home.settings.anchor)
        self._states: dict[int, SandboxState] = {}

    @property
    def built(self) -> int:
        """How many companies' records exist so far."""
        with self._lock:
            return len(self._states)

    def reset(self, seed: int) -> None:
        """Forget every company's records, callbacks and minted keys; rebuild from
        `seed` on use (keys and down companies follow the new seed)."""
        with self._lock:
            self._use(replace(self.spec, seed=seed))

    def company_named(self, company_id: str) -> tuple[str, str] | None:
        index = self.spec.index_of(company_id)
        if index is None:
            return None
        return self.spec.company_id(index), self.spec.company_name(index)

    def is_down(self, company_id: str | None) -> bool:
        index = self.spec.index_of(company_id) if company_id else None
        return index is not None and index in self.spec.down

    def state(self, index: int) -> SandboxState:
        """Company `index`'s state, built (under the lock: once) on first use."""
        with self._lock:
            state = self._states.get(index)
            if state is None:
                state = self._build(index)
                self._states[index] = state
            return state

    def _build(self, index: int) -> SandboxState:
        home, spec = self._home, self.spec
        dataset = self._seeder.dataset(index)
        company_id = spec.company_id(index)
        state = SandboxState(
            settings=home.settings,
            store=Store(dataset, schemas=home.store.schemas),
            faults=home.faults,
            stats=home.stats,
            seed=spec.seed,
            tickets=len(dataset.tickets),
            oauth=home.oauth,
            member_tokens=MemberTokens(ttl=home.settings.member_token_ttl),
            callbacks=CallbackRegistry(company_id=company_id, deliverer=home.callbacks.deliverer),
            company_id=company_id,
            company_name=spec.company_name(index),
            latency=home.latency,
        )
        state.store.subscribe(state.callbacks.on_change)
        return state

    def state_for_request(self, request: Request, home: SandboxState) -> SandboxState:
        """The fleet company an API request's Basic credentials name, else `home` (the
        admin API, the login lookups, Bearer tokens, unknown companies — which
        authentication then refuses as the home company would). Kept on the request, so
        the middleware and the handlers agree."""
        chosen = getattr(request.state, COMPANY_STATE_KEY, None)
        if isinstance(chosen, SandboxState):
            return chosen
        chosen = home
        path = request.url.path
        if home.is_api_path(path) and not path.startswith(_LOGIN_PATH):
            company = basic_company(request.headers.get("authorization"))
            index = self.spec.index_of(company) if company else None
            if index is not None:
                chosen = self.state(index)
        setattr(request.state, COMPANY_STATE_KEY, chosen)
        return chosen


def basic_company(header: str | None) -> str | None:
    """The company id of Basic `{companyId}+{publicKey}:{privateKey}` credentials."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user = base64.b64decode(token.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return None
    company, plus, _ = user.partition("+")
    return company if plus else None


class DownCompanies:
    """ASGI middleware: a down fleet company's API requests (its login lookup too) get
    what a server that accepted the connection and never answers gives — nothing, until
    the client gives up and disconnects, or `fleet_down_hang_seconds` pass (then a 504,
    as a gateway in front of it would say). They are not counted in the stats: they
    never reached ConnectWise. Waiting costs a sleeping coroutine, no thread."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            home: SandboxState = scope["app"].state.sandbox
            fleet = home.fleet
            path: str = scope["path"]
            if fleet is not None and home.is_api_path(path) and fleet.is_down(_company(scope)):
                if not await _client_gives_up(receive, fleet.hang_seconds):
                    error = Fault(status=504, remaining=1).error()
                    assert error is not None  # a fault with a status has an error
                    await JSONResponse(error.body(), status_code=504)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _company(scope: Scope) -> str | None:
    path: str = scope["path"]
    if path.startswith(_LOGIN_PATH):
        return path.removeprefix(_LOGIN_PATH).strip("/") or None
    for name, value in scope["headers"]:
        if name == b"authorization":
            return basic_company(value.decode("latin-1"))
    return None


async def _client_gives_up(receive: Receive, seconds: float) -> bool:
    """Whether the client disconnects within `seconds` (its body is read and dropped)."""
    try:
        async with asyncio.timeout(seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
    except TimeoutError:
        return False
    return True
