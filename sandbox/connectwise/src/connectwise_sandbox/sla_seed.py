"""The SLA facts of the seeded service tickets, from a random stream of their own
(`sla:{seed}`), so the tickets of a seed are otherwise the same as before SLAs existed.

A ticket carries the documented `Ticket` SLA fields: `sla` (the SLA, a reference),
`escalationStartDateUTC` (when its SLA clock started), `respondMinutes`,
`resPlanMinutes` and `resolveMinutes` (the SLA's targets for the ticket's priority, in
minutes from that start), `dateResponded`, `dateResplan` and `dateResolved` (when each
was done, absent until then) and `isInSla`. Project tickets have none: the
`ProjectTicket` model documents no SLA fields.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from connectwise_sandbox.records import (
    JsonObject,
    format_timestamp,
    parse_timestamp,
)

STANDARD_SLA: Final = {"id": 1, "name": "Standard SLA"}
# Respond, plan and resolve targets (minutes) by the priority's level.
TARGETS: Final = {
    "Urgent": (60, 120, 240),
    "High": (120, 480, 1440),
    "Medium": (240, 1440, 4320),
    "Low": (480, 2880, 10080),
}


def with_slas(seed: int, tickets: Iterable[JsonObject], anchor: datetime) -> tuple[JsonObject, ...]:
    """The service tickets with their SLA facts as of `anchor`: an open ticket's clock
    started within its resolve target before `anchor` (not before it was entered), and
    each step is done or not by then; a closed ticket met or missed all three."""
    rng = random.Random(f"sla:{seed}")
    return tuple(_with_sla(rng, ticket, anchor) for ticket in tickets)


def _with_sla(rng: random.Random, ticket: JsonObject, anchor: datetime) -> JsonObject:
    level = ticket["priority"].get("level", "Medium")
    targets = TARGETS.get(level, TARGETS["Medium"])
    entered = parse_timestamp(ticket["_info"]["dateEntered"])
    if ticket["closedFlag"]:
        start = entered
        end = parse_timestamp(ticket.get("closedDate") or ticket["_info"]["lastUpdated"])
    else:
        # Its clock (re)started lately: a mix of tickets in time, due soon and late.
        back = timedelta(minutes=rng.uniform(0, targets[2] * 1.3))
        start = max(entered, (anchor - back).replace(second=0, microsecond=0))
        end = anchor
    fields: JsonObject = {
        "sla": dict(STANDARD_SLA),
        "escalationStartDateUTC": format_timestamp(start),
        "respondMinutes": targets[0],
        "resPlanMinutes": targets[1],
        "resolveMinutes": targets[2],
    }
    in_sla = True
    done = start
    for key, target in zip(("dateResponded", "dateResplan", "dateResolved"), targets, strict=True):
        due = start + timedelta(minutes=target)
        # Each step a while after the one before, around its target.
        when = max(done, start + timedelta(minutes=target * rng.uniform(0.3, 1.2)))
        if ticket["closedFlag"]:
            # Every step was done by the close, the resolution at it.
            when = end if key == "dateResolved" else min(when, end)
        elif when > end or key == "dateResolved":
            in_sla = in_sla and end <= due  # the step under way is not late yet
            break
        fields[key] = format_timestamp(when.astimezone(UTC))
        in_sla = in_sla and when <= due
        done = when
    fields["isInSla"] = in_sla
    return _placed(ticket, fields)


def _placed(ticket: JsonObject, fields: JsonObject) -> JsonObject:
    """The ticket with the SLA fields before its `_info` (records are rebuilt, never
    changed in place)."""
    record = {key: value for key, value in ticket.items() if key != "_info"}
    return record | fields | {"_info": ticket["_info"]}
