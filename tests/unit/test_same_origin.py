"""Which requests the gateway takes for cross-site writes (refused with 403)."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from syntaskio_gateway.same_origin import cross_site

HOST = "syntaskio.example"


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("POST", {"sec-fetch-site": "cross-site"}),
        ("POST", {"sec-fetch-site": "same-site"}),  # a sibling subdomain is another site
        ("DELETE", {"sec-fetch-site": "cross-site", "origin": f"https://{HOST}"}),
        ("POST", {"origin": "https://evil.example"}),
        ("PUT", {"origin": f"https://{HOST}.evil.example"}),
        ("PATCH", {"origin": "null"}),
    ],
)
def test_writes_from_other_sites_are_cross_site(method: str, headers: dict[str, str]) -> None:
    assert cross_site(method, Headers({"host": HOST, **headers}))


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("POST", {"sec-fetch-site": "same-origin", "origin": f"https://{HOST}"}),
        ("POST", {"sec-fetch-site": "none"}),
        ("POST", {"origin": f"https://{HOST}"}),
        ("POST", {"origin": f"https://{HOST.upper()}"}),
        ("POST", {}),  # not a browser: its credentials decide
        ("GET", {"sec-fetch-site": "cross-site"}),  # reading is not changing
        ("HEAD", {"origin": "https://evil.example"}),
    ],
)
def test_same_site_writes_reads_and_non_browsers_pass(method: str, headers: dict[str, str]) -> None:
    assert not cross_site(method, Headers({"host": HOST, **headers}))
