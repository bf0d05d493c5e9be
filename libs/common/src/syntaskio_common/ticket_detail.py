"""A ticket's detail as the dashboard shows it: what a technician reads before working it
(the description, the notes in order, the time logged, who to call, where it is
scheduled) and the choices a write-back offers (the board's statuses, the work types). The connector
builds it from ConnectWise on demand; the gateway serves it for one of the user's tasks.

Text from ConnectWise is plain text here and must be shown as text, never as HTML."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, Field

from syntaskio_common.task import SourceType, TaskSla


class DetailNote(BaseModel):
    """A ticket note: a discussion note (`detailDescriptionFlag`) the customer may see,
    an internal one (`internalAnalysisFlag`), and/or the resolution (`resolutionFlag`)."""

    id: int
    text: str
    created_at: AwareDatetime | None = None
    author: str | None = Field(default=None, description="The member or contact who wrote it")
    discussion: bool = False
    internal: bool = False
    resolution: bool = False


class DetailTimeEntry(BaseModel):
    id: int
    member: str | None = Field(default=None, description="Whose time it is (name)")
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    hours: float | None = None
    notes: str | None = None
    billable_option: str | None = None
    work_type: str | None = None


class DetailScheduleEntry(BaseModel):
    id: int
    member: str | None = Field(default=None, description="The scheduled member's identifier")
    member_name: str | None = None
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None
    hours: float | None = None
    done: bool = False
    mine: bool = Field(default=False, description="One of the signed-in user's entries")


class DetailContact(BaseModel):
    id: int | None = None
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    url: str | None = Field(default=None, description="The contact in ConnectWise")


class StatusChoice(BaseModel):
    """A status of the ticket's board; `closed` ones close the ticket."""

    id: int
    name: str
    closed: bool = False


class WorkTypeChoice(BaseModel):
    """What time on the ticket may be logged as; `billable_option` is what an entry of
    this type is billed as unless told otherwise."""

    id: int
    name: str
    billable_option: str | None = None
    default: bool = Field(default=False, description="The ticket's own, else the company's")


class TicketDetail(BaseModel):
    source_type: SourceType
    ticket_id: int
    summary: str
    description: str | None = Field(
        default=None, description="The initial description (the ticket's first note)"
    )
    company: str | None = None
    site: str | None = None
    board: str | None = None
    status: StatusChoice | None = None
    priority: str | None = None
    type: str | None = None
    sub_type: str | None = None
    item: str | None = None
    owner: str | None = Field(default=None, description="The owner's name")
    resources: list[str] = Field(default_factory=list, description="Member identifiers")
    project: str | None = None
    phase: str | None = None
    required_date: AwareDatetime | None = None
    budget_hours: float | None = None
    actual_hours: float | None = None
    contact: DetailContact | None = None
    sla: TaskSla | None = Field(
        default=None, description="The task's SLA targets (the dashboard's, not re-read)"
    )
    on_dashboard: bool = Field(
        default=True,
        description="False for a ticket the user found by searching: read and worked as "
        "their own ConnectWise member",
    )
    notes: list[DetailNote] = Field(
        default_factory=list, description="Oldest first, the description not repeated"
    )
    time_entries: list[DetailTimeEntry] = Field(default_factory=list)
    schedule_entries: list[DetailScheduleEntry] = Field(default_factory=list)
    statuses: list[StatusChoice] = Field(
        default_factory=list, description="The board's active statuses, in board order"
    )
    work_types: list[WorkTypeChoice] = Field(
        default_factory=list, description="The active work types, the default first"
    )
    updated_at: AwareDatetime | None = Field(
        default=None, description="The ticket's last change in ConnectWise"
    )
    fetched_at: AwareDatetime = Field(description="When this was read from ConnectWise")
    url: str | None = Field(default=None, description="The ticket in ConnectWise")
