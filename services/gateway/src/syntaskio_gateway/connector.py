"""The connector's endpoints for the gateway, called with `CONNECTOR_API_TOKEN`. They trust
their caller:
every method here is called only after the gateway checked that the user owns what is
named (the integration through auth-service, the command through `CommandRequests`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from syntaskio_common.commands import CommandOutcome
from syntaskio_common.integrations import SyncJob, SyncOptions, SyncStatus
from syntaskio_common.ticket_detail import TicketDetail
from syntaskio_common.ticket_search import TicketSearchResults

T = TypeVar("T")
# The connector's answers that are the user's to read (not an outage).
REFUSALS = frozenset({404, 409, 422, 502, 503})


class ConnectorUnavailable(Exception):
    """The connector could not be reached or gave an unexpected answer."""


class ConnectorRefused(Exception):
    """The connector answered a problem to pass on to the user (`status`, `detail`,
    and `retry_after` when it says when to try again)."""

    def __init__(self, status: int, detail: str, retry_after: str | None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class ConnectorApi:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http  # with the connector's base URL and token

    async def sync_status(self, tenant_id: str, integration_id: str) -> SyncStatus:
        path = f"/internal/v1/integrations/{integration_id}/sync-status"
        response = await self._call("GET", path, {"tenant_id": tenant_id})
        return _validated(SyncStatus, response)

    async def sync_history(self, tenant_id: str, integration_id: str, limit: int) -> list[SyncJob]:
        path = f"/internal/v1/integrations/{integration_id}/sync-jobs"
        response = await self._call("GET", path, {"tenant_id": tenant_id, "limit": str(limit)})
        return _validated(list[SyncJob], response)

    async def sync_now(self, integration_id: str, resync: bool = False) -> None:
        """Queue a sync; `resync` asks for a full listing instead of the incremental one."""
        params = {"resync": "true"} if resync else None
        await self._call("POST", f"/internal/v1/integrations/{integration_id}/sync", params)

    async def set_sync_options(
        self, tenant_id: str, integration_id: str, options: SyncOptions
    ) -> SyncOptions:
        """Store what the connection syncs; the connector syncs at once when it changed."""
        path = f"/internal/v1/integrations/{integration_id}/sync-options"
        body = options.model_dump(mode="json")
        response = await self._call("PUT", path, {"tenant_id": tenant_id}, json=body)
        return _validated(SyncOptions, response)

    async def command_outcome(
        self, tenant_id: str, user_id: str, command_id: str
    ) -> CommandOutcome | None:
        """None while the connector has not seen the command."""
        params = {"tenant_id": tenant_id, "user_id": user_id}
        response = await self._call("GET", f"/internal/v1/commands/{command_id}", params)
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        return _validated(CommandOutcome, response)

    async def ticket_detail(
        self,
        tenant_id: str,
        integration_id: str,
        source_type: str,
        ticket_id: str,
        known_updated_at: datetime,
        acting_for: str | None = None,
    ) -> TicketDetail:
        """The ticket's detail (`acting_for`: the user who found it, as whose member it
        is read); ConnectorRefused with the connector's 404 (gone from ConnectWise), 409
        (no active connection, or it cannot act as the member), 502 or 503."""
        path = f"/internal/v1/integrations/{integration_id}/tickets/{source_type}/{ticket_id}"
        params = {"tenant_id": tenant_id, "known_updated_at": known_updated_at.isoformat()}
        if acting_for is not None:
            params["acting_for"] = acting_for
        return _validated(TicketDetail, await self._refusable(path, params))

    async def search_tickets(
        self, tenant_id: str, user_id: str, query: str, source_type: str
    ) -> TicketSearchResults:
        """Tickets found as the user's member; ConnectorRefused with the connector's 409
        (no connection, or it cannot act as the member), 422, 502 or 503."""
        params = {"tenant_id": tenant_id, "user_id": user_id, "q": query}
        params["source_type"] = source_type
        response = await self._refusable("/internal/v1/ticket-search", params)
        return _validated(TicketSearchResults, response)

    async def _refusable(self, path: str, params: dict[str, str]) -> httpx.Response:
        """GET, with the connector's problems for the user (`REFUSALS`) passed on as
        ConnectorRefused; any other failure is ConnectorUnavailable."""
        try:
            response = await self._http.get(path, params=params)
        except httpx.HTTPError as error:
            raise ConnectorUnavailable(f"GET {path}: {type(error).__name__}") from error
        if response.status_code in REFUSALS:
            try:
                detail = str(response.json()["detail"])
            except (ValueError, KeyError, TypeError):
                raise ConnectorUnavailable(f"GET {path}: HTTP {response.status_code}") from None
            raise ConnectorRefused(
                response.status_code, detail, response.headers.get("Retry-After")
            )
        if response.is_error:
            raise ConnectorUnavailable(f"GET {path}: HTTP {response.status_code}")
        return response

    async def _call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> httpx.Response:
        """The answer, or ConnectorUnavailable (a 404 is the caller's to read)."""
        try:
            response = await self._http.request(method, path, params=params, json=json)
        except httpx.HTTPError as error:
            raise ConnectorUnavailable(f"{method} {path}: {type(error).__name__}") from error
        if response.is_error and response.status_code != httpx.codes.NOT_FOUND:
            raise ConnectorUnavailable(f"{method} {path}: HTTP {response.status_code}")
        return response


def _validated(shape: type[T], response: httpx.Response) -> T:
    if response.status_code == httpx.codes.NOT_FOUND:
        raise ConnectorUnavailable(f"{response.request.url.path}: not found")
    try:
        return TypeAdapter(shape).validate_json(response.content)
    except ValidationError as error:
        raise ConnectorUnavailable(f"unexpected answer ({error.error_count()} errors)") from error
