"""A page on another site cannot make a signed-in browser change anything: its form
posts (the browser adds the session cookie) are refused before any route runs, and
nothing changes; the same requests from our own pages go through."""

from __future__ import annotations

import uuid

import pytest
from e2e_helpers import signed_in

from syntaskio_devstack.stack import EmbeddedStack

FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.mark.parametrize(
    "browser_says",
    [
        {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"},
        {"Origin": "https://evil.example"},  # a browser without Fetch Metadata
    ],
)
def test_a_cross_site_form_post_changes_nothing(
    system: EmbeddedStack, browser_says: dict[str, str]
) -> None:
    with signed_in(system, f"victim-{uuid.uuid4().hex[:6]}", "acme") as browser:
        for path in ("/api/v1/session/logout", f"/api/v1/integrations/{uuid.uuid4()}/sync"):
            refused = browser.post(path, content=b"x=1", headers=FORM | browser_says)
            assert refused.status_code == 403, (path, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"
        assert browser.get("/api/v1/tasks").status_code == 200  # still signed in

        ours = {"Sec-Fetch-Site": "same-origin", "Origin": system.url("gateway")}
        assert browser.post("/api/v1/session/logout", headers=ours).status_code == 200
        assert browser.get("/api/v1/tasks").status_code == 401
