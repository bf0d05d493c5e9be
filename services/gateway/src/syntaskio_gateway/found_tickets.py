"""Tickets a user found by searching ConnectWise (`found_tickets`): what lets them open a
ticket that is not synced for them and log time or a note on it, through the same task
routes as their own tasks.

A found ticket has the task id it would have on the user's dashboard (`task_id`), so a
ticket found and later assigned is one task, not two. It is recorded only from a search
the connector made as the user's own member, kept for the user alone, and forgotten
`KEPT_FOR` after it was last found. What may be done to it is ConnectWise's to say: the
connector acts on it with keys acting as that member.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Final

from pydantic import BaseModel, Field
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_common.mongo import Document
from syntaskio_common.sessions import UserSession
from syntaskio_common.task import Task, TaskPriority, TaskSource, TaskStatus, task_id
from syntaskio_common.ticket_search import FoundTicket, TicketSearchResults
from syntaskio_gateway.tasks import TaskReader

# Long enough for a timer started on a found ticket (at most 24 hours) to be stopped.
KEPT_FOR: Final = timedelta(days=2)
# In a found ticket's `source_data` (a synced task never has it): read it as its user's
# member, and say so on the page.
FOUND_BY_SEARCH: Final = "found_by_search"


class FoundTicketView(FoundTicket):
    task_id: str = Field(description="Open it at /tasks/{task_id}; the task routes act on it")
    on_dashboard: bool = Field(description="Already one of the user's tasks")


class SearchAnswer(BaseModel):
    query: str = Field(description="The query as searched")
    member: str = Field(description="The ConnectWise member it was searched as")
    tickets: list[FoundTicketView]
    more: bool = Field(description="More tickets match than are listed: narrow the query")
    searched_at: datetime = Field(description="When ConnectWise was asked (cached 30 s)")


class FoundTickets:
    def __init__(
        self,
        db: AsyncDatabase[Document],
        reader: TaskReader,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._found = db["found_tickets"]
        self._reader = reader  # which found tickets are on the user's dashboard already
        self._clock = clock

    async def create_indexes(self) -> None:
        await self._found.create_index(
            "found_at", expireAfterSeconds=int(KEPT_FOR.total_seconds()), name="expiry"
        )

    async def remember(self, user: UserSession, results: TicketSearchResults) -> SearchAnswer:
        """Record what the search found for `user`; the answer, each ticket with its task
        id and whether it is on the user's dashboard already."""
        now = self._clock()
        ids = [_task_id(user, t) for t in results.tickets]
        if results.tickets:
            await self._found.bulk_write(
                [
                    UpdateOne(
                        {"_id": tid},
                        {
                            "$set": {
                                "tenant_id": user.tenant_id,
                                "user_id": user.user_id,
                                "task_id": tid,
                                "integration_id": results.integration_id,
                                "ticket": ticket.model_dump(mode="json"),
                                "found_at": now,
                            }
                        },
                        upsert=True,
                    )
                    for tid, ticket in zip(ids, results.tickets, strict=True)
                ],
                ordered=False,
            )
        live = {task.id for task in await self._reader.among(user, ids)}
        return SearchAnswer(
            query=results.query,
            member=results.member,
            tickets=[
                FoundTicketView(**t.model_dump(), task_id=tid, on_dashboard=tid in live)
                for tid, t in zip(ids, results.tickets, strict=True)
            ],
            more=results.more,
            searched_at=results.searched_at,
        )

    async def get(self, user: UserSession, task_id: str) -> Task | None:
        """The found ticket as a task of the user's (never another user's)."""
        doc = await self._found.find_one(
            # The task id is derived from tenant and user; both are checked again here.
            {"_id": task_id, "tenant_id": user.tenant_id, "user_id": user.user_id}
        )
        if doc is None:
            return None
        ticket = FoundTicket.model_validate(doc["ticket"])
        return Task(
            id=doc["task_id"],
            tenant_id=user.tenant_id,
            user_id=user.user_id,
            integration_id=doc["integration_id"],
            source=TaskSource.CONNECTWISE,
            source_type=ticket.source_type,
            external_id=str(ticket.ticket_id),
            title=ticket.summary,
            status=TaskStatus.COMPLETED if ticket.closed else TaskStatus.PENDING,
            source_status=ticket.status,
            # Not a priority of the user's: the found ticket is not on their dashboard.
            priority=TaskPriority.MEDIUM,
            source_priority=ticket.priority,
            source_updated_at=ticket.updated_at or doc["found_at"].replace(tzinfo=UTC),
            url=ticket.url,
            source_data={"company": ticket.company, "board": ticket.board, FOUND_BY_SEARCH: True},
        )


def _task_id(user: UserSession, ticket: FoundTicket) -> str:
    return task_id(
        user.tenant_id,
        user.user_id,
        TaskSource.CONNECTWISE,
        ticket.source_type,
        str(ticket.ticket_id),
    )
