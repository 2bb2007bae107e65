"""API keys for REST ingestion, kept only as hashes (sha256, or scrypt with a salt).

``BESS_API_KEY_HASHES`` lists ``sha256:<hex>`` or ``scrypt:<salt hex>:<hex>`` entries; the
predecessor's plain ``BESS_API_KEY`` is hashed when the settings are read and never kept.
`bess telemetry hash-key KEY` prints the scrypt entry for a key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from infra.settings import Settings

SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


def hash_key(key: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(key.encode(), salt=salt, **SCRYPT)
    return f"scrypt:{salt.hex()}:{digest.hex()}"


def sha256_entry(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The configured key hashes; `verify` compares in constant time and caches hits."""

    def __init__(self, entries: list[str]):
        self.entries = [e.strip() for e in entries if e.strip()]
        self._verified: set[str] = set()  # sha256 of keys already verified (saves scrypt runs)

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        entries = settings.api_key_hashes.split(",")
        if settings.api_key is not None:
            entries.append(sha256_entry(settings.api_key.get_secret_value()))
        return cls(entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def verify(self, key: str | None) -> bool:
        if not key:
            return False
        quick = hashlib.sha256(key.encode()).hexdigest()
        if quick in self._verified:
            return True
        ok = False
        for entry in self.entries:
            kind, _, rest = entry.partition(":")
            if kind == "sha256":
                ok |= hmac.compare_digest(rest, quick)
            elif kind == "scrypt":
                salt, _, digest = rest.partition(":")
                ok |= hmac.compare_digest(hash_key(key, bytes.fromhex(salt)),
                                          f"scrypt:{salt}:{digest}")
        if ok:
            self._verified.add(quick)
        return ok
