"""Redirecting a browser within this site only."""

from __future__ import annotations

from fastapi import status
from fastapi.responses import RedirectResponse


def see_other(location: str) -> RedirectResponse:
    return RedirectResponse(
        location,
        status_code=status.HTTP_303_SEE_OTHER,
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def is_local_path(location: str) -> bool:
    """A path on this site: "/x" but not "//host" (scheme-relative), nor anything a browser
    might rewrite into one ("/\\host", control characters or whitespace it strips)."""
    return (
        location.startswith("/")
        and not location.startswith("//")
        and "\\" not in location
        and location.isascii()
        and location.isprintable()
        and " " not in location
    )
