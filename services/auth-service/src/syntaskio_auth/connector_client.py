"""The connector's internal API, as auth-service uses it."""

from __future__ import annotations

import logging

import httpx

logger = logging.getLogger(__name__)


class ConnectorClient:
    def __init__(self, http: httpx.AsyncClient, base_url: str, internal_token: str) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._headers = {
            "Authorization": f"Bearer {internal_token}",
            "X-Syntaskio-Caller": "auth-service",
        }

    async def remove_webhooks(self, integration_id: str) -> bool:
        """Ask the connector to delete the integration's ConnectWise callbacks while its
        credentials still work. Best effort: a disconnect never fails because of it (a
        callback left behind is refused by the connector once the connection is gone)."""
        try:
            response = await self._http.delete(
                f"{self._base_url}/internal/v1/integrations/{integration_id}/webhooks",
                headers=self._headers,
                timeout=10.0,
            )
            response.raise_for_status()
        except httpx.HTTPError as error:
            logger.warning(
                "could not remove ConnectWise callbacks",
                extra={"integration_id": integration_id, "error_type": type(error).__name__},
            )
            return False
        return True
