"""Vault key rotation on the real database, through the `syntaskio-auth rotate-keys`
command an operator runs."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from auth_records import stored_connection
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_auth.repository import IntegrationRepository
from syntaskio_auth.vault import SecretContext, Vault, VaultError
from syntaskio_common.mongo import Document
from syntaskio_common.settings import ServiceSettings

OLD, NEW = os.urandom(32), os.urandom(32)


@pytest.fixture
async def database(mongo: AsyncMongoClient[Document]) -> AsyncIterator[AsyncDatabase[Document]]:
    """A database of its own: rotation touches every record in it."""
    db = mongo[f"rotation_{uuid.uuid4().hex[:8]}"]
    yield db
    await mongo.drop_database(db.name)


async def connection(db: AsyncDatabase[Document], tenant: str, secrets: dict[str, str]) -> str:
    old = Vault({"old": OLD}, "old")
    stored = await stored_connection(IntegrationRepository(db), old, tenant, "api_key", secrets)
    return stored.id


def rotate(settings: ServiceSettings, db: AsyncDatabase[Document]) -> tuple[int, dict[str, Any]]:
    keyring = {"old": base64.b64encode(OLD).decode(), "new": base64.b64encode(NEW).decode()}
    done = subprocess.run(
        [sys.executable, "-m", "syntaskio_auth", "rotate-keys"],
        env={
            **os.environ,
            "ENVIRONMENT": "test",
            "MONGODB_URL": settings.mongodb_url.get_secret_value(),
            "MONGODB_DATABASE": db.name,
            "VAULT_KEYS": json.dumps(keyring),
            "VAULT_PRIMARY_KEY_ID": "new",
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


async def test_rotation_rewraps_every_secret_and_everything_still_opens(
    settings: ServiceSettings, database: AsyncDatabase[Document]
) -> None:
    first = await connection(database, "tenant-a", {"public_key": "pub-a", "private_key": "priv-a"})
    second = await connection(
        database, "tenant-b", {"access_token": "tok-b", "refresh_token": "ref-b"}
    )
    await database["oauth_states"].insert_one(
        {
            "_id": "state-hash",
            "tenant_id": "tenant-a",
            "code_verifier": Vault({"old": OLD}, "old").seal(
                "verifier", SecretContext("tenant-a", "oauth-state/state-hash", "code_verifier")
            ),
            "expires_at": datetime.now(UTC) + timedelta(minutes=10),
        }
    )

    code, report = rotate(settings, database)
    assert code == 0
    assert report["primary_key_id"] == "new"
    assert (report["scanned"], report["rewrapped"], report["failed"]) == (5, 5, 0)

    # The old key can go: everything opens with the new key alone.
    new_only = Vault({"new": NEW}, "new")
    for tenant, integration_id, expected in (
        ("tenant-a", first, {"public_key": "pub-a", "private_key": "priv-a"}),
        ("tenant-b", second, {"access_token": "tok-b", "refresh_token": "ref-b"}),
    ):
        doc = await database["credentials"].find_one({"_id": integration_id})
        assert doc is not None
        assert {s["key_id"] for s in doc["secrets"].values()} == {"new"}
        assert doc["version"] == 1  # rotation is not a credential change
        assert new_only.open_fields(doc["secrets"], tenant, integration_id) == expected
    state = await database["oauth_states"].find_one({"_id": "state-hash"})
    assert state is not None
    context = SecretContext("tenant-a", "oauth-state/state-hash", "code_verifier")
    assert new_only.open(state["code_verifier"], context) == "verifier"

    code, again = rotate(settings, database)
    assert code == 0
    assert (again["rewrapped"], again["already_current"]) == (0, 5)


async def test_a_ciphertext_copied_to_another_tenants_record_fails(
    settings: ServiceSettings, database: AsyncDatabase[Document]
) -> None:
    victim = await connection(
        database, "tenant-a", {"public_key": "pub-a", "private_key": "priv-a"}
    )
    thief = await connection(database, "tenant-b", {"public_key": "pub-b", "private_key": "priv-b"})
    stolen = await database["credentials"].find_one({"_id": victim})
    assert stolen is not None
    await database["credentials"].update_one(
        {"_id": thief}, {"$set": {"secrets": stolen["secrets"]}}
    )
    doc = await database["credentials"].find_one({"_id": thief})
    assert doc is not None
    with pytest.raises(VaultError):
        Vault({"old": OLD}, "old").open_fields(doc["secrets"], "tenant-b", thief)

    # Rotation reports the tampered record instead of laundering it under the new key.
    code, report = rotate(settings, database)
    assert code == 1
    assert report["failed"] == 2
    assert all(thief in entry for entry in report["failed_fields"])
    assert report["rewrapped"] == 2  # the intact record is still rotated
