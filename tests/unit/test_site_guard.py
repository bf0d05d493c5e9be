import pytest

from syntaskio_auth.site_guard import SitePolicy, SiteRejected, check_site, normalise_site

CLOUD = SitePolicy(frozenset({"api-na.myconnectwise.net", "localhost", "127.0.0.1:8090"}))


@pytest.mark.parametrize(
    ("site", "expected"),
    [
        ("api-na.myconnectwise.net", ("https", "api-na.myconnectwise.net")),
        ("https://API-NA.myconnectwise.net/", ("https", "api-na.myconnectwise.net")),
        ("http://127.0.0.1:8090", ("http", "127.0.0.1:8090")),
    ],
)
def test_sites_are_normalised(site: str, expected: tuple[str, str]) -> None:
    assert normalise_site(site) == expected


@pytest.mark.parametrize(
    "site",
    [
        "https://user:pw@api-na.myconnectwise.net",
        "api-na.myconnectwise.net/evil?x=1",
        "ftp://api-na.myconnectwise.net",
        "https://",
    ],
)
def test_odd_sites_are_rejected(site: str) -> None:
    with pytest.raises(SiteRejected):
        normalise_site(site)


async def test_hosts_off_the_allow_list_are_rejected() -> None:
    with pytest.raises(SiteRejected, match="not an allowed"):
        await check_site("evil.example.com", CLOUD)


async def test_loopback_is_rejected_unless_configured_for_local_development() -> None:
    with pytest.raises(SiteRejected, match="non-public"):
        await check_site("localhost", CLOUD)
    with pytest.raises(SiteRejected, match="https"):
        await check_site("http://127.0.0.1:8090", CLOUD)
    local = SitePolicy(CLOUD.allowed_hosts, allow_private_network=True, allow_http=True)
    assert await check_site("http://127.0.0.1:8090", local) == "http://127.0.0.1:8090"
