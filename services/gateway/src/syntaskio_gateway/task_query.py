"""What the dashboard asks of a user's tasks, as MongoDB aggregation pipelines. Pure: no
I/O, so every filter, order and page boundary is tested without a database.

Every pipeline starts with the user's scope alone (tenant, user, live) as its first
`$match`: the part an index answers (`live_by_*`: tenant, user, deleted, …), on any
MongoDB server. Filters, search and the page boundary follow in a second `$match` over
the user's tasks.

Pages are keyset pages: the order always ends in `_id`, so it is total and stable, and
a cursor names the last task shown by its sort values, so a task added or changed while
paging neither repeats nor hides the ones after it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from syntaskio_common.mongo import Document
from syntaskio_common.task import TaskPriority, TaskSource, TaskStatus

MAX_PAGE: Final = 500
# Where each facet's value lives in a task document, and its display name if any.
_FACET_FIELDS: Final[dict[str, tuple[str, str | None]]] = {
    "source": ("source", None),
    "status": ("status", None),
    "priority": ("priority", None),
    "board": ("source_data.board.id", "source_data.board.name"),
    "project": ("source_data.project.id", "source_data.project.name"),
    "company": ("source_data.company.id", "source_data.company.name"),
}
FACETS: Final = (*_FACET_FIELDS, "sla")  # also the names of their filters
_NO_DUE_DATE: Final = "_no_due_date"  # 1 when a task has none: those sort after the rest
_NO_SLA: Final = "_no_sla"  # likewise for tasks without an SLA target
_SLA_DUE: Final = "sla.due_at"


class InvalidQuery(ValueError):
    """A cursor or time zone that cannot be used (the client's mistake: a 400)."""


class TaskSort(StrEnum):
    UPDATED = "updated"  # most recently changed upstream first
    DUE = "due"  # soonest due first, those without a due date last
    PRIORITY = "priority"  # most urgent first, then soonest due
    SLA = "sla"  # the soonest SLA target first (breached ones at the top), none last


# (field, direction) per order; `_id` last makes it total.
_ORDERS: Final[dict[TaskSort, list[tuple[str, int]]]] = {
    TaskSort.UPDATED: [("source_updated_at", -1), ("_id", 1)],
    TaskSort.DUE: [(_NO_DUE_DATE, 1), ("due_at", 1), ("_id", 1)],
    TaskSort.PRIORITY: [("priority_rank", -1), (_NO_DUE_DATE, 1), ("due_at", 1), ("_id", 1)],
    TaskSort.SLA: [(_NO_SLA, 1), (_SLA_DUE, 1), ("_id", 1)],
}
_DATE_FIELDS: Final = frozenset({"source_updated_at", "due_at", _SLA_DUE})
_NULLABLE_DATES: Final = frozenset({"due_at", _SLA_DUE})


class DueWindow(StrEnum):
    OVERDUE = "overdue"  # due before now and not completed
    TODAY = "today"
    WEEK = "week"  # this calendar week, Monday to Sunday
    NONE = "none"  # no due date


class SlaWindow(StrEnum):
    BREACHED = "breached"  # the next target has passed
    AT_RISK = "at_risk"  # due within the margin
    ON_TRACK = "on_track"  # due later
    NONE = "none"  # no SLA target


RefId = Annotated[int, Field(ge=1, le=2**53)]


class TaskFilters(BaseModel):
    """The dashboard's filters; repeated parameters of one facet are alternatives
    (`status=pending&status=in_progress`), different facets all apply."""

    model_config = ConfigDict(extra="forbid")

    source: list[TaskSource] = Field(default_factory=list, max_length=10)
    status: list[TaskStatus] = Field(default_factory=list, max_length=10)
    priority: list[TaskPriority] = Field(default_factory=list, max_length=10)
    board: list[RefId] = Field(default_factory=list, max_length=50)
    project: list[RefId] = Field(default_factory=list, max_length=50)
    company: list[RefId] = Field(default_factory=list, max_length=50)
    sla: list[SlaWindow] = Field(default_factory=list, max_length=4)
    sla_margin: int = Field(
        default=60, ge=1, le=10080, description="Minutes before an SLA target that are at risk"
    )
    due: DueWindow | None = None
    due_from: AwareDatetime | None = Field(default=None, description="Due at or after")
    due_to: AwareDatetime | None = Field(default=None, description="Due before")
    q: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Words in the title or company name, or a ticket number (`#123`)",
    )
    tz: str = Field(
        default="UTC", max_length=64, description="IANA time zone for `today` and `week`"
    )

    @field_validator("tz")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        time_zone(value)
        return value

    @model_validator(mode="after")
    def _consistent_due(self) -> Self:
        if self.due is DueWindow.NONE and (self.due_from or self.due_to):
            raise ValueError("due=none (no due date) cannot have a due range")
        return self


class TaskListQuery(TaskFilters):
    sort: TaskSort = TaskSort.UPDATED
    limit: int = Field(default=50, ge=1, le=MAX_PAGE)
    cursor: str | None = Field(default=None, max_length=1000)


def time_zone(name: str) -> ZoneInfo:
    """The IANA time zone of that name (ValueError: none such)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as error:
        # OSError: a name of a folder of zones ("America") is opened as a file.
        raise ValueError(f"unknown time zone {name!r}") from error


def scope(tenant_id: str, user_id: str) -> Document:
    """The user's live tasks: the first `$match` of every pipeline."""
    return {"tenant_id": tenant_id, "user_id": user_id, "deleted": False}


def facet_conditions(filters: TaskFilters) -> dict[str, Document]:
    """Per facet, the condition its selected values make (absent: none selected)."""
    return {
        facet: {field: {"$in": [_plain(value) for value in chosen]}}
        for facet, (field, _) in _FACET_FIELDS.items()
        if (chosen := getattr(filters, facet))
    }


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


def sla_windows(now: datetime, margin: timedelta) -> Document:
    """Which SLA window a task is in, as an expression (the SLA facet's value)."""
    due = {"$ifNull": [f"${_SLA_DUE}", None]}
    return {
        "$switch": {
            "branches": [
                {"case": {"$eq": [due, None]}, "then": SlaWindow.NONE.value},
                {"case": {"$lt": [due, now]}, "then": SlaWindow.BREACHED.value},
                {"case": {"$lt": [due, now + margin]}, "then": SlaWindow.AT_RISK.value},
            ],
            "default": SlaWindow.ON_TRACK.value,
        }
    }


def sla_condition(filters: TaskFilters, now: datetime) -> Document | None:
    """The tasks in any of the chosen SLA windows (None: none chosen)."""
    if not filters.sla:
        return None
    soon = now + timedelta(minutes=filters.sla_margin)
    by_window = {
        SlaWindow.BREACHED: {_SLA_DUE: {"$lt": now}},
        SlaWindow.AT_RISK: {_SLA_DUE: {"$gte": now, "$lt": soon}},
        SlaWindow.ON_TRACK: {_SLA_DUE: {"$gte": soon}},
        SlaWindow.NONE: {_SLA_DUE: None},
    }
    return {"$or": [by_window[window] for window in dict.fromkeys(filters.sla)]}


def other_conditions(filters: TaskFilters, now: datetime) -> list[Document]:
    """The conditions that are not facets: due date and search."""
    conditions: list[Document] = []
    due = _due_condition(filters, now)
    if due is not None:
        conditions.append(due)
    if filters.q is not None:
        conditions.append(_search(filters.q))
    return conditions


def _due_condition(filters: TaskFilters, now: datetime) -> Document | None:
    bounds: dict[str, datetime] = {}
    if filters.due_from is not None:
        bounds["$gte"] = filters.due_from
    if filters.due_to is not None:
        bounds["$lt"] = filters.due_to
    window = filters.due
    if window is None:
        return {"due_at": bounds} if bounds else None
    if window is DueWindow.NONE:
        return {"due_at": None}
    if window is DueWindow.OVERDUE:
        # The earlier of "now" and the range's end, so both hold.
        end = min(now, bounds.get("$lt", now))
        return {"due_at": {**bounds, "$lt": end}, "status": {"$ne": TaskStatus.COMPLETED.value}}
    local = now.astimezone(time_zone(filters.tz))
    # fold=0: the first midnight, where a clock change repeats the hour after it.
    start = local.replace(hour=0, minute=0, second=0, microsecond=0, fold=0)
    if window is DueWindow.WEEK:
        start -= timedelta(days=start.weekday())
    days = 7 if window is DueWindow.WEEK else 1
    # Local midnights, however long the days in between (daylight saving).
    end_local = (start.replace(tzinfo=None) + timedelta(days=days)).replace(tzinfo=start.tzinfo)
    lower = max(start.astimezone(UTC), bounds.get("$gte", start).astimezone(UTC))
    upper = min(end_local.astimezone(UTC), bounds.get("$lt", end_local).astimezone(UTC))
    return {"due_at": {"$gte": lower, "$lt": upper}}


def _search(text: str) -> Document:
    """Case-insensitive words in the title or company, or a ticket number."""
    words = text.strip()
    number = words.removeprefix("#")
    pattern = {"$regex": re.escape(words), "$options": "i"}
    alternatives: list[Document] = [
        {"title": pattern},
        {"source_data.company.name": pattern},
        {"source_data.company.identifier": pattern},
    ]
    if number.isdigit():
        alternatives.append({"external_id": number})
    return {"$or": alternatives}


def _matching(conditions: list[Document]) -> list[Document]:
    return [{"$match": {"$and": conditions}}] if conditions else []


def list_pipeline(
    tenant_id: str, user_id: str, query: TaskListQuery, now: datetime
) -> list[Document]:
    """One page (and one task more, to know whether another page follows)."""
    order = _ORDERS[query.sort]
    conditions = [*facet_conditions(query).values(), *other_conditions(query, now)]
    sla = sla_condition(query, now)
    if sla is not None:
        conditions.append(sla)
    if query.cursor is not None:
        conditions.append(_after(order, decode_cursor(query.cursor, query.sort)))
    return [
        {"$match": scope(tenant_id, user_id)},
        *_sort_fields(order),  # before the page boundary, which compares them
        *_matching(conditions),
        {"$sort": dict(order)},
        {"$limit": query.limit + 1},
    ]


def _sort_fields(order: list[tuple[str, int]]) -> list[Document]:
    """The computed keys the order sorts on: 1 for a task without the date (a missing
    field as much as a null one), so those sort last."""
    computed = {
        _NO_DUE_DATE: {"$cond": [{"$eq": [{"$ifNull": ["$due_at", None]}, None]}, 1, 0]},
        _NO_SLA: {"$cond": [{"$eq": [{"$ifNull": [f"${_SLA_DUE}", None]}, None]}, 1, 0]},
    }
    fields = {field: computed[field] for field, _ in order if field in computed}
    return [{"$addFields": fields}] if fields else []


def _after(order: list[tuple[str, int]], values: list[Any]) -> Document:
    """Strictly after `values` in `order`: a later first key, or the same first key and
    a later second, and so on."""
    branches: list[Document] = []
    for position, (field, direction) in enumerate(order):
        branch = {name: values[i] for i, (name, _) in enumerate(order[:position])}
        branch[field] = {"$gt" if direction == 1 else "$lt": values[position]}
        branches.append(branch)
    return {"$or": branches}


def facets_pipeline(
    tenant_id: str, user_id: str, filters: TaskFilters, now: datetime
) -> list[Document]:
    """Counts per value of each facet, for the current filter without that facet's own
    choice (so the other values of a facet stay visible, with their counts)."""
    chosen = facet_conditions(filters)
    sla = sla_condition(filters, now)
    if sla is not None:
        chosen["sla"] = sla
    branches: dict[str, list[Document]] = {}
    for facet, (field, label) in _FACET_FIELDS.items():
        others = [condition for name, condition in chosen.items() if name != facet]
        group: Document = {"_id": f"${field}", "count": {"$sum": 1}}
        if label is not None:
            group["label"] = {"$first": f"${label}"}
        branches[facet] = [
            *_matching(others),
            {"$group": group},
            {"$match": {"_id": {"$ne": None}}},
            {"$sort": {"count": -1, "_id": 1}},
        ]
    margin = timedelta(minutes=filters.sla_margin)
    branches["sla"] = [
        *_matching([condition for name, condition in chosen.items() if name != "sla"]),
        {"$group": {"_id": sla_windows(now, margin), "count": {"$sum": 1}}},
        {"$sort": {"count": -1, "_id": 1}},
    ]
    return [
        {"$match": scope(tenant_id, user_id)},
        *_matching(other_conditions(filters, now)),
        {"$facet": branches},
    ]


def encode_cursor(sort: TaskSort, document: Document) -> str:
    """The position after `document` in `sort` order, opaque to clients."""
    values = []
    for field, _ in _ORDERS[sort]:
        value = _at(document, field)
        values.append(value.isoformat() if isinstance(value, datetime) else value)
    raw = json.dumps({"sort": sort.value, "after": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _at(document: Document, path: str) -> Any:
    """A (dotted) field's value; None where any part is missing."""
    value: Any = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def decode_cursor(cursor: str, sort: TaskSort) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError) as error:
        raise InvalidQuery("The cursor is not one this API gave out.") from error
    order = _ORDERS[sort]
    if (
        not isinstance(decoded, dict)
        or decoded.get("sort") != sort.value
        or not isinstance(decoded.get("after"), list)
        or len(decoded["after"]) != len(order)
    ):
        raise InvalidQuery("The cursor belongs to another order or is not one this API gave out.")
    values: list[Any] = []
    for (field, _), value in zip(order, decoded["after"], strict=True):
        values.append(_cursor_value(field, value))
    return values


def _cursor_value(field: str, value: Any) -> Any:
    """A cursor's value for `field`, of the type the field holds (else InvalidQuery)."""
    if field in _DATE_FIELDS:
        if value is None and field in _NULLABLE_DATES:
            return None
        try:
            parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            parsed = None
        if parsed is not None and parsed.tzinfo is not None:
            return parsed
    elif field == "_id":
        if isinstance(value, str):
            return value
    elif isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidQuery("The cursor is not one this API gave out.")
