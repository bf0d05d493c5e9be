"""Talking to the ConnectWise Manage REST API: the one client auth-service and the
connector share (base URL discovery, authentication headers, paging, error mapping).

Callers hand in the `httpx.AsyncClient` (the transport seam for tests) and decide about
retries and budgets; this module only speaks the protocol.
"""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import httpx

API_VERSION: Final = "2025.1"
ACCEPT: Final = f"application/vnd.connectwise.com+json; version={API_VERSION}"
MAX_PAGE_SIZE: Final = 1000
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class ConnectWiseError(Exception):
    """An error answer from ConnectWise, with its own code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"ConnectWise answered {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class Credentials(Protocol):
    def authorization(self) -> str:
        """The `Authorization` header value."""
        ...


@dataclass(frozen=True)
class ApiKeyCredentials:
    company_id: str
    public_key: str
    private_key: str = field(repr=False)

    def authorization(self) -> str:
        token = f"{self.company_id}+{self.public_key}:{self.private_key}".encode()
        return "Basic " + base64.b64encode(token).decode()


@dataclass(frozen=True)
class BearerCredentials:
    access_token: str = field(repr=False)

    def authorization(self) -> str:
        return f"Bearer {self.access_token}"


def api_base_url(site_url: str, codebase: str) -> str:
    """`https://{site}/{codebase}apis/3.0/` — the codebase comes from company info."""
    codebase = codebase.strip("/")
    return f"{site_url.rstrip('/')}/{codebase + '/' if codebase else ''}apis/3.0/"


def _raise_for_error(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    code, message = "HttpError", response.reason_phrase or "error"
    if isinstance(body, dict):
        code = str(body.get("code") or code)
        message = str(body.get("message") or message)
    raise ConnectWiseError(response.status_code, code, message)


async def fetch_codebase(http: httpx.AsyncClient, site_url: str, company_id: str) -> str | None:
    """The unauthenticated company lookup; None for a company ConnectWise doesn't know."""
    response = await http.get(
        f"{site_url.rstrip('/')}/login/companyinfo/{company_id}", headers={"Accept": ACCEPT}
    )
    _raise_for_error(response)
    info = response.json()
    if not isinstance(info, dict) or not info.get("Codebase"):
        return None
    return str(info["Codebase"])


class ConnectWiseClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        credentials: Credentials,
        client_id: str,
    ) -> None:
        self._http = http
        self._base_url = base_url
        self._headers = {
            "Authorization": credentials.authorization(),
            "clientId": client_id,
            "Accept": ACCEPT,
        }
        self.requests_made = 0

    async def _get(self, url: str, params: Mapping[str, str | int] | None) -> httpx.Response:
        self.requests_made += 1
        response = await self._http.get(url, params=params, headers=self._headers)
        _raise_for_error(response)
        return response

    async def get(self, path: str, params: Mapping[str, str | int] | None = None) -> Any:
        return (await self._get(self._base_url + path.lstrip("/"), params)).json()

    async def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        self.requests_made += 1
        response = await self._http.post(
            self._base_url + path.lstrip("/"), json=body or {}, headers=self._headers
        )
        _raise_for_error(response)
        return response.json()

    async def pages(
        self,
        path: str,
        *,
        conditions: str | None = None,
        fields: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a list endpoint, following the `Link: rel="next"` header."""
        params: dict[str, str | int] = {"page": 1, "pageSize": page_size, "orderBy": "id asc"}
        if conditions:
            params["conditions"] = conditions
        if fields:
            params["fields"] = fields
        url: str | None = self._base_url + path.lstrip("/")
        query: Mapping[str, str | int] | None = params
        while url is not None:
            response = await self._get(url, query)
            page = response.json()
            if not isinstance(page, list):
                raise ConnectWiseError(response.status_code, "UnexpectedBody", "expected a list")
            yield page
            match = _NEXT_LINK.search(response.headers.get("Link", ""))
            # The next link carries every parameter already.
            url, query = (match.group(1), None) if match and page else (None, None)
            if url is not None and not url.startswith(self._base_url):
                # Never follow a link off the integration's own API host.
                raise ConnectWiseError(502, "ForeignLink", "next page link leaves the API host")


def quote_condition_value(value: str) -> str:
    """A string literal for `conditions`, so user data can't change the expression."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
