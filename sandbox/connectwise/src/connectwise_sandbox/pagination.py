"""Slicing a result into pages and announcing the neighbours in an RFC 5988 `Link` header,
the way ConnectWise does:

* navigable (default): ``page``/``pageSize``; ``first``/``prev`` on every page after the
  first, ``next``/``last`` on every page before the last, no header for a single page;
* forward-only (request header ``pagination-type: forward-only``): rows with ``id >
  pageId`` in id order; only a ``next`` link (carrying ``pageId`` = the last id
  returned), present while more rows follow.

Links are absolute and keep every other query parameter of the request.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from connectwise_sandbox.query import ListQuery
from connectwise_sandbox.records import JsonObject

FORWARD_ONLY = "forward-only"


@dataclass(frozen=True)
class Page:
    rows: Sequence[JsonObject]
    link: str | None


def paginate(
    rows: Sequence[JsonObject],
    query: ListQuery,
    base_url: str,
    params: Sequence[tuple[str, str]],
) -> Page:
    """`rows` are filtered and ordered; `params` is the request's query string, in order."""
    if query.forward_only:
        window = rows[: query.page_size]
        link = None
        if len(rows) > len(window) and window:
            url = _url(base_url, params, {"pageId": str(window[-1]["id"])}, drop={"page"})
            link = f'<{url}>; rel="next"'
        return Page(window, link)

    start = (query.page - 1) * query.page_size
    window = rows[start : start + query.page_size]
    last_page = max(1, math.ceil(len(rows) / query.page_size))
    links: list[str] = []

    def add(page: int, rel: str) -> None:
        url = _url(base_url, params, {"page": str(page)}, drop={"pageid"})
        links.append(f'<{url}>; rel="{rel}"')

    if query.page > 1:
        add(1, "first")
        add(min(query.page - 1, last_page), "prev")
    if query.page < last_page:
        add(query.page + 1, "next")
        add(last_page, "last")
    return Page(window, ", ".join(links) or None)


def _url(
    base_url: str, params: Sequence[tuple[str, str]], replace: dict[str, str], drop: set[str]
) -> str:
    replaced = {name.lower() for name in replace}
    kept = [(k, v) for k, v in params if k.lower() not in replaced and k.lower() not in drop]
    query = urlencode([*kept, *replace.items()], safe=",/")
    return f"{base_url}?{query}"
