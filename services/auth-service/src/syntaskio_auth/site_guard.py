"""Checks a user-supplied ConnectWise site before anything is sent to it (SSRF guard):
allow-listed host, https, and no private, loopback, link-local or metadata address."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit


class SiteRejected(ValueError):
    """The site is not one we will call; the message says why, in plain words."""


@dataclass(frozen=True)
class SitePolicy:
    allowed_hosts: frozenset[str]
    allow_private_network: bool = False
    allow_http: bool = False


def normalise_site(site: str) -> tuple[str, str]:
    """`api-na.myconnectwise.net` or `https://api-na.myconnectwise.net/` → (scheme, host[:port])."""
    text = site.strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SiteRejected("the site must be a host name such as api-na.myconnectwise.net")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise SiteRejected("the site must be a plain host name, without credentials or query")
    if parts.path not in ("", "/"):
        raise SiteRejected("the site must be a host name, without a path")
    host = parts.hostname.lower()
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts.scheme, netloc


async def check_site(site: str, policy: SitePolicy) -> str:
    """Return the site's base URL (`https://host`) or raise `SiteRejected`."""
    scheme, netloc = normalise_site(site)
    if scheme == "http" and not policy.allow_http:
        raise SiteRejected("the site must use https")
    host = netloc.rsplit(":", 1)[0] if netloc.count(":") == 1 else netloc
    if netloc not in policy.allowed_hosts and host not in policy.allowed_hosts:
        raise SiteRejected(f"{netloc} is not an allowed ConnectWise host")
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise SiteRejected(f"{host} does not resolve") from error
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global and not policy.allow_private_network:
            raise SiteRejected(f"{host} resolves to a non-public address")
    # Default ports are implied by the scheme; an explicit one is kept.
    return f"{scheme}://{netloc}"
