"""ConnectWise `conditions` built from expressions, never by pasting user data into text.

    from syntaskio_common.connectwise_conditions import F, all_of, any_of

    open_and_mine = all_of(
        F("closedFlag").eq(False),
        any_of(F("owner/identifier") == member, F("resources").contains(member)),
    )
    str(open_and_mine)
    # closedFlag = false and (owner/identifier = "atech" or resources contains "atech")

Expressions are immutable; `str(expression)` renders ConnectWise's syntax (the grammar
the sandbox's `connectwise_sandbox.conditions` parses):

* field paths must match ``name(/name)*`` with ``name = [A-Za-z_][A-Za-z0-9_]*`` and may
  not be a keyword of the language (``and or not like contains in true false null``);
  anything else is refused with ValueError, so a field name can't carry syntax either;
* strings are double-quoted with ``\\`` and ``"`` escaped by a backslash — the only
  escapes the language has, and enough for any text, brackets and wildcards included;
  control characters (Unicode category Cc) and lone surrogates are refused;
* datetimes must be timezone-aware; they are converted to UTC and rendered in brackets,
  ``[2026-01-01T00:00:00Z]`` (fractional seconds only when present); naive ones are
  refused, as are plain dates;
* booleans render as ``true``/``false`` (keywords are case-insensitive), ``None`` as
  ``null``, numbers in plain decimal notation (never an exponent; NaN/inf refused);
* ``in`` takes a non-empty list, rendered ``(1, 2, 3)`` / ``("a", "b")``; ``None`` is
  refused there (write ``F(x).is_null() | F(x).in_([...])``, whose meaning is clear);
* ``like`` patterns use ``*`` (and ``%``) as wildcards and ConnectWise has **no escape
  for them**: `like_prefix(value)` and `F(x).starts_with(value)` therefore refuse a value
  holding ``*`` or ``%`` (ValueError) instead of silently widening the match.
  `F(x).like(pattern)` passes an explicit pattern through (quoted, so it still can't
  change the expression's structure) — only for patterns the code itself wrote. On the
  real API (SQL Server underneath) ``_`` and ``[...]`` inside a like pattern may also act
  as wildcards; they can only widen a match, never change the structure.

Combining: ``a & b``, ``a | b``, `all_of`, `any_of`. ``and`` binds tighter than ``or``;
every nested group of the other kind is parenthesised. The language has no general
``not``, only ``not like``/``not contains``/``not in``: ``~expr`` (or `not_`) is pushed
down to the comparisons with De Morgan's laws (``=``↔``!=``, ``<``↔``>=``, …). Under SQL's
three-valued logic — null fails every comparison except ``= null``/``!= null`` — this is
exactly SQL's NOT (for a null field neither ``x < 1`` nor ``not (x < 1)`` holds).

Python's ``and``/``or``/``not`` cannot be overloaded; an expression refuses to be used as
a truth value so that ``F("a") == 1 and F("b") == 2`` fails loudly instead of silently
dropping a clause.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final, Literal, TypeAlias

Value: TypeAlias = str | bool | int | float | Decimal | datetime | None
Operator: TypeAlias = Literal["=", "!=", "<", "<=", ">", ">="]

KEYWORDS: Final = frozenset({"and", "or", "not", "like", "contains", "in", "true", "false", "null"})
LIKE_WILDCARDS: Final = "*%"
_SEGMENT: Final = r"[A-Za-z_][A-Za-z0-9_]*"
_FIELD_PATH: Final = re.compile(rf"{_SEGMENT}(?:/{_SEGMENT})*")
_NEGATED: Final[dict[Operator, Operator]] = {
    "=": "!=",
    "!=": "=",
    "<": ">=",
    ">=": "<",
    ">": "<=",
    "<=": ">",
}


# --- literals ---------------------------------------------------------------------------


def field_path(name: str) -> str:
    """`name` if it is a plain ConnectWise field path (`board/name`); else ValueError."""
    if not isinstance(name, str) or not _FIELD_PATH.fullmatch(name):
        raise ValueError(f"not a ConnectWise field path: {name!r}")
    for segment in name.split("/"):
        if segment.lower() in KEYWORDS:
            raise ValueError(f"a field path may not use the keyword {segment!r}: {name!r}")
    return name


def _check_text(value: str) -> str:
    for char in value:
        category = unicodedata.category(char)
        if category in ("Cc", "Cs"):
            raise ValueError(
                f"control character U+{ord(char):04X} is not allowed in a conditions value"
            )
    return value


def escape_string(value: str) -> str:
    """The body of a string literal: backslash and double quote escaped. No checks."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def quote_string(value: str) -> str:
    """A double-quoted string literal; control characters are refused (ValueError)."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string, not {type(value).__name__}")
    return '"' + escape_string(_check_text(value)) + '"'


def render_datetime(value: datetime) -> str:
    """`[2026-01-01T00:00:00Z]`; naive datetimes are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a conditions datetime must be timezone-aware")
    moment = value.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    return f"[{text}Z]"


def _render_number(value: int | float | Decimal) -> str:
    if isinstance(value, int):
        return str(value)
    number = value if isinstance(value, Decimal) else Decimal(repr(value))
    if not number.is_finite() or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{value!r} is not a finite number")
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def render_value(value: Value) -> str:
    """One literal in ConnectWise syntax."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return quote_string(value)
    if isinstance(value, datetime):
        return render_datetime(value)
    if isinstance(value, date):
        raise TypeError("use a timezone-aware datetime, not a date, in conditions")
    if isinstance(value, int | float | Decimal):
        return _render_number(value)
    raise TypeError(f"{type(value).__name__} cannot be a conditions value")


def _text_value(value: str, operator: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"'{operator}' takes a string, not {type(value).__name__}")
    return _check_text(value)


def like_prefix(value: str) -> str:
    """The pattern `value*`: text starting with `value`. ConnectWise has no escape for
    its wildcards, so a value holding `*` or `%` is refused (ValueError)."""
    _text_value(value, "like")
    wildcards = sorted({char for char in value if char in LIKE_WILDCARDS})
    if wildcards:
        raise ValueError(
            f"{''.join(wildcards)!r} cannot be matched literally in a like pattern "
            "(ConnectWise has no wildcard escape)"
        )
    return value + "*"


# --- expressions ------------------------------------------------------------------------


class Condition:
    """A conditions expression. Immutable; render it with `str()`."""

    __slots__ = ()

    def render(self) -> str:
        raise NotImplementedError

    def negate(self) -> Condition:
        raise NotImplementedError

    def __str__(self) -> str:
        return self.render()

    def __and__(self, other: Condition) -> Condition:
        if not isinstance(other, Condition):
            return NotImplemented
        return all_of(self, other)

    def __or__(self, other: Condition) -> Condition:
        if not isinstance(other, Condition):
            return NotImplemented
        return any_of(self, other)

    def __invert__(self) -> Condition:
        return self.negate()

    def __bool__(self) -> bool:
        raise TypeError(
            "a conditions expression has no truth value; combine with & | ~ "
            "(not Python's and/or/not)"
        )


@dataclass(frozen=True, slots=True)
class Comparison(Condition):
    field: str
    operator: Operator
    value: Value

    def __post_init__(self) -> None:
        field_path(self.field)
        if self.operator not in _NEGATED:
            raise ValueError(f"unknown operator {self.operator!r}")
        if self.operator not in ("=", "!=") and (
            self.value is None or isinstance(self.value, bool)
        ):
            raise ValueError(f"{self.value!r} can only be compared with = or !=")
        render_value(self.value)  # refuse bad values when built, not when sent

    def render(self) -> str:
        return f"{self.field} {self.operator} {render_value(self.value)}"

    def negate(self) -> Condition:
        return Comparison(self.field, _NEGATED[self.operator], self.value)


@dataclass(frozen=True, slots=True)
class Like(Condition):
    field: str
    pattern: str
    negated: bool = False

    def __post_init__(self) -> None:
        field_path(self.field)
        _text_value(self.pattern, "like")

    def render(self) -> str:
        return f"{self.field} {'not like' if self.negated else 'like'} {quote_string(self.pattern)}"

    def negate(self) -> Condition:
        return Like(self.field, self.pattern, not self.negated)


@dataclass(frozen=True, slots=True)
class Contains(Condition):
    field: str
    value: str
    negated: bool = False

    def __post_init__(self) -> None:
        field_path(self.field)
        _text_value(self.value, "contains")

    def render(self) -> str:
        keyword = "not contains" if self.negated else "contains"
        return f"{self.field} {keyword} {quote_string(self.value)}"

    def negate(self) -> Condition:
        return Contains(self.field, self.value, not self.negated)


@dataclass(frozen=True, slots=True)
class In(Condition):
    field: str
    values: tuple[Value, ...]
    negated: bool = False

    def __post_init__(self) -> None:
        field_path(self.field)
        if not self.values:
            raise ValueError("'in' needs at least one value")
        for value in self.values:
            if value is None:
                raise ValueError("'in' does not take null; use is_null() | in_(...)")
            render_value(value)

    def render(self) -> str:
        keyword = "not in" if self.negated else "in"
        return f"{self.field} {keyword} ({', '.join(render_value(v) for v in self.values)})"

    def negate(self) -> Condition:
        return In(self.field, self.values, not self.negated)


@dataclass(frozen=True, slots=True)
class And(Condition):
    parts: tuple[Condition, ...]

    def render(self) -> str:
        return " and ".join(
            f"({part.render()})" if isinstance(part, Or) else part.render() for part in self.parts
        )

    def negate(self) -> Condition:
        return any_of(*(part.negate() for part in self.parts))


@dataclass(frozen=True, slots=True)
class Or(Condition):
    parts: tuple[Condition, ...]

    def render(self) -> str:
        return " or ".join(
            f"({part.render()})" if isinstance(part, And) else part.render() for part in self.parts
        )

    def negate(self) -> Condition:
        return all_of(*(part.negate() for part in self.parts))


def _flatten(kind: type[And] | type[Or], parts: Iterable[Condition]) -> tuple[Condition, ...]:
    flat: list[Condition] = []
    for part in parts:
        if not isinstance(part, Condition):
            raise TypeError(f"expected a Condition, not {type(part).__name__}")
        flat.extend(part.parts if isinstance(part, kind) else (part,))
    if not flat:
        raise ValueError("at least one condition is needed")
    return tuple(flat)


def all_of(*conditions: Condition) -> Condition:
    """Every condition holds (`a and b and …`)."""
    parts = _flatten(And, conditions)
    return parts[0] if len(parts) == 1 else And(parts)


def any_of(*conditions: Condition) -> Condition:
    """At least one condition holds (`a or b or …`)."""
    parts = _flatten(Or, conditions)
    return parts[0] if len(parts) == 1 else Or(parts)


def not_(condition: Condition) -> Condition:
    """SQL's NOT of `condition` (see the module notes), the same as `~condition`."""
    return condition.negate()


class Field:
    """A field path to compare: `F("owner/identifier") == "atech"`."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = field_path(name)

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"F({self._name!r})"

    def __hash__(self) -> int:
        return hash((Field, self._name))

    def eq(self, value: Value) -> Condition:
        return Comparison(self._name, "=", value)

    def ne(self, value: Value) -> Condition:
        return Comparison(self._name, "!=", value)

    def lt(self, value: Value) -> Condition:
        return Comparison(self._name, "<", value)

    def le(self, value: Value) -> Condition:
        return Comparison(self._name, "<=", value)

    def gt(self, value: Value) -> Condition:
        return Comparison(self._name, ">", value)

    def ge(self, value: Value) -> Condition:
        return Comparison(self._name, ">=", value)

    # The operators build conditions instead of comparing fields (like SQLAlchemy's).
    def __eq__(self, value: Value) -> Condition:  # type: ignore[override]
        return self.eq(value)

    def __ne__(self, value: Value) -> Condition:  # type: ignore[override]
        return self.ne(value)

    def __lt__(self, value: Value) -> Condition:
        return self.lt(value)

    def __le__(self, value: Value) -> Condition:
        return self.le(value)

    def __gt__(self, value: Value) -> Condition:
        return self.gt(value)

    def __ge__(self, value: Value) -> Condition:
        return self.ge(value)

    def is_null(self) -> Condition:
        return Comparison(self._name, "=", None)

    def is_not_null(self) -> Condition:
        return Comparison(self._name, "!=", None)

    def contains(self, value: str) -> Condition:
        """The text contains `value` literally (ignoring case on ConnectWise)."""
        return Contains(self._name, value)

    def not_contains(self, value: str) -> Condition:
        return Contains(self._name, value, negated=True)

    def like(self, pattern: str) -> Condition:
        """An explicit pattern (`*` is the wildcard), written by code, not by users."""
        return Like(self._name, pattern)

    def not_like(self, pattern: str) -> Condition:
        return Like(self._name, pattern, negated=True)

    def starts_with(self, value: str) -> Condition:
        """`like "value*"`; a value holding `*` or `%` is refused (see `like_prefix`)."""
        return Like(self._name, like_prefix(value))

    def in_(self, values: Iterable[Value]) -> Condition:
        return In(self._name, tuple(values))

    def not_in(self, values: Iterable[Value]) -> Condition:
        return In(self._name, tuple(values), negated=True)


F = Field


def render(conditions: str | Condition | None) -> str | None:
    """The conditions text for a request: an expression rendered, text passed through."""
    if conditions is None:
        return None
    if isinstance(conditions, Condition):
        return conditions.render()
    if isinstance(conditions, str):
        return conditions
    raise TypeError(f"conditions must be text or a Condition, not {type(conditions).__name__}")
