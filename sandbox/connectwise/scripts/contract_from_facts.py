"""Write the sandbox's contract data file from the documented ConnectWise facts.

    python sandbox/connectwise/scripts/contract_from_facts.py /path/to/shared/connectwise

reads `models-2025.1.json` there (model -> field -> {type, required, ref}, read from the
OpenAPI-generated client of ConnectWise's API document 2025.1) and writes
`src/connectwise_sandbox/contract/models-2025.1.json`: every model the sandbox serves or
takes, every model those point at through `ref` (transitively), field for field as
documented, plus our own read-only lists (`READ_ONLY` below). The sandbox reads only the
written file; the facts folder is not part of the repository.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Final

VERSION: Final = "2025.1"
OUT: Final = (
    Path(__file__).resolve().parent.parent
    / "src/connectwise_sandbox/contract"
    / f"models-{VERSION}.json"
)

# What the sandbox serves or takes. `MemberInfo` is `/system/myMembers/info`; `Info` is
# `/system/info`; `FilterValues` a search body; `PatchOperation` one JSON Patch operation.
ENTITIES: Final = (
    "Ticket",
    "ProjectTicket",
    "Project",
    "ProjectPhase",
    "PhaseStatus",
    "ProjectStatus",
    "ScheduleEntry",
    "Board",
    "BoardStatus",
    "Priority",
    "Member",
    "MemberInfo",
    "Company",
    "Contact",
    "CallbackEntry",
    "TimeEntry",
    "WorkType",
    "ServiceNote",
    "Info",
    "FilterValues",
    "PatchOperation",
)

# The document marks no field read-only: these lists are OUR choice, kept conservative —
# only what the server certainly sets itself (ids, `_info`, close stamps, SLA clocks,
# totals summed from other records). Every model with `id`/`_info` gets both.
READ_ONLY: Final[dict[str, tuple[str, ...]]] = {
    "Ticket": (
        "recordType",  # which table the ticket is in: service or project
        "closedDate",
        "closedBy",
        "actualHours",  # the sum of the ticket's time entries
        "hasChildTicket",
        "hasMergedChildTicketFlag",
        "mergedParentTicket",
        # SLA clocks and stamps, computed from the SLA and the ticket's history
        "isInSla",
        "slaStatus",
        "dateResponded",
        "dateResplan",
        "dateResolved",
        "respondedBy",
        "resplanBy",
        "resolvedBy",
        "respondMinutes",
        "resPlanMinutes",
        "resolveMinutes",
        "respondedHours",
        "resplanHours",
        "resolutionHours",
        "respondedSkippedMinutes",
        "resplanSkippedMinutes",
        "minutesBeforeWaiting",
        "minutesWaiting",
        "escalationStartDateUTC",
    ),
    "ProjectTicket": ("closedDate", "closedBy", "actualHours"),
    "Project": ("actualHours", "actualStart", "actualEnd", "scheduledHours"),
    "ProjectPhase": ("projectId", "actualHours", "actualStart", "actualEnd", "scheduledHours"),
    "Member": ("lastLogin",),
    "CallbackEntry": ("memberId",),  # the member whose credentials registered it
    "TimeEntry": ("dateEntered", "enteredBy"),
    "ServiceNote": ("dateCreated", "createdBy", "sentimentScore"),
    # A reference names its record; the copies it carries of that record's other fields
    # (sort order, level, capacity) cannot be written through it.
    "ServiceStatusReference": ("sort",),
    "PriorityReference": ("sort", "level"),
    "MemberReference": ("dailyCapacity",),
}

# `_info` is documented as a string map. For conditions these keys resolve, typed so:
INFO_KEYS: Final = {
    "lastUpdated": "date-time",
    "dateEntered": "date-time",
    "updatedBy": "string",
    "enteredBy": "string",
}

NOTES: Final = [
    "Written by sandbox/connectwise/scripts/contract_from_facts.py from the documented "
    f"ConnectWise PSA API {VERSION} facts (models-{VERSION}.json). Do not edit by hand.",
    "models: model -> field -> {type, required, ref}, exactly as documented.",
    "readOnly: OUR choice (the document marks none): fields the server sets itself.",
    "infoKeys: the `_info` keys conditions may name, and their types (our choice: "
    "lastUpdated/dateEntered are date-times, the others strings).",
    "notInFacts: models a documented field points at that the facts do not describe.",
    "ProjectTeamMember (/project/projects/{id}/teamMembers) is not in the facts either.",
]


def closure(models: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The entities and every model reachable from them through `ref`, and the refs the
    facts do not describe."""
    seen: set[str] = set()
    missing: set[str] = set()
    todo = list(ENTITIES)
    while todo:
        name = todo.pop()
        if name in seen or name in missing:
            continue
        if name not in models:
            missing.add(name)
            continue
        seen.add(name)
        todo.extend(spec["ref"] for spec in models[name].values() if spec.get("ref"))
    return sorted(seen), sorted(missing)


def build(facts: Path) -> dict[str, Any]:
    models = json.loads((facts / f"models-{VERSION}.json").read_text(encoding="utf-8"))
    names, missing = closure(models)
    read_only: dict[str, list[str]] = {}
    for name in names:
        fields = models[name]
        chosen = [f for f in ("id", "_info") if f in fields and not name.endswith("Reference")]
        chosen += ["_info"] if name.endswith("Reference") and "_info" in fields else []
        for field in READ_ONLY.get(name, ()):
            if field not in fields:
                raise SystemExit(f"{name}.{field} is not a documented field")
            chosen.append(field)
        if chosen:
            read_only[name] = chosen
    return {
        "notes": NOTES,
        "version": VERSION,
        "infoKeys": INFO_KEYS,
        "notInFacts": missing,
        "readOnly": read_only,
        "models": {
            name: {
                field: {key: spec[key] for key in ("type", "required", "ref") if key in spec}
                for field, spec in sorted(models[name].items())
            }
            for name in names
        },
    }


def render(contract: dict[str, Any]) -> str:
    """JSON with one line per field (short diffs when the facts change)."""
    lines = ["{"]
    for key, value in contract.items():
        if key != "models":
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)},")
    lines.append('  "models": {')
    models = list(contract["models"].items())
    for index, (name, fields) in enumerate(models):
        lines.append(f"    {json.dumps(name)}: {{")
        rows = [f"      {json.dumps(f)}: {json.dumps(spec)}" for f, spec in fields.items()]
        lines.append(",\n".join(rows))
        lines.append("    }" + ("," if index < len(models) - 1 else ""))
    lines += ["  }", "}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit(f"usage: {argv[0]} FACTS_DIR (holding models-{VERSION}.json)")
    OUT.write_text(render(build(Path(argv[1]))), encoding="utf-8")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv)
