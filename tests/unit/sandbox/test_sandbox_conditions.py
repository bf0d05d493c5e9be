"""The conditions language: every operator, precedence, paths, literals and errors."""

from __future__ import annotations

from typing import Any

import pytest

from connectwise_sandbox.conditions import ConditionError, compile_conditions
from connectwise_sandbox.schema import schema_of

RECORDS: list[dict[str, Any]] = [
    {
        "id": 1,
        "summary": "Outlook not syncing on CFO laptop",
        "closedFlag": False,
        "budgetHours": 1.5,
        "owner": {"id": 101, "identifier": "atech"},
        "resources": "atech, bjones",
        "requiredDate": "2026-01-10T17:00:00Z",
        "_info": {"lastUpdated": "2026-01-05T08:00:00Z"},
    },
    {
        "id": 2,
        "summary": 'Printer says "PC LOAD LETTER"',
        "closedFlag": True,
        "budgetHours": 4.0,
        "owner": {"id": 102, "identifier": "bjones"},
        "resources": "bjones",
        "_info": {"lastUpdated": "2026-02-01T12:30:00Z"},
    },
    {
        "id": 3,
        "summary": "Replace failing disk in NAS",
        "closedFlag": False,
        "budgetHours": 8.0,
        "_info": {"lastUpdated": "2026-03-01T00:00:00Z"},
    },
]
SCHEMA = schema_of("ticket", RECORDS)


def ids(conditions: str) -> list[int]:
    predicate = compile_conditions(conditions, SCHEMA)
    return [record["id"] for record in RECORDS if predicate(record)]


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ("id = 2", [2]),
        ("id != 2", [1, 3]),
        ("id < 2", [1]),
        ("id <= 2", [1, 2]),
        ("id > 2", [3]),
        ("id >= 2", [2, 3]),
        ("budgetHours > 1.5", [2, 3]),
        ("budgetHours = 4", [2]),
        ('summary = "replace failing disk in nas"', [3]),  # text ignores case
        ('summary contains "OUTLOOK"', [1]),
        ('summary not contains "outlook"', [2, 3]),
        ('summary like "Replace*"', [3]),
        ('summary like "*disk*"', [3]),
        ('summary like "%laptop"', [1]),
        ('summary like "Replace"', []),  # like without a wildcard is a whole-value match
        ('summary not like "*i*"', []),
        ('summary not like "*DISK*"', [1, 2]),
        ("id in (1, 3)", [1, 3]),
        ("id not in (1, 3)", [2]),
        ('owner/identifier in ("ATECH", "nobody")', [1]),
        ('resources contains "atech"', [1]),
        ('resources contains "bjones"', [1, 2]),
    ],
)
def test_operators(conditions: str, expected: list[int]) -> None:
    assert ids(conditions) == expected


def test_booleans_are_case_insensitive_keywords() -> None:
    assert ids("closedFlag = False") == [1, 3]
    assert ids("closedFlag=TRUE") == [2]
    assert ids("closedFlag != true") == [1, 3]
    assert ids('closedFlag = "false"') == [1, 3]


def test_nested_paths() -> None:
    assert ids('owner/identifier = "bjones"') == [2]
    assert ids("owner/id >= 101") == [1, 2]
    assert ids("_info/lastUpdated > [2026-01-31T00:00:00Z]") == [2, 3]


def test_dates_in_brackets_compare_as_instants() -> None:
    assert ids("_info/lastUpdated >= [2026-02-01T12:30:00Z]") == [2, 3]
    assert ids("_info/lastUpdated > [2026-02-01T12:30:00Z]") == [3]
    assert ids("_info/lastUpdated < [2026-02-01T13:30:00+01:00]") == [1]  # same instant, excl.
    assert ids("_info/lastUpdated <= [2026-02-01]") == [1]
    assert ids("requiredDate = [2026-01-10T17:00:00Z]") == [1]


def test_null_matches_only_equality_and_fails_every_other_comparison() -> None:
    assert ids("requiredDate = null") == [2, 3]
    assert ids("requiredDate != NULL") == [1]
    assert ids("owner/identifier = null") == [3]
    # SQL semantics: a null owner matches neither the comparison nor its negation.
    assert ids('owner/identifier != "atech"') == [2]
    assert ids('owner/identifier not like "a*"') == [2]
    assert ids("owner/id not in (101)") == [2]
    assert ids("requiredDate < [2030-01-01T00:00:00Z]") == [1]


def test_and_binds_tighter_than_or_and_parentheses_override() -> None:
    assert ids("id = 1 or id = 2 and closedFlag = false") == [1]
    assert ids("(id = 1 or id = 2) and closedFlag = false") == [1]
    assert ids("id = 3 or (id = 2 and closedFlag = true)") == [2, 3]
    assert ids("id = 3 OR id = 2 AND closedFlag = true") == [2, 3]
    assert ids("((id = 1)) AnD (summary contains 'cfo' Or id = 99)") == [1]


def test_escaped_quotes_inside_strings() -> None:
    assert ids(r'summary = "Printer says \"PC LOAD LETTER\""') == [2]
    assert ids(r'summary contains "\"pc load"') == [2]
    assert ids("summary contains 'LETTER\"'") == [2]
    assert ids(r"summary like '*\'*'") == []  # an escaped single quote is literal


def test_field_names_are_case_insensitive() -> None:
    assert ids('OWNER/Identifier = "atech"') == [1]
    assert ids("closedflag = false") == [1, 3]


def test_empty_conditions_match_everything() -> None:
    assert ids("") == [1, 2, 3]
    assert ids("   ") == [1, 2, 3]


@pytest.mark.parametrize(
    "conditions",
    [
        "id =",
        "id = 1 and",
        "= 1",
        "(id = 1",
        "id = 1)",
        'summary = "unterminated',
        "id == 1",
        "id = 1 id = 2",
        "summary like 5 and",
        "id in ()",
        "id = [not a date]",
        "summary ~ 'x'",
    ],
)
def test_malformed_conditions_are_rejected(conditions: str) -> None:
    with pytest.raises(ConditionError):
        compile_conditions(conditions, SCHEMA)


@pytest.mark.parametrize(
    ("conditions", "field"),
    [
        ('nosuchfield = "x"', "nosuchfield"),
        ('owner/nickname = "x"', "owner/nickname"),
        ("closedFlag = 'maybe'", "closedFlag"),
        ("id = 'seven'", "id"),
        ('_info/lastUpdated > "yesterday"', "_info/lastUpdated"),
        ("closedFlag > true", "closedFlag"),
        ('owner = "atech"', "owner"),
        ("id contains 1", "id"),
        ("budgetHours like '1*'", "budgetHours"),
        ("id > null", "id"),
    ],
)
def test_unknown_fields_and_type_mismatches_name_the_field(conditions: str, field: str) -> None:
    with pytest.raises(ConditionError) as raised:
        compile_conditions(conditions, SCHEMA)
    assert raised.value.field == field


def test_error_messages_say_what_was_expected() -> None:
    with pytest.raises(ConditionError, match=r"Unknown field 'nosuch' for ticket"):
        compile_conditions("nosuch = 1", SCHEMA)
    with pytest.raises(ConditionError, match=r"ended unexpectedly"):
        compile_conditions("id = 1 and", SCHEMA)
    with pytest.raises(ConditionError, match=r"position 4"):
        compile_conditions("id ! 1", SCHEMA)
