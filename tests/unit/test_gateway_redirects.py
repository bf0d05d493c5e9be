"""The gateway relays auth-service's post-OAuth redirect only to a path on this site."""

import pytest

from syntaskio_gateway.redirects import is_local_path


@pytest.mark.parametrize("location", ["/settings?connectwise=connected", "/", "/settings"])
def test_paths_on_this_site_are_relayed(location: str) -> None:
    assert is_local_path(location)


@pytest.mark.parametrize(
    "location",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "/\t/evil.example",
        "/ /evil.example",
        "settings",
        "javascript:alert(1)",
        "/settings\r\nSet-Cookie: x=1",
        "/séttings",
        "",
    ],
)
def test_anything_else_is_refused(location: str) -> None:
    assert not is_local_path(location)
