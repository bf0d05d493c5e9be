"""The SSRF guard's input side: a corpus of hostile sites, every one refused for the
reason we expect, and the real ConnectWise hosts accepted."""

from __future__ import annotations

import socket

import pytest

from syntaskio_common.egress import (
    CONNECTWISE_CLOUD_HOSTS,
    SitePolicy,
    SiteRejected,
    check_site,
    normalise_site,
)

PUBLIC_V4, PUBLIC_V6 = "52.44.18.10", "2600:1f18:4a3:6901::10"

# Hostile names are allow-listed on purpose, so that it is the address check, not the
# allow-list, that refuses them ("DNS names resolving to loopback").
HOSTILE_DNS: dict[str, list[str]] = {
    "loopback.attacker.test": ["127.0.0.1"],
    "loopback6.attacker.test": ["::1"],
    "ten.attacker.test": ["10.1.2.3"],
    "one72.attacker.test": ["172.16.5.4"],
    "one92.attacker.test": ["192.168.1.1"],
    "metadata.google.internal": ["169.254.169.254"],
    "imds6.attacker.test": ["fd00:ec2::254"],
    "linklocal6.attacker.test": ["fe80::1"],
    "cgnat.attacker.test": ["100.64.0.1"],
    "zero.attacker.test": ["0.0.0.0"],  # noqa: S104
    "mapped.attacker.test": ["::ffff:127.0.0.1"],
    "nat64.attacker.test": ["64:ff9b::a9fe:a9fe"],
    "sixtofour.attacker.test": ["2002:7f00:1::1"],
    "teredo.attacker.test": ["2001:0:4136:e378:8000:63bf:3fff:fdd2"],
    "multicast.attacker.test": ["224.0.0.1"],
    "broadcast.attacker.test": ["255.255.255.255"],
    "docs.attacker.test": ["192.0.2.10"],
    "mixed.attacker.test": [PUBLIC_V4, "10.0.0.5"],
    "nowhere.attacker.test": [],
}
RESOLVED: dict[str, list[str]] = {
    **{host: [PUBLIC_V4, PUBLIC_V6] for host in CONNECTWISE_CLOUD_HOSTS},
    "cw.example-msp.com": [PUBLIC_V4],
    "localhost": ["127.0.0.1", "::1"],
    **HOSTILE_DNS,
}


async def fake_resolver(host: str) -> list[str]:
    try:
        return RESOLVED[host]
    except KeyError:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None


ALLOWED = CONNECTWISE_CLOUD_HOSTS | set(HOSTILE_DNS) | {"cw.example-msp.com:8443", "localhost"}
PRODUCTION = SitePolicy(frozenset(ALLOWED), resolver=fake_resolver)
DEVELOPMENT = SitePolicy(
    frozenset(ALLOWED | {"127.0.0.1:8090", "[::1]:8090"}),
    allow_private_network=True,
    allow_http=True,
    resolver=fake_resolver,
)

NON_PUBLIC = "resolves to a non-public address"
NOT_ALLOWED = "is not an allowed ConnectWise host"
NOT_AN_IP = "not an IP address"
HTTPS = "must use https"
FORM = "host name|user name|percent|query|path|port|spaces|backslash|ASCII|too long"

HOSTILE = [
    # DNS names resolving to internal addresses (allow-listed; the address check refuses).
    pytest.param("loopback.attacker.test", NON_PUBLIC, id="dns-loopback-v4"),
    pytest.param("https://loopback6.attacker.test/", NON_PUBLIC, id="dns-loopback-v6"),
    pytest.param("ten.attacker.test", NON_PUBLIC, id="dns-rfc1918-10"),
    pytest.param("one72.attacker.test", NON_PUBLIC, id="dns-rfc1918-172"),
    pytest.param("one92.attacker.test", NON_PUBLIC, id="dns-rfc1918-192"),
    pytest.param("metadata.google.internal", NON_PUBLIC, id="dns-metadata-gcp"),
    pytest.param("imds6.attacker.test", NON_PUBLIC, id="dns-metadata-aws-v6"),
    pytest.param("linklocal6.attacker.test", NON_PUBLIC, id="dns-link-local-v6"),
    pytest.param("cgnat.attacker.test", NON_PUBLIC, id="dns-cgnat"),
    pytest.param("zero.attacker.test", NON_PUBLIC, id="dns-zero-network"),
    pytest.param("mapped.attacker.test", NON_PUBLIC, id="dns-ipv4-mapped-loopback"),
    pytest.param("nat64.attacker.test", NON_PUBLIC, id="dns-nat64-metadata"),
    pytest.param("sixtofour.attacker.test", NON_PUBLIC, id="dns-6to4-loopback"),
    pytest.param("teredo.attacker.test", NON_PUBLIC, id="dns-teredo"),
    pytest.param("multicast.attacker.test", NON_PUBLIC, id="dns-multicast"),
    pytest.param("broadcast.attacker.test", NON_PUBLIC, id="dns-broadcast"),
    pytest.param("docs.attacker.test", NON_PUBLIC, id="dns-documentation-range"),
    pytest.param("mixed.attacker.test", NON_PUBLIC, id="dns-one-public-one-private"),
    pytest.param("localhost", NON_PUBLIC, id="dns-localhost"),
    pytest.param("nowhere.attacker.test", "does not resolve", id="dns-no-addresses"),
    # IP literals, in every spelling.
    pytest.param("127.0.0.1", NOT_AN_IP, id="ip-loopback"),
    pytest.param("https://169.254.169.254/", NOT_AN_IP, id="ip-metadata"),
    pytest.param("10.0.0.1", NOT_AN_IP, id="ip-private"),
    pytest.param("0.0.0.0", NOT_AN_IP, id="ip-zero"),  # noqa: S104
    pytest.param("52.44.18.10", NOT_AN_IP, id="ip-public-literal"),
    pytest.param("https://[::1]/", NOT_AN_IP, id="ip-v6-loopback"),
    pytest.param("https://[::ffff:127.0.0.1]/", NOT_AN_IP, id="ip-v6-mapped"),
    pytest.param("https://[fd00:ec2::254]/", NOT_AN_IP, id="ip-v6-metadata"),
    pytest.param("2130706433", NOT_AN_IP, id="ip-decimal"),
    pytest.param("0177.0.0.1", NOT_AN_IP, id="ip-octal"),
    pytest.param("0x7f.0.0.1", NOT_AN_IP, id="ip-hex-octet"),
    pytest.param("0x7f000001", NOT_AN_IP, id="ip-hex-whole"),
    pytest.param("127.1", NOT_AN_IP, id="ip-short"),
    pytest.param("https://[::1%25eth0]/", FORM, id="ip-v6-zone"),
    # Encodings.
    pytest.param("https://%31%32%37.0.0.1/", FORM, id="percent-encoded-ip"),
    pytest.param("api-na.myconnectwise%2enet", FORM, id="percent-encoded-dot"),
    pytest.param("\u0430pi-na.myconnectwise.net", FORM, id="idn-homoglyph-cyrillic-a"),
    pytest.param("xn--pi-na-3ve.myconnectwise.net", NOT_ALLOWED, id="punycode-homoglyph"),
    pytest.param("xn--zz.myconnectwise.net", FORM, id="punycode-invalid"),
    pytest.param("api-na.myconnectwise.net\uff0eevil.com", FORM, id="fullwidth-dot"),
    pytest.param("api-na.myconnectwise.net\u200b", FORM, id="zero-width-space"),
    # User-info and parser-confusion tricks.
    pytest.param("api-na.myconnectwise.net@evil.com", FORM, id="userinfo-host-first"),
    pytest.param("https://evil.com#@api-na.myconnectwise.net", FORM, id="fragment-at"),
    pytest.param("https://user:pw@api-na.myconnectwise.net", FORM, id="userinfo-credentials"),
    pytest.param("https://api-na.myconnectwise.net\\@evil.com", FORM, id="backslash-at"),
    pytest.param("https:\\\\evil.com", FORM, id="backslash-slashes"),
    pytest.param("https://evil.com?.api-na.myconnectwise.net", FORM, id="query-confusion"),
    # Header / request smuggling.
    pytest.param("api-na.myconnectwise.net\r\nX-Evil: 1", FORM, id="crlf"),
    pytest.param("api-na.myconnectwise.net\n", FORM, id="trailing-newline"),
    pytest.param("api-na.myconnectwise.net\t", FORM, id="tab"),
    pytest.param("api-na.myconnectwise.net\x00.evil.com", FORM, id="nul"),
    pytest.param("api-na.my connectwise.net", FORM, id="inner-space"),
    # Allow-list suffix/prefix tricks.
    pytest.param("api-na.myconnectwise.net.evil.com", NOT_ALLOWED, id="suffix-trick"),
    pytest.param("evil-api-na.myconnectwise.net", NOT_ALLOWED, id="prefix-trick"),
    pytest.param("evil.api-na.myconnectwise.net", NOT_ALLOWED, id="subdomain-trick"),
    pytest.param("myconnectwise.net", NOT_ALLOWED, id="parent-domain"),
    pytest.param("evil.example.com", NOT_ALLOWED, id="unlisted-host"),
    # Schemes.
    pytest.param("http://api-na.myconnectwise.net", HTTPS, id="scheme-http"),
    pytest.param("ftp://api-na.myconnectwise.net", HTTPS, id="scheme-ftp"),
    pytest.param("file:///etc/passwd", HTTPS, id="scheme-file"),
    pytest.param("gopher://api-na.myconnectwise.net:70/_", HTTPS, id="scheme-gopher"),
    pytest.param("javascript:alert(1)", FORM + "|" + HTTPS, id="scheme-javascript"),
    pytest.param("wss://api-na.myconnectwise.net", HTTPS, id="scheme-wss"),
    # Ports.
    pytest.param("api-na.myconnectwise.net:8443", NOT_ALLOWED, id="port-unlisted"),
    pytest.param("https://api-na.myconnectwise.net:22/", NOT_ALLOWED, id="port-ssh"),
    pytest.param("cw.example-msp.com", NOT_ALLOWED, id="port-listed-only-with-port"),
    pytest.param("api-na.myconnectwise.net:0", FORM, id="port-zero"),
    pytest.param("api-na.myconnectwise.net:99999", FORM, id="port-too-big"),
    pytest.param("api-na.myconnectwise.net:0443", FORM, id="port-leading-zero"),
    pytest.param("api-na.myconnectwise.net:", FORM, id="port-empty"),
    # Paths and queries.
    pytest.param("api-na.myconnectwise.net/login", FORM, id="path"),
    pytest.param("https://api-na.myconnectwise.net/v4_6_release/apis/3.0/", FORM, id="api-path"),
    pytest.param("api-na.myconnectwise.net/?x=1", FORM, id="query"),
    pytest.param("https://api-na.myconnectwise.net//", FORM, id="double-slash"),
    pytest.param("https://api-na.myconnectwise.net/..%2f", FORM, id="path-traversal"),
    # Empty, odd and oversized input.
    pytest.param("", FORM, id="empty"),
    pytest.param("   ", FORM, id="only-spaces"),
    pytest.param("https://", FORM, id="scheme-only"),
    pytest.param("https:///api-na.myconnectwise.net", FORM, id="empty-authority"),
    pytest.param("api-na..myconnectwise.net", FORM, id="empty-label"),
    pytest.param("-api-na.myconnectwise.net", FORM, id="leading-hyphen"),
    pytest.param("api_na.myconnectwise.net", FORM, id="underscore"),
    pytest.param("a" * 64 + ".myconnectwise.net", FORM, id="label-too-long"),
    pytest.param("a." * 130 + "net", FORM, id="host-too-long"),
    pytest.param("https://" + "a" * 5000, FORM, id="very-long"),
]


@pytest.mark.parametrize(("site", "reason"), HOSTILE)
async def test_hostile_sites_are_rejected_for_the_expected_reason(site: str, reason: str) -> None:
    with pytest.raises(SiteRejected, match=reason) as rejected:
        await check_site(site, PRODUCTION)
    message = str(rejected.value)
    # Safe to show a user: no raw input echoed back (no control characters, no markup).
    assert message.isprintable()
    assert not set('<>"\\@%') & set(message)


def test_the_corpus_is_big_enough() -> None:
    assert len(HOSTILE) >= 30
    assert len({param.id for param in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize(
    "site",
    [
        "2130706433",
        "0177.0.0.1",
        "127.1",
        "https://%31%32%37.0.0.1/",
        "http://127.0.0.1:8090@evil.com",
        "http://127.0.0.1:8090/admin",
        "http://127.0.0.1:9999",
        "http://10.0.0.1:8090",
    ],
)
async def test_the_development_policy_still_refuses_odd_forms_and_unlisted_addresses(
    site: str,
) -> None:
    with pytest.raises(SiteRejected):
        await check_site(site, DEVELOPMENT)


@pytest.mark.parametrize("host", sorted(CONNECTWISE_CLOUD_HOSTS))
async def test_every_connectwise_cloud_host_is_accepted(host: str) -> None:
    policy = SitePolicy(CONNECTWISE_CLOUD_HOSTS, resolver=fake_resolver)
    for site in (
        host,
        f"https://{host}",
        f"https://{host}/",
        f"{host}/",
        f"HTTPS://{host.upper()}",
    ):
        assert await check_site(site, policy) == f"https://{host}"


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        ("api-na.myconnectwise.net", ("https", "api-na.myconnectwise.net", None)),
        ("https://API-NA.myconnectwise.net/", ("https", "api-na.myconnectwise.net", None)),
        ("  api-na.myconnectwise.net  ", ("https", "api-na.myconnectwise.net", None)),
        ("api-na.myconnectwise.net.", ("https", "api-na.myconnectwise.net", None)),
        ("https://api-na.myconnectwise.net:443", ("https", "api-na.myconnectwise.net", 443)),
        ("cw.example-msp.com:8443", ("https", "cw.example-msp.com", 8443)),
        ("http://127.0.0.1:8090", ("http", "127.0.0.1", 8090)),
        ("http://[::1]:8090/", ("http", "::1", 8090)),
        ("xn--bcher-kva.example", ("https", "xn--bcher-kva.example", None)),
    ],
)
def test_sites_are_normalised(site: str, expected: tuple[str, str, int | None]) -> None:
    assert normalise_site(site) == expected


async def test_trailing_dot_and_default_port_normalise_to_the_same_base_url() -> None:
    for site in ("api-na.myconnectwise.net.", "https://api-na.myconnectwise.net:443/"):
        assert await check_site(site, PRODUCTION) == "https://api-na.myconnectwise.net"


async def test_an_on_prem_host_is_accepted_with_its_listed_port() -> None:
    assert await check_site("cw.example-msp.com:8443", PRODUCTION) == (
        "https://cw.example-msp.com:8443"
    )


async def test_allow_list_entries_are_normalised_when_the_policy_is_built() -> None:
    policy = SitePolicy(
        frozenset({" API-NA.MyConnectWise.net. ", "0:0::1", "[::1]:8090", "127.0.0.1:8090"}),
        resolver=fake_resolver,
    )
    assert policy.allowed_hosts == frozenset(
        {"api-na.myconnectwise.net", "[::1]", "[::1]:8090", "127.0.0.1:8090"}
    )
    assert (
        await check_site("api-na.myconnectwise.net", policy) == "https://api-na.myconnectwise.net"
    )


async def test_the_development_policy_lets_the_sandbox_through() -> None:
    assert await check_site("http://127.0.0.1:8090", DEVELOPMENT) == "http://127.0.0.1:8090"
    assert await check_site("http://[::1]:8090/", DEVELOPMENT) == "http://[::1]:8090"
    # A DNS name for a private address is fine in development too.
    assert await check_site("http://localhost", DEVELOPMENT) == "http://localhost"


async def test_the_sandbox_is_refused_by_the_production_policy() -> None:
    production = SitePolicy(DEVELOPMENT.allowed_hosts, resolver=fake_resolver)
    with pytest.raises(SiteRejected, match=HTTPS):
        await check_site("http://127.0.0.1:8090", production)
    with pytest.raises(SiteRejected, match=NOT_AN_IP):
        await check_site("https://127.0.0.1:8090", production)


async def test_the_resolver_is_not_asked_about_hosts_off_the_allow_list() -> None:
    asked: list[str] = []

    async def resolver(host: str) -> list[str]:
        asked.append(host)
        return [PUBLIC_V4]

    policy = SitePolicy(CONNECTWISE_CLOUD_HOSTS, resolver=resolver)
    with pytest.raises(SiteRejected, match=NOT_ALLOWED):
        await check_site("internal.corp.example", policy)
    assert asked == []
    await check_site("api-eu.myconnectwise.net", policy)
    assert asked == ["api-eu.myconnectwise.net"]
