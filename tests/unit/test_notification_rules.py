"""What is worth telling a user, pure: a task new on their dashboard only when it changed
after the notifier first saw their work on that connection, a customer reply only when
the flag goes from false to true, an SLA target only inside the company's margin, and
every notification's id fixed by what it is about (so repeats write it once)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syntaskio_common.task import (
    SlaStage,
    SourceType,
    Task,
    TaskPriority,
    TaskSla,
    TaskSource,
    TaskStatus,
)
from syntaskio_gateway.notifications import NotificationKind, Watched, on_task, sla_at_risk

NOW = datetime(2026, 11, 18, 15, tzinfo=UTC)
BASELINE = NOW - timedelta(hours=1)
MINUTE = timedelta(minutes=1)


def task(
    updated: datetime = NOW,
    *,
    replied: bool = False,
    status: TaskStatus = TaskStatus.PENDING,
    sla_due: datetime | None = None,
    user: str = "alex",
) -> Task:
    return Task(
        id=f"task-{user}",
        tenant_id="acme",
        user_id=user,
        integration_id="i-1",
        source=TaskSource.CONNECTWISE,
        source_type=SourceType.SERVICE_TICKET,
        external_id="4711",
        title="Printer offline",
        status=status,
        priority=TaskPriority.MEDIUM,
        source_updated_at=updated,
        sla=TaskSla(stage=SlaStage.RESPOND, due_at=sla_due) if sla_due else None,
        source_data={"ticket_id": 4711, "customer_updated": replied},
    )


def test_a_task_new_on_the_dashboard_is_news_only_if_changed_after_the_baseline() -> None:
    [told] = on_task(task(NOW), None, BASELINE)
    assert (told.kind, told.title, told.task_id) == (
        NotificationKind.ASSIGNED,
        "Assigned to you: #4711 Printer offline",
        "task-alex",
    )
    # The first sync's work (changed before the notifier first saw it) is not news, nor
    # is a completed task.
    assert on_task(task(BASELINE - MINUTE), None, BASELINE) == []
    assert on_task(task(NOW, status=TaskStatus.COMPLETED), None, BASELINE) == []
    # Seen before: a change is not an assignment.
    assert on_task(task(NOW), Watched("v1", False), BASELINE) == []


def test_a_customer_reply_is_news_when_the_flag_turns_on() -> None:
    [told] = on_task(task(NOW, replied=True), Watched("v1", False), BASELINE)
    assert (told.kind, told.title) == (
        NotificationKind.CUSTOMER_REPLY,
        "Customer replied: #4711 Printer offline",
    )
    assert on_task(task(NOW, replied=True), Watched("v1", True), BASELINE) == []
    assert on_task(task(NOW, replied=False), Watched("v1", False), BASELINE) == []


def test_ids_are_fixed_by_what_a_notification_is_about() -> None:
    first = on_task(task(NOW), None, BASELINE)[0]
    assert on_task(task(NOW), None, BASELINE)[0].id == first.id  # a repeat: the same
    assert on_task(task(NOW + MINUTE), None, BASELINE)[0].id != first.id  # reassigned later
    assert on_task(task(NOW, user="bea"), None, BASELINE)[0].id != first.id  # another user
    reply = on_task(task(NOW, replied=True), Watched("v1", False), BASELINE)[0]
    assert reply.id != first.id


def test_an_sla_target_is_news_inside_the_margin_and_before_it_passes() -> None:
    margin = timedelta(minutes=60)
    inside = task(sla_due=NOW + 30 * MINUTE)
    found = sla_at_risk(
        [
            inside,
            task(sla_due=NOW + 90 * MINUTE, user="later"),
            task(sla_due=NOW - MINUTE, user="breached"),
            task(sla_due=NOW + MINUTE, user="closed", status=TaskStatus.COMPLETED),
            task(user="no-sla"),
        ],
        NOW,
        margin,
    )
    assert [(n.task_id, n.kind, n.due_at) for n in found] == [
        ("task-alex", NotificationKind.SLA_AT_RISK, NOW + 30 * MINUTE)
    ]
    assert found[0].title == "SLA: respond soon on #4711 Printer offline"
    # Asked again (every half minute): the same notification; a new target: a new one.
    assert sla_at_risk([inside], NOW + MINUTE, margin)[0].id == found[0].id
    moved = task(sla_due=NOW + 40 * MINUTE)
    assert sla_at_risk([moved], NOW, margin)[0].id != found[0].id
