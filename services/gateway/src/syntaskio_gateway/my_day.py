"""My day: a user's plan over their tasks — pinned to today, snoozed until a time, hidden
until the task changes upstream, and a manual order within today — and the day grouped
by it: Overdue, Today, This week, Later, No date, and what is set aside.

A plan is Syntaskio-side state, kept per tenant, user and task in the gateway's database
(`task_plans`); nothing of it is ever written to ConnectWise. It outlives syncs (a task's
id is stable) and goes with the task: the live feed's `task.deleted` removes it, and so
does reading the day (a task that is gone, or a plan with nothing left to say).

"Today" is the user's day: the browser sends its IANA time zone. Weeks start on Monday.
The grouping (`group_day`) is pure, so every boundary is tested without a database.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, Field
from pymongo import ASCENDING, ReturnDocument, UpdateMany, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.task import Task, TaskPriority, TaskRef, TaskStatus
from syntaskio_gateway.task_query import MAX_PAGE, TaskListQuery, TaskSort
from syntaskio_gateway.tasks import TaskReader

_PLAN_NAMESPACE: Final = uuid.UUID("5d0c6f1e-8a3b-4c2d-9e7f-1b2a3c4d5e6f")
MOST_PLANS: Final = MAX_PAGE  # per user: no more than the day can show
MOST_ORDERED: Final = 200  # tasks in one manual order of today
LONGEST_SNOOZE: Final = timedelta(days=365)
_URGENCY: Final = {priority: rank for rank, priority in enumerate(TaskPriority)}


@dataclass(frozen=True)
class Plan:
    """One task's plan as stored. Dates are the user's days."""

    task_id: str
    pinned_on: date | None = None
    snoozed_until: datetime | None = None
    # The task's `source_updated_at` when it was hidden: a later one shows it again.
    hidden_at: datetime | None = None
    order: int | None = None
    ordered_on: date | None = None
    updated_at: datetime | None = None


class PlanState(BaseModel):
    """A task's plan as it stands now."""

    pinned: bool = Field(default=False, description="Pinned to today")
    snoozed_until: AwareDatetime | None = Field(
        default=None, description="Set aside until then (null: not snoozed)"
    )
    hidden: bool = Field(default=False, description="Set aside until it changes upstream")
    order: int | None = Field(
        default=None, description="Its place in today's manual order (null: none)"
    )


class PlannedTask(Task):
    """A task as `GET /api/v1/tasks` has it, with its plan."""

    plan: PlanState


class MyDay(BaseModel):
    day: date = Field(description="Today, in `time_zone`")
    time_zone: str
    overdue: list[PlannedTask] = Field(description="Due before now and not done; soonest first")
    today: list[PlannedTask] = Field(
        description="Pinned to today or due today: the manual order first, then by due time"
    )
    this_week: list[PlannedTask] = Field(description="Due later this week (to Sunday)")
    later: list[PlannedTask] = Field(description="Due after this week")
    no_date: list[PlannedTask] = Field(description="No due date; most urgent first")
    set_aside: list[PlannedTask] = Field(
        description="Snoozed (soonest back first) or hidden until they change: in no group"
    )
    truncated: bool = Field(
        description=f"The user has more than {MAX_PAGE} tasks: those due last are left out"
    )


def today_in(zone: ZoneInfo, now: datetime) -> date:
    return now.astimezone(zone).date()


def _snoozed(plan: Plan | None, now: datetime) -> bool:
    return bool(plan and plan.snoozed_until and plan.snoozed_until > now)


def _hidden(plan: Plan | None, task: Task) -> bool:
    """Hidden, and the task has not changed upstream since."""
    return bool(plan and plan.hidden_at and task.source_updated_at <= plan.hidden_at)


def _ordered(plan: Plan | None, today: date) -> int | None:
    # An order is for the day it was made.
    return plan.order if plan and plan.ordered_on == today else None


def plan_state(plan: Plan | None, task: Task, today: date, now: datetime) -> PlanState:
    snoozed = _snoozed(plan, now)
    return PlanState(
        pinned=bool(plan and plan.pinned_on == today),
        snoozed_until=plan.snoozed_until if plan and snoozed else None,
        hidden=_hidden(plan, task),
        order=_ordered(plan, today),
    )


def spent(plan: Plan, task: Task | None, today: date, now: datetime) -> bool:
    """Nothing left to say: the task is gone, or the pin and the order were for a past
    day, the snooze is over and a hidden task has changed since."""
    if task is None:
        return True
    # A pin for a later day: pinned where the day had already begun (another time zone).
    pinned = plan.pinned_on is not None and plan.pinned_on >= today
    ordered = plan.order is not None and plan.ordered_on is not None and plan.ordered_on >= today
    return not (pinned or ordered or _snoozed(plan, now) or _hidden(plan, task))


def _due_key(task: Task) -> tuple[bool, datetime, str]:
    """By due time, those without one last; the id makes it total."""
    due = task.due_at or datetime.max.replace(tzinfo=UTC)
    return (task.due_at is None, due, task.id)


def group_day(
    tasks: Iterable[Task],
    plans: Mapping[str, Plan],
    now: datetime,
    zone: ZoneInfo,
    *,
    truncated: bool = False,
) -> MyDay:
    """The user's day. A pin puts a task in Today whatever its due date; a completed
    task is never overdue (one due earlier shows in Today until it leaves the dashboard,
    as a closed ticket does at the next sync)."""
    today = today_in(zone, now)
    next_monday = today + timedelta(days=7 - today.weekday())
    groups: dict[str, list[PlannedTask]] = {
        name: [] for name in ("overdue", "today", "this_week", "later", "no_date", "set_aside")
    }
    for task in tasks:
        plan = plans.get(task.id)
        state = plan_state(plan, task, today, now)
        planned = PlannedTask.model_validate({**dict(task), "plan": state})
        if state.snoozed_until is not None or state.hidden:
            groups["set_aside"].append(planned)
        elif state.pinned:
            groups["today"].append(planned)
        elif task.due_at is None:
            groups["no_date"].append(planned)
        elif task.due_at < now and task.status is not TaskStatus.COMPLETED:
            groups["overdue"].append(planned)
        else:
            day = task.due_at.astimezone(zone).date()
            if day <= today:
                groups["today"].append(planned)
            elif day < next_monday:
                groups["this_week"].append(planned)
            else:
                groups["later"].append(planned)
    for name in ("overdue", "this_week", "later"):
        groups[name].sort(key=_due_key)
    groups["today"].sort(key=lambda t: (t.plan.order is None, t.plan.order or 0, *_due_key(t)))
    groups["no_date"].sort(key=lambda t: (-_URGENCY[t.priority], t.id))
    far = datetime.max.replace(tzinfo=UTC)
    groups["set_aside"].sort(key=lambda t: (t.plan.snoozed_until or far, t.id))
    return MyDay(day=today, time_zone=zone.key, truncated=truncated, **groups)


class TooManyPlans(Exception):
    pass


def _plan_id(user: UserSession, task_id: str) -> str:
    return str(uuid.uuid5(_PLAN_NAMESPACE, "\x1f".join((user.tenant_id, user.user_id, task_id))))


def _day(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) else None


def _plan(doc: Document) -> Plan:
    return Plan(
        task_id=doc["task_id"],
        pinned_on=_day(doc.get("pinned_on")),
        snoozed_until=doc.get("snoozed_until"),
        hidden_at=doc.get("hidden_at"),
        order=doc.get("order"),
        ordered_on=_day(doc.get("ordered_on")),
        updated_at=doc.get("updated_at"),
    )


class TaskPlans:
    """The plans in `task_plans`, one document per tenant, user and task."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._plans = db["task_plans"]
        self._clock = clock

    def now(self) -> datetime:
        return self._clock()

    async def create_indexes(self) -> None:
        await self._plans.create_index(
            [("tenant_id", ASCENDING), ("user_id", ASCENDING)], name="by_user"
        )

    def _of(self, user: UserSession) -> Document:
        return {"tenant_id": user.tenant_id, "user_id": user.user_id}

    async def stored(self, user: UserSession) -> list[Plan]:
        cursor = self._plans.find(self._of(user)).limit(MOST_PLANS)
        return [_plan(doc) async for doc in cursor]

    async def put(
        self,
        user: UserSession,
        task: Task,
        today: date,
        *,
        pinned: bool,
        snoozed_until: datetime | None,
        hidden: bool,
    ) -> PlanState:
        """Pin, snooze or hide the task (or none of these: clear them); its place in
        today's order stays. The same request twice leaves the same plan."""
        now = self._clock()
        key = {"_id": _plan_id(user, task.id)}
        if await self._plans.find_one(key, {"_id": True}) is None:
            if not (pinned or snoozed_until or hidden):
                return PlanState()  # nothing to keep
            if await self._plans.count_documents(self._of(user)) >= MOST_PLANS:
                raise TooManyPlans
        doc = await self._plans.find_one_and_update(
            key,
            {
                "$set": {
                    "pinned_on": today.isoformat() if pinned else None,
                    "snoozed_until": snoozed_until,
                    "hidden_at": task.source_updated_at if hidden else None,
                    "updated_at": now,
                },
                "$setOnInsert": {**self._of(user), "task_id": task.id},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None, "upserted"
        plan = _plan(doc)
        if spent(plan, task, today, now):
            await self.forget_spent(user, [plan])
        return plan_state(plan, task, today, now)

    async def clear(self, user: UserSession, task_id: str) -> None:
        await self._plans.delete_one({"_id": _plan_id(user, task_id)})

    async def put_order(self, user: UserSession, today: date, task_ids: list[str]) -> None:
        """Today's manual order: these tasks first, in this order; no other task of the
        user's keeps a place."""
        now = self._clock()
        ids = [_plan_id(user, task_id) for task_id in task_ids]
        known = await self._plans.count_documents({"_id": {"$in": ids}})
        if await self._plans.count_documents(self._of(user)) + len(ids) - known > MOST_PLANS:
            raise TooManyPlans
        placed: list[UpdateOne | UpdateMany] = [
            UpdateOne(
                {"_id": plan_id},
                {
                    "$set": {"order": place, "ordered_on": today.isoformat(), "updated_at": now},
                    "$setOnInsert": {**self._of(user), "task_id": task_id},
                },
                upsert=True,
            )
            for place, (plan_id, task_id) in enumerate(zip(ids, task_ids, strict=True))
        ]
        unplaced = UpdateMany(
            {**self._of(user), "_id": {"$nin": ids}, "order": {"$ne": None}},
            {"$set": {"order": None, "ordered_on": None, "updated_at": now}},
        )
        await self._plans.bulk_write([*placed, unplaced], ordered=True)

    async def forget_spent(self, user: UserSession, plans: Collection[Plan]) -> int:
        """Delete these plans, unless changed since they were read (a pin made meanwhile
        stays)."""
        if not plans:
            return 0
        deleted = await self._plans.delete_many(
            {
                **self._of(user),
                "$or": [
                    {"_id": _plan_id(user, plan.task_id), "updated_at": plan.updated_at}
                    for plan in plans
                ],
            }
        )
        return deleted.deleted_count

    async def forget_tasks(self, removed: Collection[TaskRef]) -> None:
        """The plans of tasks that left their user's dashboard (the live feed's
        `task.deleted`); harmless when repeated, as every gateway replica does."""
        if removed:
            ids = [_plan_id(_owner(ref), ref.id) for ref in removed]
            await self._plans.delete_many({"_id": {"$in": ids}})


def _owner(ref: TaskRef) -> UserSession:
    return UserSession(tenant_id=ref.tenant_id, user_id=ref.user_id)


async def read_day(
    user: UserSession, reader: TaskReader, plans: TaskPlans, zone: ZoneInfo
) -> MyDay:
    """The user's day: their live tasks (due first; the pinned and set aside ones
    whatever their place) grouped by their plans. Plans of tasks that are gone, and
    plans with nothing left to say, are deleted on the way."""
    now = plans.now()
    today = today_in(zone, now)
    page = await reader.page(user, TaskListQuery(sort=TaskSort.DUE, limit=MAX_PAGE))
    tasks = {task.id: task for task in page.items}
    stored = {plan.task_id: plan for plan in await plans.stored(user)}
    for task in await reader.among(user, stored.keys() - tasks.keys()):
        tasks[task.id] = task
    spent_plans = [p for p in stored.values() if spent(p, tasks.get(p.task_id), today, now)]
    await plans.forget_spent(user, spent_plans)
    return group_day(tasks.values(), stored, now, zone, truncated=page.next_cursor is not None)
