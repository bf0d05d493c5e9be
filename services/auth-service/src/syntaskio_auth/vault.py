"""The credential vault: AES-256-GCM envelope encryption.

Each secret gets a fresh data key; the data key is wrapped by a key-encryption key named
by its key id, so keys can be rotated by re-wrapping. The associated data binds the
ciphertext to its tenant, integration and field: moved anywhere else it fails to decrypt.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_FORMAT = "syntaskio-vault/v1"


class VaultError(Exception):
    """A secret could not be sealed or opened (wrong key, tampering, moved ciphertext)."""


@dataclass(frozen=True)
class SecretContext:
    tenant_id: str
    integration_id: str
    field: str

    def associated_data(self) -> bytes:
        return "\x1f".join((_FORMAT, self.tenant_id, self.integration_id, self.field)).encode()


class Vault:
    def __init__(self, keyring: dict[str, bytes], primary_key_id: str) -> None:
        if primary_key_id not in keyring:
            raise VaultError(f"primary key id {primary_key_id!r} is not in the keyring")
        for key_id, key in keyring.items():
            if len(key) != 32:
                raise VaultError(f"vault key {key_id!r} must be 32 bytes (AES-256)")
        self._keyring = keyring
        self.primary_key_id = primary_key_id

    def seal(self, plaintext: str, context: SecretContext) -> dict[str, Any]:
        aad = context.associated_data()
        data_key = AESGCM.generate_key(bit_length=256)
        nonce, key_nonce = os.urandom(_NONCE_BYTES), os.urandom(_NONCE_BYTES)
        ciphertext = AESGCM(data_key).encrypt(nonce, plaintext.encode(), aad)
        wrapped = AESGCM(self._keyring[self.primary_key_id]).encrypt(key_nonce, data_key, aad)
        return {
            "key_id": self.primary_key_id,
            "wrapped_key": key_nonce + wrapped,
            "ciphertext": nonce + ciphertext,
        }

    def open(self, sealed: dict[str, Any], context: SecretContext) -> str:
        aad = context.associated_data()
        data_key = self._unwrap(sealed, aad)
        try:
            ciphertext = bytes(sealed["ciphertext"])
            plaintext = AESGCM(data_key).decrypt(
                ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:], aad
            )
        except (InvalidTag, KeyError, ValueError) as error:
            raise VaultError("the secret does not open with this key and context") from error
        return plaintext.decode()

    def seal_fields(
        self, values: dict[str, str], tenant_id: str, integration_id: str
    ) -> dict[str, dict[str, Any]]:
        return {
            name: self.seal(value, SecretContext(tenant_id, integration_id, name))
            for name, value in values.items()
        }

    def open_fields(
        self, sealed: dict[str, dict[str, Any]], tenant_id: str, integration_id: str
    ) -> dict[str, str]:
        return {
            name: self.open(value, SecretContext(tenant_id, integration_id, name))
            for name, value in sealed.items()
        }

    def rewrap(self, sealed: dict[str, Any], context: SecretContext) -> dict[str, Any] | None:
        """The same secret with its data key wrapped by the primary key, or None when it
        already is. The ciphertext is untouched: rotation never decrypts the secret itself."""
        if sealed.get("key_id") == self.primary_key_id:
            return None
        aad = context.associated_data()
        data_key = self._unwrap(sealed, aad)
        key_nonce = os.urandom(_NONCE_BYTES)
        wrapped = AESGCM(self._keyring[self.primary_key_id]).encrypt(key_nonce, data_key, aad)
        return {**sealed, "key_id": self.primary_key_id, "wrapped_key": key_nonce + wrapped}

    def _unwrap(self, sealed: dict[str, Any], aad: bytes) -> bytes:
        key = self._keyring.get(sealed.get("key_id", ""))
        if key is None:
            raise VaultError("the secret was sealed with a key id that is not in the keyring")
        try:
            wrapped = bytes(sealed["wrapped_key"])
            return AESGCM(key).decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], aad)
        except (InvalidTag, KeyError, ValueError) as error:
            raise VaultError("the secret does not open with this key and context") from error
