"""The shared ConnectWise protocol client: headers, paging, and links it won't follow."""

import httpx
import pytest

from syntaskio_common.connectwise import (
    ACCEPT,
    BearerCredentials,
    ConnectWiseClient,
    ConnectWiseError,
)

BASE = "https://cw.example/v2025_1/apis/3.0/"


def client(handler: httpx.MockTransport) -> ConnectWiseClient:
    return ConnectWiseClient(
        httpx.AsyncClient(transport=handler), BASE, BearerCredentials("t0k"), "cid"
    )


async def test_pages_follow_next_links_on_the_same_api_host() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params.get("page") == "1":
            return httpx.Response(
                200,
                json=[{"id": 1}],
                headers={"Link": f'<{BASE}service/tickets?page=2>; rel="next"'},
            )
        return httpx.Response(200, json=[{"id": 2}])

    pages = [page async for page in client(httpx.MockTransport(answer)).pages("service/tickets")]
    assert pages == [[{"id": 1}], [{"id": 2}]]
    assert seen[0].headers["authorization"] == "Bearer t0k"
    assert seen[0].headers["clientid"] == "cid"
    assert seen[0].headers["accept"] == ACCEPT


@pytest.mark.parametrize(
    "link",
    [
        "https://evil.example/v2025_1/apis/3.0/service/tickets?page=2",
        "http://169.254.169.254/latest",
    ],
)
async def test_a_next_link_off_the_api_host_is_refused(link: str) -> None:
    requested: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requested.append(str(request.url))
        return httpx.Response(200, json=[{"id": 1}], headers={"Link": f'<{link}>; rel="next"'})

    with pytest.raises(ConnectWiseError, match="leaves the API host"):
        async for _ in client(httpx.MockTransport(answer)).pages("service/tickets"):
            pass
    assert len(requested) == 1
