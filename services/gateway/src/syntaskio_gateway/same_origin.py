"""Cross-site writes refused: a page elsewhere can make the browser post a form (or a
`fetch` without preflight) to us with the session cookie, which SameSite=Lax alone lets
through for top-level form posts in some browsers and for sibling subdomains in all.

A request that changes something (any method but GET, HEAD, OPTIONS) is refused with 403
when the browser says it comes from another site: `Sec-Fetch-Site` other than
`same-origin` or `none` (typed or bookmarked), or, from browsers that do not send it, an
`Origin` whose host is not the one the request is addressed to. Clients that are not
browsers send neither and are judged by their credentials alone."""

from __future__ import annotations

from typing import Final
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from syntaskio_common.problems import problem_response

SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_SITE_FETCHES: Final = frozenset({"same-origin", "none"})


def cross_site(method: str, headers: Headers) -> bool:
    if method in SAFE_METHODS:
        return False
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site.lower() not in SAME_SITE_FETCHES
    origin = headers.get("origin")
    if origin is None:
        return False
    # "null" (a sandboxed frame, a redirect from elsewhere) is another site too.
    return urlsplit(origin).netloc.lower() != headers.get("host", "").lower()


class SameOriginWrites:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and cross_site(scope["method"], Headers(scope=scope)):
            refused = problem_response(403, "Requests from other sites may not change anything.")
            await refused(scope, receive, send)
            return
        await self.app(scope, receive, send)
