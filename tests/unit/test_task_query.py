"""Task queries: cursors, keyset pages, facets, due windows and search, evaluated in Python
by a tiny MongoDB stand-in (only the operators these pipelines use)."""

from __future__ import annotations

import base64
import contextlib
import json
import operator
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from syntaskio_common.mongo import Document
from syntaskio_common.task import TaskStatus
from syntaskio_gateway.task_query import (
    InvalidQuery,
    TaskFilters,
    TaskListQuery,
    TaskSort,
    decode_cursor,
    encode_cursor,
    facets_pipeline,
    list_pipeline,
    other_conditions,
)

NOW = datetime(2026, 3, 10, 12, tzinfo=UTC)
SCOPE = {"$match": {"tenant_id": "t", "user_id": "u", "deleted": False}}


def _get(doc: Document, path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


COMPARE = {"$gt": operator.gt, "$lt": operator.lt, "$gte": operator.ge, "$lte": operator.le}


def _holds(condition: Any, value: Any) -> bool:
    if not (isinstance(condition, dict) and all(k.startswith("$") for k in condition)):
        return bool(value == condition)  # equality; a missing field equals None
    flags = re.IGNORECASE if "i" in condition.get("$options", "") else 0
    for op, operand in condition.items():
        if op in COMPARE:  # MongoDB compares values of one type only
            ok = value is not None and type(value) is type(operand) and COMPARE[op](value, operand)
        elif op in ("$ne", "$in"):
            ok = value != operand if op == "$ne" else value in operand
        elif op == "$regex":
            ok = isinstance(value, str) and re.search(operand, value, flags) is not None
        elif op != "$options":
            raise AssertionError(f"the test's evaluator does not know {op}")
        if op != "$options" and not ok:
            return False
    return True


def matches(doc: Document, query: Document) -> bool:
    for key, condition in query.items():
        if key == "$and" and not all(matches(doc, c) for c in condition):
            return False
        if key == "$or" and not any(matches(doc, c) for c in condition):
            return False
        if not key.startswith("$") and not _holds(condition, _get(doc, key)):
            return False
    return True


def _expression(doc: Document, expr: Any) -> Any:
    if isinstance(expr, str) and expr.startswith("$"):
        return _get(doc, expr[1:])
    if isinstance(expr, dict):
        ((op, args),) = expr.items()
        if op == "$cond":
            test, yes, no = args
            return _expression(doc, yes if _expression(doc, test) else no)
        if op == "$ifNull":
            value, fallback = args
            found = _expression(doc, value)
            return _expression(doc, fallback) if found is None else found
        assert op == "$eq", op
        return _expression(doc, args[0]) == _expression(doc, args[1])
    return expr


def _bson_key(value: Any) -> tuple[int, Any]:  # null < numbers < strings < dates
    kinds = (value is None, isinstance(value, int), isinstance(value, str), True)
    rank = kinds.index(True)
    return (rank, value if value is not None else 0)


def run(pipeline: list[Document], docs: list[Document]) -> list[Document]:
    for stage in pipeline:
        ((name, spec),) = stage.items()
        if name == "$match":
            docs = [d for d in docs if matches(d, spec)]
        elif name == "$addFields":
            docs = [{**d, **{f: _expression(d, e) for f, e in spec.items()}} for d in docs]
        elif name == "$sort":
            for field, direction in reversed(list(spec.items())):  # stable, last key first
                docs = sorted(docs, key=lambda d: _bson_key(_get(d, field)), reverse=direction < 0)
        elif name == "$limit":
            docs = docs[:spec]
        else:
            raise AssertionError(f"the test's runner does not know {name}")
    return docs


def day(d: int, hour: int = 0) -> datetime:
    return datetime(2026, 3, d, hour, tzinfo=UTC)


# Stored tasks, as the aggregator writes them (`priority_rank` stored, no `_no_due_date`),
# with ties on every key so that `_id` has to break them.
STORED: list[Document] = [
    {"_id": f"t{i}", "tenant_id": "t", "user_id": "u", "deleted": False, "priority_rank": i % 2}
    | {"source_updated_at": day(1 + i % 3), "due_at": due}
    | ({"sla": {"due_at": due + timedelta(hours=i % 2)}} if due and i % 4 else {"sla": None})
    for i, due in enumerate([day(5), None, day(5), day(2), None, day(5), day(2), None, day(9)])
]


def expected_key(sort: TaskSort, doc: Document) -> tuple[Any, ...]:
    """The documented orders, written independently: urgent/soon/recent first, `_id` last."""
    due = (doc["due_at"] is None, doc["due_at"] or NOW)
    if sort is TaskSort.UPDATED:
        return (-doc["source_updated_at"].timestamp(), doc["_id"])
    if sort is TaskSort.DUE:
        return (*due, doc["_id"])
    if sort is TaskSort.SLA:
        sla_due = (doc["sla"] or {}).get("due_at")
        return (sla_due is None, sla_due or NOW, doc["_id"])
    return (-doc["priority_rank"], *due, doc["_id"])


def with_sort_fields(doc: Document) -> Document:
    return {**doc, "_no_due_date": int(doc["due_at"] is None), "_no_sla": int(not doc["sla"])}


def raw_cursor(payload: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


@pytest.mark.parametrize("sort", list(TaskSort))
@pytest.mark.parametrize("doc", [with_sort_fields(d) for d in STORED[:2]])
def test_a_cursor_gives_back_the_sort_values_it_was_made_from(
    sort: TaskSort, doc: Document
) -> None:
    fields = {
        TaskSort.UPDATED: ["source_updated_at", "_id"],
        TaskSort.DUE: ["_no_due_date", "due_at", "_id"],
        TaskSort.PRIORITY: ["priority_rank", "_no_due_date", "due_at", "_id"],
        TaskSort.SLA: ["_no_sla", "sla.due_at", "_id"],
    }[sort]
    values = decode_cursor(encode_cursor(sort, doc), sort)
    assert values == [_get(doc, f) for f in fields]
    assert all(v.tzinfo is not None for v in values if isinstance(v, datetime))
    other = next(s for s in TaskSort if s is not sort)
    with pytest.raises(InvalidQuery):
        decode_cursor(encode_cursor(sort, doc), other)


@pytest.mark.parametrize(
    ("sort", "cursor"),
    [
        (TaskSort.UPDATED, "not a cursor!"),
        (TaskSort.UPDATED, base64.urlsafe_b64encode(b"\xff\xfe not json").decode()),
        (TaskSort.UPDATED, raw_cursor(["updated", ["2026-03-01T00:00:00+00:00", "a"]])),
        (TaskSort.UPDATED, raw_cursor({"sort": "updated", "after": ["2026-03-01T00:00:00+00:00"]})),
        (TaskSort.UPDATED, raw_cursor({"sort": "updated", "after": ["2026-03-01T00:00:00", "a"]})),
        (TaskSort.UPDATED, raw_cursor({"sort": "updated", "after": ["yesterday", "a"]})),
        (TaskSort.UPDATED, raw_cursor({"sort": "updated", "after": [None, "a"]})),
        (TaskSort.UPDATED, raw_cursor({"sort": "updated", "after": ["2026-03-01T00:00Z", 7]})),
        (TaskSort.DUE, raw_cursor({"sort": "due", "after": [True, None, "a"]})),
        (TaskSort.DUE, raw_cursor({"sort": "due", "after": [0.0, None, "a"]})),
        (TaskSort.PRIORITY, raw_cursor({"sort": "priority", "after": ["3", 0, None, "a"]})),
    ],
)
def test_cursors_not_given_out_by_the_api_are_invalid_queries(sort: TaskSort, cursor: str) -> None:
    with pytest.raises(InvalidQuery):
        decode_cursor(cursor, sort)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=10,
)


@given(st.text(max_size=200), st.sampled_from(list(TaskSort)))
def test_any_text_is_a_cursor_or_an_invalid_query(text: str, sort: TaskSort) -> None:
    with contextlib.suppress(InvalidQuery):  # and nothing else
        decode_cursor(text, sort)


@given(st.sampled_from(list(TaskSort)), st.lists(json_values, min_size=2, max_size=4))
def test_any_payload_is_a_cursor_or_an_invalid_query(sort: TaskSort, after: list[Any]) -> None:
    with contextlib.suppress(InvalidQuery):  # and nothing else
        decode_cursor(raw_cursor({"sort": sort.value, "after": after}), sort)


@pytest.mark.parametrize("sort", list(TaskSort))
def test_a_cursor_keeps_exactly_the_tasks_strictly_after_it(sort: TaskSort) -> None:
    docs = [with_sort_fields(d) for d in STORED]  # as after the pipeline's `$addFields`
    for last in docs:
        query = TaskListQuery(sort=sort, cursor=encode_cursor(sort, last))
        pipeline = list_pipeline("t", "u", query, NOW)
        after = next(s["$match"] for s in pipeline[1:] if "$match" in s)["$and"][-1]
        kept = {d["_id"] for d in docs if matches(d, after)}
        later = {d["_id"] for d in docs if expected_key(sort, d) > expected_key(sort, last)}
        assert kept == later, f"after {last['_id']}"


@pytest.mark.parametrize("sort", list(TaskSort))
@pytest.mark.parametrize("limit", [1, 2, 4])
def test_paging_with_cursors_shows_every_task_once_in_order(sort: TaskSort, limit: int) -> None:
    shown: list[str] = []
    cursor: str | None = None
    for _ in range(len(STORED) + 1):
        query = TaskListQuery(sort=sort, limit=limit, cursor=cursor)
        found = run(list_pipeline("t", "u", query, NOW), STORED)
        shown += [d["_id"] for d in found[:limit]]
        if len(found) <= limit:
            break
        cursor = encode_cursor(sort, found[limit - 1])
    expected = [d["_id"] for d in sorted(STORED, key=lambda d: expected_key(sort, d))]
    assert shown == expected, "pages after the first lose tasks (cursor $match before $addFields?)"


@pytest.mark.parametrize(
    "filters",
    [{}, {"status": ["pending"], "board": [3], "q": "x", "due": "overdue"}, {"cursor": None}],
)
@pytest.mark.parametrize("sort", list(TaskSort))
def test_the_list_starts_with_the_scope_alone_and_fetches_one_more(
    filters: dict[str, Any], sort: TaskSort
) -> None:
    pipeline = list_pipeline("t", "u", TaskListQuery(sort=sort, limit=7, **filters), NOW)
    assert pipeline[0] == SCOPE
    assert pipeline[-1] == {"$limit": 8}
    assert list(pipeline[-2]["$sort"])[-1] == "_id"
    matches_ = [stage for stage in pipeline if "$match" in stage]
    assert len(matches_) == (2 if filters.get("status") else 1)


def test_each_facet_counts_with_the_other_facets_choices_but_not_its_own() -> None:
    filters = TaskFilters(status=[TaskStatus.PENDING], board=[3], q="printer")
    pipeline = facets_pipeline("t", "u", filters, NOW)
    assert pipeline[0] == SCOPE
    assert pipeline[1] == {"$match": {"$and": other_conditions(filters, NOW)}}
    branches = pipeline[2]["$facet"]
    status, board = {"status": {"$in": ["pending"]}}, {"source_data.board.id": {"$in": [3]}}
    assert branches["status"][0] == {"$match": {"$and": [board]}}
    assert branches["board"][0] == {"$match": {"$and": [status]}}
    assert branches["source"][0] == {"$match": {"$and": [status, board]}}
    group = next(stage["$group"] for stage in branches["project"] if "$group" in stage)
    assert group["label"] == {"$first": "$source_data.project.name"}
    unfiltered = facets_pipeline("t", "u", TaskFilters(), NOW)
    assert len(unfiltered) == 2
    assert all("$group" in branch[0] for branch in unfiltered[1]["$facet"].values())


def due(now: datetime, **filters: Any) -> Document:
    (condition,) = other_conditions(TaskFilters(**filters), now)
    return condition


def test_overdue_is_due_before_now_and_not_completed() -> None:
    later, earlier = NOW + timedelta(days=1), NOW - timedelta(days=1)
    assert due(NOW, due="overdue") == {"due_at": {"$lt": NOW}, "status": {"$ne": "completed"}}
    assert due(NOW, due="overdue", due_to=later)["due_at"] == {"$lt": NOW}
    assert due(NOW, due="overdue", due_to=earlier, due_from=day(1))["due_at"] == {
        "$gte": day(1),
        "$lt": earlier,
    }
    tasks: list[Document] = [{"due_at": earlier, "status": s} for s in ("pending", "completed")]
    tasks += [{"due_at": later, "status": "pending"}, {"due_at": None, "status": "pending"}]
    assert [matches(t, due(NOW, due="overdue")) for t in tasks] == [True, False, False, False]


@pytest.mark.parametrize(
    ("window", "tz", "now", "start", "end"),
    [  # New York springs forward on 2026-03-08: that day has 23 hours.
        ("today", "America/New_York", day(8, 12), day(8, 5), day(9, 4)),
        ("today", "America/New_York", day(8, 3), day(7, 5), day(8, 5)),  # still the 7th there
        ("today", "UTC", day(10, 23), day(10), day(11)),
        # Berlin springs forward on Sunday 2026-03-29: that week has 167 hours.
        ("week", "Europe/Berlin", day(26, 12), day(22, 23), day(29, 22)),
        ("week", "Europe/Berlin", day(29, 21), day(22, 23), day(29, 22)),  # Sunday 23:00
        ("week", "Europe/Berlin", day(29, 22), day(29, 22), datetime(2026, 4, 5, 22, tzinfo=UTC)),
    ],
)
def test_today_and_this_week_run_from_local_midnight_to_local_midnight(
    window: str, tz: str, now: datetime, start: datetime, end: datetime
) -> None:
    assert due(now, due=window, tz=tz) == {"due_at": {"$gte": start, "$lt": end}}


def test_today_starts_at_the_first_local_midnight_even_in_a_repeated_hour() -> None:
    # Havana falls back from 01:00 to 00:00 on 2026-11-01, so 00:30 comes twice (04:30Z and
    # 05:30Z); the day began once, at 00:00 CDT = 04:00Z, and runs to 00:00 CST = 05:00Z.
    first, again = (datetime(2026, 11, 1, h, 30, tzinfo=UTC) for h in (4, 5))
    expected = {
        "due_at": {
            "$gte": datetime(2026, 11, 1, 4, tzinfo=UTC),
            "$lt": datetime(2026, 11, 2, 5, tzinfo=UTC),
        }
    }
    assert due(first, due="today", tz="America/Havana") == expected
    assert due(again, due="today", tz="America/Havana") == expected, "start moved to 05:00Z"


zones = st.sampled_from(["UTC", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe"])


@given(st.datetimes(datetime(2000, 1, 3), datetime(2100, 1, 1), timezones=st.just(UTC)), zones)
def test_windows_hold_now_and_are_local_days_or_weeks(now: datetime, tz: str) -> None:
    for window, days, weekday in (("today", 1, None), ("week", 7, 0)):
        bounds = due(now, due=window, tz=tz)["due_at"]
        start, end = (bounds[k].astimezone(ZoneInfo(tz)) for k in ("$gte", "$lt"))
        assert start <= now < end
        assert (start.time(), end.time()) == ((start.min.time(),) * 2)
        assert (end.date() - start.date()).days == days
        assert weekday is None or start.weekday() == weekday


def test_no_due_date_and_ranges_intersect_with_windows() -> None:
    assert due(NOW, due="none") == {"due_at": None}
    assert due(NOW, due_from=day(1), due_to=day(2)) == {"due_at": {"$gte": day(1), "$lt": day(2)}}
    assert due(NOW, due="today", due_from=day(10, 6), due_to=day(12)) == {
        "due_at": {"$gte": day(10, 6), "$lt": day(11)}
    }
    assert due(NOW, due="week", due_from=day(1), due_to=day(11, 9)) == {
        "due_at": {"$gte": day(9), "$lt": day(11, 9)}
    }
    assert other_conditions(TaskFilters(), NOW) == []


@pytest.mark.parametrize(
    "fields",
    [
        {"tz": "Mars/Olympus_Mons"},
        {"tz": "../../etc/passwd"},
        {"colour": "red"},
        {"board": [0]},
        {"company": [-4]},
        {"project": [2**53 + 1]},
        {"due_from": "2026-03-01T00:00:00"},
    ],
)
def test_filters_reject_unknown_zones_fields_and_ids_below_one(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TaskFilters(**fields)


def search(q: str) -> list[Document]:
    (condition,) = other_conditions(TaskFilters(q=q), NOW)
    alternatives: list[Document] = condition["$or"]
    return alternatives


def test_search_treats_text_literally_and_case_insensitively() -> None:
    title = search("a.b")[0]["title"]
    assert title["$options"] == "i"
    assert re.search(title["$regex"], "axb", re.IGNORECASE) is None
    assert re.search(title["$regex"], "xA.By", re.IGNORECASE) is not None
    assert not any("external_id" in alternative for alternative in search("a.b"))


@pytest.mark.parametrize(
    ("q", "number"),
    [("#123", "123"), ("123", "123"), (" 42 ", "42"), ("12a", None), ("#", None), ("x", None)],
)
def test_a_ticket_number_also_matches_the_external_id(q: str, number: str | None) -> None:
    ids = [a["external_id"] for a in search(q) if "external_id" in a]
    assert ids == ([number] if number else [])


@given(st.text(min_size=1, max_size=200))
def test_search_finds_its_own_text_in_titles(q: str) -> None:
    pattern = search(q)[0]["title"]["$regex"]
    assert re.search(pattern, f"x{q.strip()}y", re.IGNORECASE) is not None


def test_no_due_date_with_a_due_range_is_refused_as_contradictory() -> None:
    with pytest.raises(ValidationError):
        TaskFilters(due="none", due_from=datetime(2026, 11, 1, tzinfo=UTC))
