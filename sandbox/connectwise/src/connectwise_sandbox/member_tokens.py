"""Impersonation key pairs minted by `POST /system/members/{identifier}/tokens`: an API
member asks for short-lived keys that act as another member until they expire."""

from __future__ import annotations

import secrets
import string
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from connectwise_sandbox.oauth import Clock

KEY_LENGTH: Final = 16  # like the seeded API keys
_ALPHABET: Final = string.ascii_letters + string.digits


def _key() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(KEY_LENGTH))


@dataclass
class MemberToken:
    member_id: int
    public_key: str
    private_key: str = field(repr=False)
    expires_at: datetime


class MemberTokens:
    def __init__(self, *, ttl: int, clock: Clock | None = None) -> None:
        self._lock = threading.Lock()
        self.ttl = ttl
        self.clock: Clock = clock or (lambda: datetime.now(UTC))  # public for tests
        self._tokens: dict[str, MemberToken] = {}
        self._minted = 0

    def mint(self, member_id: int, requested: datetime | None = None) -> MemberToken:
        """A new key pair for `member_id`, valid until `requested`, capped at `ttl` from
        now and cut to whole seconds (the wire format has no fractions)."""
        now = self.clock()
        latest = now + timedelta(seconds=self.ttl)
        expires = latest if requested is None else min(requested, latest)
        token = MemberToken(member_id, _key(), _key(), expires.replace(microsecond=0))
        with self._lock:
            self._tokens[token.public_key] = token
            self._minted += 1
        return token

    def find(self, public_key: str, private_key: str) -> MemberToken | None:
        """The minted pair these keys are, expired or not; the private key is compared in
        constant time."""
        with self._lock:
            token = self._tokens.get(public_key)
        if token is None or not secrets.compare_digest(
            token.private_key.encode(), private_key.encode()
        ):
            return None
        return token

    def expired(self, token: MemberToken) -> bool:
        with self._lock:
            return self.clock() >= token.expires_at

    def expire_all(self) -> None:
        now = self.clock()
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = min(token.expires_at, now)

    @property
    def minted(self) -> int:
        with self._lock:
            return self._minted

    def reset(self) -> None:
        with self._lock:
            self._tokens.clear()
            self._minted = 0
