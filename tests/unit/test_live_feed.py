"""Live task changes in memory: positions, the feed buffer and what a stream sends."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime

import pytest
from fastapi.sse import ServerSentEvent

from syntaskio_common.task import SourceType, TaskPriority, TaskSource, TaskStatus
from syntaskio_common.task_events import FeedTask, TaskDeleted, TaskEvent, TaskUpserted
from syntaskio_gateway.live import (
    Change,
    FeedBuffer,
    Subscription,
    decode_position,
    encode_position,
    stream,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def ref(task: str, tenant: str, user: str) -> dict[str, str]:
    return {"id": task, "tenant_id": tenant, "user_id": user, "integration_id": "i"}


def upserted(task: str, version: str = "v1", tenant: str = "t", user: str = "u") -> TaskUpserted:
    feed_task = FeedTask(
        **ref(task, tenant, user),
        source=TaskSource.CONNECTWISE,
        source_type=SourceType.SERVICE_TICKET,
        external_id=task,
        title=f"Task {task}",
        status=TaskStatus.PENDING,
        priority=TaskPriority.MEDIUM,
        source_updated_at=T0,
    )
    return TaskUpserted(version=version, task=feed_task)


def deleted(task: str, version: str = "v2", tenant: str = "t", user: str = "u") -> TaskDeleted:
    source = {"source": TaskSource.CONNECTWISE, "source_type": SourceType.SERVICE_TICKET}
    return TaskDeleted(**ref(task, tenant, user), **source, external_id=task, version=version)


def buffer(
    size: int = 100, queue_size: int = 1000, begin: dict[int, int] | None = None
) -> FeedBuffer:
    feed = FeedBuffer(size, queue_size)
    feed.begin({0: 0, 1: 0} if begin is None else begin)
    return feed


def queued(subscription: Subscription) -> list[Change | None]:
    items = []
    while not subscription.queue.empty():
        items.append(subscription.queue.get_nowait())
    return items


def events_of(changes: list[Change | None]) -> list[TaskEvent | None]:
    return [None if change is None else change.event for change in changes]


def test_two_identical_subscriptions_are_two_streams() -> None:
    feed = buffer()
    with feed.subscribe("t", "u", None), feed.subscribe("t", "u", None):
        assert feed.subscribers() == 2


def test_positions_are_sorted_by_partition_and_decode_back() -> None:
    assert encode_position({1: 5, 0: 3, 10: 0}) == "0-3.1-5.10-0"
    assert decode_position("0-3.1-5.10-0") == {0: 3, 1: 5, 10: 0}


@pytest.mark.parametrize(
    "text", ["", "x", "1-2-3", "0-", "-1", "0-1.", "a-1", "0--1", "0-" + "9" * 40]
)
def test_ids_we_do_not_give_out_decode_to_none(text: str) -> None:
    assert decode_position(text) is None


def test_an_id_with_non_ascii_digits_gives_a_reset_not_an_error() -> None:
    # Bug: "²".isdigit() is True but int("²") raises ValueError, so decode_position
    # (and subscribe, i.e. the request) fails instead of treating the id as garbage.
    feed = buffer()
    with feed.subscribe("t", "u", "0-²") as subscription:
        assert subscription.reset is True


def test_a_change_carries_its_user_and_the_position_just_after_it() -> None:
    feed = buffer()
    feed.append(1, 0, deleted("a"))
    with feed.subscribe("t", "u", "0-0.1-0") as subscription:
        [change] = subscription.replay
    assert (change.tenant_id, change.user_id, change.partition, change.offset) == ("t", "u", 1, 0)
    assert change.position == feed.position == "0-0.1-1"
    assert change.name == "task.deleted"


def test_a_stream_gets_only_its_own_users_changes() -> None:
    feed = buffer()
    start = feed.position
    mine, other_tenant, other_user = (
        upserted("a"),
        upserted("b", tenant="t2"),
        upserted("c", user="u2"),
    )
    for offset, event in enumerate([mine, other_tenant, other_user]):
        feed.append(0, offset, event)
    with (
        feed.subscribe("t", "u", start) as me,
        feed.subscribe("t2", "u", start) as same_user_elsewhere,
        feed.subscribe("t", "u2", None) as colleague,
    ):
        assert [c.event for c in me.replay] == [mine]
        assert [c.event for c in same_user_elsewhere.replay] == [other_tenant]
        feed.append(1, 0, deleted("a"))
        assert events_of(queued(me)) == [deleted("a")]
        assert queued(same_user_elsewhere) == queued(colleague) == []


def test_resume_replays_exactly_the_users_changes_after_the_id_across_partitions() -> None:
    feed = buffer()
    appended: list[tuple[int, int, TaskEvent]] = [
        (0, 0, upserted("a")),
        (1, 0, upserted("b")),
        (0, 1, upserted("x", user="u2")),
    ]
    appended += [(1, 1, deleted("b")), (0, 2, upserted("a", "v2")), (1, 2, upserted("c"))]
    for partition, offset, event in appended:
        feed.append(partition, offset, event)
    with feed.subscribe("t", "u", "0-0.1-0") as subscription:
        all_mine = subscription.replay
    assert [(c.partition, c.offset) for c in all_mine] == [(0, 0), (1, 0), (1, 1), (0, 2), (1, 2)]
    assert [c.event for c in all_mine] == [e for *_, e in appended if e != upserted("x", user="u2")]
    for k, change in enumerate(all_mine):
        with feed.subscribe("t", "u", change.position) as subscription:
            assert subscription.reset is False
            assert subscription.replay == all_mine[k + 1 :]


def test_resume_from_the_current_position_replays_nothing_and_does_not_reset() -> None:
    feed = buffer()
    feed.append(0, 0, upserted("a"))
    with feed.subscribe("t", "u", feed.position) as subscription:
        assert (subscription.replay, subscription.reset) == ([], False)
        assert subscription.position == feed.position == "0-1.1-0"


def test_an_id_older_than_the_buffer_holds_gives_a_reset() -> None:
    feed = buffer(size=2)
    start = feed.position
    for offset, task in enumerate("abc"):
        feed.append(0, offset, upserted(task))
    with feed.subscribe("t", "u", start) as subscription:
        assert (subscription.replay, subscription.reset) == ([], True)
    with feed.subscribe("t", "u", "0-1.1-0") as subscription:  # just after the dropped one
        assert [c.event for c in subscription.replay] == [upserted("b"), upserted("c")]
        assert subscription.reset is False


def test_an_id_from_before_the_start_gives_a_reset() -> None:
    feed = buffer(begin={0: 10, 1: 4})
    feed.append(0, 10, upserted("a"))
    for old in ("0-9.1-4", "0-10.1-3", "0-10"):
        with feed.subscribe("t", "u", old) as subscription:
            assert (subscription.replay, subscription.reset) == ([], True)


@pytest.mark.parametrize("garbage", ["x", "1-2-3", "0-a", "0-1..1-0"])
def test_a_garbage_id_gives_a_reset(garbage: str) -> None:
    feed = buffer()
    feed.append(0, 0, upserted("a"))
    with feed.subscribe("t", "u", garbage) as subscription:
        assert (subscription.replay, subscription.reset) == ([], True)


@pytest.mark.parametrize("no_id", ["", None])
def test_no_id_means_neither_replay_nor_reset(no_id: str | None) -> None:
    feed = buffer()
    feed.append(0, 0, upserted("a"))
    with feed.subscribe("t", "u", no_id) as subscription:
        assert (subscription.replay, subscription.reset) == ([], False)
        assert subscription.position == "0-1.1-0"


def test_live_changes_are_queued_only_while_subscribed() -> None:
    feed = buffer()
    assert feed.subscribers() == 0
    with feed.subscribe("t", "u", None) as first, feed.subscribe("t", "u", None) as second:
        assert feed.subscribers() == 2
        feed.append(0, 0, upserted("a"))
        assert events_of(queued(first)) == events_of(queued(second)) == [upserted("a")]
    assert feed.subscribers() == 0
    feed.append(0, 1, deleted("a"))
    assert queued(first) == queued(second) == []


def test_a_reader_that_falls_behind_gets_just_a_reset() -> None:
    feed = buffer(queue_size=2)
    with feed.subscribe("t", "u", None) as subscription:
        for offset, task in enumerate("abc"):
            feed.append(0, offset, upserted(task))
        assert queued(subscription) == [None]


def test_records_that_are_not_task_events_move_the_position_on() -> None:
    feed = buffer()
    feed.append(0, 0, upserted("a"))
    feed.passed(0, 1)
    feed.passed(1, 7)
    assert feed.position == "0-2.1-8"
    with feed.subscribe("t", "u", feed.position) as subscription:
        assert (subscription.replay, subscription.reset) == ([], False)
    feed.append(1, 8, upserted("b"))
    with feed.subscribe("t", "u", "0-2.1-8") as subscription:
        assert [c.event for c in subscription.replay] == [upserted("b")]


async def first(subscription: Subscription, count: int) -> list[ServerSentEvent]:
    events = stream(subscription)
    return [await asyncio.wait_for(anext(events), 1) for _ in range(count)]


async def test_a_stream_sends_the_replay_then_ready_then_live_changes() -> None:
    feed = buffer()
    start = feed.position
    feed.append(0, 0, upserted("a", "v1"))
    feed.append(1, 0, deleted("b", "v3"))
    with feed.subscribe("t", "u", start) as subscription:
        feed.append(0, 1, upserted("c", "v4"))
        sent = await first(subscription, 4)
    assert [(e.event, e.id) for e in sent] == [
        ("task.upserted", "0-1.1-0"),
        ("task.deleted", "0-1.1-1"),
        ("ready", "0-1.1-1"),
        ("task.upserted", "0-2.1-1"),
    ]
    assert (sent[0].data["version"], sent[0].data["task"]["id"]) == ("v1", "a")
    assert sent[1].data == deleted("b", "v3").model_dump(mode="json")
    assert sent[2].data == {}
    assert sent[3].data == upserted("c", "v4").model_dump(mode="json")


async def test_a_stream_that_cannot_resume_starts_with_a_reset() -> None:
    feed = buffer(begin={0: 5})
    with feed.subscribe("t", "u", "x") as subscription:
        feed.append(0, 5, upserted("a"))
        sent = await first(subscription, 2)
    assert [(e.event, e.id) for e in sent] == [("reset", "0-5"), ("task.upserted", "0-6")]


async def test_a_stream_whose_queue_overflowed_sends_a_reset() -> None:
    feed = buffer(queue_size=2)
    with feed.subscribe("t", "u", None) as subscription:
        for offset, task in enumerate("abcd"):
            feed.append(0, offset, upserted(task))
        sent = await first(subscription, 3)
    assert [(e.event, e.id) for e in sent] == [
        ("ready", "0-0.1-0"),
        ("reset", None),
        ("task.upserted", "0-4.1-0"),
    ]
    assert sent[2].data["task"]["id"] == "d"


def test_a_user_is_admitted_at_most_so_many_streams_however_they_are_asked_for() -> None:
    buffer = FeedBuffer(size=10)
    with contextlib.ExitStack() as held:
        admitted = [held.enter_context(buffer.admitted("acme", "alex", most=3)) for _ in range(5)]
        assert admitted == [True, True, True, False, False]
        # Another user's places are their own.
        assert held.enter_context(buffer.admitted("acme", "sam", most=3))
    # All given back: the user may open as many again.
    with buffer.admitted("acme", "alex", most=1) as again:
        assert again
