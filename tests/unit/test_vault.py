import os

import pytest

from syntaskio_auth.vault import SecretContext, Vault, VaultError

KEYS = {"k1": os.urandom(32), "k2": os.urandom(32)}
CONTEXT = SecretContext("tenant-a", "integration-1", "private_key")


def test_a_sealed_secret_opens_with_its_context_and_hides_the_plaintext() -> None:
    vault = Vault(KEYS, "k1")
    sealed = vault.seal("s3cr3t-private-key", CONTEXT)
    assert sealed["key_id"] == "k1"
    assert b"s3cr3t" not in sealed["ciphertext"]
    assert vault.open(sealed, CONTEXT) == "s3cr3t-private-key"


def test_each_seal_uses_a_fresh_data_key() -> None:
    vault = Vault(KEYS, "k1")
    first, second = vault.seal("same", CONTEXT), vault.seal("same", CONTEXT)
    assert first["wrapped_key"] != second["wrapped_key"]
    assert first["ciphertext"] != second["ciphertext"]


@pytest.mark.parametrize(
    "elsewhere",
    [
        SecretContext("tenant-b", "integration-1", "private_key"),
        SecretContext("tenant-a", "integration-2", "private_key"),
        SecretContext("tenant-a", "integration-1", "public_key"),
    ],
)
def test_a_ciphertext_moved_to_another_record_fails_to_open(elsewhere: SecretContext) -> None:
    vault = Vault(KEYS, "k1")
    with pytest.raises(VaultError):
        vault.open(vault.seal("secret", CONTEXT), elsewhere)


def test_tampering_and_unknown_keys_are_refused() -> None:
    vault = Vault(KEYS, "k1")
    sealed = vault.seal("secret", CONTEXT)
    # Flip a bit (overwriting a byte with a constant left it intact 1 time in 256).
    last = sealed["ciphertext"][-1] ^ 0x01
    tampered = {**sealed, "ciphertext": sealed["ciphertext"][:-1] + bytes([last])}
    with pytest.raises(VaultError):
        vault.open(tampered, CONTEXT)
    with pytest.raises(VaultError):
        Vault({"k2": KEYS["k2"]}, "k2").open(sealed, CONTEXT)


def test_an_older_key_still_opens_after_the_primary_changes() -> None:
    sealed = Vault(KEYS, "k1").seal("secret", CONTEXT)
    assert Vault(KEYS, "k2").open(sealed, CONTEXT) == "secret"


def test_keys_must_be_aes_256() -> None:
    with pytest.raises(VaultError):
        Vault({"short": b"x" * 16}, "short")
    with pytest.raises(VaultError):
        Vault(KEYS, "missing")


def test_rewrapping_moves_the_data_key_under_the_primary_and_keeps_the_ciphertext() -> None:
    sealed = Vault(KEYS, "k1").seal("secret", CONTEXT)
    rotated = Vault(KEYS, "k2")
    rewrapped = rotated.rewrap(sealed, CONTEXT)
    assert rewrapped is not None
    assert rewrapped["key_id"] == "k2"
    assert rewrapped["ciphertext"] == sealed["ciphertext"]
    assert rewrapped["wrapped_key"] != sealed["wrapped_key"]
    # The old key can be dropped from the keyring once everything is re-wrapped.
    assert Vault({"k2": KEYS["k2"]}, "k2").open(rewrapped, CONTEXT) == "secret"
    assert rotated.rewrap(rewrapped, CONTEXT) is None  # already current


def test_rewrapping_refuses_a_ciphertext_moved_to_another_record() -> None:
    sealed = Vault(KEYS, "k1").seal("secret", CONTEXT)
    with pytest.raises(VaultError):
        Vault(KEYS, "k2").rewrap(sealed, SecretContext("tenant-b", "integration-1", "private_key"))
