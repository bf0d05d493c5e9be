"""Talking to the ConnectWise Manage REST API: the one client auth-service and the
connector share (base URL discovery, authentication headers, paging, error mapping,
retries).

Callers hand in the `httpx.AsyncClient` (the transport seam for tests). Budgets, pauses
and circuit breaking live with the caller, behind a `RequestGate` the client consults
around every HTTP attempt (retries included).

Retries (`RetryPolicy`):

* reads (GET, and the `POST …/search` query) are retried on 429, any 5xx and transport
  errors/timeouts, with exponential backoff and full jitter — a uniform wait in
  ``[0, min(max_delay, base_delay * 2**retry)]`` — and never less than `Retry-After`
  (seconds or an HTTP date). A `Retry-After` beyond `max_retry_after` is not slept on:
  the error is raised at once so the caller can pause the integration;
* writes (POST, PATCH, DELETE) are retried only when ConnectWise cannot have applied them:
  a 429 (the request was refused, not processed) and connection failures (connect error,
  connect timeout, pool timeout: the request was never sent). A 5xx, a read/write timeout
  or a dropped connection after sending may have been applied, so they are raised at once
  (as `ServerError` / `Unavailable`) and the caller decides;
* other 4xx are never retried.

Errors are `ConnectWiseError` subclasses carrying ConnectWise's own `code`, `message` and
item `errors`; `Unavailable` (status 0) means no HTTP answer at all — a transport error or
timeout, after the retries allowed. Messages never contain request headers; a secret the
server echoes back in its error text is redacted.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import random as _random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Final, Protocol

import httpx

from syntaskio_common.connectwise_conditions import (
    Condition,
    field_path,
    render,
)
from syntaskio_common.telemetry import meter

API_VERSION: Final = "2025.1"
ACCEPT: Final = f"application/vnd.connectwise.com+json; version={API_VERSION}"
MAX_PAGE_SIZE: Final = 1000
FORWARD_ONLY: Final = "forward-only"
SEARCH_THRESHOLD: Final = 1500
# The lists the documented API offers a `POST …/search` for.
SEARCHABLE: Final = frozenset({"service/tickets", "project/tickets"})
_LINK: Final = re.compile(r'<([^>]*)>\s*;\s*rel="?([A-Za-z]+)"?')
_PATCH_OPS: Final = frozenset({"add", "remove", "replace", "move", "copy", "test"})
# A codebase as company info gives it: one path segment, e.g. `v2025_1/`.
_CODEBASE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}/?")
# Never sent: safe to retry even a write.
_NOT_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


# --- errors -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorDetail:
    """One item of ConnectWise's `errors` list."""

    code: str
    message: str
    resource: str | None = None
    field: str | None = None


class ConnectWiseError(Exception):
    """An error answer from ConnectWise (or no answer: `Unavailable`), with its code and
    message. `retryable` says whether the same request may succeed later."""

    retryable: ClassVar[bool] = False

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: Sequence[ErrorDetail] = (),
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            f"ConnectWise answered {status} {code}: {message}"
            if status
            else f"ConnectWise did not answer ({code}): {message}"
        )
        self.status = status
        self.code = code
        self.message = message
        self.errors = list(errors)
        self.retry_after = retry_after


class BadRequest(ConnectWiseError):
    """400: the request is invalid; `errors` says which parameter or field and why."""


class Unauthorized(ConnectWiseError):
    """401: the credentials were rejected."""


class Forbidden(ConnectWiseError):
    """403: the member may not do this."""


class NotFound(ConnectWiseError):
    """404: no such record (or, after re-discovery, no such API)."""


class Conflict(ConnectWiseError):
    """409: the change conflicts with the record's current state."""


class RateLimited(ConnectWiseError):
    """429: too many requests; `retry_after` (seconds) is what ConnectWise asked for."""

    retryable = True


class ServerError(ConnectWiseError):
    """5xx: ConnectWise failed (its `ConnectWiseApi` timeouts among them)."""

    retryable = True


class Unavailable(ConnectWiseError):
    """No HTTP answer: a transport error or timeout (status 0), after the retries allowed
    (none for a write that may have been sent). The httpx error is the `__cause__`."""

    retryable = True


_BY_STATUS: Final[dict[int, type[ConnectWiseError]]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    429: RateLimited,
}


def error_for_status(
    status: int,
    code: str,
    message: str,
    errors: Sequence[ErrorDetail] = (),
    *,
    retry_after: float | None = None,
) -> ConnectWiseError:
    """The `ConnectWiseError` subclass for an HTTP status (plain for other 4xx)."""
    kind = _BY_STATUS.get(status) or (ServerError if status >= 500 else ConnectWiseError)
    return kind(status, code, message, errors, retry_after=retry_after)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def is_connectwise_error_body(body: object) -> bool:
    """Whether a parsed body has ConnectWise's error shape (`code`/`message`)."""
    return isinstance(body, dict) and (
        isinstance(body.get("code"), str) or isinstance(body.get("message"), str)
    )


def _details(items: object, redact: Callable[[str], str]) -> list[ErrorDetail]:
    def text(item: dict[str, Any], key: str) -> str | None:
        value = item.get(key)
        return None if value is None else redact(str(value))

    return [
        ErrorDetail(
            code=text(item, "code") or "",
            message=text(item, "message") or "",
            resource=text(item, "resource"),
            field=text(item, "field"),
        )
        for item in (items if isinstance(items, list) else ())
        if isinstance(item, dict)
    ]


def error_from_response(
    response: httpx.Response,
    *,
    retry_after: float | None = None,
    redact: Callable[[str], str] = lambda text: text,
) -> ConnectWiseError:
    """The typed error for a non-2xx answer, from ConnectWise's JSON error shape
    `{"code", "message", "errors": [{"code", "message", "resource", "field"}]}`."""
    body = _json_or_none(response)
    code, message = "HttpError", response.reason_phrase or "error"
    errors: list[ErrorDetail] = []
    if isinstance(body, dict):
        code = redact(str(body.get("code") or code))
        message = redact(str(body.get("message") or message))
        errors = _details(body.get("errors"), redact)
    return error_for_status(response.status_code, code, message, errors, retry_after=retry_after)


def _raise_for_error(response: httpx.Response) -> None:
    if not response.is_success:
        raise error_from_response(response)


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """`Retry-After` in seconds: delta-seconds or an HTTP date (past dates give 0)."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # "-0000": UTC with no claim about local time
            moment = moment.replace(tzinfo=UTC)
        return max(0.0, moment.timestamp() - now())
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        return None
    return max(0.0, seconds)


# --- credentials ------------------------------------------------------------------------


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


def _secrets_of(authorization: str) -> list[str]:
    """The pieces of an Authorization value a server might echo back."""
    secrets = {authorization}
    scheme, _, token = authorization.partition(" ")
    if token:
        secrets.add(token)
    if scheme.lower() == "basic" and token:
        try:
            decoded = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if decoded:
            user, _, private = decoded.partition(":")
            secrets.update((decoded, private, user.partition("+")[2]))
    return sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True)


def _redactor(secrets: Sequence[str]) -> Callable[[str], str]:
    def redact(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, "[redacted]")
        return text

    return redact


def api_base_url(site_url: str, codebase: str) -> str:
    """`https://{site}/{codebase}apis/3.0/` — the codebase comes from company info."""
    codebase = codebase.strip("/")
    return f"{site_url.rstrip('/')}/{codebase + '/' if codebase else ''}apis/3.0/"


async def fetch_codebase(http: httpx.AsyncClient, site_url: str, company_id: str) -> str | None:
    """The unauthenticated company lookup; None for a company ConnectWise doesn't know.
    The codebase must be one path segment (`v2025_1/`, `v4_6_release/`): it goes into
    every API URL, and the site is whatever host the user typed."""
    response = await http.get(
        f"{site_url.rstrip('/')}/login/companyinfo/{company_id}", headers={"Accept": ACCEPT}
    )
    _raise_for_error(response)
    info = response.json()
    if not isinstance(info, dict) or not info.get("Codebase"):
        return None
    codebase = info["Codebase"]
    if not isinstance(codebase, str) or not _CODEBASE.fullmatch(codebase):
        raise ConnectWiseError(
            response.status_code,
            "UnexpectedCodebase",
            "the company info names a codebase that is not a version path segment",
        )
    return codebase


# --- policy and hooks -------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry; `max_attempts` counts the first try."""

    max_attempts: int = 4
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must not be negative")

    def backoff_cap(self, retry: int) -> float:
        """The upper bound of the wait before retry number `retry` (from 0)."""
        return min(self.max_delay, self.base_delay * 2.0 ** min(retry, 62))

    def backoff(self, retry: int, random: Callable[[], float]) -> float:
        """Full jitter: uniform in `[0, backoff_cap(retry)]`."""
        return random() * self.backoff_cap(retry)


class RequestGate(Protocol):
    """The caller's say over every HTTP attempt (budget, pause, circuit breaker)."""

    async def before_request(self) -> None:
        """Called before each attempt; raise to refuse it. The exception propagates
        untouched and is never retried."""
        ...

    async def after_response(self, status: int | None, retry_after: float | None) -> None:
        """Called after each attempt: the HTTP status, or None for a transport error or
        timeout, and the `Retry-After` seconds if the answer carried one."""
        ...


class OpenGate:
    """The default gate: lets everything through."""

    async def before_request(self) -> None:
        return None

    async def after_response(self, status: int | None, retry_after: float | None) -> None:
        return None


# --- metrics ----------------------------------------------------------------------------

REQUESTS = meter.create_counter(
    "syntaskio.connectwise.requests",
    unit="{request}",
    description="ConnectWise API requests by endpoint, method and status (429s included; "
    "`no_answer`: a transport error or timeout)",
)
RETRIES = meter.create_counter(
    "syntaskio.connectwise.retries",
    unit="{retry}",
    description="ConnectWise requests tried again (429, 5xx, no answer)",
)
# Path words in a record's place that are actions, not records (`…/tickets/search`).
_ACTIONS: Final = frozenset({"search", "count", "info"})


def endpoint_of(target: str) -> str:
    """The endpoint class of a request: its path with each record's place (a number, or
    the third, fifth… segment: `system/members/{identifier}/tokens`) as `{id}`, never the
    query string, so label values are bounded by the paths the code calls."""
    parts = target.split("?", 1)[0].strip("/").split("/")
    return "/".join(
        "{id}"
        if part.isdigit() or (index >= 2 and index % 2 == 0 and part not in _ACTIONS)
        else part
        for index, part in enumerate(parts)
    )


def _count_request(method: str, endpoint: str, status: str) -> None:
    REQUESTS.add(1, {"endpoint": endpoint, "method": method, "status": status})


# --- the client -------------------------------------------------------------------------


Params = Mapping[str, str | int]


class ConnectWiseClient:
    """One integration's view of a ConnectWise API: `base_url` + credentials + clientId."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        credentials: Credentials,
        client_id: str,
        *,
        retry: RetryPolicy | None = None,
        gate: RequestGate | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = _random.random,
        now: Callable[[], float] = time.time,
        rediscover: Callable[[], Awaitable[str]] | None = None,
        search_threshold: int = SEARCH_THRESHOLD,
    ) -> None:
        self._http = http
        self._base_url = _normalise_base(base_url)
        authorization = credentials.authorization()
        self._headers = {"Authorization": authorization, "clientId": client_id, "Accept": ACCEPT}
        self._redact = _redactor(_secrets_of(authorization))
        self._retry = retry or RetryPolicy()
        self._gate: RequestGate = gate or OpenGate()
        self._sleep = sleep
        self._random = random
        self._now = now
        self._rediscover = rediscover
        self._search_threshold = search_threshold
        self.requests_made = 0

    def __repr__(self) -> str:
        return f"ConnectWiseClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        """The API root in use (it changes when `rediscover` finds a moved codebase)."""
        return self._base_url

    # --- the one place requests are made ------------------------------------------------

    async def _request(
        self,
        method: str,
        target: str,
        *,
        params: Params | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        write: bool = False,
    ) -> httpx.Response:
        """`target` is relative to the base URL (path and maybe a query string)."""
        policy = self._retry
        retries = 0
        rediscovered = False
        send_headers = {**self._headers, **(headers or {})}
        endpoint = endpoint_of(target)
        while True:
            await self._gate.before_request()
            self.requests_made += 1
            try:
                response = await self._http.request(
                    method,
                    self._base_url + target.lstrip("/"),
                    params=params,
                    json=json,
                    headers=send_headers,
                )
            except httpx.RequestError as error:
                _count_request(method, endpoint, "no_answer")
                await self._gate.after_response(None, None)
                unavailable = Unavailable(
                    0, type(error).__name__, f"{method} {_path_only(target)} got no answer"
                )
                retry = isinstance(error, httpx.TransportError) and not isinstance(
                    error, httpx.UnsupportedProtocol
                )
                if write and not isinstance(error, _NOT_SENT):
                    retry = False  # it may have reached ConnectWise
                if not retry or retries + 1 >= policy.max_attempts:
                    raise unavailable from error
                await self._sleep(policy.backoff(retries, self._random))
                retries += 1
                RETRIES.add(1, {"endpoint": endpoint})
                continue

            status = response.status_code
            _count_request(method, endpoint, str(status))
            retry_after = parse_retry_after(response.headers.get("Retry-After"), self._now)
            await self._gate.after_response(status, retry_after)
            if response.is_success:
                return response
            failure = error_from_response(response, retry_after=retry_after, redact=self._redact)
            if (
                status == 404
                and not rediscovered
                and self._rediscover is not None
                and not is_connectwise_error_body(_json_or_none(response))
            ):
                # Not ConnectWise's "no such record": the codebase moved (an upgrade).
                rediscovered = True
                moved = _normalise_base(await self._rediscover())
                if moved != self._base_url:
                    self._base_url = moved
                    continue
            if not failure.retryable or (write and status != 429):
                raise failure
            if retries + 1 >= policy.max_attempts:
                raise failure
            if retry_after is not None and retry_after > policy.max_retry_after:
                raise failure  # don't sleep that long here; let the caller pause
            delay = policy.backoff(retries, self._random)
            await self._sleep(max(delay, retry_after or 0.0))
            retries += 1
            RETRIES.add(1, {"endpoint": endpoint})

    def _json(self, response: httpx.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ConnectWiseError(
                502, "UnexpectedBody", f"expected JSON, got {response.headers.get('content-type')}"
            ) from None

    # --- reads --------------------------------------------------------------------------

    async def get(
        self,
        path: str,
        params: Params | None = None,
        *,
        conditions: str | Condition | None = None,
        fields: str | Sequence[str] | None = None,
    ) -> Any:
        query: dict[str, str | int] = dict(params or {})
        rendered = render(conditions)
        if rendered:
            query["conditions"] = rendered
        if fields is not None:
            query["fields"] = _fields(fields)
        return self._json(await self._request("GET", path, params=query or None))

    async def count(self, path: str, conditions: str | Condition | None = None) -> int:
        """`GET {path}/count` — how many records match."""
        rendered = render(conditions)
        params = {"conditions": rendered} if rendered else None
        answer = self._json(await self._request("GET", f"{path.rstrip('/')}/count", params=params))
        if not isinstance(answer, dict) or not isinstance(answer.get("count"), int):
            raise ConnectWiseError(502, "UnexpectedBody", 'expected {"count": n}')
        return int(answer["count"])

    async def pages(
        self,
        path: str,
        *,
        conditions: str | Condition | None = None,
        fields: str | Sequence[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
        order_by: str | None = None,
        forward_only: bool = False,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a list endpoint.

        Navigable paging (default) asks for `page`/`pageSize`, ordered by `order_by`
        (default `id asc`, so pages are stable) and follows `Link: rel="next"`.
        Forward-only paging sends `pagination-type: forward-only` (id order, no
        `orderBy`) and follows the `next` link, which carries `pageId`. A next link that
        leaves the base URL is refused.

        Conditions longer than `search_threshold` on a list that has a search
        (`SEARCHABLE`) go to `POST {path}/search`, whose body
        is ConnectWise's `FilterValues` — `conditions` and `orderBy`, nothing else — so
        `fields` are not sent there (whole records come back) and paging stays in the
        query string. The documentation offers no forward-only search: a search is
        always paged by number in id order.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        if forward_only and order_by is not None:
            raise ValueError("forward-only paging is always in id order; drop order_by")
        rendered = render(conditions)
        path = path.strip("/")
        if rendered and len(rendered) > self._search_threshold and path in SEARCHABLE:
            pages = self._search_pages(path, rendered, order_by or "id asc", page_size)
        else:
            query: dict[str, str | int] = {"pageSize": page_size}
            if not forward_only:
                query["page"] = 1
                query["orderBy"] = order_by or "id asc"
            if rendered:
                query["conditions"] = rendered
            if fields is not None:
                query["fields"] = _fields(fields)
            headers = {"pagination-type": FORWARD_ONLY} if forward_only else None
            pages = self._list_pages(path, query, headers)
        async for page in pages:
            yield page

    async def _list_pages(
        self, path: str, query: Params, headers: Mapping[str, str] | None
    ) -> AsyncIterator[list[dict[str, Any]]]:
        target: str | None = path
        params: Params | None = query
        while target is not None:
            response = await self._request("GET", target, params=params, headers=headers)
            page = _page(response, self._json(response))
            yield page
            next_link = _links(response).get("next")
            # The next link carries every parameter already.
            target = self._relative(next_link) if next_link and page else None
            params = None

    async def _search_pages(
        self, path: str, conditions: str, order_by: str, page_size: int
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every page of a search: the same `FilterValues` body each time, the page in
        the query string. The next page is the one `Link: rel="next"` names, and the
        search ends where the links name none (no `Link` header at all: the answer was
        one page); a short page never ends it by itself (a server may page below the
        `pageSize` asked for)."""
        target = f"{path}/search"
        body = {"conditions": conditions, "orderBy": order_by}
        params: dict[str, str | int] = {"page": 1, "pageSize": page_size}
        while True:
            response = await self._request("POST", target, params=params, json=body)
            page = _page(response, self._json(response))
            yield page
            next_link = _links(response).get("next")
            if not next_link or not page:
                return
            # Where the link points, checked; its page (and size) are what is asked for.
            url = httpx.URL(self._base_url + self._relative(next_link))
            linked = {name.lower(): value for name, value in url.params.multi_items()}
            number = linked.get("page", "")
            if not number.isdigit() or int(number) <= int(params["page"]):
                raise ConnectWiseError(502, "UnexpectedLink", "search next link has no next page")
            params = {"page": int(number), "pageSize": linked.get("pagesize") or page_size}

    def _relative(self, link: str) -> str:
        """A link as a target relative to the base URL; refused if it leaves it."""
        base = httpx.URL(self._base_url)
        try:
            url = httpx.URL(link)
        except httpx.InvalidURL:
            url = None
        base_path = base.raw_path.decode("ascii")
        link_path = url.raw_path.decode("ascii") if url is not None else ""
        if (
            url is None
            or url.scheme != base.scheme
            or url.host != base.host
            or url.port != base.port
            or url.userinfo
            or not link_path.startswith(base_path)
            or ".." in url.path.split("/")
        ):
            # Never follow a link off the integration's own API.
            raise ConnectWiseError(502, "ForeignLink", "next page link leaves the API host")
        return link_path[len(base_path) :]

    # --- writes -------------------------------------------------------------------------

    async def post(self, path: str, body: Mapping[str, Any] | None = None) -> Any:
        """Create (or run an action); retried only when it cannot have been applied."""
        response = await self._request("POST", path, json=dict(body or {}), write=True)
        return self._json(response)

    async def patch(self, path: str, operations: Sequence[Mapping[str, Any]]) -> Any:
        """A JSON Patch, e.g. `[{"op": "replace", "path": "status/id", "value": 5}]`."""
        ops = [dict(op) for op in operations]
        if not ops:
            raise ValueError("a patch needs at least one operation")
        for op in ops:
            if op.get("op") not in _PATCH_OPS or not isinstance(op.get("path"), str):
                raise ValueError(f"not a JSON Patch operation: {op!r}")
        return self._json(await self._request("PATCH", path, json=ops, write=True))

    async def delete(self, path: str) -> None:
        await self._request("DELETE", path, write=True)


def _normalise_base(base_url: str) -> str:
    return base_url.rstrip("/") + "/"


def _path_only(target: str) -> str:
    return target.partition("?")[0].lstrip("/")


def _fields(fields: str | Sequence[str]) -> str:
    names = fields.split(",") if isinstance(fields, str) else list(fields)
    return ",".join(field_path(name.strip()) for name in names if name.strip())


def _links(response: httpx.Response) -> dict[str, str]:
    return {rel.lower(): url for url, rel in _LINK.findall(response.headers.get("Link", ""))}


def _page(response: httpx.Response, body: Any) -> list[dict[str, Any]]:
    if not isinstance(body, list):
        raise ConnectWiseError(response.status_code, "UnexpectedBody", "expected a list")
    return body
