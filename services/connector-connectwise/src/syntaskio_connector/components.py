"""The connector's parts, as the wiring (`app.py`) builds them and the routes and
subscribers use them."""

from __future__ import annotations

from dataclasses import dataclass

from syntaskio_connector.access import ConnectWiseAccess
from syntaskio_connector.budget import ApiBudget
from syntaskio_connector.details import TicketDetails
from syntaskio_connector.jobs import SyncJobs
from syntaskio_connector.options import SyncOptionsStore
from syntaskio_connector.search import TicketSearch
from syntaskio_connector.sync import SyncSchedule, SyncScheduler
from syntaskio_connector.webhooks import WebhookReceiver, WebhookRegistrations, WebhookStats
from syntaskio_connector.writeback import CommandExecutor, CommandJournal


@dataclass(frozen=True)
class Components:
    access: ConnectWiseAccess
    budget: ApiBudget
    jobs: SyncJobs
    schedule: SyncSchedule
    scheduler: SyncScheduler
    sync_options: SyncOptionsStore
    registrations: WebhookRegistrations
    webhook_stats: WebhookStats
    receiver: WebhookReceiver
    journal: CommandJournal
    executor: CommandExecutor
    details: TicketDetails
    searches: TicketSearch
