"""The one fixture for the embedded stack: broker, database and sandbox on free ports
(or an external Kafka/MongoDB from KAFKA_BOOTSTRAP_SERVERS / MONGODB_URL, or containers
with SYNTASKIO_TEST_BACKEND=containers), plus the four services as real processes for
end-to-end tests."""

from __future__ import annotations

import itertools
import uuid
import warnings
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from contract_checks import assert_no_contract_violations
from e2e_helpers import signed_in
from pymongo import AsyncMongoClient, MongoClient
from service_logs import timed_out_runs

from syntaskio_common.mongo import Document
from syntaskio_common.settings import Environment, ServiceSettings
from syntaskio_devstack.containers import session_servers
from syntaskio_devstack.ports import Ports
from syntaskio_devstack.stack import EmbeddedStack, StackConfig

_TESTS = Path(__file__).parent


_RUNNING_SYSTEM = pytest.StashKey[EmbeddedStack]()

_ORDER = {"unit": 0, "integration": 1, "e2e": 2, "abuse": 3, "chaos": 4}


def _kind(item: pytest.Item) -> str:
    return Path(str(item.fspath)).relative_to(_TESTS).parts[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Fast to slow; and integration tests run their own consumers before the whole
    # system (started for the first end-to-end test) runs its aggregator beside them.
    items.sort(key=lambda item: _ORDER.get(_kind(item), 1))
    for item in items:
        if _kind(item) in ("integration", "e2e", "abuse", "chaos"):
            item.add_marker(getattr(pytest.mark, _kind(item)))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    # SYNTASKIO_TEST_BACKEND: the embedded servers (default) or containers (Docker).
    with session_servers() as servers:
        config = StackConfig(
            data_dir=tmp_path_factory.mktemp("stack"),
            ports=Ports.free(),
            kafka_bootstrap_servers=servers.kafka_bootstrap_servers,
            mongodb_url=servers.mongodb_url,
            database_name=f"syntaskio_test_{uuid.uuid4().hex[:8]}",
            sync_interval_seconds=2.0,
            # A killed connector's integrations are taken over 10 s later; no run lasts
            # more than 90 s (a run that hangs is interrupted and logged, not waited for).
            sync_lease_seconds=10.0,
            sync_run_timeout_seconds=90.0,
            # Slow clients are cut off sooner than in production (the abuse suite's).
            client_read_timeout_seconds=5.0,
            environment="test",
        )
        embedded = EmbeddedStack(config)
        try:
            embedded.start_data_stores()
            yield embedded
        finally:
            embedded.stop()


@pytest.fixture(scope="session")
def sandbox(stack: EmbeddedStack) -> Iterator[str]:
    """The ConnectWise sandbox's base URL (seeded, 300 tickets). After the session, no
    request it answered may have broken the documented contract."""
    stack.start_sandbox()
    yield stack.url("sandbox")
    assert_no_contract_violations(stack.url("sandbox"))


@pytest.fixture(scope="session")
def system(
    stack: EmbeddedStack, sandbox: str, request: pytest.FixtureRequest
) -> Iterator[EmbeddedStack]:
    """The whole system: the four services running against the embedded stack. A sync
    run that hung until its time limit is not a failure (it is recovered from) but is
    never silent: the session ends with a warning saying where it hung."""
    stack.start_services()
    request.session.stash[_RUNNING_SYSTEM] = stack
    yield stack
    for hung in timed_out_runs(stack):
        warnings.warn(f"a sync run timed out: {hung}", stacklevel=1)


@pytest.fixture(scope="session")
def settings(stack: EmbeddedStack) -> ServiceSettings:
    return ServiceSettings(
        environment=Environment.TEST,
        kafka_bootstrap_servers=stack.kafka_bootstrap_servers,
        mongodb_url=stack.mongodb_url,
        mongodb_database=stack.config.database_name,
    )


@pytest.fixture
async def mongo(settings: ServiceSettings) -> AsyncIterator[AsyncMongoClient[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongodb_url.get_secret_value(), tz_aware=True
    )
    yield client
    await client.close()


@pytest.fixture
def tenant() -> str:
    """A fresh tenant per test, so tests sharing the stack never see each other's data."""
    return f"tenant-{uuid.uuid4().hex[:10]}"


# Each clean-up signs in from its own address: sign-ins are limited per address.
_CLEANUP_ADDRESSES = (f"198.51.100.{host}" for host in itertools.cycle(range(1, 255)))


@pytest.fixture(scope="module", autouse=True)
def connections_end_with_their_module(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each module, every connection still active is disconnected by its company's
    admin through the gateway, as a company leaving would: otherwise each would go on
    syncing every 2 s beside the rest of the suite, on the same two cores."""
    yield
    system = request.session.stash.get(_RUNNING_SYSTEM, None)
    if system is None:
        return
    with MongoClient(system.mongodb_url) as client:
        active = client[system.config.database_name]["integrations"].find(
            {"status": "active"}, {"tenant_id": 1}
        )
        by_tenant: defaultdict[str, list[str]] = defaultdict(list)
        for integration in active:
            by_tenant[integration["tenant_id"]].append(integration["_id"])
    for tenant_id, integration_ids in by_tenant.items():
        with signed_in(
            system, "suite-clean-up", tenant_id, ("admin",), address=next(_CLEANUP_ADDRESSES)
        ) as admin:
            for integration_id in integration_ids:
                response = admin.delete(f"/api/v1/admin/integrations/{integration_id}")
                assert response.status_code == 200, response.text
