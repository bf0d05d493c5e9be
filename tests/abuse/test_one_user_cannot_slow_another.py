"""The abuse suite: one signed-in user floods the gateway, hoards live streams, sends
its requests a byte a second and posts bodies far past the limit, each from a process of
its own (abuser.py), while a second user of the same company loads their dashboard's
tasks, and three more users theirs: four technicians at a steady pace (within the
per-user limit), from another address than the abuser's.

The second user must never get an error, and the abuser must be refused as the limits
say (429, 413, 408, cut off). How much slower the second user's `/tasks` got (p50 and
p99, against a quiet run first) is a figure, printed at the end of the run
(tests/abuse/conftest.py) and kept in docs/operations.md, never a pass/fail threshold:
the target is a p99 at most twice the quiet one."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from e2e_helpers import connect, dashboard_ids, eventually, signed_in

from syntaskio_devstack.stack import EmbeddedStack

TENANT = "abuse-msp"
ABUSER = Path(__file__).with_name("abuser.py")
RAMP_SECONDS = 2.0  # the abuser gets going before the second user measures
MEASURE_SECONDS = 10.0
# The sandbox members the measuring users connect to (their dashboards are not empty).
MEMBERS = ("atech", "bjones", "cmiller", "ewong")
PACE_SECONDS = 0.25  # a user's requests: 240 a minute, under USER_RATE_LIMIT (300)
MEASURER_ADDRESS = "198.51.100.7"
# Each kind of abuse from an address of its own (a flood leaves its address over the
# address limit for a minute).
ABUSER_ADDRESSES = {
    "flood": "203.0.113.1",
    "streams": "203.0.113.2",
    "slow": "203.0.113.3",
    "huge": "203.0.113.4",
}
# The second user's /tasks latency by phase, printed at the end of the run (conftest.py).
LATENCY: dict[str, Latency] = {}


@dataclass(frozen=True)
class Latency:
    requests: int
    p50_ms: float
    p99_ms: float


@dataclass
class Users:
    measuring: list[httpx.Client]  # the other users, each signed in
    system: EmbeddedStack

    def abuser(self, kind: str) -> str:
        """A session of a user of its own for each kind of abuse (a flood leaves its user
        over the rate limit for a minute)."""
        user = f"mallory-{kind}@abuse-msp.example"
        address = ABUSER_ADDRESSES[kind]
        with signed_in(self.system, user, TENANT, address=address) as abuser:
            return abuser.cookies["syntaskio_session"]


@pytest.fixture(scope="module")
def users(system: EmbeddedStack) -> Iterator[Users]:
    with ExitStack() as held:
        measuring = [
            held.enter_context(
                signed_in(system, f"{member}@abuse-msp.example", TENANT, address=MEASURER_ADDRESS)
            )
            for member in MEMBERS
        ]
        for client, member in zip(measuring, MEMBERS, strict=True):
            assert connect(client, system, member).status_code == 201
        for client in measuring:
            assert eventually(lambda c=client: len(dashboard_ids(c)) >= 10, timeout=90)
        yield Users(measuring, system)


def measure(users: list[httpx.Client], seconds: float) -> tuple[Latency, list[int]]:
    """`/tasks` from each user in turn for `seconds`, at a steady pace: the latency and
    every status."""
    took: list[float] = []
    statuses: list[int] = []
    deadline = time.monotonic() + seconds
    pace = PACE_SECONDS / len(users)
    turn = 0
    while (started := time.monotonic()) < deadline:
        client = users[turn % len(users)]
        statuses.append(client.get("/api/v1/tasks").status_code)
        took.append((time.monotonic() - started) * 1000)
        turn += 1
        time.sleep(max(0.0, started + pace - time.monotonic()))
    p99 = statistics.quantiles(took, n=100)[98]
    return Latency(len(took), statistics.median(took), p99), statuses


def under_abuse(system: EmbeddedStack, users: Users, kind: str) -> dict[str, int]:
    """Measure while the abuser does `kind`; what the abuser got back."""
    seconds = RAMP_SECONDS + MEASURE_SECONDS + 1
    abuser = subprocess.Popen(
        [
            sys.executable,
            str(ABUSER),
            kind,
            system.url("gateway"),
            users.abuser(kind),
            ABUSER_ADDRESSES[kind],
            str(seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(RAMP_SECONDS)
        LATENCY[kind], statuses = measure(users.measuring, MEASURE_SECONDS)
        output, _ = abuser.communicate(timeout=60)
    finally:
        abuser.kill()
    assert abuser.returncode == 0
    # The second user was served every time, however slowly.
    assert set(statuses) == {200}, f"the second user got {sorted(set(statuses))} during {kind}"
    got: dict[str, int] = json.loads(output)
    return got


def test_a_quiet_gateway_first(users: Users) -> None:
    LATENCY["quiet"], statuses = measure(users.measuring, MEASURE_SECONDS)
    assert set(statuses) == {200}


def test_a_flood_is_answered_429_and_never_fails(system: EmbeddedStack, users: Users) -> None:
    got = under_abuse(system, users, "flood")
    assert got.get("429", 0) > got.get("200", 0), got  # mostly refused, cheaply
    assert set(got) <= {"200", "429"}, got


def test_a_user_holding_streams_gets_eight(system: EmbeddedStack, users: Users) -> None:
    got = under_abuse(system, users, "streams")
    assert got["most_open"] == 8, got  # LIVE_STREAMS_PER_USER at once; the rest refused
    assert set(got) == {"200", "429", "most_open"}, got


def test_slow_clients_are_cut_off(system: EmbeddedStack, users: Users) -> None:
    got = under_abuse(system, users, "slow")
    # Trickled headers: the connection closed; a trickled body: 408, or 429 past the
    # requests one token may have waiting for an answer. None still held.
    assert got.get("closed", 0) > 0, got
    assert got.get("408", 0) > 0, got
    assert set(got) <= {"closed", "408", "429"}, got


def test_bodies_past_the_limit_are_refused_413(system: EmbeddedStack, users: Users) -> None:
    got = under_abuse(system, users, "huge")
    assert got.get("413", 0) > 0, got
    # Then the user's token is over SESSION_RATE_LIMIT: refused before anything is read.
    assert set(got) <= {"413", "429", "closed"}, got
