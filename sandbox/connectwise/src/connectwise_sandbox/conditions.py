"""The `conditions` language, compiled once into a Python predicate over stored records.

Grammar (ConnectWise developer guide: operators `= != < <= > >= contains like in not`,
`and`/`or` with `and` binding tighter, parentheses)::

    summary contains "vpn" and (owner/identifier = "atech" or resources contains "atech")
    _info/lastUpdated > [2026-01-01T00:00:00Z] and closedFlag = False
    id in (1001, 1002) and summary not like "Printer*" and requiredDate != null

Semantics follow the SQL Server the real API translates to: string comparisons ignore
case, `like` takes `*` (or SQL's `%`) as the wildcard, and a null value fails every
comparison except `= null` / `!= null` (so `not like` does not match a null either).
Keywords are case-insensitive (`AND`, `False`). Strings take double or single quotes,
with a backslash escaping the quote or itself (`"say \\"hi\\""`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum, auto
from functools import lru_cache
from typing import Any, Final

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from connectwise_sandbox.records import JsonObject, parse_timestamp
from connectwise_sandbox.schema import EntitySchema, FieldPath, FieldType

Predicate = Callable[[JsonObject], bool]

_GRAMMAR: Final = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: _atom (_AND _atom)*
_atom: "(" or_expr ")" | comparison
?comparison: path OPERATOR value                          -> compare
           | path NOT? _LIKE string                       -> like
           | path NOT? _CONTAINS value                    -> contains
           | path NOT? _IN "(" value ("," value)* ")"     -> in_list
path: NAME ("/" NAME)*
?value: string | NUMBER -> number | DATE -> date | TRUE -> true | FALSE -> false | NULL -> null
string: DQ_STRING | SQ_STRING
OPERATOR: "<=" | ">=" | "!=" | "=" | "<" | ">"
_AND: "and"i
_OR: "or"i
NOT: "not"i
_LIKE: "like"i
_CONTAINS: "contains"i
_IN: "in"i
TRUE: "true"i
FALSE: "false"i
NULL: "null"i
NAME: /[A-Za-z_][A-Za-z0-9_]*/
NUMBER: /-?\d+(\.\d+)?/
DATE: /\[[^\]]*\]/
DQ_STRING: /"(?:[^"\\]|\\.)*"/s
SQ_STRING: /'(?:[^'\\]|\\.)*'/s
%import common.WS
%ignore WS
"""

_PARSER: Final = Lark(_GRAMMAR, parser="lalr", propagate_positions=False)
_ESCAPE: Final = re.compile(r"\\(.)", re.DOTALL)
_FRIENDLY_TOKENS: Final = {
    "NAME": "a field name",
    "OPERATOR": "an operator (= != < <= > >=)",
    "NOT": "not",
    "_LIKE": "like",
    "_CONTAINS": "contains",
    "_IN": "in",
    "_AND": "and",
    "_OR": "or",
    "LPAR": "(",
    "RPAR": ")",
    "COMMA": ",",
    "SLASH": "/",
    "DQ_STRING": "a quoted string",
    "SQ_STRING": "a quoted string",
    "NUMBER": "a number",
    "DATE": "a [date]",
    "TRUE": "true",
    "FALSE": "false",
    "NULL": "null",
}


class ConditionError(ValueError):
    """The conditions text is malformed or names something the entity doesn't have."""

    def __init__(self, message: str, field: str = "conditions") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class _Kind(Enum):
    STRING = auto()
    NUMBER = auto()
    DATE = auto()
    BOOLEAN = auto()
    NULL = auto()


@dataclass(frozen=True)
class _Literal:
    kind: _Kind
    value: Any
    text: str


def _always(_: JsonObject) -> bool:
    return True


def compile_conditions(text: str | None, schema: EntitySchema) -> Predicate:
    """Parse and type-check `text` against `schema`; raises ConditionError."""
    if text is None or not text.strip():
        return _always
    return _Compiler(schema).compile(_parse(text))


@lru_cache(maxsize=1024)
def _parse(text: str) -> Tree[Token]:
    try:
        return _PARSER.parse(text)
    except UnexpectedInput as error:
        raise ConditionError(_describe(error, text)) from None


def _describe(error: UnexpectedInput, text: str) -> str:
    if isinstance(error, UnexpectedEOF):
        return "conditions ended unexpectedly; an operand or value is missing"
    position = getattr(error, "column", "?")
    if isinstance(error, UnexpectedToken):
        if error.token.type == "$END":
            return "conditions ended unexpectedly; an operand or value is missing"
        expected = sorted({_FRIENDLY_TOKENS.get(name, name) for name in error.expected})
        return (
            f"Unexpected '{error.token}' at position {position} in conditions; "
            f"expected {' or '.join(expected)}"
        )
    if isinstance(error, UnexpectedCharacters):
        offset = error.pos_in_stream or 0
        snippet = text[offset : offset + 10]
        return f"Unexpected character at position {position} in conditions near '{snippet}'"
    return f"conditions could not be parsed: {error}"


class _Compiler:
    def __init__(self, schema: EntitySchema) -> None:
        self._schema = schema

    def compile(self, node: Tree[Token]) -> Predicate:
        rule = node.data
        if rule == "or_expr":
            parts = [self.compile(_tree(child)) for child in node.children]
            return lambda record: any(part(record) for part in parts)
        if rule == "and_expr":
            parts = [self.compile(_tree(child)) for child in node.children]
            return lambda record: all(part(record) for part in parts)
        field = self._field(_tree(node.children[0]))
        negated = isinstance(node.children[1], Token) and node.children[1].type == "NOT"
        operands = [_tree(child) for child in node.children[1:] if isinstance(child, Tree)]
        literals = [_literal(operand) for operand in operands]
        if rule == "compare":
            return _comparison(field, str(node.children[1]), literals[0])
        builders = {"like": _like, "contains": _contains}
        if rule in builders:
            matcher = builders[rule](field, literals[0])
        elif rule == "in_list":
            matcher = _in_list(field, literals)
        else:  # pragma: no cover - the grammar has no other comparisons
            raise ConditionError(f"unsupported expression '{rule}'")
        return _negate(matcher, field) if negated else matcher

    def _field(self, node: Tree[Token]) -> FieldPath:
        name = "/".join(str(part) for part in node.children)
        field = self._schema.resolve(name)
        if field is None:
            raise ConditionError(
                f"Unknown field '{name}' for {self._schema.entity} in conditions", field=name
            )
        return field


def _tree(node: Tree[Token] | Token) -> Tree[Token]:
    if not isinstance(node, Tree):  # pragma: no cover - the grammar guarantees trees here
        raise ConditionError(f"unexpected token '{node}'")
    return node


def _literal(node: Tree[Token]) -> _Literal:
    token = node.children[0] if node.children else None
    text = str(token) if token is not None else ""
    match node.data:
        case "string":
            return _Literal(_Kind.STRING, _ESCAPE.sub(r"\1", text[1:-1]), text)
        case "number":
            number = float(text) if "." in text else int(text)
            return _Literal(_Kind.NUMBER, number, text)
        case "date":
            return _Literal(_Kind.DATE, _parse_date(text[1:-1].strip()), text)
        case "true":
            return _Literal(_Kind.BOOLEAN, True, text)
        case "false":
            return _Literal(_Kind.BOOLEAN, False, text)
        case _:
            return _Literal(_Kind.NULL, None, text)


def _parse_date(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConditionError(
            f"'[{text}]' is not a valid date; use [2026-01-01T00:00:00Z]"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _normalizer(field: FieldPath) -> Callable[[Any], Any]:
    """How a stored value is brought into comparable form (None stays None)."""
    if field.type is FieldType.STRING:
        return lambda value: value.lower() if isinstance(value, str) else value
    if field.type is FieldType.DATETIME:
        return lambda value: parse_timestamp(value) if isinstance(value, str) else value
    return lambda value: value


def _coerce(field: FieldPath, literal: _Literal) -> Any:
    """The literal as a value of the field's type, compared like the stored values."""
    mismatch = ConditionError(
        f"{literal.text} is not a valid value for {field.name} ({field.type})", field=field.name
    )
    kind, value = literal.kind, literal.value
    match field.type:
        case FieldType.STRING:
            if kind in (_Kind.STRING, _Kind.NUMBER):
                return str(value).lower()
        case FieldType.INTEGER | FieldType.NUMBER:
            if kind is _Kind.NUMBER:
                return value
            if kind is _Kind.STRING:
                try:
                    number = float(value)
                except ValueError:
                    raise mismatch from None
                if math.isfinite(number):
                    return int(number) if number.is_integer() else number
        case FieldType.BOOLEAN:
            if kind is _Kind.BOOLEAN:
                return value
            if kind is _Kind.STRING and str(value).lower() in ("true", "false"):
                return str(value).lower() == "true"
        case FieldType.DATETIME:
            if kind is _Kind.DATE:
                return value
            if kind is _Kind.STRING:
                try:
                    return _parse_date(str(value))
                except ConditionError:
                    raise mismatch from None
        case _:
            pass
    raise mismatch


_OPERATORS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "=": lambda left, right: bool(left == right),
    "!=": lambda left, right: bool(left != right),
    "<": lambda left, right: bool(left < right),
    "<=": lambda left, right: bool(left <= right),
    ">": lambda left, right: bool(left > right),
    ">=": lambda left, right: bool(left >= right),
}


def _comparison(field: FieldPath, operator: str, literal: _Literal) -> Predicate:
    get = field.getter()
    if literal.kind is _Kind.NULL:
        if operator == "=":
            return lambda record: get(record) is None
        if operator == "!=":
            return lambda record: get(record) is not None
        raise ConditionError(f"null can only be compared with = or != ({field.name})", field.name)
    if field.type in (FieldType.OBJECT, FieldType.ARRAY):
        raise ConditionError(
            f"{field.name} is an object; compare one of its fields, e.g. {field.name}/id",
            field.name,
        )
    if field.type is FieldType.BOOLEAN and operator not in ("=", "!="):
        raise ConditionError(f"{field.name} is a boolean; use = or !=", field.name)
    expected = _coerce(field, literal)
    normalize = _normalizer(field)
    compare = _OPERATORS[operator]

    def matches(record: JsonObject) -> bool:
        value = get(record)
        return value is not None and compare(normalize(value), expected)

    return matches


def _text_field(field: FieldPath, operator: str) -> None:
    if field.type is not FieldType.STRING:
        raise ConditionError(
            f"'{operator}' needs a text field; {field.name} is {field.type}", field.name
        )


def _like(field: FieldPath, literal: _Literal) -> Predicate:
    _text_field(field, "like")
    pattern = "".join(
        ".*" if char in "*%" else re.escape(char) for char in str(_coerce(field, literal))
    )
    match = re.compile(pattern, re.IGNORECASE | re.DOTALL).fullmatch
    get = field.getter()

    def matches(record: JsonObject) -> bool:
        value = get(record)
        return isinstance(value, str) and match(value) is not None

    return matches


def _contains(field: FieldPath, literal: _Literal) -> Predicate:
    _text_field(field, "contains")
    needle = _coerce(field, literal)
    get = field.getter()

    def matches(record: JsonObject) -> bool:
        value = get(record)
        return isinstance(value, str) and needle in value.lower()

    return matches


def _in_list(field: FieldPath, literals: Sequence[_Literal]) -> Predicate:
    if field.type in (FieldType.OBJECT, FieldType.ARRAY):
        raise ConditionError(f"{field.name} is an object; 'in' needs a plain field", field.name)
    wants_null = any(literal.kind is _Kind.NULL for literal in literals)
    options = frozenset(_coerce(field, lit) for lit in literals if lit.kind is not _Kind.NULL)
    normalize = _normalizer(field)
    get = field.getter()

    def matches(record: JsonObject) -> bool:
        value = get(record)
        return wants_null if value is None else normalize(value) in options

    return matches


def _negate(predicate: Predicate, field: FieldPath) -> Predicate:
    """`not like` / `not contains` / `not in`: SQL's NOT, so a null matches neither way."""
    get = field.getter()
    return lambda record: get(record) is not None and not predicate(record)
