"""The SSRF guard for every user-supplied site (a ConnectWise host named by a user).

Two layers, both needed:

* `check_site` validates what the user typed, before it is stored: https only, an exact
  allow-listed host (and port), and every address the name resolves to is public.
* `create_guarded_http_client` re-checks at connect time, for every new connection: the
  host is allow-listed, it is resolved through the policy's resolver, every address is
  checked, and the TCP connection goes to a checked address (TLS still verifies the
  certificate against the host name). A name that resolved to a public address when it
  was saved and to 127.0.0.1 now (DNS rebinding) is refused here. Redirects are never
  followed.

Decisions worth knowing:

* A trailing dot (`api-na.myconnectwise.net.`) is normalised away before the allow-list
  comparison; the returned base URL has no trailing dot.
* Surrounding plain spaces are stripped (pasted input); any other whitespace or control
  character anywhere is refused.
* IP-literal sites are refused unless the policy allows the private network (local
  development) and the literal is allow-listed. Non-canonical IPv4 spellings (decimal
  `2130706433`, octal `0177.0.0.1`, hex `0x7f.0.0.1`, short `127.1`) are always refused.
* Non-ASCII host names are refused (homoglyphs); the `xn--` form is accepted only if it
  is valid punycode, and then only if allow-listed exactly like any other name.
* An IPv6 address that embeds an IPv4 address (IPv4-mapped, IPv4-compatible, NAT64,
  6to4, Teredo) is never public, whatever it embeds: a translator or tunnel would deliver
  the packet to an IPv4 address we did not check. This also refuses DNS64-synthesised
  addresses, so an IPv6-only deployment needs a native route to ConnectWise.

Error contract: a refusal raises `SiteRejected` (a `ValueError`, deliberately not an
`httpx.HTTPError`, so retry loops and `except httpx.HTTPError` handlers do not treat it
as a transient network failure). From the guarded client, a name that does not resolve
at connect time raises `httpx.ConnectError`, a resolver that does not answer within the
connect timeout raises `httpx.ConnectTimeout`, like any other network failure.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
import ssl
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

import anyio
import httpcore
import httpx

from syntaskio_common.http import create_http_client

logger = logging.getLogger(__name__)

CONNECTWISE_CLOUD_HOSTS: Final = frozenset(
    {
        "api-na.myconnectwise.net",
        "api-eu.myconnectwise.net",
        "api-au.myconnectwise.net",
        "api-aus.myconnectwise.net",
        "api-za.myconnectwise.net",
        "api-staging.connectwisedev.com",
    }
)

_DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_MAX_SITE_LENGTH: Final = 300
_RESOLVE_TIMEOUT_SECONDS: Final = 5.0
_SCHEME: Final = re.compile(r"[a-z][a-z0-9+.-]*")
# `javascript:…`, `mailto:…`: a scheme without `//`; `host:8090` is a port, not a scheme.
_SCHEME_WITHOUT_SLASHES: Final = re.compile(r"([a-z][a-z0-9+.-]*):(?![0-9]|$)", re.IGNORECASE)
_PORT: Final = re.compile(r"[1-9][0-9]{0,4}")
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
# A last label like this makes URL parsers read the whole host as an IPv4 address.
_NUMERIC_LABEL: Final = re.compile(r"[0-9]+|0x[0-9a-f]*")
_NOT_A_HOST: Final = "enter the site as a host name, such as api-na.myconnectwise.net"


class SiteRejected(ValueError):
    """The site is not one we will call; the message says why, in plain words, and never
    echoes raw input (only a host name that has passed validation)."""


Resolver = Callable[[str], Awaitable[list[str]]]


async def system_resolver(host: str) -> list[str]:
    """The host's addresses from the system resolver (raises `OSError` if none)."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class SitePolicy:
    """What may be called. `allowed_hosts` holds lower-case host names, optionally
    `host:port` (IPv6 literals in brackets, `[::1]:8090`); matching is exact."""

    allowed_hosts: frozenset[str]
    allow_private_network: bool = False  # dev/test only: lets the sandbox on 127.0.0.1 through
    allow_http: bool = False  # dev/test only
    resolver: Resolver = system_resolver

    def __post_init__(self) -> None:
        # Normalise once so configuration typed as `API-NA.MyConnectWise.net.` still matches.
        hosts = frozenset(_normalise_allow_entry(entry) for entry in self.allowed_hosts)
        object.__setattr__(self, "allowed_hosts", hosts - {""})


def _normalise_allow_entry(entry: str) -> str:
    entry = entry.strip().lower()
    if ":" in entry and _is_ip(entry):
        entry = f"[{ipaddress.IPv6Address(entry).compressed}]"  # a bare IPv6 literal
    host, _, port = entry.rpartition(":") if _has_port(entry) else (entry, "", "")
    host = host.removesuffix(".")
    return f"{host}:{port}" if port else host


def _has_port(entry: str) -> bool:
    return entry.count(":") == 1 or (entry.startswith("[") and "]:" in entry)


def _entry_host(entry: str) -> str:
    """The host part of an allow-list entry, without brackets or port."""
    host = entry.rpartition(":")[0] if _has_port(entry) else entry
    return host.removeprefix("[").removesuffix("]")


# Every range that is not ordinary public unicast. The stdlib's `is_global` is also
# required, but Python 3.11 misses several of these (NAT64, multicast, 192.0.0.0/24).
_NON_PUBLIC_V4: Final = tuple(
    ipaddress.IPv4Network(network)
    for network in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private (RFC 1918)
        "100.64.0.0/10",  # carrier-grade NAT (also Alibaba's metadata 100.100.100.200)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, cloud metadata 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments (Oracle metadata 192.0.0.192)
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast 255.255.255.255
    )
)
# Public IPv6 unicast lives in 2000::/3; inside it these are not public.
_GLOBAL_UNICAST_V6: Final = ipaddress.IPv6Network("2000::/3")
_NON_PUBLIC_V6: Final = tuple(
    ipaddress.IPv6Network(network)
    for network in (
        "2001::/23",  # IETF protocol assignments: Teredo 2001::/32, benchmarking, ORCHID
        "2001:db8::/32",  # documentation
        "2002::/16",  # 6to4 (embeds an IPv4 address)
        "3fff::/20",  # documentation
        # Outside 2000::/3 already; listed so the intent is plain.
        "::/128",  # unspecified
        "::1/128",  # loopback
        "::ffff:0:0/96",  # IPv4-mapped
        "::/96",  # IPv4-compatible (deprecated)
        "64:ff9b::/96",  # NAT64 well-known prefix
        "64:ff9b:1::/48",  # NAT64 local-use prefix
        "fc00::/7",  # unique-local (AWS metadata fd00:ec2::254)
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)


def is_public_address(address: str) -> bool:
    """True only for an ordinary public unicast address; anything unparsable is False."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    special = ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
    special = special or ip.is_reserved or ip.is_unspecified or not ip.is_global
    if isinstance(ip, ipaddress.IPv4Address):
        return not special and not any(ip in network for network in _NON_PUBLIC_V4)
    # Embedding forms (mapped, compatible, NAT64, 6to4, Teredo) are refused whatever
    # they embed: all lie outside 2000::/3 or in `_NON_PUBLIC_V6`.
    if ip.scope_id or ip.is_site_local or ip not in _GLOBAL_UNICAST_V6:
        return False
    return not special and not any(ip in network for network in _NON_PUBLIC_V6)


def normalise_site(site: str) -> tuple[str, str, int | None]:
    """`api-na.myconnectwise.net` or `https://api-na.myconnectwise.net/` →
    `("https", "api-na.myconnectwise.net", None)`; the port only when one was written.

    Checks form only (no allow-list, no DNS); raises `SiteRejected` for anything but a
    plain scheme + host [+ port] with an optional trailing slash."""
    text = site.strip(" ")
    if not text:
        raise SiteRejected(_NOT_A_HOST)
    if len(text) > _MAX_SITE_LENGTH:
        raise SiteRejected("the site is too long")
    if any(_is_space_or_control(char) for char in text):
        raise SiteRejected("the site must not contain spaces or control characters")
    if "\\" in text:
        raise SiteRejected("the site must not contain backslashes")
    if "@" in text:
        raise SiteRejected("the site must not contain a user name or password")
    if "%" in text:
        raise SiteRejected("the site must be a plain host name, without percent-encoding")
    if "?" in text or "#" in text:
        raise SiteRejected("the site must be a plain host name, without a query or fragment")
    if not text.isascii():
        raise SiteRejected(
            "the site must be written in plain ASCII (use the xn-- form for international names)"
        )
    scheme, rest = _split_scheme(text)
    authority, _, path = rest.partition("/")
    if path:
        raise SiteRejected("the site must be a host name, without a path")
    host_text, port = _split_port(authority)
    return scheme, _parse_host(host_text), port


def _is_space_or_control(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zs", "Zl", "Zp")


def _split_scheme(text: str) -> tuple[str, str]:
    if "://" in text:
        scheme, rest = text.split("://", 1)
        scheme = scheme.lower()
        if not _SCHEME.fullmatch(scheme) or scheme not in _DEFAULT_PORTS:
            raise SiteRejected("the site must use https")
        return scheme, rest
    if match := _SCHEME_WITHOUT_SLASHES.match(text):
        if match.group(1).lower() in _DEFAULT_PORTS:
            raise SiteRejected(_NOT_A_HOST)
        raise SiteRejected("the site must use https")
    return "https", text


def _split_port(authority: str) -> tuple[str, int | None]:
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise SiteRejected(_NOT_A_HOST)
        host_text, after = authority[: end + 1], authority[end + 1 :]
        if after and not after.startswith(":"):
            raise SiteRejected(_NOT_A_HOST)
        port_text = after[1:] if after else None
    else:
        host_text, colon, port_text_or_empty = authority.partition(":")
        port_text = port_text_or_empty if colon else None
    if port_text is None:
        return host_text, None
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise SiteRejected("the site's port is not valid")
    return host_text, int(port_text)


def _parse_host(host_text: str) -> str:
    """A validated, lower-case host: a DNS name, a canonical IPv4 address, or a
    compressed IPv6 address (from `[…]`)."""
    if host_text.startswith("["):
        if not host_text.endswith("]"):
            raise SiteRejected(_NOT_A_HOST)
        try:
            return ipaddress.IPv6Address(host_text[1:-1]).compressed
        except ValueError:
            raise SiteRejected("the site's host name is not valid") from None
    host = host_text.lower().removesuffix(".")
    if not host:
        raise SiteRejected(_NOT_A_HOST)
    if len(host) > 253:
        raise SiteRejected("the site's host name is too long")
    labels = host.split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        try:
            address = ipaddress.IPv4Address(host)
        except ValueError:
            address = None
        if address is None or str(address) != host:
            raise SiteRejected("the site must be a host name, not an IP address in another form")
        return host
    for label in labels:
        if not _LABEL.fullmatch(label) or (label.startswith("xn--") and not _is_punycode(label)):
            raise SiteRejected("the site's host name is not valid")
    return host


def _is_punycode(label: str) -> bool:
    try:
        return label.encode("ascii").decode("idna").encode("idna") == label.encode("ascii")
    except UnicodeError:
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _netloc_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _check_target(scheme: str, host: str, port: int | None, policy: SitePolicy) -> None:
    """Scheme, IP-literal rule and allow-list for an already-validated host."""
    if scheme not in _DEFAULT_PORTS or (scheme == "http" and not policy.allow_http):
        raise SiteRejected("the site must use https")
    if _is_ip(host) and not policy.allow_private_network:
        raise SiteRejected("the site must be a host name, not an IP address")
    name, default = _netloc_host(host), _DEFAULT_PORTS[scheme]
    if port is None or port == default:
        allowed = name in policy.allowed_hosts or f"{name}:{default}" in policy.allowed_hosts
        shown = name
    else:
        shown = f"{name}:{port}"
        allowed = shown in policy.allowed_hosts
    if not allowed:
        _refuse(shown, "not allow-listed")
        raise SiteRejected(f"{shown} is not an allowed ConnectWise host")


async def _resolve(host: str, policy: SitePolicy) -> list[str]:
    """The host's addresses; raises `OSError` when there are none."""
    if _is_ip(host):
        return [host]
    addresses = await policy.resolver(host)
    if not addresses:
        raise OSError(f"{host} has no addresses")
    return addresses


def _check_addresses(host: str, addresses: Iterable[str], policy: SitePolicy) -> None:
    if policy.allow_private_network:
        return
    if not all(is_public_address(address) for address in addresses):
        _refuse(host, "resolves to a non-public address")
        raise SiteRejected(f"{host} resolves to a non-public address")


def _refuse(host: str, reason: str) -> None:
    # Host names only: never a URL, whose query could carry secrets.
    logger.warning("egress refused for %s: %s", host, reason)


async def check_site(site: str, policy: SitePolicy) -> str:
    """Return the site's base URL (`https://host`, `http://host:port` in development) or
    raise `SiteRejected`. The default port is left out; any other is kept."""
    scheme, host, port = normalise_site(site)
    _check_target(scheme, host, port, policy)
    try:
        with anyio.fail_after(_RESOLVE_TIMEOUT_SECONDS):
            addresses = await _resolve(host, policy)
    except (OSError, UnicodeError):  # TimeoutError is an OSError
        raise SiteRejected(f"{host} does not resolve") from None
    _check_addresses(host, addresses, policy)
    netloc = _netloc_host(host)
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}"


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks at connect time, then connects to a checked address, so what
    we checked is what we connect to (no second, unchecked DNS lookup)."""

    def __init__(
        self, policy: SitePolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend() if inner is None else inner
        self._hosts = frozenset(_entry_host(entry) for entry in policy.allowed_hosts)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        name = _parse_host(_netloc_host(host))
        if name not in self._hosts:
            _refuse(_netloc_host(name), "not allow-listed")
            raise SiteRejected(f"{_netloc_host(name)} is not an allowed ConnectWise host")
        if _is_ip(name) and not self._policy.allow_private_network:
            raise SiteRejected("the site must be a host name, not an IP address")
        deadline = None if timeout is None else anyio.current_time() + timeout
        try:
            with anyio.fail_after(timeout):
                addresses = await _resolve(name, self._policy)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {name} timed out") from None
        except (OSError, UnicodeError):
            raise httpcore.ConnectError(f"{name} does not resolve") from None
        _check_addresses(name, addresses, self._policy)
        failure: Exception = httpcore.ConnectError(f"{name} has no addresses")
        for address in addresses:
            remaining = None if deadline is None else max(0.0, deadline - anyio.current_time())
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as error:
                failure = error
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise SiteRejected("only checked network addresses may be called")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


_DEFAULT_LIMITS: Final = httpx.Limits(
    max_connections=100, max_keepalive_connections=20, keepalive_expiry=5.0
)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with the pool rebuilt around `GuardedNetworkBackend`; every
    request's scheme, host and port are checked against the policy before the pool."""

    def __init__(
        self,
        policy: SitePolicy,
        *,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits = _DEFAULT_LIMITS,
    ) -> None:
        ssl_context = httpx.create_ssl_context(verify=verify)
        super().__init__(verify=ssl_context, limits=limits)
        self._policy = policy
        # httpx gives no way to hand httpcore a `network_backend`, so replace the pool
        # super() built with one that uses ours. Same arguments as httpx 0.28's
        # AsyncHTTPTransport (no proxy: a proxy would resolve names we never checked).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=GuardedNetworkBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        host = _parse_host(_netloc_host(url.raw_host.decode("ascii")))
        _check_target(url.scheme, host, url.port, self._policy)
        return await super().handle_async_request(request)


def create_guarded_transport(policy: SitePolicy) -> httpx.AsyncBaseTransport:
    """The guarded transport alone, for libraries that build their own `httpx.AsyncClient`
    (e.g. an OAuth client); give that client `follow_redirects=False` and timeouts."""
    return GuardedTransport(policy)


def create_guarded_http_client(
    policy: SitePolicy,
    *,
    timeout_seconds: float = 15.0,
    headers: dict[str, str] | None = None,
    base_url: str = "",
) -> httpx.AsyncClient:
    """The outbound client for user-supplied sites: the shared client with the
    connect-time guard. Redirects are off; a caller that turns them on per request still
    has every hop checked."""
    return create_http_client(
        base_url=base_url,
        timeout_seconds=timeout_seconds,
        transport=create_guarded_transport(policy),
        headers=headers,
        # Environment proxies would connect on our behalf to addresses we never checked.
        trust_env=False,
    )
