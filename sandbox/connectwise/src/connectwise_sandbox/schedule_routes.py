"""Schedule entries (`/schedule/entries`): who is scheduled on what. An entry with
`type/identifier` "S" schedules its member on the ticket `objectId`; "C" entries are
activities, whose `objectId` is not a ticket's. Read-only here; the admin API changes
them."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from connectwise_sandbox.auth import authenticate
from connectwise_sandbox.responses import collection_routes, documented_query

router = APIRouter(
    dependencies=[Depends(authenticate), Depends(documented_query)], tags=["ConnectWise API"]
)

collection_routes(
    router,
    "/schedule/entries",
    "ScheduleEntry",
    lambda s: s.store.schedule_entries(),
    lambda s: s.schedule_entry,
)
