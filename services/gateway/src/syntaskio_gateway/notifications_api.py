"""The notification centre under /api/v1: the user's notifications, newest first, and
marking them read (`notifications.py` says what is notified and when)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Self

from fastapi import APIRouter, Depends, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from syntaskio_common.problems import Problem
from syntaskio_gateway.api import Reader, company_settings_for
from syntaskio_gateway.dependencies import CurrentUser
from syntaskio_gateway.notifications import NotificationList, Notifications, sla_at_risk

router = APIRouter(prefix="/api/v1", tags=["notifications"])
NotificationId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{32}$")]
# The widest warning margin a company may set (TenantSettings.sla_warning_minutes).
WIDEST_SLA_MARGIN = timedelta(minutes=1440)


def _notifications(request: Request) -> Notifications:
    found: Notifications = request.app.state.notifications
    return found


Store = Annotated[Notifications, Depends(_notifications)]


class MarkRead(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"all": True}]})

    ids: list[NotificationId] | None = Field(default=None, min_length=1, max_length=100)
    all: bool = Field(default=False, description="Every unread notification of the user's")

    @model_validator(mode="after")
    def _one_of(self) -> Self:
        if (self.ids is None) == (not self.all):
            raise ValueError("give either ids or all: true")
        return self


@router.get("/notifications")
async def list_notifications(
    user: CurrentUser, store: Store, reader: Reader, request: Request
) -> NotificationList:
    """The user's notifications, newest first, and how many are unread. An SLA target of
    theirs coming due within the company's warning margin is noticed here, when asked:
    the page asks every half minute and when its tasks change."""
    now = datetime.now(UTC)
    due = await reader.sla_due(user, now + WIDEST_SLA_MARGIN)
    if due:
        settings = await company_settings_for(request, user)
        margin = timedelta(minutes=settings.sla_warning_minutes)
        await store.add(sla_at_risk(due, now, margin))
    return await store.newest(user)


@router.post(
    "/notifications/read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={422: {"description": "Neither ids nor all, or both"}},
)
async def mark_read(change: MarkRead, user: CurrentUser, store: Store) -> Response:
    """Mark the named notifications (the user's own; others' ids are ignored) or all of
    them read. Saying it again changes nothing."""
    if change.ids is not None and len(set(change.ids)) != len(change.ids):
        raise Problem(422, "Each notification once.")
    await store.mark_read(user, None if change.all else change.ids)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
