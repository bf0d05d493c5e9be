"""The SSRF guard's connection side, over real sockets on 127.0.0.1 (no internet): what
the guarded client refuses, what it connects to, and that it never follows redirects."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from syntaskio_common.egress import (
    GuardedNetworkBackend,
    GuardedTransport,
    Resolver,
    SitePolicy,
    SiteRejected,
    check_site,
    create_guarded_http_client,
    is_public_address,
)

PUBLIC = "52.44.18.10"


@dataclass
class LocalServer:
    """A tiny HTTP/1.1 server: `/ok` → 200, `/redirect` → 302 to `/ok`,
    `/redirect-away` → 302 to the metadata address. Records what reached it."""

    port: int = 0
    connections: int = 0
    requests: list[tuple[str, str]] = field(default_factory=list)  # (target, Host header)
    sni: list[str | None] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        target = lines[0].split(" ")[1]
        headers = dict(line.split(": ", 1) for line in lines[1:] if line)
        self.requests.append((target, headers.get("Host", headers.get("host", ""))))
        status, extra, body = "404 Not Found", "", b""
        if target == "/ok":
            status, body = "200 OK", b"ok"
        elif target == "/redirect":
            status, extra = "302 Found", "Location: /ok\r\n"
        elif target == "/redirect-away":
            status, extra = "302 Found", "Location: http://169.254.169.254/latest/meta-data/\r\n"
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
            f"{extra}\r\n".encode()
            + body
        )
        await writer.drain()
        writer.close()


StartServer = Callable[..., Awaitable[LocalServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    servers: list[asyncio.Server] = []

    async def start(tls: ssl.SSLContext | None = None) -> LocalServer:
        state = LocalServer()
        if tls is not None:

            def record_sni(_: ssl.SSLObject, name: str | None, __: ssl.SSLContext) -> None:
                state.sni.append(name)

            tls.sni_callback = record_sni
        server = await asyncio.start_server(state.handle, "127.0.0.1", 0, ssl=tls)
        state.port = server.sockets[0].getsockname()[1]
        servers.append(server)
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def server(start_server: StartServer) -> LocalServer:
    return await start_server()


class RecordingResolver:
    """Answers from a script (one answer per call, the last one repeated) and records
    every host it was asked about."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.asked: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.asked.append(host)
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]


def dev_policy(port: int, resolver: Resolver, *, private: bool) -> SitePolicy:
    return SitePolicy(
        frozenset({f"rebind.test:{port}"}),
        allow_private_network=private,
        allow_http=True,
        resolver=resolver,
    )


async def test_dns_rebinding_after_the_site_check_is_refused_before_any_byte_is_sent(
    server: LocalServer,
) -> None:
    # Public when the user saves the site, loopback when we connect.
    resolver = RecordingResolver([PUBLIC], ["127.0.0.1"])
    policy = dev_policy(server.port, resolver, private=False)
    base_url = await check_site(f"http://rebind.test:{server.port}", policy)
    assert base_url == f"http://rebind.test:{server.port}"

    async with create_guarded_http_client(policy, base_url=base_url) as client:
        with pytest.raises(SiteRejected, match="non-public") as rejected:
            await client.get("/ok")
    # Not an httpx.HTTPError, so `except httpx.HTTPError` retry handlers don't swallow it.
    assert not isinstance(rejected.value, httpx.HTTPError)
    assert resolver.asked == ["rebind.test", "rebind.test"]
    assert server.connections == 0
    assert server.requests == []


async def test_a_name_resolving_to_loopback_is_refused_at_connect_time(
    server: LocalServer,
) -> None:
    policy = dev_policy(server.port, RecordingResolver(["127.0.0.1"]), private=False)
    async with create_guarded_http_client(policy) as client:
        with pytest.raises(SiteRejected, match="non-public"):
            await client.get(f"http://rebind.test:{server.port}/ok")
    assert server.connections == 0


async def test_the_development_policy_connects_to_the_address_it_checked(
    server: LocalServer,
) -> None:
    # `rebind.test` is a reserved name (RFC 6761) with no real DNS record: the request can
    # only arrive if the client connected to the address our resolver returned.
    resolver = RecordingResolver(["127.0.0.1"])
    policy = dev_policy(server.port, resolver, private=True)
    async with create_guarded_http_client(policy) as client:
        response = await client.get(f"http://rebind.test:{server.port}/ok")
    assert response.status_code == 200
    assert response.text == "ok"
    assert resolver.asked == ["rebind.test"]
    assert server.requests == [("/ok", f"rebind.test:{server.port}")]


async def test_each_checked_address_is_tried_in_turn(server: LocalServer) -> None:
    # Nothing listens on [::1]:port, so the connection falls through to 127.0.0.1.
    policy = dev_policy(server.port, RecordingResolver(["::1", "127.0.0.1"]), private=True)
    async with create_guarded_http_client(policy) as client:
        response = await client.get(f"http://rebind.test:{server.port}/ok")
    assert response.status_code == 200
    assert server.connections == 1


async def test_one_bad_address_among_good_ones_refuses_the_connection(
    server: LocalServer,
) -> None:
    policy = dev_policy(server.port, RecordingResolver([PUBLIC, "127.0.0.1"]), private=False)
    async with create_guarded_http_client(policy) as client:
        with pytest.raises(SiteRejected, match="non-public"):
            await client.get(f"http://rebind.test:{server.port}/ok")
    assert server.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://other.test:{port}/ok",
        "http://127.0.0.1:{port}/ok",
        "http://localhost:{port}/ok",
        "http://rebind.test:1/ok",
        "http://rebind.test.evil.test:{port}/ok",
    ],
    ids=["other-name", "ip-literal", "localhost", "other-port", "suffix"],
)
async def test_hosts_off_the_allow_list_are_refused_without_a_lookup(
    server: LocalServer, url: str
) -> None:
    resolver = RecordingResolver(["127.0.0.1"])
    policy = dev_policy(server.port, resolver, private=True)
    async with create_guarded_http_client(policy) as client:
        with pytest.raises(SiteRejected, match="not an allowed"):
            await client.get(url.format(port=server.port))
    assert resolver.asked == []
    assert server.connections == 0


async def test_plain_http_is_refused_unless_the_policy_allows_it(server: LocalServer) -> None:
    resolver = RecordingResolver([PUBLIC])
    policy = SitePolicy(frozenset({f"rebind.test:{server.port}"}), resolver=resolver)
    async with create_guarded_http_client(policy) as client:
        for url in (f"http://rebind.test:{server.port}/ok", f"ftp://rebind.test:{server.port}/"):
            with pytest.raises(SiteRejected, match="must use https"):
                await client.get(url)
    assert resolver.asked == []
    assert server.connections == 0


async def test_the_network_backend_checks_on_its_own(server: LocalServer) -> None:
    """The connect-time check doesn't rely on the transport's pre-check."""
    resolver = RecordingResolver(["127.0.0.1"])
    backend = GuardedNetworkBackend(dev_policy(server.port, resolver, private=False))
    with pytest.raises(SiteRejected, match="not an allowed"):
        await backend.connect_tcp("other.test", server.port, timeout=1.0)
    assert resolver.asked == []
    with pytest.raises(SiteRejected, match="non-public"):
        await backend.connect_tcp("rebind.test", server.port, timeout=1.0)
    assert resolver.asked == ["rebind.test"]
    with pytest.raises(SiteRejected):
        await backend.connect_unix_socket("/var/run/docker.sock")
    assert server.connections == 0


async def test_a_redirect_is_returned_as_is_and_never_followed(server: LocalServer) -> None:
    policy = dev_policy(server.port, RecordingResolver(["127.0.0.1"]), private=True)
    async with create_guarded_http_client(policy) as client:
        response = await client.get(f"http://rebind.test:{server.port}/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "/ok"
    assert server.requests == [("/redirect", f"rebind.test:{server.port}")]


async def test_a_caller_who_turns_redirects_on_still_gets_every_hop_checked(
    server: LocalServer,
) -> None:
    policy = dev_policy(server.port, RecordingResolver(["127.0.0.1"]), private=True)
    async with create_guarded_http_client(policy) as client:
        with pytest.raises(SiteRejected, match="not an allowed"):
            await client.get(
                f"http://rebind.test:{server.port}/redirect-away", follow_redirects=True
            )
    assert server.requests == [("/redirect-away", f"rebind.test:{server.port}")]


async def test_a_name_that_stops_resolving_is_a_connect_error() -> None:
    async def gone(host: str) -> list[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async def empty(host: str) -> list[str]:
        return []

    for resolver in (gone, empty):
        policy = dev_policy(8, resolver, private=False)
        async with create_guarded_http_client(policy) as client:
            with pytest.raises(httpx.ConnectError, match="does not resolve"):
                await client.get("http://rebind.test:8/ok")


async def test_a_resolver_that_hangs_is_a_connect_timeout() -> None:
    async def hangs(host: str) -> list[str]:
        await asyncio.sleep(30)
        return [PUBLIC]

    transport = GuardedTransport(dev_policy(8, hangs, private=False))
    timeout = httpx.Timeout(5.0, connect=0.2)
    async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
        with pytest.raises(httpx.ConnectTimeout):
            await client.get("http://rebind.test:8/ok")


def test_the_client_has_the_shared_defaults_and_no_redirects() -> None:
    policy = SitePolicy(frozenset({"api-na.myconnectwise.net"}))
    client = create_guarded_http_client(policy, timeout_seconds=7.0, headers={"clientId": "x"})
    assert client.follow_redirects is False
    assert client.timeout == httpx.Timeout(7.0, connect=5.0)
    assert client.headers["clientId"] == "x"
    assert client.trust_env is False


def _certificates(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A throw-away CA and a leaf for `name`: (server context, client trusting the CA)."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Syntaskio test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert_file, key_file)
    client_context = ssl.create_default_context(
        cadata=ca.public_bytes(serialization.Encoding.PEM).decode()
    )
    return server_context, client_context


@pytest.mark.parametrize(
    ("certificate_for", "verifies"), [("rebind.test", True), ("other.test", False)]
)
async def test_tls_verifies_the_host_name_while_connecting_to_the_checked_address(
    tmp_path: Path, start_server: StartServer, certificate_for: str, verifies: bool
) -> None:
    server_context, client_context = _certificates(tmp_path, certificate_for)
    server = await start_server(server_context)
    policy = SitePolicy(
        frozenset({f"rebind.test:{server.port}"}),
        allow_private_network=True,
        resolver=RecordingResolver(["127.0.0.1"]),
    )
    transport = GuardedTransport(policy, verify=client_context)
    async with httpx.AsyncClient(transport=transport) as client:
        url = f"https://rebind.test:{server.port}/ok"
        if verifies:
            assert (await client.get(url)).status_code == 200
            assert server.requests == [("/ok", f"rebind.test:{server.port}")]
        else:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(url)
            assert server.requests == []
    assert server.sni == ["rebind.test"]


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("52.44.18.10", True),
        ("10.0.0.1", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("127.0.0.1", False),
        ("::1", False),
        ("169.254.169.254", False),
        ("fd00:ec2::254", False),
        ("fe80::1", False),
        ("fe80::1%eth0", False),
        ("100.64.0.1", False),
        ("100.100.100.200", False),
        ("0.0.0.0", False),  # noqa: S104
        ("::", False),
        ("224.0.0.1", False),
        ("ff02::1", False),
        ("255.255.255.255", False),
        ("240.0.0.1", False),
        ("192.0.0.192", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("2001:db8::1", False),
        ("fec0::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", False),
        ("::127.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),
        ("64:ff9b::808:808", False),
        ("64:ff9b:1::a9fe:a9fe", False),
        ("2002:7f00:1::1", False),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", False),
        ("not-an-address", False),
        ("", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(address) is public
