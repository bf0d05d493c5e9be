"""The conditions builder: what it renders, what it refuses, and — checked against the
sandbox's parser, our model of ConnectWise's grammar — that no value can change the
structure of the expression it is put in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from connectwise_sandbox.conditions import ConditionError, compile_conditions
from connectwise_sandbox.schema import schema_of
from syntaskio_common.connectwise_conditions import (
    Condition,
    F,
    all_of,
    any_of,
    field_path,
    like_prefix,
    not_,
    render,
)

RECORDS: list[dict[str, Any]] = [
    {
        "id": 1,
        "summary": "Outlook not syncing",
        "resources": "atech, bjones",
        "closedFlag": False,
        "budgetHours": 1.5,
        "owner": {"identifier": "atech"},
        "_info": {"lastUpdated": "2026-01-05T08:00:00Z"},
    },
]
SCHEMA = schema_of("ticket", RECORDS)

# Text the language gives meaning to, so generated strings hit the dangerous cases often.
SYNTAX = st.sampled_from(
    [
        *('"', "'", "\\", "*", "%", "[", "]", "(", ")", ",", "/", "=", "!", "<", ">", " ", "_"),
        *(" and ", " or ", " not ", " like ", " contains ", " in ", "null", "true", "[2026-01]"),
    ]
)
TEXT = st.lists(
    st.one_of(SYNTAX, st.text(st.characters(exclude_categories=["Cc", "Cs"]), max_size=5)),
    max_size=12,
).map("".join)

INJECTIONS = [
    'x" or id != 0 or summary = "',
    "x' or id != 0 or summary = '",
    'x\\" or id != 0 or summary = \\"',
    'x\\\\" or id != 0 or summary = "',
    "\\",
    '"',
    '") or (id > 0',
    "[2026-01-01T00:00:00Z]",
    "*",
    "%",
]


def matches(condition: Condition, record: dict[str, Any]) -> bool:
    return compile_conditions(str(condition), SCHEMA)(record)


def ticket(**fields: Any) -> dict[str, Any]:
    return {**RECORDS[0], **fields}


# --- rendering --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "text"),
    [
        (F("closedFlag").eq(False), "closedFlag = false"),
        (F("closedFlag").ne(True), "closedFlag != true"),
        (F("owner/identifier") == "atech", 'owner/identifier = "atech"'),
        (F("id") != 5, "id != 5"),
        (F("id") < 5, "id < 5"),
        (F("id") <= -5, "id <= -5"),
        (F("budgetHours") > 1.5, "budgetHours > 1.5"),
        (F("budgetHours") >= 1e20, "budgetHours >= 100000000000000000000"),
        (F("budgetHours") >= 1e-7, "budgetHours >= 0.0000001"),
        (F("budgetHours") >= Decimal("2.50"), "budgetHours >= 2.5"),
        (F("resources").contains("atech"), 'resources contains "atech"'),
        (F("resources").not_contains("atech"), 'resources not contains "atech"'),
        (F("summary").like("Printer*"), 'summary like "Printer*"'),
        (F("summary").not_like("Printer*"), 'summary not like "Printer*"'),
        (F("summary").starts_with('say "hi'), 'summary like "say \\"hi*"'),
        (F("id").in_([1, 2, 3]), "id in (1, 2, 3)"),
        (F("summary").in_(["a", 'b"']), 'summary in ("a", "b\\"")'),
        (F("id").not_in(range(2)), "id not in (0, 1)"),
        (F("requiredDate").is_null(), "requiredDate = null"),
        (F("requiredDate").is_not_null(), "requiredDate != null"),
        (
            F("_info/lastUpdated") > datetime(2026, 1, 1, tzinfo=UTC),
            "_info/lastUpdated > [2026-01-01T00:00:00Z]",
        ),
        (
            F("_info/lastUpdated")
            > datetime(2026, 1, 1, 2, 30, tzinfo=timezone(timedelta(hours=2))),
            "_info/lastUpdated > [2026-01-01T00:30:00Z]",
        ),
        (
            F("_info/lastUpdated") < datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=UTC),
            "_info/lastUpdated < [2026-01-01T00:00:00.25Z]",
        ),
    ],
)
def test_renders_connectwise_syntax(condition: Condition, text: str) -> None:
    assert str(condition) == text
    compile_conditions(text, schema_of("t", [ticket(requiredDate="2026-01-01T00:00:00Z")]))


def test_and_binds_tighter_so_or_groups_get_parentheses() -> None:
    member = "atech"
    mine = F("closedFlag").eq(False) & (
        (F("owner/identifier") == member) | F("resources").contains(member)
    )
    assert str(mine) == (
        'closedFlag = false and (owner/identifier = "atech" or resources contains "atech")'
    )
    either = (F("id") == 1) | ((F("id") == 2) & (F("closedFlag").eq(True)))
    assert str(either) == "id = 1 or (id = 2 and closedFlag = true)"
    # Same-kind groups flatten; one part is just that part.
    assert (
        str(all_of(F("id") > 1, all_of(F("id") < 9, F("id") != 5)))
        == "id > 1 and id < 9 and id != 5"
    )
    assert str(any_of(F("id") == 1)) == "id = 1"


def test_negation_is_pushed_down_with_de_morgan() -> None:
    condition = (F("id") < 5) | ((F("summary").like("a*")) & F("owner/identifier").is_null())
    assert str(~condition) == ('id >= 5 and (summary not like "a*" or owner/identifier != null)')
    assert str(not_(F("id").in_([1]))) == "id not in (1)"
    assert str(~~condition) == str(condition)


@pytest.mark.parametrize(
    "record",
    [
        ticket(id=1, summary="alpha"),
        ticket(id=7, summary="beta"),
        ticket(id=9, summary="Alphabet", resources="bjones"),
        ticket(id=8, summary="alpha", owner={"identifier": "bjones"}),
    ],
)
def test_negation_is_the_opposite_when_nothing_is_null(record: dict[str, Any]) -> None:
    condition = any_of(
        F("id") < 5,
        all_of(F("summary").like("alpha*"), F("owner/identifier") == "atech"),
        F("resources").contains("bjones") & (F("id").in_([7, 9])),
    )
    assert matches(~condition, record) is not matches(condition, record)


@pytest.mark.parametrize(
    "condition",
    [
        F("summary").like("a*"),
        F("summary") == "a",
        F("summary").contains("a"),
        F("summary").in_(["a"]),
        F("owner/identifier") < "m",
    ],
)
def test_negation_follows_sql_for_nulls(condition: Condition) -> None:
    """A null field fails a comparison and its negation alike (three-valued logic)."""
    record = ticket(summary=None, owner=None)
    assert not matches(condition, record)
    assert not matches(~condition, record)


def test_render_passes_text_through_and_renders_expressions() -> None:
    assert render(None) is None
    assert render("id = 1") == "id = 1"
    assert render(F("id") == 1) == "id = 1"
    with pytest.raises(TypeError):
        render(5)  # type: ignore[arg-type]


# --- refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "",
        " id",
        "id ",
        "a b",
        "1abc",
        "owner/",
        "/owner",
        "owner//id",
        "owner/1d",
        "summary;drop",
        'summary"',
        "summary=1",
        "id) or (id",
        "owner.identifier",
        "résumé",
        "and",
        "owner/NOT",
        "Null",
        "in",
    ],
)
def test_field_names_outside_the_strict_pattern_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="field path"):
        F(name)
    with pytest.raises(ValueError, match="field path"):
        field_path(name)


@pytest.mark.parametrize(
    "build",
    [
        lambda: F("_info/lastUpdated") > datetime(2026, 1, 1),  # naive
        lambda: F("summary") == "line\nbreak",
        lambda: F("summary") == "nul\x00",
        lambda: F("summary") == "del\x7f",
        lambda: F("summary").contains("tab\t"),
        lambda: F("summary").like("bell\x07*"),
        lambda: F("id").in_([]),
        lambda: F("id").in_([1, None]),
        lambda: F("id") < None,
        lambda: F("closedFlag") > True,
        lambda: F("budgetHours") == float("nan"),
        lambda: F("budgetHours") == float("inf"),
        lambda: F("budgetHours") == Decimal("NaN"),
        lambda: like_prefix("50%"),
        lambda: like_prefix("a*b"),
        lambda: F("summary").starts_with("*"),
        lambda: all_of(),
        lambda: any_of(),
    ],
)
def test_bad_values_are_refused_when_built(build: Any) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several messages, one contract
        build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: F("requiredDate") == date(2026, 1, 1),
        lambda: F("id") == [1, 2],
        lambda: F("id") == object(),
        lambda: F("summary").contains(5),  # type: ignore[arg-type]
        lambda: F("summary").like(None),  # type: ignore[arg-type]
        lambda: (F("id") == 1) & "id = 2",  # type: ignore[operator]
        lambda: any_of(F("id") == 1, "id = 2"),  # type: ignore[arg-type]
    ],
)
def test_wrong_types_are_refused(build: Any) -> None:
    with pytest.raises(TypeError):
        build()


def test_an_expression_has_no_truth_value() -> None:
    """`F(a) == 1 and F(b) == 2` would silently drop the first clause."""
    with pytest.raises(TypeError, match="no truth value"):
        bool(F("id") == 1)
    with pytest.raises(TypeError, match="no truth value"):
        _ = (F("id") == 1) and (F("id") == 2)


def test_expressions_are_immutable_values() -> None:
    condition = F("id") == 1
    with pytest.raises(AttributeError):
        condition.value = 2  # type: ignore[attr-defined]
    assert (F("id") == 1) == condition  # dataclass equality, not a new Condition
    assert hash(F("id") == 1) == hash(condition)


# --- properties against the sandbox's parser ------------------------------------------


@settings(max_examples=400, deadline=None)
@given(value=TEXT, other=TEXT)
def test_any_string_arrives_as_one_literal(value: str, other: str) -> None:
    """`summary = value` matches exactly the records whose summary equals value (the
    sandbox compares text ignoring case)."""
    for summary in (value, other, value + "x", "x" + value):
        expected = summary.lower() == value.lower()
        assert matches(F("summary") == value, ticket(summary=summary)) is expected
        assert matches(F("summary") != value, ticket(summary=summary)) is not expected


@settings(max_examples=400, deadline=None)
@given(value=TEXT)
def test_a_string_cannot_change_the_structure_around_it(value: str) -> None:
    """Whatever the text, `summary = v and id = 1` stays one `and` of two comparisons and
    `(summary = v or id = 1)` one `or`: only the literal's own truth varies."""
    assume(value.lower() != "other")
    both = all_of(F("summary") == value, F("id") == 1, F("resources").contains(value))
    either = any_of(F("summary") == value, F("id") == 1)
    grouped = all_of(F("id") == 2, any_of(F("summary") == value, F("summary").like(value)))
    assert matches(both, ticket(id=1, summary=value, resources=f"[{value}]"))
    assert not matches(both, ticket(id=2, summary=value, resources=value))
    assert not matches(both, ticket(id=1, summary="other", resources=value))
    assert matches(either, ticket(id=2, summary=value))
    assert matches(either, ticket(id=1, summary="other"))
    assert not matches(either, ticket(id=2, summary="other"))
    assert not matches(grouped, ticket(id=1, summary=value))
    assert matches(~both, ticket(id=2, summary=value, resources=value))
    # An `in` list keeps its items apart.
    assert matches(F("summary").in_([value, "other"]), ticket(summary=value))
    assert not matches(F("summary").in_([value, "other"]), ticket(summary="neither" + value))


@settings(max_examples=300, deadline=None)
@given(value=TEXT, before=TEXT, after=TEXT)
def test_contains_looks_for_the_literal_text(value: str, before: str, after: str) -> None:
    haystack = before + value + after
    expected = value.lower() in haystack.lower()
    assert matches(F("resources").contains(value), ticket(resources=haystack)) is expected


@settings(max_examples=300, deadline=None)
@given(value=TEXT)
def test_like_prefix_matches_literal_prefixes_or_refuses(value: str) -> None:
    if "*" in value or "%" in value:
        with pytest.raises(ValueError, match="no wildcard escape"):
            F("summary").starts_with(value)
        return
    starts = F("summary").starts_with(value)
    assert matches(starts, ticket(summary=value.lower() + " and more"))
    assert matches(starts, ticket(summary=value.lower()))
    if value:
        assert not matches(starts, ticket(summary=""))


@pytest.mark.parametrize("value", INJECTIONS)
def test_known_injections_stay_literals(value: str) -> None:
    condition = all_of(F("summary") == value, F("id") == 1)
    assert matches(condition, ticket(id=1, summary=value))
    assert not matches(condition, ticket(id=1, summary="something else"))
    assert not matches(condition, ticket(id=2, summary=value))


@settings(max_examples=200, deadline=None)
@given(value=TEXT, control=st.characters(categories=["Cc"]), at=st.integers(0, 40))
def test_control_characters_are_refused_anywhere(value: str, control: str, at: int) -> None:
    tainted = value[:at] + control + value[at:]
    with pytest.raises(ValueError, match="control character"):
        F("summary") == tainted  # noqa: B015 - building is what raises
    with pytest.raises(ValueError, match="control character"):
        F("summary").in_(["ok", tainted])


SEGMENT = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: (
        name.lower() not in {"and", "or", "not", "like", "contains", "in", "true", "false", "null"}
    )
)


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(SEGMENT, min_size=1, max_size=3, unique_by=str.lower), value=TEXT)
def test_any_valid_field_path_parses_as_that_path(parts: list[str], value: str) -> None:
    record: dict[str, Any] = {"id": 1}
    target = record
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    schema = schema_of("thing", [record])
    path = "/".join(parts)
    assume(schema.resolve(path) is not None)  # e.g. a segment named like "id" collides
    predicate = compile_conditions(str(F(path) == value), schema)
    assert predicate(record)


@settings(max_examples=200, deadline=None)
@given(
    naive=st.datetimes(min_value=datetime(1901, 1, 1), max_value=datetime(2099, 12, 31)),
    offset=st.integers(-(23 * 60 + 59), 23 * 60 + 59),
)
def test_aware_datetimes_compare_as_the_same_instant(naive: datetime, offset: int) -> None:
    moment = naive.replace(microsecond=0, tzinfo=timezone(timedelta(minutes=offset)))
    stored = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    record = ticket(_info={"lastUpdated": stored})
    assert matches(F("_info/lastUpdated") == moment, record)
    assert not matches(F("_info/lastUpdated") > moment, record)
    assert matches(F("_info/lastUpdated") > moment - timedelta(seconds=1), record)
    assert matches(F("_info/lastUpdated") < moment + timedelta(seconds=1), record)


def test_the_sandbox_rejects_what_the_builder_refuses_to_build() -> None:
    """The refusals are not stricter than needed for structure: unescaped, these would
    break the parse or change the expression."""
    with pytest.raises(ConditionError):
        compile_conditions('summary = "a"b"', SCHEMA)
    sneaky = compile_conditions('summary = "x" or id != 0 or summary = ""', SCHEMA)
    assert sneaky(ticket(summary="anything"))  # what escaping prevents
