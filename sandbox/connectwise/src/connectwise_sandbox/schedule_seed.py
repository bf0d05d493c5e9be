"""Seeded schedule entries, from their own random stream (`schedule:{seed}`), over the
seeded service and project tickets.

What they exercise, for each of ``atech`` and ``bjones`` (the *focus* members):

* open "S" entries on open tickets the member neither owns nor is a resource of — the
  tickets that are theirs only through the schedule (at least one a project ticket);
* done "S" entries on other such tickets, which must not count;
* "C" (activity) entries whose `objectId` equals the id of yet other such tickets,
  which must not be mistaken for ticket schedules;
* one open "S" entry on a closed ticket, which must not make it an open assignment.

Besides, owners get entries on tickets they own, and members other than the focus ones
get entries at random — so the focus members' schedule-only tickets are exactly the
first kind. Counts follow the ticket count, capped (`MAX_*`) to keep big seeds fast.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, TypeVar

from connectwise_sandbox.records import JsonObject, TimestampFormatter, member_ref
from connectwise_sandbox.vocabulary import ACTIVITY_NAMES, SCHEDULE_TYPES
from connectwise_sandbox.work_records import schedule_entry_record

FIRST_SCHEDULE_ENTRY_ID: Final = 1
FOCUS_MEMBERS: Final = ("atech", "bjones")
# One schedule-only ticket per this many tickets (service + project) for each focus member.
TICKETS_PER_SCHEDULE_ONLY: Final = 50
# Entries for a ticket's owner, and for someone at random, per this many tickets.
TICKETS_PER_OWNER_ENTRY: Final = 10
TICKETS_PER_NOISE_ENTRY: Final = 25
# Caps that keep a 100 000-ticket seed fast.
MAX_SCHEDULE_ONLY: Final = 200
MAX_OWNER_ENTRIES: Final = 5_000
MAX_NOISE_ENTRIES: Final = 2_000
_TRIES_PER_PICK: Final = 50
_DAY: Final = 86_400
_HOUR: Final = 3_600
_T = TypeVar("_T")

# ScheduleTypeReference documents only `id` and `identifier` (no `name`).
SCHEDULE_TYPE_REFS: Final = {
    spec.identifier: {"id": index + 1, "identifier": spec.identifier}
    for index, spec in enumerate(SCHEDULE_TYPES)
}


def holds(ticket: JsonObject, identifier: str) -> bool:
    """Whether the member owns the ticket or is one of its resources."""
    owner = ticket.get("owner")
    if owner is not None and owner["identifier"] == identifier:
        return True
    return identifier in ticket.get("resources", "").split(", ")


def generate_schedule(
    *,
    seed: int,
    anchor: datetime,
    tickets: Sequence[JsonObject],
    project_tickets: Sequence[JsonObject],
    members: Sequence[JsonObject],
) -> tuple[JsonObject, ...]:
    """`members` are the technicians (no API member)."""
    builder = _Builder(random.Random(f"schedule:{seed}"), anchor, members)
    every = [*tickets, *project_tickets]
    if not every:
        return ()
    for _ in range(min(MAX_OWNER_ENTRIES, len(every) // TICKETS_PER_OWNER_ENTRY)):
        ticket = builder.choice(every)
        owner = ticket.get("owner")
        if owner is not None:
            done = ticket["closedFlag"] or builder.random() < 0.4
            builder.ticket_entry(ticket, builder.member(owner["identifier"]), done=done)
    wanted = min(MAX_SCHEDULE_ONLY, max(2, len(every) // TICKETS_PER_SCHEDULE_ONLY))
    for identifier in FOCUS_MEMBERS:
        builder.focus(identifier, tickets, project_tickets, wanted)
    others = [m for m in builder.active if m["identifier"] not in FOCUS_MEMBERS]
    for _ in range(min(MAX_NOISE_ENTRIES, len(every) // TICKETS_PER_NOISE_ENTRY)):
        ticket = builder.choice(every)
        member = builder.choice(others)
        builder.ticket_entry(ticket, member, done=builder.random() < 0.5)
    for _ in range(max(1, min(MAX_NOISE_ENTRIES, len(every) // TICKETS_PER_NOISE_ENTRY) // 5)):
        builder.activity(builder.choice(others), builder.between(1, 1000))
    return tuple(builder.entries)


class _Builder:
    def __init__(self, rng: random.Random, anchor: datetime, members: Sequence[JsonObject]) -> None:
        self._rng = rng
        self.random = rng.random
        self._anchor = int(anchor.timestamp())
        self._stamp = TimestampFormatter()
        self.active = [m for m in members if not m["inactiveFlag"]]
        self._by_identifier = {m["identifier"]: m for m in members}
        # Shared reference dicts, as seeded tickets share theirs; records are never mutated.
        self._refs = {m["identifier"]: member_ref(m) for m in members}
        self.entries: list[JsonObject] = []

    def choice(self, options: Sequence[_T]) -> _T:
        return options[int(self.random() * len(options))]

    def between(self, start: int, stop: int) -> int:
        return start + int(self.random() * max(stop - start, 1))

    def member(self, identifier: str) -> JsonObject:
        return self._by_identifier[identifier]

    def focus(
        self,
        identifier: str,
        tickets: Sequence[JsonObject],
        project_tickets: Sequence[JsonObject],
        wanted: int,
    ) -> None:
        """The schedule-only assignments of one focus member, and the decoys beside them."""
        member = self.member(identifier)

        def open_elsewhere(ticket: JsonObject) -> bool:
            return not ticket["closedFlag"] and not holds(ticket, identifier)

        def closed_elsewhere(ticket: JsonObject) -> bool:
            return bool(ticket["closedFlag"]) and not holds(ticket, identifier)

        taken: set[int] = set()
        chosen = self._pick(project_tickets, max(1, wanted // 3), open_elsewhere, taken)
        chosen += self._pick(tickets, wanted - len(chosen), open_elsewhere, taken)
        for ticket in chosen:
            self.ticket_entry(ticket, member, done=False)
        half = wanted // 2 + 1
        for ticket in self._pick(tickets, half, open_elsewhere, taken):
            self.ticket_entry(ticket, member, done=True)
        for ticket in self._pick(tickets, half, open_elsewhere, taken):
            self.activity(member, ticket["id"])
        for ticket in self._pick(tickets, 1, closed_elsewhere, taken):
            self.ticket_entry(ticket, member, done=False)

    def _pick(
        self,
        records: Sequence[JsonObject],
        count: int,
        fits: Callable[[JsonObject], bool],
        taken: set[int],
    ) -> list[JsonObject]:
        """Up to `count` records that fit and are not taken yet, drawn at random (cheap on
        100 000 tickets, unlike filtering them all), in id order; marks them taken."""
        picked: list[JsonObject] = []
        if not records:
            return picked
        for _ in range(count * _TRIES_PER_PICK):
            if len(picked) >= count:
                break
            record = self.choice(records)
            if record["id"] not in taken and fits(record):
                taken.add(record["id"])
                picked.append(record)
        return sorted(picked, key=lambda record: record["id"])

    def ticket_entry(self, ticket: JsonObject, member: JsonObject, *, done: bool) -> None:
        name = f"{ticket['company']['name']} / {ticket['summary']}"
        self._add(ticket["id"], name, member, "S", done=done)

    def activity(self, member: JsonObject, activity_id: int) -> None:
        self._add(activity_id, self.choice(ACTIVITY_NAMES), member, "C", done=False)

    def _add(self, object_id: int, name: str, member: JsonObject, kind: str, *, done: bool) -> None:
        if done:
            start = self._anchor - self.between(1, 60) * _DAY + self.between(8, 16) * _HOUR
        else:
            start = self._anchor + self.between(-2, 10) * _DAY + self.between(8, 16) * _HOUR
        hours = self.between(1, 5)
        entered = min(start, self._anchor) - self.between(1, 10) * _DAY
        updated = self.between(entered, min(start + hours * _HOUR, self._anchor))
        self.entries.append(
            schedule_entry_record(
                entry_id=FIRST_SCHEDULE_ENTRY_ID + len(self.entries),
                object_id=object_id,
                name=name[:100],
                member=self._refs[member["identifier"]],
                schedule_type=SCHEDULE_TYPE_REFS[kind],
                done=done,
                date_start=self._stamp(start),
                date_end=self._stamp(start + hours * _HOUR),
                hours=float(hours),
                date_entered=self._stamp(entered),
                last_updated=self._stamp(updated),
                updated_by=member["identifier"],
            )
        )
