"""`syntaskio-auth rotate-keys`: re-wrap every data key under the primary key.

Only the small wrapped data keys change; ciphertexts, versions and everything a running
service reads stay as they are, so rotation needs no downtime. Each field is updated only
if it still holds the wrapped key we read: a concurrent renewal (which seals with the
primary key anyway) is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from syntaskio_auth.vault import SecretContext, Vault, VaultError
from syntaskio_common.mongo import Document


@dataclass
class RotationReport:
    primary_key_id: str
    scanned: int = 0  # sealed fields looked at
    rewrapped: int = 0
    already_current: int = 0
    changed_meanwhile: int = 0  # rewritten by a renewal while we worked: already current
    failed: list[str] = field(default_factory=list)  # "<record>/<field>": cannot be opened

    def as_dict(self) -> dict[str, Any]:
        return {
            "primary_key_id": self.primary_key_id,
            "scanned": self.scanned,
            "rewrapped": self.rewrapped,
            "already_current": self.already_current,
            "changed_meanwhile": self.changed_meanwhile,
            "failed": len(self.failed),
            "failed_fields": self.failed,
        }


async def rotate_keys(db: AsyncDatabase[Document], vault: Vault) -> RotationReport:
    report = RotationReport(vault.primary_key_id)
    # Connection credentials: one document per integration, fields under `secrets`.
    await _rotate(
        db["credentials"],
        report,
        vault,
        fields=lambda doc: {f"secrets.{name}": s for name, s in doc.get("secrets", {}).items()},
        context=lambda doc, path: SecretContext(
            doc["tenant_id"], doc["_id"], path.removeprefix("secrets.")
        ),
    )
    # In-flight OAuth flows (minutes old at most) hold a sealed PKCE verifier.
    await _rotate(
        db["oauth_states"],
        report,
        vault,
        fields=lambda doc: (
            {"code_verifier": doc["code_verifier"]} if "code_verifier" in doc else {}
        ),
        context=lambda doc, _: SecretContext(
            doc["tenant_id"], f"oauth-state/{doc['_id']}", "code_verifier"
        ),
    )
    return report


async def _rotate(
    collection: AsyncCollection[Document],
    report: RotationReport,
    vault: Vault,
    *,
    fields: Callable[[Document], dict[str, dict[str, Any]]],
    context: Callable[[Document, str], SecretContext],
) -> None:
    async for doc in collection.find({}):
        for path, sealed in fields(doc).items():
            report.scanned += 1
            try:
                rewrapped = vault.rewrap(sealed, context(doc, path))
            except VaultError:
                report.failed.append(f"{collection.name}/{doc['_id']}/{path}")
                continue
            if rewrapped is None:
                report.already_current += 1
                continue
            result = await collection.update_one(
                {"_id": doc["_id"], f"{path}.wrapped_key": sealed["wrapped_key"]},
                {
                    "$set": {
                        f"{path}.key_id": rewrapped["key_id"],
                        f"{path}.wrapped_key": rewrapped["wrapped_key"],
                    }
                },
            )
            if result.modified_count == 1:
                report.rewrapped += 1
            else:
                report.changed_meanwhile += 1
