"""Versions and winners: the ordering every write of the aggregator relies on."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from raw_events import T0, decoded, integration, ticket, upserted

from syntaskio_aggregator.changes import (
    DELETED,
    Change,
    Decision,
    Latest,
    Stored,
    change_of,
    decide,
    disconnected_version,
    latest_per_task,
    version_key,
)
from syntaskio_common.task import SourceType, TaskRef, TaskSource

moments = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
versions = st.tuples(st.integers(0, 10**6), moments, moments, st.text(min_size=1, max_size=12))


@given(versions, versions)
def test_version_keys_sort_like_their_tuples(a: tuple, b: tuple) -> None:  # type: ignore[type-arg]
    if a < b:
        assert version_key(*a) < version_key(*b)
    if a == b:
        assert version_key(*a) == version_key(*b)


@given(versions)
def test_a_disconnect_outranks_its_generation_and_no_later_one(v: tuple) -> None:  # type: ignore[type-arg]
    generation = v[0]
    assert version_key(*v) < disconnected_version(generation)
    assert disconnected_version(generation) < version_key(generation + 1, *v[1:])
    if generation > 0:
        assert disconnected_version(generation - 1) < version_key(*v)


def test_version_keys_compare_instants_not_time_zones() -> None:
    utc = datetime(2026, 11, 1, 12, tzinfo=UTC)
    elsewhere = utc.astimezone(__import__("zoneinfo").ZoneInfo("Pacific/Auckland"))
    assert version_key(1, utc, utc, "e") == version_key(1, elsewhere, elsewhere, "e")


def change(task: str, version: str, position: str) -> Change:
    identity = TaskRef(
        id=task,
        tenant_id="t",
        user_id="u",
        integration_id="i",
        source=TaskSource.CONNECTWISE,
        source_type=SourceType.SERVICE_TICKET,
        external_id=task,
    )
    return Change(identity, None, 1, version, position)


@given(st.lists(st.tuples(st.sampled_from("abc"), versions), min_size=1, max_size=30), st.randoms())
def test_the_winner_per_task_does_not_depend_on_arrival_order(
    raw: list[tuple[str, tuple]],  # type: ignore[type-arg]
    rng: random.Random,
) -> None:
    changes = [change(task, version_key(*v), f"p/{i}") for i, (task, v) in enumerate(raw)]
    shuffled = changes[:]
    rng.shuffle(shuffled)
    expected = {task: max(c.version for c in changes if c.identity.id == task) for task, _ in raw}
    for arrival in (changes, shuffled, changes + shuffled):
        winners = latest_per_task(arrival)
        assert {w.change.identity.id: w.change.version for w in winners} == expected
        for winner in winners:
            assert winner.positions == {
                c.position for c in changes if c.identity.id == winner.change.identity.id
            }


def test_positions_name_every_event_of_the_task_in_the_batch() -> None:
    early = datetime(2026, 11, 1, tzinfo=UTC)
    late = early + timedelta(hours=1)
    winners = latest_per_task(
        [
            change("a", version_key(1, late, late, "x"), "raw/0/5"),
            change("a", version_key(1, early, early, "y"), "raw/0/4"),
            change("b", version_key(1, early, early, "z"), "raw/1/9"),
        ]
    )
    assert [(w.change.position, sorted(w.positions)) for w in winners] == [
        ("raw/0/5", ["raw/0/4", "raw/0/5"]),
        ("raw/1/9", ["raw/1/9"]),
    ]


def test_raw_fields_added_later_change_nothing() -> None:
    event = decoded(upserted(integration("t"), ticket(7, T0, "Laptop"), T0))
    record = {**event.data["record"], "addedByConnectWiseLater": {"x": 1}}
    later = replace(event, data={**event.data, "record": record, "new_envelope_field": True})
    assert change_of(later, "p/1") == change_of(event, "p/1")


def _edit(title: str, position: str = "raw/0/7") -> Latest:
    updated = change_of(decoded(upserted(integration("t"), ticket(7, T0, title), T0)), position)
    return Latest(updated, frozenset({position, "raw/0/6"}))


EDIT = _edit("Laptop")
OLDER, NEWER = "0000000000/", "9999999999/"
SAME = (EDIT.change.version, EDIT.change.content_hash)  # as stored by this very event


@pytest.mark.parametrize(
    ("latest", "stored", "expected"),
    [
        # Nothing stored: insert and announce; a removal is kept but not announced.
        (EDIT, None, Decision(write=True, announce=True)),
        (Latest(change("a", "v", "raw/0/1"), frozenset({"raw/0/1"})), None, Decision(True, False)),
        # Stored older: write; announce only a new content.
        (EDIT, Stored(OLDER, "other", "raw/0/1"), Decision(True, True)),
        (EDIT, Stored(OLDER, EDIT.change.content_hash, "raw/0/1"), Decision(True, False)),
        (EDIT, Stored(OLDER, DELETED, "raw/0/1"), Decision(True, True)),
        # Stored as new or newer: nothing, a duplicate or a straggler.
        (
            EDIT,
            Stored(*SAME, "raw/3/1"),
            Decision(False, False),
        ),
        (EDIT, Stored(NEWER, "other", "raw/3/1"), Decision(False, False)),
        # This batch's earlier attempt wrote it and crashed before announcing: announce
        # now, and when its write was of an older event of the batch, write as well.
        (
            EDIT,
            Stored(*SAME, "raw/0/7"),
            Decision(False, True),
        ),
        (EDIT, Stored(OLDER, EDIT.change.content_hash, "raw/0/6"), Decision(True, True)),
    ],
)
def test_what_a_write_does_depends_on_what_is_stored(
    latest: Latest, stored: Stored | None, expected: Decision
) -> None:
    assert decide(latest, stored) == expected
