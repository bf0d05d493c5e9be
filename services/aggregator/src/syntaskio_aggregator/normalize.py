"""ConnectWise records → unified `Task`. Pure functions: no I/O, never guesses silently.

Tickets (service and project) become tasks of their own kind. The event's `context`
carries the ticket's board status and priority records, so status and priority follow
ConnectWise's own metadata (`closedStatus`, `escalationStatus`, `level`, `sortOrder`)
before names; a ticket without a `requiredDate` is due when the member's earliest
schedule entry for it ends (`ticket_status`, `ticket_priority`, `ticket_due`); an open
service ticket's next SLA target comes from its own SLA fields (`ticket_sla`). A
malformed value falls back to the default (pending, medium, no due date, …): only a
record without identity or version is refused, with `NormalizationError`.

A project phase (for connections that show phases, the connector publishes the open
phases of open projects the member works on) becomes a `project_phase` task: titled
"{phase} — {project}", due at its `deadlineDate` (else its `scheduledEnd`), in progress
when its status says so or the connector saw its scheduled start pass
(`context.started`), otherwise pending; phases have no priority, so medium; linked to the
project in ConnectWise. A removal deletes the task, whatever its kind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeGuard

from syntaskio_common.connectwise_links import project_url, ticket_url
from syntaskio_common.task import (
    SlaStage,
    SourceType,
    Task,
    TaskPriority,
    TaskSla,
    TaskSource,
    TaskStatus,
    parse_timestamp,
    task_id,
)


class NormalizationError(ValueError):
    """The record lacks what a task needs; it goes to the dead-letter queue."""


_IN_PROGRESS: Final = re.compile(r"progress|working|assigned|scheduled|acknowledged", re.I)
_PRIORITY_WORDS: Final = (
    (re.compile(r"emergency|critical|urgent|priority\s*1\b", re.I), TaskPriority.URGENT),
    (re.compile(r"\bhigh\b|quick|priority\s*2\b", re.I), TaskPriority.HIGH),
    (re.compile(r"\blow\b|do not respond|priority\s*[45]\b", re.I), TaskPriority.LOW),
)
_PRIORITY_LEVELS: Final = {p.value: p for p in TaskPriority}


def _name(value: Any) -> str | None:
    if isinstance(value, Mapping):
        name = value.get("name") or value.get("identifier")
        return str(name) if name else None
    return None


def _ref(value: Any) -> dict[str, Any] | None:
    if not isinstance(value, Mapping):
        return None
    return {k: value[k] for k in ("id", "identifier", "name") if k in value}


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _matching(ref: Any, meta: Any) -> Mapping[str, Any]:
    """The metadata record, unless its `id` says it is not the one the ticket refers to:
    a mixed-up context must not close or escalate the wrong ticket."""
    record = _mapping(meta)
    ref_id, meta_id = _mapping(ref).get("id"), record.get("id")
    if _is_int(ref_id) and _is_int(meta_id) and ref_id != meta_id:
        return {}
    return record


# SLA stages past "respond" (`escalationStatus`): someone has taken the ticket on.
# `NotResponded` and `NoEscalation` (the waiting stage) say nothing either way.
_STARTED_ESCALATIONS: Final = frozenset({"responded", "resolutionplan", "resolved"})


def ticket_status(
    ticket: Mapping[str, Any], status_meta: Mapping[str, Any] | None = None
) -> TaskStatus:
    """Completed once ConnectWise closes it: `closedFlag`, or a board status marked
    `closedStatus` (the flag can lag the status). The board's initial status
    (`defaultFlag`, e.g. "New") is pending whatever it is called; a status at an SLA
    stage past the response (`escalationStatus` Responded, ResolutionPlan, Resolved) is
    in progress; otherwise the status name decides ("In Progress", "Assigned", …)."""
    meta = _matching(ticket.get("status"), status_meta)
    if ticket.get("closedFlag") is True or meta.get("closedStatus") is True:
        return TaskStatus.COMPLETED
    if meta.get("defaultFlag") is True:
        return TaskStatus.PENDING
    escalation = meta.get("escalationStatus")
    if isinstance(escalation, str) and escalation.lower() in _STARTED_ESCALATIONS:
        return TaskStatus.IN_PROGRESS
    if _IN_PROGRESS.search(_name(ticket.get("status")) or _name(meta) or ""):
        return TaskStatus.IN_PROGRESS
    return TaskStatus.PENDING


def _by_rank(sort_order: int) -> TaskPriority:
    """ConnectWise ranks priorities by `sortOrder`, most urgent first; the stock ones
    ("Priority 1 - Emergency Response" … "Priority 5 - Next Time") are 1…5."""
    if sort_order <= 1:
        return TaskPriority.URGENT
    if sort_order == 2:
        return TaskPriority.HIGH
    if sort_order == 3:
        return TaskPriority.MEDIUM
    return TaskPriority.LOW


def ticket_priority(
    ticket: Mapping[str, Any], priority_meta: Mapping[str, Any] | None = None
) -> TaskPriority:
    """ConnectWise's own `level` when it is one of ours ("NotApplicable" is not); else the
    priority's rank (`sortOrder` of the priority record, else the reference's `sort`);
    else words in its name (renamed priorities keep "Emergency", "Low", …); else medium."""
    ref = _mapping(ticket.get("priority"))
    meta = _matching(ref, priority_meta)
    for level in (ref.get("level"), meta.get("level")):
        if isinstance(level, str) and level.lower() in _PRIORITY_LEVELS:
            return _PRIORITY_LEVELS[level.lower()]
    for rank in (meta.get("sortOrder"), ref.get("sort")):
        if _is_int(rank) and rank >= 0:
            return _by_rank(rank)
    name = _name(ref) or _name(meta) or ""
    for pattern, mapped in _PRIORITY_WORDS:
        if pattern.search(name):
            return mapped
    return TaskPriority.MEDIUM


def _schedule(assignment: Any) -> list[dict[str, Any]]:
    """The member's open schedule entries for the record (the connector sends only open
    ones), as far as a task shows them; odd members are skipped, odd fields dropped."""
    entries = _mapping(assignment).get("schedule")
    if not isinstance(entries, list):
        return []
    return [
        {
            "id": entry.get("id") if _is_int(entry.get("id")) else None,
            "date_start": _string(entry.get("date_start")),
            "date_end": _string(entry.get("date_end")),
        }
        for entry in entries
        if isinstance(entry, Mapping)
    ]


_SLA_STEPS: Final = (
    (SlaStage.RESPOND, "respondMinutes", "dateResponded"),
    (SlaStage.PLAN, "resPlanMinutes", "dateResplan"),
    (SlaStage.RESOLVE, "resolveMinutes", "dateResolved"),
)


def ticket_sla(ticket: Mapping[str, Any]) -> TaskSla | None:
    """An open ticket's SLA, from its own fields: each target is `escalationStartDateUTC`
    (when the SLA clock started) plus `respondMinutes`, `resPlanMinutes` or
    `resolveMinutes`; the next is the first whose `dateResponded`, `dateResplan` or
    `dateResolved` is unset. Wall-clock minutes: ConnectWise counts the SLA's calendar's
    business hours, which the ticket does not carry, so a business-hours SLA is due
    later than shown. None when closed, without a clock or with every step done."""
    start = parse_timestamp(ticket.get("escalationStartDateUTC"))
    if start is None or ticket.get("closedFlag") is True:
        return None
    targets: dict[SlaStage, datetime | None] = {}
    due: tuple[SlaStage, datetime] | None = None
    for stage, minutes_field, done_field in _SLA_STEPS:
        minutes = ticket.get(minutes_field)
        target = start + timedelta(minutes=minutes) if _is_int(minutes) and minutes >= 0 else None
        targets[stage] = target
        if due is None and target is not None and not ticket.get(done_field):
            due = (stage, target)
    if due is None:
        return None
    in_sla = ticket.get("isInSla")
    return TaskSla(
        name=_name(ticket.get("sla")),
        stage=due[0],
        due_at=due[1],
        respond_by=targets[SlaStage.RESPOND],
        plan_by=targets[SlaStage.PLAN],
        resolve_by=targets[SlaStage.RESOLVE],
        in_sla=in_sla if isinstance(in_sla, bool) else None,
    )


def ticket_due(
    ticket: Mapping[str, Any], schedule: Iterable[Mapping[str, Any]] = ()
) -> datetime | None:
    """`requiredDate` when set: it is what was promised. Otherwise the member's earliest
    open schedule entry (by start, else end) says when the work is planned to be done:
    its end, else its start."""
    required = parse_timestamp(ticket.get("requiredDate"))
    if required is not None:
        return required
    planned = []
    for entry in schedule:
        start = parse_timestamp(entry.get("date_start"))
        end = parse_timestamp(entry.get("date_end"))
        when, due = start or end, end or start
        if when is not None and due is not None:
            planned.append((when, due))
    return min(planned)[1] if planned else None


def _resources(value: Any) -> list[str]:
    if not isinstance(value, str):
        return []
    return [r.strip() for r in value.split(",") if r.strip()]


def _required(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        raise NormalizationError(f"missing {key}")
    return str(value)


TICKET_TYPES: Final = frozenset({SourceType.SERVICE_TICKET, SourceType.PROJECT_TICKET})


def source_type(data: Mapping[str, Any]) -> SourceType:
    """Which kind of record a raw event is about (its `entity`)."""
    entity = data.get("entity")
    for kind in SourceType:
        if entity == kind.value:
            return kind
    raise NormalizationError(f"unsupported entity {entity!r}")


def ticket_type(data: Mapping[str, Any]) -> SourceType:
    """Which kind of ticket a raw event is about (its `entity`)."""
    kind = source_type(data)
    if kind not in TICKET_TYPES:
        raise NormalizationError(f"unsupported entity {kind.value!r}")
    return kind


def normalize(data: Mapping[str, Any]) -> Task:
    """A raw `record.upserted` event's data → Task, by the record's kind."""
    if source_type(data) is SourceType.PROJECT_PHASE:
        return normalize_phase(data)
    return normalize_ticket(data)


def _record(data: Mapping[str, Any]) -> tuple[Mapping[str, Any], str, Mapping[str, Any]]:
    """The event's record, its id and its `_info`."""
    record = data.get("record")
    if not isinstance(record, Mapping):
        raise NormalizationError("missing record")
    external_id = _required(record, "id")
    info = record.get("_info")
    return record, external_id, info if isinstance(info, Mapping) else {}


def _updated_at(info: Mapping[str, Any]) -> datetime:
    updated_at = parse_timestamp(info.get("lastUpdated"))
    if updated_at is None:
        raise NormalizationError("missing or invalid _info.lastUpdated")
    return updated_at


def _task_id(tenant_id: str, user_id: str, kind: SourceType, external_id: str) -> str:
    """The task's id. Identity that is not valid Unicode (a lone surrogate, which JSON
    escapes can carry) cannot be hashed into one, so the record is refused."""
    try:
        return task_id(tenant_id, user_id, TaskSource.CONNECTWISE, kind, external_id)
    except UnicodeEncodeError as error:
        raise NormalizationError("identity is not valid Unicode") from error


def _url(link: Callable[[str, str, str], str], base: str, company: str, record: str) -> str | None:
    """A deep link, or None when the parts cannot be put in a URL (invalid Unicode)."""
    try:
        return link(base, company, record)
    except UnicodeEncodeError:
        return None


def _numeric(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def normalize_ticket(data: Mapping[str, Any]) -> Task:
    """A raw `record.upserted` event's data (envelope + ConnectWise service or project
    ticket) → Task."""
    kind = ticket_type(data)
    tenant_id, user_id = _required(data, "tenant_id"), _required(data, "user_id")
    integration_id = _required(data, "integration_id")
    ticket, external_id, info = _record(data)
    updated_at = _updated_at(info)
    summary = ticket.get("summary")
    company = ticket.get("company")
    context = _mapping(data.get("context"))
    schedule = _schedule(data.get("assignment"))
    return Task(
        id=_task_id(tenant_id, user_id, kind, external_id),
        tenant_id=tenant_id,
        user_id=user_id,
        integration_id=integration_id,
        source=TaskSource.CONNECTWISE,
        source_type=kind,
        external_id=external_id,
        title=str(summary).strip() if summary else f"Ticket #{external_id}",
        description=_text(ticket.get("initialDescription")),
        status=ticket_status(ticket, context.get("status")),
        source_status=_name(ticket.get("status")),
        priority=ticket_priority(ticket, context.get("priority")),
        source_priority=_name(ticket.get("priority")),
        due_at=ticket_due(ticket, schedule),
        sla=ticket_sla(ticket),
        created_at=parse_timestamp(info.get("dateEntered")),
        source_updated_at=updated_at,
        url=_url(
            ticket_url,
            str(data.get("api_base_url", "")),
            str(data.get("company_id", "")),
            external_id,
        )
        if data.get("api_base_url")
        else None,
        source_data={
            "ticket_id": _numeric(external_id),
            "record_type": ticket.get("recordType"),
            "board": _ref(ticket.get("board")),
            "company": _ref(company),
            "owner": _ref(ticket.get("owner")),
            "resources": _resources(ticket.get("resources")),
            "type": _ref(ticket.get("type")),
            "project": _ref(ticket.get("project")),
            "phase": _ref(ticket.get("phase")),
            "wbs_code": ticket.get("wbsCode"),
            "assignment": _assignment(data.get("assignment")),
            "schedule": schedule,
            # The customer wrote since a member last cleared it (a notification's cue).
            "customer_updated": ticket.get("customerUpdatedFlag") is True,
        },
    )


def phase_status(phase: Mapping[str, Any], started: bool) -> TaskStatus:
    """As a ticket's (by status name), and in progress once its scheduled start passed."""
    status = ticket_status(phase)
    if status is TaskStatus.PENDING and started:
        return TaskStatus.IN_PROGRESS
    return status


def phase_title(phase: Mapping[str, Any], project_name: str | None, phase_id: str) -> str:
    description = phase.get("description")
    title = str(description).strip() if description else ""
    title = title or f"Phase #{phase_id}"
    return f"{title} — {project_name}" if project_name else title


def normalize_phase(data: Mapping[str, Any]) -> Task:
    """A raw `record.upserted` event's data (envelope + ConnectWise project phase, its
    project in `context.project`) → Task."""
    kind = source_type(data)
    if kind is not SourceType.PROJECT_PHASE:
        raise NormalizationError(f"not a project phase: {kind.value!r}")
    tenant_id, user_id = _required(data, "tenant_id"), _required(data, "user_id")
    integration_id = _required(data, "integration_id")
    phase, external_id, info = _record(data)
    updated_at = _updated_at(info)
    context = _mapping(data.get("context"))
    project = _mapping(context.get("project"))
    project_id = project.get("id", phase.get("projectId"))
    if not _is_int(project_id):
        project_id = None
    project_name = _text(project.get("name"))
    api_base_url = data.get("api_base_url")
    return Task(
        id=_task_id(tenant_id, user_id, kind, external_id),
        tenant_id=tenant_id,
        user_id=user_id,
        integration_id=integration_id,
        source=TaskSource.CONNECTWISE,
        source_type=kind,
        external_id=external_id,
        title=phase_title(phase, project_name, external_id),
        description=_text(phase.get("notes")),
        status=phase_status(phase, context.get("started") is True),
        source_status=_name(phase.get("status")),
        priority=TaskPriority.MEDIUM,
        source_priority=None,
        due_at=parse_timestamp(phase.get("deadlineDate"))
        or parse_timestamp(phase.get("scheduledEnd")),
        created_at=parse_timestamp(info.get("dateEntered")),
        source_updated_at=updated_at,
        url=_url(project_url, str(api_base_url), str(data.get("company_id", "")), str(project_id))
        if api_base_url and project_id is not None
        else None,
        source_data={
            "project": {"id": project_id, "name": project_name},
            "phase": {"id": _numeric(external_id), "wbs_code": phase.get("wbsCode")},
            "company": _ref(project.get("company")),
            "board": _ref(project.get("board")),
            "project_status": _ref(project.get("status")),
            "scheduled_start": phase.get("scheduledStart")
            if isinstance(phase.get("scheduledStart"), str)
            else None,
            "assignment": _assignment(data.get("assignment")),
        },
    )


def integration_generation(data: Mapping[str, Any]) -> int:
    """Which connection of the integration synced the record (0 before generations)."""
    value = data.get("integration_generation", 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise NormalizationError("invalid integration_generation")
    return value


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def _assignment(value: Any) -> list[str]:
    """Why the ticket is the member's: owner, resource, schedule."""
    reasons = value.get("reasons") if isinstance(value, Mapping) else None
    return [str(r) for r in reasons] if isinstance(reasons, list) else []


@dataclass(frozen=True)
class Removal:
    tenant_id: str
    user_id: str
    source_type: SourceType
    external_id: str
    observed_at: datetime


def removal(data: Mapping[str, Any]) -> Removal:
    """A raw `record.removed` event's data (any kind of record) → which task to drop, as
    of when."""
    observed = parse_timestamp(data.get("observed_at"))
    if observed is None:
        raise NormalizationError("missing or invalid observed_at")
    return Removal(
        tenant_id=_required(data, "tenant_id"),
        user_id=_required(data, "user_id"),
        source_type=source_type(data),
        external_id=_required(data, "external_id"),
        observed_at=observed,
    )
