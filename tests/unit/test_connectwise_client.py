"""The shared ConnectWise protocol client: headers, paging (navigable, forward-only and
`/search`), the links it won't follow, typed errors, retries with backoff, the request
gate, writes and base URL re-discovery — against `httpx.MockTransport`, plus one run
against the sandbox app in-process."""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from contract_checks import assert_none_refused

from connectwise_sandbox import DEV_CLIENT_ID, Settings, create_app
from syntaskio_common.connectwise import (
    ACCEPT,
    ApiKeyCredentials,
    BadRequest,
    BearerCredentials,
    Conflict,
    ConnectWiseClient,
    ConnectWiseError,
    Credentials,
    ErrorDetail,
    Forbidden,
    NotFound,
    RateLimited,
    RetryPolicy,
    ServerError,
    Unauthorized,
    Unavailable,
    fetch_codebase,
    parse_retry_after,
)
from syntaskio_common.connectwise_conditions import F

BASE = "https://cw.example/v2025_1/apis/3.0/"
MOVED = "https://cw.example/v2025_2/apis/3.0/"
SEED = 7
NOW = 1_780_000_000.0

Handler = Callable[[httpx.Request], httpx.Response]


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class Gate:
    """Records every call; refuses once `budget` attempts were let through."""

    def __init__(self, budget: int | None = None) -> None:
        self.budget = budget
        self.before = 0
        self.after: list[tuple[int | None, float | None]] = []

    async def before_request(self) -> None:
        if self.budget is not None and self.before >= self.budget:
            raise BudgetExhausted
        self.before += 1

    async def after_response(self, status: int | None, retry_after: float | None) -> None:
        self.after.append((status, retry_after))


class BudgetExhausted(Exception):
    pass


class Recorder:
    """A MockTransport handler answering from a script, recording every request."""

    def __init__(self, *answers: httpx.Response | Exception | Handler) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        if callable(answer):
            return answer(request)
        return answer


def make(
    handler: Handler,
    *,
    credentials: Credentials | None = None,
    sleeps: Sleeps | None = None,
    **options: Any,
) -> ConnectWiseClient:
    options.setdefault("random", random.Random(SEED).random)
    options.setdefault("now", lambda: NOW)
    return ConnectWiseClient(
        httpx.AsyncClient(transport=httpx.MockTransport(handler)),
        BASE,
        credentials or BearerCredentials("t0k-secret-bearer"),
        "cid",
        sleep=sleeps if sleeps is not None else Sleeps(),
        **options,
    )


def cw_error(status: int, code: str = "Oops", message: str = "it failed", **kw: Any) -> Any:
    return httpx.Response(status, json={"code": code, "message": message}, **kw)


def expected_backoff(policy: RetryPolicy, retries: int) -> list[float]:
    """What full jitter draws with the seeded random the client is given."""
    draw = random.Random(SEED).random
    return [draw() * policy.backoff_cap(n) for n in range(retries)]


def assert_authenticated(request: httpx.Request) -> None:
    assert request.headers["authorization"] == "Bearer t0k-secret-bearer"
    assert request.headers["clientid"] == "cid"
    assert request.headers["accept"] == ACCEPT


# --- paging -----------------------------------------------------------------------------


async def test_pages_follow_next_links_on_the_same_api_host() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("page") == "1":
            return httpx.Response(
                200,
                json=[{"id": 1}],
                headers={"Link": f'<{BASE}service/tickets?page=2&pageSize=1>; rel="next"'},
            )
        return httpx.Response(200, json=[{"id": 2}])

    recorder = Recorder(answer)
    client = make(recorder)
    condition = F("closedFlag").eq(False) & (F("owner/identifier") == 'a"b')
    pages = [
        page
        async for page in client.pages(
            "service/tickets", conditions=condition, fields=["id", "_info/lastUpdated"]
        )
    ]
    assert pages == [[{"id": 1}], [{"id": 2}]]
    first, second = recorder.requests
    assert first.url.params["conditions"] == 'closedFlag = false and owner/identifier = "a\\"b"'
    assert first.url.params["fields"] == "id,_info/lastUpdated"
    assert first.url.params["orderBy"] == "id asc"
    assert first.url.params["pageSize"] == "1000"
    assert "pagination-type" not in first.headers
    assert str(second.url) == f"{BASE}service/tickets?page=2&pageSize=1"
    for request in recorder.requests:
        assert_authenticated(request)
    assert client.requests_made == 2


async def test_forward_only_sends_the_header_and_follows_page_id_links() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.headers["pagination-type"] == "forward-only"
        page_id = int(request.url.params.get("pageId", "0"))
        rows = [{"id": i} for i in range(page_id + 1, min(page_id + 2, 5) + 1)]
        more = rows and rows[-1]["id"] < 5
        link = f'<{BASE}service/tickets?pageSize=2&pageId={rows[-1]["id"]}>; rel="next"'
        return httpx.Response(200, json=rows, headers={"Link": link} if more else {})

    recorder = Recorder(answer)
    client = make(recorder)
    pages = [
        [row["id"] for row in page]
        async for page in client.pages("service/tickets", page_size=2, forward_only=True)
    ]
    assert pages == [[1, 2], [3, 4], [5]]
    first = recorder.requests[0]
    assert "page" not in first.url.params
    assert "orderBy" not in first.url.params
    assert [r.url.params.get("pageId") for r in recorder.requests] == [None, "2", "4"]
    for request in recorder.requests:
        assert_authenticated(request)


async def test_forward_only_refuses_an_order() -> None:
    client = make(Recorder(httpx.Response(200, json=[])))
    with pytest.raises(ValueError, match="forward-only"):
        async for _ in client.pages("service/tickets", forward_only=True, order_by="id desc"):
            pass
    with pytest.raises(ValueError, match="page_size"):
        async for _ in client.pages("service/tickets", page_size=1001):
            pass
    assert client.requests_made == 0


@pytest.mark.parametrize("forward_only", [False, True])
@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/v2025_1/apis/3.0/service/tickets?page=2",
        "http://169.254.169.254/latest",
        "http://cw.example/v2025_1/apis/3.0/service/tickets?page=2",
        "https://cw.example:8443/v2025_1/apis/3.0/service/tickets?page=2",
        "https://user:pw@cw.example/v2025_1/apis/3.0/service/tickets?page=2",
        "https://cw.example/v2025_1/apis/3.0/../../login/companyinfo/x",
        "https://cw.example/v2025_1/apis/3.0/%2e%2e/%2e%2e/admin",
        "https://cw.example/v2025_1/apis/3.0.evil/service/tickets",
        "https://cw.example.evil.example/v2025_1/apis/3.0/service/tickets",
        "/v2025_1/apis/3.0/service/tickets?page=2",
    ],
)
async def test_a_next_link_off_the_api_host_is_refused(link: str, forward_only: bool) -> None:
    recorder = Recorder(
        httpx.Response(200, json=[{"id": 1}], headers={"Link": f'<{link}>; rel="next"'}),
        httpx.Response(200, json=[]),
    )
    with pytest.raises(ConnectWiseError, match="leaves the API host"):
        async for _ in make(recorder).pages("service/tickets", forward_only=forward_only):
            pass
    assert len(recorder.requests) == 1


async def test_long_conditions_switch_to_the_search_endpoint() -> None:
    condition = F("id").not_in(range(1000, 1400)) & (F("summary") == "vpn")
    assert len(str(condition)) > 1500

    def answer(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        # Short pages in the middle: only the Link header says whether more follow.
        rows = [{"id": page * 10 + i} for i in range(3 if page == 1 else 1)]
        link = f'<{BASE}service/tickets/search?page={page + 1}&pageSize=3>; rel="next"'
        if page == 3:  # the last page links back only
            link = f'<{BASE}service/tickets/search?page=1&pageSize=3>; rel="first"'
        return httpx.Response(200, json=rows, headers={"Link": link})

    recorder = Recorder(answer)
    client = make(recorder)
    pages = [
        page
        async for page in client.pages(
            "service/tickets", conditions=condition, fields="id,summary", page_size=3
        )
    ]
    assert [len(page) for page in pages] == [3, 1, 1]  # a short page is not the last
    for number, request in enumerate(recorder.requests, start=1):
        assert request.method == "POST"
        assert str(request.url) == f"{BASE}service/tickets/search?page={number}&pageSize=3"
        assert_authenticated(request)
        # The documented `FilterValues` body: no paging, no fields.
        assert json.loads(request.content) == {"conditions": str(condition), "orderBy": "id asc"}
        assert "pagination-type" not in request.headers
    assert len(recorder.requests) == 3


async def test_a_search_answered_without_a_link_header_is_one_page() -> None:
    recorder = Recorder(httpx.Response(200, json=[{"id": 1}, {"id": 2}]))
    pages = [
        p
        async for p in make(recorder, search_threshold=5).pages(
            "service/tickets", conditions="id > 0", page_size=2
        )
    ]
    assert pages == [[{"id": 1}, {"id": 2}]]
    assert len(recorder.requests) == 1


async def test_search_ends_where_the_link_header_has_no_next() -> None:
    recorder = Recorder(
        httpx.Response(
            200, json=[{"id": 1}], headers={"Link": f'<{BASE}x/search?page=2>; rel="next"'}
        ),
        httpx.Response(200, json=[{"id": 2}], headers={"Link": f'<{BASE}x?page=1>; rel="first"'}),
    )
    client = make(recorder, search_threshold=10)
    pages = [
        p
        async for p in client.pages("service/tickets", conditions="id > 1 and id < 99", page_size=5)
    ]
    assert pages == [[{"id": 1}], [{"id": 2}]]  # both pages short; the links decide
    assert [r.url.params["page"] for r in recorder.requests] == ["1", "2"]


async def test_a_search_link_that_does_not_move_on_or_leaves_the_host_is_refused() -> None:
    for link in (
        f'<{BASE}x/search?page=1>; rel="next"',
        '<https://evil.example/x?page=2>; rel="next"',
    ):
        recorder = Recorder(httpx.Response(200, json=[{"id": 1}], headers={"Link": link}))
        with pytest.raises(ConnectWiseError):
            async for _ in make(recorder, search_threshold=5).pages(
                "service/tickets", conditions="id > 0"
            ):
                pass
        assert len(recorder.requests) == 1


async def test_short_conditions_stay_in_the_query_string() -> None:
    recorder = Recorder(httpx.Response(200, json=[]))
    client = make(recorder, search_threshold=50)
    async for _ in client.pages("service/tickets", conditions=F("id") > 5):
        pass
    (request,) = recorder.requests
    assert request.method == "GET"
    assert request.url.params["conditions"] == "id > 5"


async def test_a_forward_only_listing_with_long_conditions_searches_by_page_in_id_order() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.params["page"] == "2":
            first = f'<{BASE}service/tickets/search?page=1&pageSize=2>; rel="first"'
            return httpx.Response(200, json=[{"id": 3}], headers={"Link": first})
        link = f'<{BASE}service/tickets/search?page=2&pageSize=2>; rel="next"'
        return httpx.Response(200, json=[{"id": 1}, {"id": 2}], headers={"Link": link})

    recorder = Recorder(answer)
    client = make(recorder, search_threshold=5)
    pages = [
        p
        async for p in client.pages(
            "service/tickets", conditions="id > 0", forward_only=True, page_size=2
        )
    ]
    assert pages == [[{"id": 1}, {"id": 2}], [{"id": 3}]]
    assert [str(r.url) for r in recorder.requests] == [
        f"{BASE}service/tickets/search?page=1&pageSize=2",
        f"{BASE}service/tickets/search?page=2&pageSize=2",
    ]
    for request in recorder.requests:
        assert "pagination-type" not in request.headers
        assert json.loads(request.content) == {"conditions": "id > 0", "orderBy": "id asc"}


async def test_count_asks_the_count_endpoint() -> None:
    recorder = Recorder(httpx.Response(200, json={"count": 42}))
    assert await make(recorder).count("service/tickets", F("closedFlag").eq(False)) == 42
    (request,) = recorder.requests
    assert request.url.path == "/v2025_1/apis/3.0/service/tickets/count"
    assert request.url.params["conditions"] == "closedFlag = false"
    assert_authenticated(request)


async def test_count_refuses_an_odd_answer() -> None:
    with pytest.raises(ConnectWiseError, match="count"):
        await make(Recorder(httpx.Response(200, json=[1]))).count("service/tickets")


async def test_get_renders_conditions_and_fields() -> None:
    recorder = Recorder(httpx.Response(200, json=[{"id": 1}]))
    answer = await make(recorder).get(
        "system/members", {"pageSize": 2}, conditions=F("identifier") == "x", fields=["id"]
    )
    assert answer == [{"id": 1}]
    params = recorder.requests[0].url.params
    assert dict(params) == {"pageSize": "2", "conditions": 'identifier = "x"', "fields": "id"}


# --- errors -----------------------------------------------------------------------------


async def test_a_bad_request_carries_connectwise_item_errors() -> None:
    body = {
        "code": "InvalidObject",
        "message": "pageSize object is invalid",
        "errors": [
            {
                "code": "OutOfRange",
                "message": "The field pageSize must be between 1 and 1000.",
                "resource": "pageSize",
                "field": "pageSize",
            },
            "not an object",
        ],
    }
    with pytest.raises(BadRequest) as raised:
        await make(Recorder(httpx.Response(400, json=body))).get("service/tickets")
    error = raised.value
    assert (error.status, error.code, error.message) == (
        400,
        "InvalidObject",
        "pageSize object is invalid",
    )
    assert error.errors == [
        ErrorDetail(
            "OutOfRange", "The field pageSize must be between 1 and 1000.", "pageSize", "pageSize"
        )
    ]
    assert str(error) == "ConnectWise answered 400 InvalidObject: pageSize object is invalid"
    assert not error.retryable


async def test_an_error_without_json_keeps_the_http_reason() -> None:
    recorder = Recorder(httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(ServerError) as raised:
        await make(recorder, retry=RetryPolicy(max_attempts=1)).get("system/info")
    assert (raised.value.code, raised.value.message) == ("HttpError", "Bad Gateway")
    assert raised.value.errors == []
    assert raised.value.retryable


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (405, ConnectWiseError),
        (422, ConnectWiseError),
    ],
)
async def test_client_errors_are_typed_and_never_retried(
    status: int, kind: type[ConnectWiseError]
) -> None:
    recorder = Recorder(cw_error(status, "Nope", "no", headers={"Retry-After": "1"}))
    gate, sleeps = Gate(), Sleeps()
    client = make(recorder, gate=gate, sleeps=sleeps)
    with pytest.raises(kind) as raised:
        await client.get("service/tickets/1")
    assert type(raised.value) is kind
    assert raised.value.status == status
    assert not raised.value.retryable
    assert len(recorder.requests) == 1
    assert client.requests_made == 1
    assert sleeps == []
    assert gate.after == [(status, 1.0)]


@pytest.mark.parametrize(
    "credentials",
    [
        ApiKeyCredentials("acme", "PUBLICKEY123", "PRIVATEKEY456"),
        BearerCredentials("bearer-token-789"),
    ],
)
async def test_no_credential_appears_in_an_error(credentials: Credentials) -> None:
    authorization = credentials.authorization()
    secret_parts = [authorization, authorization.split(" ", 1)[1]]
    if isinstance(credentials, ApiKeyCredentials):
        secret_parts += [credentials.private_key, credentials.public_key]
    elif isinstance(credentials, BearerCredentials):
        secret_parts.append(credentials.access_token)

    def echo(request: httpx.Request) -> httpx.Response:
        """A server that echoes what it was sent back into its error text."""
        header = request.headers["authorization"]
        token = header.split(" ", 1)[1]
        decoded = ""
        if header.startswith("Basic "):
            import base64

            decoded = base64.b64decode(token).decode()
        echoed = f"bad {header} / {token} / {decoded} / {' '.join(secret_parts[2:])}"
        body = {
            "code": f"C {token}",
            "message": echoed,
            "errors": [{"code": "x", "message": echoed, "resource": token, "field": header}],
        }
        return httpx.Response(401, json=body)

    failures: list[BaseException] = []
    client = make(Recorder(echo), credentials=credentials)
    with pytest.raises(Unauthorized) as raised:
        await client.get("system/info")
    failures.append(raised.value)
    offline = make(
        Recorder(httpx.ConnectError("refused")),
        credentials=credentials,
        retry=RetryPolicy(max_attempts=2),
    )
    with pytest.raises(Unavailable) as unavailable:
        await offline.get("system/info")
    failures.append(unavailable.value)

    for failure in failures:
        assert isinstance(failure, ConnectWiseError)
        shown = [str(failure), repr(failure), failure.code, failure.message, repr(failure.errors)]
        for text in shown:
            for secret in secret_parts:
                assert secret not in text
    # The objects themselves don't show the secret half either (a public key is an id).
    for text in (repr(client), repr(credentials)):
        for secret in (authorization, secret_parts[1], secret_parts[2]):
            assert secret not in text
    assert "[redacted]" in str(failures[0])


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("7", 7.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        (format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True), 30.0),
        (format_datetime(datetime.fromtimestamp(NOW - 30, UTC), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value, lambda: NOW) == seconds


# --- retries ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retried_with_full_jitter(status: int) -> None:
    recorder = Recorder(
        cw_error(status, "ConnectWiseApi"), cw_error(status), httpx.Response(200, json={"ok": 1})
    )
    sleeps = Sleeps()
    client = make(recorder, sleeps=sleeps)
    assert await client.get("system/info") == {"ok": 1}
    assert len(recorder.requests) == 3
    assert client.requests_made == 3
    policy = RetryPolicy()
    assert sleeps == pytest.approx(expected_backoff(policy, 2))
    for retry, delay in enumerate(sleeps):
        assert 0 <= delay <= policy.backoff_cap(retry)


async def test_retries_stop_after_max_attempts() -> None:
    recorder = Recorder(cw_error(503, "ConnectWiseApi", "timeout"))
    sleeps = Sleeps()
    policy = RetryPolicy(max_attempts=4)
    client = make(recorder, sleeps=sleeps, retry=policy)
    with pytest.raises(ServerError) as raised:
        await client.get("service/tickets")
    assert raised.value.status == 503
    assert raised.value.retryable
    assert len(recorder.requests) == 4
    assert sleeps == pytest.approx(expected_backoff(policy, 3))


def test_backoff_grows_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    assert [policy.backoff_cap(n) for n in range(6)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert policy.backoff(3, lambda: 1.0) == 5.0
    assert policy.backoff(3, lambda: 0.0) == 0.0
    assert policy.backoff_cap(10_000) == 5.0
    draws = [policy.backoff(2, random.Random(n).random) for n in range(200)]
    assert all(0 <= d <= 4.0 for d in draws)
    assert max(draws) - min(draws) > 2  # jittered, not fixed
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)


async def test_retry_after_is_waited_at_least() -> None:
    recorder = Recorder(
        cw_error(429, "TooManyRequests", headers={"Retry-After": "7"}),
        cw_error(429, "TooManyRequests", headers={"Retry-After": "0"}),
        httpx.Response(200, json=[]),
    )
    sleeps, gate = Sleeps(), Gate()
    client = make(recorder, sleeps=sleeps, gate=gate, random=lambda: 1.0)
    assert await client.get("service/tickets") == []
    # Retry-After 7 beats the backoff cap of 0.5; with 0 the jittered backoff (1.0) applies.
    assert sleeps == [7.0, 1.0]
    assert gate.after == [(429, 7.0), (429, 0.0), (200, None)]


async def test_retry_after_as_an_http_date() -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 12, UTC), usegmt=True)
    recorder = Recorder(
        cw_error(429, headers={"Retry-After": when}), httpx.Response(200, json={"ok": 1})
    )
    sleeps = Sleeps()
    await make(recorder, sleeps=sleeps, random=lambda: 0.0).get("system/info")
    assert sleeps == [12.0]


async def test_a_retry_after_beyond_the_limit_is_raised_at_once() -> None:
    recorder = Recorder(cw_error(429, "TooManyRequests", headers={"Retry-After": "120"}))
    sleeps = Sleeps()
    client = make(recorder, sleeps=sleeps, retry=RetryPolicy(max_retry_after=60))
    with pytest.raises(RateLimited) as raised:
        await client.get("service/tickets")
    assert raised.value.retry_after == 120.0
    assert raised.value.status == 429
    assert raised.value.retryable
    assert sleeps == []
    assert len(recorder.requests) == 1


async def test_rate_limiting_that_never_ends_raises_rate_limited() -> None:
    recorder = Recorder(cw_error(429, headers={"Retry-After": "1"}))
    sleeps = Sleeps()
    with pytest.raises(RateLimited) as raised:
        await make(recorder, sleeps=sleeps, retry=RetryPolicy(max_attempts=3)).get("x")
    assert raised.value.retry_after == 1.0
    assert len(recorder.requests) == 3
    assert len(sleeps) == 2
    assert all(delay >= 1.0 for delay in sleeps)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
    ],
)
async def test_transport_errors_are_retried_for_reads(failure: Exception) -> None:
    recorder = Recorder(failure, failure, httpx.Response(200, json={"ok": 1}))
    sleeps, gate = Sleeps(), Gate()
    client = make(recorder, sleeps=sleeps, gate=gate)
    assert await client.get("system/info") == {"ok": 1}
    assert len(recorder.requests) == 3
    assert sleeps == pytest.approx(expected_backoff(RetryPolicy(), 2))
    assert gate.after == [(None, None), (None, None), (200, None)]


async def test_a_lasting_timeout_becomes_unavailable() -> None:
    timeout = httpx.ReadTimeout("slow")
    recorder = Recorder(timeout)
    with pytest.raises(Unavailable) as raised:
        await make(recorder).get("service/tickets?conditions=x")
    error = raised.value
    assert (error.status, error.code) == (0, "ReadTimeout")
    assert error.retryable
    assert error.__cause__ is timeout
    assert (
        str(error) == "ConnectWise did not answer (ReadTimeout): GET service/tickets got no answer"
    )
    assert len(recorder.requests) == 4


# --- writes -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
async def test_writes_are_not_retried_on_server_errors(method: str, status: int) -> None:
    recorder = Recorder(cw_error(status, "ConnectWiseApi"), httpx.Response(200, json={}))
    sleeps = Sleeps()
    client = make(recorder, sleeps=sleeps)
    with pytest.raises(ServerError):
        await write(client, method)
    assert len(recorder.requests) == 1
    assert sleeps == []


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("slow"), httpx.WriteTimeout("slow"), httpx.RemoteProtocolError("drop")],
)
@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
async def test_writes_that_may_have_been_sent_are_not_retried(
    method: str, failure: Exception
) -> None:
    recorder = Recorder(failure, httpx.Response(200, json={}))
    with pytest.raises(Unavailable) as raised:
        await write(make(recorder), method)
    assert raised.value.__cause__ is failure
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    "refusal",
    [
        cw_error(429, headers={"Retry-After": "2"}),
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("slow"),
        httpx.PoolTimeout("busy"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PATCH", "DELETE"])
async def test_writes_that_cannot_have_been_applied_are_retried(
    method: str, refusal: httpx.Response | Exception
) -> None:
    recorder = Recorder(refusal, httpx.Response(201, json={"id": 5}))
    client = make(recorder)
    await write(client, method)
    assert [r.method for r in recorder.requests] == [method, method]
    assert client.requests_made == 2
    assert recorder.requests[0].content == recorder.requests[1].content


async def write(client: ConnectWiseClient, method: str) -> Any:
    if method == "POST":
        return await client.post("service/tickets/1/notes", {"text": "hi"})
    if method == "PATCH":
        return await client.patch(
            "service/tickets/1", [{"op": "replace", "path": "status/id", "value": 5}]
        )
    return await client.delete("service/tickets/1/notes/2")


async def test_writes_send_their_bodies() -> None:
    recorder = Recorder(
        httpx.Response(201, json={"id": 9}),
        httpx.Response(200, json={"id": 1, "status": {"id": 5}}),
        httpx.Response(204),
    )
    client = make(recorder)
    assert await client.post("service/tickets/1/notes", {"text": "hi"}) == {"id": 9}
    patched = await client.patch(
        "service/tickets/1", [{"op": "replace", "path": "status/id", "value": 5}]
    )
    assert patched == {"id": 1, "status": {"id": 5}}
    await client.delete("service/tickets/1/notes/9")
    post, patch, delete = recorder.requests
    assert (post.method, json.loads(post.content)) == ("POST", {"text": "hi"})
    assert (patch.method, json.loads(patch.content)) == (
        "PATCH",
        [{"op": "replace", "path": "status/id", "value": 5}],
    )
    assert (delete.method, str(delete.url)) == ("DELETE", f"{BASE}service/tickets/1/notes/9")
    for request in recorder.requests:
        assert_authenticated(request)


@pytest.mark.parametrize(
    "operations",
    [[], [{"op": "replace"}], [{"op": "merge", "path": "a"}], [{"path": "a", "value": 1}]],
)
async def test_a_patch_must_be_json_patch(operations: list[dict[str, Any]]) -> None:
    client = make(Recorder(httpx.Response(200, json={})))
    with pytest.raises(ValueError, match="operation"):
        await client.patch("service/tickets/1", operations)
    assert client.requests_made == 0


# --- the request gate -------------------------------------------------------------------


async def test_the_gate_sees_every_attempt() -> None:
    recorder = Recorder(
        cw_error(500),
        httpx.ConnectError("refused"),
        cw_error(429, headers={"Retry-After": "3"}),
        httpx.Response(200, json=[]),
    )
    gate = Gate()
    client = make(recorder, gate=gate)
    await client.get("service/tickets")
    assert gate.before == 4
    assert gate.after == [(500, None), (None, None), (429, 3.0), (200, None)]
    assert client.requests_made == 4


async def test_a_gate_refusal_propagates_untouched_and_is_not_retried() -> None:
    recorder = Recorder(cw_error(500), httpx.Response(200, json=[]))
    gate, sleeps = Gate(budget=1), Sleeps()
    client = make(recorder, gate=gate, sleeps=sleeps)
    with pytest.raises(BudgetExhausted):
        await client.get("service/tickets")
    assert len(recorder.requests) == 1  # the refused retry never went out
    assert client.requests_made == 1
    assert len(sleeps) == 1  # one backoff before the gate said no, none after

    refused = make(recorder, gate=Gate(budget=0))
    with pytest.raises(BudgetExhausted):
        await refused.post("service/tickets", {})
    assert refused.requests_made == 0
    assert len(recorder.requests) == 1


# --- base URL re-discovery --------------------------------------------------------------


class Discovery:
    def __init__(self, answer: str = MOVED) -> None:
        self.answer = answer
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        return self.answer


def moved_site(request: httpx.Request) -> httpx.Response:
    if str(request.url).startswith(MOVED):
        return httpx.Response(200, json={"version": "v2025.2"})
    return httpx.Response(404, text="<html><body>Not Found</body></html>")


async def test_an_html_404_rediscovers_the_base_url_once() -> None:
    recorder, discovery, gate = Recorder(moved_site), Discovery(), Gate()
    client = make(recorder, rediscover=discovery, gate=gate)
    assert await client.get("system/info") == {"version": "v2025.2"}
    assert discovery.calls == 1
    assert client.base_url == MOVED
    assert [str(r.url) for r in recorder.requests] == [f"{BASE}system/info", f"{MOVED}system/info"]
    assert gate.after == [(404, None), (200, None)]
    # Later requests go to the new base straight away.
    await client.get("system/info")
    assert str(recorder.requests[-1].url) == f"{MOVED}system/info"
    assert discovery.calls == 1
    assert client.requests_made == 3


async def test_an_empty_404_also_rediscovers() -> None:
    recorder = Recorder(httpx.Response(404), httpx.Response(200, json={}))
    discovery = Discovery(MOVED.rstrip("/"))
    client = make(recorder, rediscover=discovery)
    await client.get("system/info")
    assert discovery.calls == 1
    assert client.base_url == MOVED


async def test_a_json_404_is_a_missing_record_not_a_move() -> None:
    recorder, discovery = Recorder(cw_error(404, "NotFound", "Ticket ID 7 not found")), Discovery()
    client = make(recorder, rediscover=discovery)
    with pytest.raises(NotFound, match="Ticket ID 7 not found"):
        await client.get("service/tickets/7")
    assert discovery.calls == 0
    assert client.base_url == BASE
    assert len(recorder.requests) == 1


async def test_rediscovery_happens_at_most_once_per_request() -> None:
    recorder = Recorder(httpx.Response(404, text="<html>nope</html>"))
    discovery = Discovery()
    client = make(recorder, rediscover=discovery)
    with pytest.raises(NotFound):
        await client.get("system/info")
    assert discovery.calls == 1
    assert len(recorder.requests) == 2


async def test_rediscovering_the_same_base_does_not_repeat_the_request() -> None:
    recorder, discovery = Recorder(httpx.Response(404, text="")), Discovery(BASE)
    with pytest.raises(NotFound):
        await make(recorder, rediscover=discovery).get("system/info")
    assert discovery.calls == 1
    assert len(recorder.requests) == 1


async def test_rediscovery_moves_a_paging_next_link_along() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        url = str(request.url)
        if url.startswith(MOVED):
            return httpx.Response(200, json=[{"id": 2}])
        if request.url.params.get("page") == "1":
            link = f'<{BASE}service/tickets?page=2>; rel="next"'
            return httpx.Response(200, json=[{"id": 1}], headers={"Link": link})
        return httpx.Response(404, text="<html/>")

    recorder = Recorder(answer)
    client = make(recorder, rediscover=Discovery())
    pages = [page async for page in client.pages("service/tickets")]
    assert pages == [[{"id": 1}], [{"id": 2}]]
    assert str(recorder.requests[-1].url) == f"{MOVED}service/tickets?page=2"


# --- compatibility ----------------------------------------------------------------------


def test_legacy_names_still_work() -> None:
    error = ConnectWiseError(502, "UnexpectedBody", "no key pair")
    assert (error.status, error.code, error.message, error.errors) == (
        502,
        "UnexpectedBody",
        "no key pair",
        [],
    )
    assert not error.retryable
    assert issubclass(RateLimited, ConnectWiseError)
    assert issubclass(Unavailable, ConnectWiseError)
    client = ConnectWiseClient(httpx.AsyncClient(), BASE.rstrip("/"), BearerCredentials("x"), "c")
    assert client.base_url == BASE
    assert client.requests_made == 0


# --- against the sandbox ----------------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox_app() -> Any:
    settings = Settings(
        tickets=2500, seed=42, anchor=datetime(2026, 6, 1, tzinfo=UTC), client_ids=DEV_CLIENT_ID
    )
    return create_app(settings)


@pytest.fixture
async def sandbox_client(sandbox_app: Any) -> AsyncIterator[ConnectWiseClient]:
    state = sandbox_app.state.sandbox
    key = next(k for k in state.store.api_keys if k.member_identifier == "atech")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sandbox_app)) as http:
        yield ConnectWiseClient(
            http,
            f"http://sandbox.test{state.settings.api_prefix}/",
            ApiKeyCredentials(state.settings.company_id, key.public_key, key.private_key),
            DEV_CLIENT_ID,
        )
    assert_none_refused(state.stats.snapshot())


def ids_of(pages: Sequence[Sequence[dict[str, Any]]]) -> list[int]:
    return [row["id"] for page in pages for row in page]


async def test_sandbox_forward_only_paging(sandbox_client: ConnectWiseClient) -> None:
    pages = [
        page
        async for page in sandbox_client.pages(
            "service/tickets", fields=["id"], forward_only=True, page_size=1000
        )
    ]
    assert [len(page) for page in pages] == [1000, 1000, 500]
    ids = ids_of(pages)
    assert ids == sorted(set(ids))
    assert sandbox_client.requests_made == 3


async def test_sandbox_search_with_long_conditions(sandbox_client: ConnectWiseClient) -> None:
    condition = F("id").not_in(range(-400, 0)) & F("summary").not_like("zz*never*")
    assert len(str(condition)) > 1500
    pages = [
        page
        async for page in sandbox_client.pages(
            "service/tickets", conditions=condition, fields="id,summary", page_size=1000
        )
    ]
    assert [len(page) for page in pages] == [1000, 1000, 500]
    ids = ids_of(pages)
    assert ids == sorted(set(ids))
    assert sandbox_client.requests_made == 3
    total = await sandbox_client.count("service/tickets", F("id") > 0)
    assert total == 2500
    excluded = await sandbox_client.count("service/tickets", F("id").in_(ids[:10]))
    assert excluded == 10


@pytest.mark.parametrize("codebase", ["v2025_1/", "v4_6_release/", "v2019.3/", "v2025_1"])
async def test_a_version_segment_is_taken_as_the_codebase(codebase: str) -> None:
    answer = httpx.MockTransport(lambda _: httpx.Response(200, json={"Codebase": codebase}))
    async with httpx.AsyncClient(transport=answer) as http:
        assert await fetch_codebase(http, "https://psa.example.com", "acme") == codebase


@pytest.mark.parametrize(
    "codebase",
    ["../admin/", "v1/../../x/", "@evil.example/", "v1?x=", "v1#", "v 1/", "a/b/", "/v1/", 7],
)
async def test_a_codebase_that_is_not_one_path_segment_is_refused(codebase: object) -> None:
    """The site is the user's: its company info must not steer where API calls go."""
    answer = httpx.MockTransport(lambda _: httpx.Response(200, json={"Codebase": codebase}))
    async with httpx.AsyncClient(transport=answer) as http:
        with pytest.raises(ConnectWiseError, match="codebase"):
            await fetch_codebase(http, "https://psa.example.com", "acme")
