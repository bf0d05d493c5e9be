"""Wiring: the one place auth-service's parts are put together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from syntaskio_auth.api import internal, public
from syntaskio_auth.connections import Connections
from syntaskio_auth.dev_issuer import DevIssuer
from syntaskio_auth.repository import IntegrationRepository
from syntaskio_auth.settings import AuthSettings
from syntaskio_auth.site_guard import SitePolicy
from syntaskio_auth.vault import Vault
from syntaskio_common import topics
from syntaskio_common.health import health_router
from syntaskio_common.http import create_http_client
from syntaskio_common.kafka import create_broker, ensure_topics
from syntaskio_common.mongo import create_mongo_client, get_database, ping
from syntaskio_common.problems import install_problem_handlers
from syntaskio_common.service_auth import internal_caller


def create_app(settings: AuthSettings) -> FastAPI:
    mongo = create_mongo_client(settings)
    broker = create_broker(settings, client_id="auth-service")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        repository = IntegrationRepository(get_database(mongo, settings))
        await repository.create_indexes()
        await ensure_topics(settings, [topics.INTEGRATIONS])
        await broker.start()
        async with create_http_client() as http:
            app.state.connections = Connections(
                repository=repository,
                vault=Vault(settings.keyring(), settings.vault_primary_key_id),
                http=http,
                broker=broker,
                site_policy=SitePolicy(
                    settings.allowed_hosts,
                    allow_private_network=settings.connectwise_allow_private_network,
                    allow_http=settings.connectwise_allow_http,
                ),
                client_id=settings.connectwise_client_id,
            )
            yield
        await broker.stop()
        await mongo.close()

    app = FastAPI(title="Syntaskio auth-service", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.issuer = DevIssuer(
        settings.session_issuer,
        settings.session_ttl_seconds,
        settings.session_signing_key.get_secret_value(),
    )
    install_problem_handlers(app)
    app.include_router(health_router({"mongodb": lambda: ping(mongo)}))
    app.include_router(public)
    app.include_router(
        internal, dependencies=[Depends(internal_caller(settings.internal_api_token))]
    )
    return app
