"""Wiring: the one place auth-service's parts are put together."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import httpx
from fastapi import Depends, FastAPI, Request, Response
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_auth.accounts import ConnectWiseAccounts
from syntaskio_auth.announcements import Announcements
from syntaskio_auth.api import internal, public
from syntaskio_auth.company_settings import CompanySettings
from syntaskio_auth.connections import Connections
from syntaskio_auth.connector_client import ConnectorClient
from syntaskio_auth.mapping_store import MappingStore
from syntaskio_auth.member_mapping import MemberMappings
from syntaskio_auth.oauth import OAuthProvider
from syntaskio_auth.renewal import CredentialLeases
from syntaskio_auth.repository import IntegrationRepository
from syntaskio_auth.session_issuer import SessionIssuer
from syntaskio_auth.settings import AuthSettings
from syntaskio_auth.sign_in import ClaimMapping, OidcProvider, SignIn
from syntaskio_auth.tenant_api import tenant
from syntaskio_auth.tenant_users import TenantUsers
from syntaskio_auth.vault import Vault, VaultError
from syntaskio_common import topics
from syntaskio_common.egress import create_guarded_http_client, create_guarded_transport
from syntaskio_common.health import health_router
from syntaskio_common.http import create_http_client
from syntaskio_common.kafka import create_broker, ensure_topics, reachable
from syntaskio_common.leases import Leases
from syntaskio_common.mongo import Document, create_mongo_client, get_database, ping
from syntaskio_common.problems import install_problem_handlers, problem_response
from syntaskio_common.rate_limits import RateLimiter
from syntaskio_common.service_auth import internal_caller
from syntaskio_common.sessions import Role, SessionRevocations, UserSession

logger = logging.getLogger(__name__)


def create_app(settings: AuthSettings) -> FastAPI:
    mongo = create_mongo_client(settings)
    broker = create_broker(settings, client_id="auth-service")
    # Checked before anything is served: a missing or malformed keyring stops start-up.
    vault = Vault(settings.keyring(), settings.vault_primary_key_id)
    issuer = SessionIssuer(
        settings.session_issuer,
        settings.session_ttl_seconds,
        settings.session_signing_key.get_secret_value(),
        max_age_seconds=settings.session_max_age_seconds,
        audience=settings.session_audience,
    )
    policy = settings.site_policy()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = get_database(mongo, settings)
        repository = IntegrationRepository(db)
        await repository.create_indexes()
        tenant_users = TenantUsers(db)
        await tenant_users.create_indexes()
        mapping_store = MappingStore(db)
        await mapping_store.create_indexes()
        app.state.company_settings = company_settings = CompanySettings(db)
        revocations = SessionRevocations(db)
        await revocations.create_indexes()
        await ensure_topics(settings, [topics.INTEGRATIONS])
        await broker.start()
        async with create_guarded_http_client(policy) as connectwise, create_http_client() as http:
            accounts = ConnectWiseAccounts(connectwise, policy, settings.connectwise_client_id)
            announcements = Announcements(broker)
            providers = {
                name: OAuthProvider(
                    profile, settings.oauth_redirect_uri, lambda: create_guarded_transport(policy)
                )
                for name, profile in settings.oauth_providers.items()
            }
            app.state.connections = Connections(
                repository=repository,
                vault=vault,
                accounts=accounts,
                announcements=announcements,
                oauth_providers=providers,
                state_ttl=timedelta(seconds=settings.oauth_state_ttl_seconds),
                connector=ConnectorClient(
                    http, settings.connector_url, settings.internal_api_token.get_secret_value()
                ),
            )
            app.state.credential_leases = leases = CredentialLeases(
                repository=repository,
                vault=vault,
                accounts=accounts,
                announcements=announcements,
                oauth_providers=providers,
                leases=Leases(db),
                client_id=settings.connectwise_client_id,
                renew_ahead=timedelta(seconds=settings.renew_ahead_seconds),
                lease_ttl=timedelta(seconds=settings.lease_ttl_seconds),
                max_renewal_failures=settings.max_renewal_failures,
                mappings=mapping_store,
                company=company_settings,
            )
            app.state.tenant_users = tenant_users
            app.state.member_mappings = MemberMappings(
                store=mapping_store,
                users=tenant_users,
                repository=repository,
                accounts=accounts,
                leases=leases,
                announcements=announcements,
            )
            app.state.revocations = revocations

            async def verify_session(token: str) -> UserSession:
                return await revocations.check(issuer.verify(token))

            app.state.verify_session = verify_session
            app.state.sign_in = (
                await _sign_in(settings, db, http) if settings.oidc_enabled else None
            )
            yield
        await broker.stop()
        await mongo.close()

    app = FastAPI(title="Syntaskio auth-service", version="0.1.0", lifespan=lifespan)
    app.state.settings = settings
    app.state.issuer = issuer
    app.state.rate_limiter = RateLimiter()
    install_problem_handlers(app)
    app.add_exception_handler(VaultError, unreadable_credentials)
    app.include_router(health_router({"mongodb": lambda: ping(mongo), "kafka": reachable(broker)}))
    # Before `public`: `/v1/integrations/tenant` must not be taken for a connection's id.
    app.include_router(tenant)
    app.include_router(public)
    app.include_router(
        internal, dependencies=[Depends(internal_caller(settings.internal_api_token))]
    )
    return app


async def _sign_in(
    settings: AuthSettings, db: AsyncDatabase[Document], http: httpx.AsyncClient
) -> SignIn:
    def values(text: str) -> frozenset[str]:
        return frozenset(v.strip() for v in text.split(",") if v.strip())

    sign_in = SignIn(
        db,
        OidcProvider(settings.oidc_issuer, http),
        ClaimMapping(
            tenant_claim=settings.oidc_tenant_claim,
            tenants=settings.oidc_tenants,
            roles_claim=settings.oidc_roles_claim,
            admin_values=values(settings.oidc_admin_values),
            technician_values=values(settings.oidc_technician_values),
            default_role=Role(settings.oidc_default_role) if settings.oidc_default_role else None,
        ),
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret.get_secret_value(),
        redirect_uri=settings.oidc_redirect_uri,
        scopes=settings.oidc_scopes,
        post_logout_redirect_uri=settings.oidc_post_logout_redirect_uri,
        ttl=timedelta(seconds=settings.oidc_sign_in_ttl_seconds),
    )
    await sign_in.create_indexes()
    return sign_in


async def unreadable_credentials(request: Request, error: Exception) -> Response:
    """Secrets sealed under a key that is no longer in VAULT_KEYS (removed before a
    rotation finished: docs/operations.md, "Rotate the vault keys"). The operator's to
    fix, not the user's: the connection is left as it is, the caller may try again, and
    the log gets one line, not a traceback."""
    logger.warning("credentials unreadable: %s", error, extra={"path": request.url.path})
    return problem_response(
        503,
        "The connection's credentials cannot be opened right now.",
        headers={"Retry-After": "60"},
    )
