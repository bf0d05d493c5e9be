"""The dashboard's task queries (gateway `TaskReader`) against the real embedded database,
on documents written by the aggregator's own store."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from syntaskio_aggregator.changes import Change, latest_per_task, version_key
from syntaskio_aggregator.store import TaskStore
from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.settings import ServiceSettings
from syntaskio_common.task import (
    SlaStage,
    SourceType,
    Task,
    TaskPriority,
    TaskRef,
    TaskSla,
    TaskSource,
    TaskStatus,
    task_id,
)
from syntaskio_gateway.task_query import InvalidQuery, TaskFilters, TaskListQuery, TaskSort
from syntaskio_gateway.tasks import TaskReader

NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)  # a Wednesday afternoon
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
RANK = {TaskPriority.LOW: 1, TaskPriority.MEDIUM: 2, TaskPriority.HIGH: 3, TaskPriority.URGENT: 4}
_numbers = itertools.count(1000)


def make_task(
    tenant: str,
    *,
    user: str = "u1",
    title: str = "Printer offline",
    status: TaskStatus = TaskStatus.PENDING,
    priority: TaskPriority = TaskPriority.MEDIUM,
    due: datetime | None = None,
    updated: datetime = NOW - DAY,
    board: tuple[int, str] = (1, "Service"),
    company: tuple[int, str] = (10, "Acme Dental"),
    project: tuple[int, str] | None = None,
    sla_due: datetime | None = None,
) -> Task:
    number = str(next(_numbers))
    kind = SourceType.PROJECT_TICKET if project else SourceType.SERVICE_TICKET
    return Task(
        id=task_id(tenant, user, TaskSource.CONNECTWISE, kind, number),
        tenant_id=tenant,
        user_id=user,
        integration_id=f"i-{user}",
        source=TaskSource.CONNECTWISE,
        source_type=kind,
        external_id=number,
        title=title,
        status=status,
        priority=priority,
        due_at=due,
        sla=TaskSla(stage=SlaStage.RESPOND, due_at=sla_due) if sla_due else None,
        source_updated_at=updated,
        source_data={
            "ticket_id": int(number),
            "board": {"id": board[0], "name": board[1]},
            "company": {"id": company[0], "identifier": "Acme", "name": company[1]},
            "project": {"id": project[0], "name": project[1]} if project else None,
        },
    )


async def stored(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tasks: Sequence[Task]
) -> TaskReader:
    """Written by the aggregator's store, as its consumer does; a reader at `NOW`."""
    db = mongo[settings.mongodb_database]
    store = TaskStore(db, timedelta(days=14))
    await store.create_indexes()
    changes = [
        Change(TaskRef.of(t), t, 1, version_key(1, t.source_updated_at, NOW, t.id), f"raw/0/{n}")
        for n, t in enumerate(tasks)
    ]
    await store.write(latest_per_task(changes))
    return TaskReader(db, clock=lambda: NOW)


def me(tenant: str, user: str = "u1") -> UserSession:
    return UserSession(tenant_id=tenant, user_id=user)


async def all_pages(reader: TaskReader, user: UserSession, **query: Any) -> list[Task]:
    shown: list[Task] = []
    cursor = query.pop("cursor", None)
    for _ in range(100):
        page = await reader.page(user, TaskListQuery(**query, cursor=cursor))
        assert len(page.items) <= query.get("limit", 50)
        shown += page.items
        cursor = page.next_cursor
        if cursor is None:
            return shown
    raise AssertionError("paging did not end")


def varied(tenant: str) -> list[Task]:
    """Ties on every sort key, and tasks without a due date."""
    tasks = []
    for n in range(23):
        tasks.append(
            make_task(
                tenant,
                title=f"Task {n}",
                priority=list(TaskPriority)[n % 4],
                due=None if n % 5 == 0 else NOW + (n % 3) * DAY,
                updated=NOW - (n % 4) * HOUR,
                sla_due=None if n % 3 == 0 else NOW + (n % 5 - 2) * HOUR,
            )
        )
    return tasks


def expected_order(tasks: list[Task], sort: TaskSort) -> list[str]:
    far = datetime.max.replace(tzinfo=UTC)

    def key(t: Task) -> tuple[Any, ...]:
        due = (t.due_at is None, t.due_at or far)
        if sort is TaskSort.UPDATED:
            return (-t.source_updated_at.timestamp(), t.id)
        if sort is TaskSort.DUE:
            return (*due, t.id)
        if sort is TaskSort.SLA:
            return (t.sla is None, t.sla.due_at if t.sla else far, t.id)
        return (-RANK[t.priority], *due, t.id)

    return [t.id for t in sorted(tasks, key=key)]


@pytest.mark.parametrize("sort", list(TaskSort))
async def test_pages_in_every_order_show_each_task_once_in_order(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str, sort: TaskSort
) -> None:
    tasks = varied(tenant)
    reader = await stored(mongo, settings, tasks)
    shown = await all_pages(reader, me(tenant), sort=sort, limit=4)
    assert [t.id for t in shown] == expected_order(tasks, sort)


async def test_tasks_added_while_paging_show_after_the_boundary_only(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    tasks = varied(tenant)
    reader = await stored(mongo, settings, tasks)
    first = await reader.page(me(tenant), TaskListQuery(limit=5))
    # One sorts before the page boundary (updated most recently), one after it.
    newest = make_task(tenant, title="Newest", updated=NOW + HOUR)
    oldest = make_task(tenant, title="Oldest", updated=NOW - 30 * DAY)
    await stored(mongo, settings, [newest, oldest])
    rest = await all_pages(reader, me(tenant), limit=5, cursor=first.next_cursor)
    ids = [t.id for t in first.items] + [t.id for t in rest]
    assert ids == expected_order([*tasks, oldest], TaskSort.UPDATED)


async def test_only_the_users_live_tasks_are_read(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    mine = make_task(tenant, title="Mine")
    colleague = make_task(tenant, user="u2", title="Colleague's")
    other_tenant = make_task(f"{tenant}-x", title="Other tenant's")
    reader = await stored(mongo, settings, [mine, colleague, other_tenant])
    # A removed task stays a while as a tombstone.
    gone = make_task(tenant, title="Removed")
    await stored(mongo, settings, [gone])
    removal = Change(TaskRef.of(gone), None, 1, version_key(1, NOW, NOW, "rm"), "raw/1/1")
    await TaskStore(mongo[settings.mongodb_database], timedelta(days=14)).write(
        latest_per_task([removal])
    )

    assert [t.title for t in (await reader.page(me(tenant), TaskListQuery())).items] == ["Mine"]
    facets = await reader.facets(me(tenant), TaskFilters())
    assert [(v.value, v.count) for v in facets.status] == [("pending", 1)]
    assert await reader.get(me(tenant), mine.id) == mine
    for hidden in (colleague, other_tenant, gone):
        assert await reader.get(me(tenant), hidden.id) is None
    assert await reader.get(me(tenant, "u2"), mine.id) is None


async def titles(reader: TaskReader, user: UserSession, **filters: Any) -> set[str]:
    return {t.title for t in await all_pages(reader, user, **filters)}


async def test_filters_of_one_facet_are_alternatives_and_facets_combine(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    reader = await stored(
        mongo,
        settings,
        [
            make_task(tenant, title="a", status=TaskStatus.PENDING, board=(1, "Service")),
            make_task(tenant, title="b", status=TaskStatus.IN_PROGRESS, board=(1, "Service")),
            make_task(tenant, title="c", status=TaskStatus.PENDING, board=(2, "Alerts")),
            make_task(
                tenant,
                title="d",
                priority=TaskPriority.URGENT,
                company=(11, "Globex Legal"),
                board=(4, "Escalations"),
            ),
            make_task(tenant, title="e", project=(7, "Office move"), board=(3, "Projects")),
        ],
    )
    user = me(tenant)
    assert await titles(reader, user, status=["pending", "in_progress"], board=[1]) == {"a", "b"}
    assert await titles(reader, user, status=["pending"], board=[1, 2]) == {"a", "c"}
    assert await titles(reader, user, priority=["urgent"]) == {"d"}
    assert await titles(reader, user, company=[11]) == {"d"}
    assert await titles(reader, user, project=[7]) == {"e"}
    assert await titles(reader, user, source=["connectwise"]) == {"a", "b", "c", "d", "e"}
    assert await titles(reader, user, board=[99]) == set()


async def test_due_windows_follow_the_users_time_zone(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    reader = await stored(
        mongo,
        settings,
        [
            make_task(tenant, title="late", due=NOW - DAY),
            make_task(tenant, title="late but done", due=NOW - DAY, status=TaskStatus.COMPLETED),
            make_task(tenant, title="this afternoon", due=NOW + 2 * HOUR),
            # 23:30 in UTC is already tomorrow in Berlin (UTC+1).
            make_task(tenant, title="tonight UTC", due=NOW.replace(hour=23, minute=30)),
            make_task(tenant, title="sunday", due=NOW + 4 * DAY),
            make_task(tenant, title="next monday", due=NOW + 5 * DAY + 9 * HOUR),
            make_task(tenant, title="no date"),
        ],
    )
    user = me(tenant)
    assert await titles(reader, user, due="overdue") == {"late"}
    assert await titles(reader, user, due="today") == {"this afternoon", "tonight UTC"}
    assert await titles(reader, user, due="today", tz="Europe/Berlin") == {"this afternoon"}
    assert await titles(reader, user, due="week") == {
        "late",
        "late but done",
        "this afternoon",
        "tonight UTC",
        "sunday",
    }
    assert await titles(reader, user, due="none") == {"no date"}
    assert await titles(reader, user, due_from=NOW, due_to=NOW + 4 * DAY + HOUR) == {
        "this afternoon",
        "tonight UTC",
        "sunday",
    }


async def test_search_finds_words_in_the_title_or_company_and_ticket_numbers(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    numbered = make_task(tenant, title="VPN drops every hour")
    reader = await stored(
        mongo,
        settings,
        [
            numbered,
            make_task(tenant, title="Replace toner", company=(12, "Initech (HQ)")),
            make_task(tenant, title="Laptop a.b setup"),
            make_task(tenant, title="Laptop axb setup"),
        ],
    )
    user = me(tenant)
    assert await titles(reader, user, q="vpn DROPS") == {"VPN drops every hour"}
    assert await titles(reader, user, q="initech (hq") == {"Replace toner"}
    assert await titles(reader, user, q="a.b") == {"Laptop a.b setup"}  # not a pattern
    assert await titles(reader, user, q=f"#{numbered.external_id}") == {"VPN drops every hour"}
    assert await titles(reader, user, q=numbered.external_id) == {"VPN drops every hour"}


async def test_facets_count_each_value_under_the_other_facets_choices(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    reader = await stored(
        mongo,
        settings,
        [
            make_task(tenant, board=(1, "Service"), status=TaskStatus.PENDING),
            make_task(tenant, board=(1, "Service"), status=TaskStatus.IN_PROGRESS),
            make_task(tenant, board=(2, "Alerts"), status=TaskStatus.PENDING),
            make_task(tenant, board=(2, "Alerts"), status=TaskStatus.PENDING, title="Disk full"),
        ],
    )
    facets = await reader.facets(me(tenant), TaskFilters(board=[1], q="printer"))
    # Boards: every board (under the search), so another can be added to the choice.
    assert [(v.value, v.label, v.count) for v in facets.board] == [
        (1, "Service", 2),
        (2, "Alerts", 1),
    ]
    # Statuses: only within the chosen board.
    assert {(v.value, v.count) for v in facets.status} == {("pending", 1), ("in_progress", 1)}
    assert [(v.value, v.label, v.count) for v in facets.company] == [(10, "Acme Dental", 2)]
    assert facets.project == []


async def test_sla_windows_filter_and_count_by_the_margin_asked_for(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    breached = make_task(tenant, sla_due=NOW - HOUR)
    soon = make_task(tenant, sla_due=NOW + HOUR / 2)
    later = make_task(tenant, sla_due=NOW + 3 * HOUR)
    none = make_task(tenant)
    reader = await stored(mongo, settings, [breached, soon, later, none])

    async def shown(**filters: Any) -> set[str]:
        return {t.id for t in await all_pages(reader, me(tenant), **filters)}

    assert await shown(sla=["breached"]) == {breached.id}
    assert await shown(sla=["at_risk"]) == {soon.id}
    assert await shown(sla=["at_risk"], sla_margin=240) == {soon.id, later.id}
    assert await shown(sla=["on_track", "none"]) == {later.id, none.id}
    facets = await reader.facets(me(tenant), TaskFilters(sla=["breached"]))
    # Every window counted (the facet's own choice aside), under the other filters.
    assert {(v.value, v.count) for v in facets.sla} == {
        ("breached", 1),
        ("at_risk", 1),
        ("on_track", 1),
        ("none", 1),
    }
    assert sum(v.count for v in facets.status) == 1  # the other facets: breached only
    narrow = await reader.facets(me(tenant), TaskFilters(sla_margin=240, q="printer"))
    assert {(v.value, v.count) for v in narrow.sla} == {
        ("breached", 1),
        ("at_risk", 2),
        ("none", 1),
    }


async def test_a_cursor_that_was_not_given_out_is_refused(
    mongo: AsyncMongoClient[Document], settings: ServiceSettings, tenant: str
) -> None:
    reader = await stored(mongo, settings, varied(tenant))
    page = await reader.page(me(tenant), TaskListQuery(limit=2))
    assert page.next_cursor is not None
    with pytest.raises(InvalidQuery):
        await reader.page(me(tenant), TaskListQuery(sort="due", cursor=page.next_cursor))
    with pytest.raises(InvalidQuery):
        await reader.page(me(tenant), TaskListQuery(cursor="not-a-cursor"))
