"""The query parameters every list endpoint shares — conditions, orderBy, fields, page,
pageSize, pageId — parsed, validated against an entity's schema, and applied to records.

Parameter names are matched case-insensitively (`pagesize` works), as on the real API.
The documented GET operations take exactly `LIST_PARAMETERS`; anything else, and every
malformed value, is a 400 counted as a contract violation (`errors.contract_violation`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from connectwise_sandbox.conditions import ConditionError, Predicate, compile_conditions
from connectwise_sandbox.errors import CwError, ErrorItem, contract_violation, invalid_parameter
from connectwise_sandbox.records import JsonObject
from connectwise_sandbox.schema import EntitySchema, FieldPath, FieldType

DEFAULT_PAGE_SIZE: Final = 25
MAX_PAGE_SIZE: Final = 1000
_MAX_INT: Final = 2_147_483_647

# Every documented GET (list, count, by id) declares these query parameters.
LIST_PARAMETERS: Final = frozenset(
    {
        "conditions",
        "childconditions",
        "customfieldconditions",
        "orderby",
        "fields",
        "page",
        "pagesize",
        "pageid",
    }
)
# The real product also accepts the clientId as a query parameter. The sandbox
# authenticates by the `clientId` header only (auth.py) and lets the parameter pass.
CLIENT_ID_PARAMETER: Final = "clientid"


@dataclass(frozen=True)
class SortKey:
    field: FieldPath
    descending: bool


@dataclass(frozen=True)
class ListQuery:
    predicate: Predicate
    order_by: tuple[SortKey, ...]
    fields: tuple[FieldPath, ...]
    page: int
    page_size: int
    page_id: int
    forward_only: bool


def lower_keys(params: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Case-insensitive parameter lookup; the last occurrence of a name wins."""
    return {name.lower(): value for name, value in params}


def check_parameters(names: Iterable[str], allowed: frozenset[str], operation: str) -> None:
    """A contract violation for the first parameter `operation` does not declare."""
    for name in names:
        if name.lower() not in allowed and name.lower() != CLIENT_ID_PARAMETER:
            raise contract_violation(
                name, "InvalidField", f"{operation} takes no parameter '{name}'", field=name
            )


def parse_list_query(
    params: Mapping[str, Any], schema: EntitySchema, *, forward_only: bool = False
) -> ListQuery:
    """`params` must have lower-cased keys (see `lower_keys`).

    Forward-only paging is in id order from `pageId`: with it, `orderBy` and `page` are
    refused; without it, `pageId` is (the document is silent on both mixes — the
    stricter answer, so a client never believes it got an order or a page it did not)."""
    if forward_only:
        for name, spelled in (("orderby", "orderBy"), ("page", "page")):
            if _text(params.get(name)) is not None:
                raise contract_violation(
                    spelled,
                    "InvalidField",
                    f"{spelled} cannot be used with forward-only paging, which is in id "
                    "order from pageId",
                )
    elif _text(params.get("pageid")) is not None:
        raise contract_violation(
            "pageId", "InvalidField", "pageId needs the header pagination-type: forward-only"
        )
    for unsupported in ("childconditions", "customfieldconditions"):
        if _text(params.get(unsupported)):
            raise invalid_parameter(
                unsupported,
                "NotSupported",
                f"{unsupported} is not supported by the sandbox ({schema.entity} has no child "
                "collections or custom fields)",
            )
    return ListQuery(
        predicate=parse_conditions(_text(params.get("conditions")), schema),
        order_by=parse_order_by(_text(params.get("orderby")), schema),
        fields=parse_fields(_text(params.get("fields")), schema),
        page=_integer(params.get("page"), "page", default=1, low=1, high=_MAX_INT),
        page_size=_integer(
            params.get("pagesize"), "pageSize", default=DEFAULT_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE
        ),
        page_id=_integer(params.get("pageid"), "pageId", default=0, low=0, high=_MAX_INT),
        forward_only=forward_only,
    )


def parse_conditions(text: str | None, schema: EntitySchema) -> Predicate:
    try:
        return compile_conditions(text, schema)
    except ConditionError as error:
        item = ErrorItem("InvalidCondition", error.message, "conditions", error.field)
        raise CwError(
            400, "InvalidObject", "conditions object is invalid", [item], contract=True
        ) from None


def parse_order_by(text: str | None, schema: EntitySchema) -> tuple[SortKey, ...]:
    if not text:
        return ()
    keys: list[SortKey] = []
    for clause in text.split(","):
        words = clause.split()
        if not words or len(words) > 2:
            raise contract_violation(
                "orderBy", "InvalidField", f"'{clause.strip()}' is not 'field [asc|desc]'"
            )
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise contract_violation(
                "orderBy", "InvalidField", f"sort direction must be asc or desc, not '{words[1]}'"
            )
        field = _known_field(words[0], schema, "orderBy")
        if field.type in (FieldType.OBJECT, FieldType.ARRAY):
            raise contract_violation(
                "orderBy", "InvalidField", f"cannot order by {field.name}; it is an object"
            )
        keys.append(SortKey(field, descending=direction == "desc"))
    return tuple(keys)


def parse_fields(text: str | None, schema: EntitySchema) -> tuple[FieldPath, ...]:
    if not text:
        return ()
    return tuple(_known_field(name, schema, "fields") for name in text.split(",") if name.strip())


def _known_field(name: str, schema: EntitySchema, parameter: str) -> FieldPath:
    field = schema.resolve(name)
    if field is None:
        raise contract_violation(
            parameter,
            "InvalidField",
            f"Unknown field '{name.strip()}' for {schema.entity} in {parameter}",
            field=name.strip(),
        )
    return field


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _integer(value: Any, name: str, *, default: int, low: int, high: int) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        number = int(str(value).strip())
    except ValueError:
        raise contract_violation(
            name, "InvalidField", f"The field {name} must be a number."
        ) from None
    if not low <= number <= high:
        raise contract_violation(
            name, "OutOfRange", f"The field {name} must be between {low} and {high}."
        )
    return number


def select(records: Sequence[JsonObject], query: ListQuery) -> list[JsonObject]:
    """Filter and order `records` (which arrive in id order)."""
    matched = [record for record in records if query.predicate(record)]
    if query.forward_only:
        return [record for record in matched if record["id"] > query.page_id]
    # Stable sorts from the least to the most significant key; id order breaks ties.
    for key in reversed(query.order_by):
        matched.sort(key=_sort_key(key.field), reverse=key.descending)
    return matched


def _sort_key(field: FieldPath) -> Callable[[JsonObject], tuple[bool, Any]]:
    """Nulls first ascending (SQL Server's order); text ignores case. Timestamps share one
    format, so they sort correctly as strings."""
    get = field.getter()
    if field.type is FieldType.STRING:

        def text_key(record: JsonObject) -> tuple[bool, Any]:
            value = get(record)
            return (value is not None, value.lower() if isinstance(value, str) else "")

        return text_key

    def plain_key(record: JsonObject) -> tuple[bool, Any]:
        value = get(record)
        return (value is not None, value if value is not None else 0)

    return plain_key


def project(record: JsonObject, fields: Sequence[FieldPath]) -> JsonObject:
    """Only the requested fields, nesting kept (`board/name` -> {"board": {"name": …}})."""
    if not fields:
        return record
    result: JsonObject = {}
    for field in fields:
        value: Any = record
        for key in field.parts:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue  # null properties are omitted, as in full records
        target = result
        for key in field.parts[:-1]:
            target = target.setdefault(key, {})
        # Copy objects: stored records share their nested dicts and must not be changed.
        target[field.parts[-1]] = dict(value) if isinstance(value, dict) else value
    return result
