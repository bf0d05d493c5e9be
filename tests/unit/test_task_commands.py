"""The write-back command contract: each action carries what it changes and nothing
else, and free text is bounded and clean."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from syntaskio_common import events
from syntaskio_common.commands import (
    CommandAction,
    CommandOutcome,
    CommandStatus,
    TaskCommand,
    outcome_event,
    requested_event,
)


def command(**fields: Any) -> TaskCommand:
    return TaskCommand.model_validate(
        {
            "command_id": "c-1",
            "tenant_id": "acme",
            "user_id": "alex@acme.example",
            "integration_id": "int-1",
            "source_type": "service_ticket",
            "external_id": "4711",
            "requested_at": datetime(2026, 11, 22, 9, tzinfo=UTC),
            **fields,
        }
    )


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "complete"},
        {"action": "update_status", "status_id": 5},
        {"action": "add_note", "note": {"text": "Called the customer", "internal": True}},
        {"action": "add_time_entry", "time_entry": {"hours": 0.25, "notes": "Remote"}},
        {"action": "log_change", "note": {"text": "Fixed"}, "time_entry": {"hours": 1}},
        {"action": "log_change", "note": {"text": "Fixed", "resolution": True}, "close": True},
        {"action": "log_change", "time_entry": {"hours": 2}, "status_id": 3},
        {"action": "log_change", "note": {"text": "Asked"}, "status_name": "Waiting on Client"},
    ],
)
def test_each_action_with_what_it_changes_is_accepted(fields: dict[str, Any]) -> None:
    assert command(**fields).action is CommandAction(fields["action"])


@pytest.mark.parametrize(
    "fields",
    [
        {"action": "update_status"},
        {"action": "add_note"},
        {"action": "add_time_entry"},
        {"action": "log_change"},
        {"action": "log_change", "close": True},
        {"action": "complete", "note": {"text": "x"}},
        {"action": "add_note", "note": {"text": "x"}, "status_id": 2},
        {"action": "add_note", "note": {"text": "x"}, "close": True},
        {"action": "log_change", "note": {"text": "x"}, "close": True, "status_id": 2},
        {"action": "log_change", "note": {"text": "x"}, "close": True, "status_name": "Done"},
        {"action": "log_change", "note": {"text": "x"}, "status_id": 2, "status_name": "Done"},
        {"action": "log_change", "note": {"text": "x"}, "status_name": "   "},
        {"action": "log_change", "note": {"text": "x"}, "status_name": "x" * 51},
        {"action": "update_status", "status_id": 2, "status_name": "Done"},
        {"action": "add_note", "note": {"text": "x"}, "status_name": "Done"},
        {"action": "add_note", "note": {"text": "   "}},
        {"action": "add_note", "note": {"text": "x" * 4001}},
        {"action": "add_note", "note": {"text": "bell\x07"}},
        {"action": "add_note", "note": {"text": "x", "visibility": "public"}},
        {"action": "add_time_entry", "time_entry": {"hours": 0}},
        {"action": "add_time_entry", "time_entry": {"hours": 25}},
        {"action": "add_time_entry", "time_entry": {"hours": 0.333}},
        {"action": "add_time_entry", "time_entry": {"hours": 1, "started_at": "2026-11-22T09:00"}},
        {"action": "delete"},
        {"action": "complete", "external_id": "0"},
        {"action": "complete", "external_id": "12; drop"},
        {"action": "complete", "command_id": "a/b"},
        {"action": "complete", "source_type": "company"},
        {"action": "complete", "requested_at": "2026-11-22T09:00:00"},
    ],
)
def test_commands_missing_or_overreaching_are_refused(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        command(**fields)


def test_commands_and_outcomes_travel_as_cloudevents_keyed_by_task() -> None:
    asked = command(action="add_note", note={"text": "Rebooted the switch"})
    record = requested_event(asked)
    assert record.key == b"int-1/service_ticket/4711"
    decoded = events.decode_event(record.headers, record.value)
    assert decoded.type == events.TASK_COMMAND_REQUESTED
    assert decoded.id == "c-1"
    assert TaskCommand.model_validate(decoded.data) == asked

    outcome = CommandOutcome(
        command_id="c-1",
        tenant_id="acme",
        user_id="alex@acme.example",
        integration_id="int-1",
        source_type="service_ticket",
        external_id="4711",
        action=CommandAction.ADD_NOTE,
        status=CommandStatus.FAILED,
        error="ConnectWise refused the change",
    )
    done = events.decode_event(outcome_event(outcome).headers, outcome_event(outcome).value)
    assert done.type == events.TASK_COMMAND_FAILED
    assert done.id == "c-1/outcome"  # the same on every redelivery
    assert CommandOutcome.model_validate(done.data) == outcome


@pytest.mark.parametrize(
    "user_id", ["alex+ops@acme.example", "auth0|5f7c8ec7", "ülla@acme.example"]
)
def test_users_are_named_as_their_identity_provider_names_them(user_id: str) -> None:
    assert command(action="complete", user_id=user_id).user_id == user_id


@pytest.mark.parametrize("user_id", ["", "alex ops", "alex\nops", "a" * 129])
def test_user_ids_with_whitespace_or_control_characters_are_refused(user_id: str) -> None:
    with pytest.raises(ValidationError):
        command(action="complete", user_id=user_id)
