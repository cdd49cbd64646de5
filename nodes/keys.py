"""API keys: made by the CLI (``tierwise keys create``) or given in ``TIERWISE_API_KEYS``.

Keys made by the CLI are random, shown once, and stored only as SHA-256 hashes; lookups compare
hashes in constant time. A key is high-entropy, so a plain hash (not a password KDF) is the right tool.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from decimal import Decimal

from nodes.errors import InvalidRequest
from nodes.storage import Database

KEY_PREFIX = "tw_"


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


class KeyRing:
    """The keys the service accepts: the environment's and the database's."""

    def __init__(self, db: Database, env_keys: list[str]) -> None:
        self.db = db
        self._env_hashes = [(f"env-{index + 1}", hash_key(key)) for index, key in enumerate(env_keys)]

    def create(self, name: str, *, rpm: int | None = None, daily_budget_usd: Decimal | None = None) -> str:
        """Make, store and return a new key called ``name``; the key is not retrievable later.

        ``rpm`` and ``daily_budget_usd`` are this key's own limits, overriding the service-wide defaults.
        """
        if not name.strip():
            raise InvalidRequest("a key needs a name")
        if rpm is not None and rpm < 1:
            raise InvalidRequest("--rpm must be at least 1")
        if daily_budget_usd is not None and daily_budget_usd <= 0:
            raise InvalidRequest("--daily-budget-usd must be more than 0")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            with self.db.transaction() as conn:
                conn.execute(
                    "INSERT INTO api_keys (name, key_hash, prefix, rpm, daily_budget_usd) VALUES (?, ?, ?, ?, ?)",
                    (name, hash_key(key), key[:7], rpm, str(daily_budget_usd) if daily_budget_usd else None),
                )
        except sqlite3.IntegrityError as exc:
            raise InvalidRequest(f"a key named {name!r} exists already; choose another name") from exc
        return key

    def count(self) -> int:
        """How many keys are accepted."""
        stored = self.db.query("SELECT COUNT(*) AS n FROM api_keys")[0]["n"]
        return len(self._env_hashes) + int(stored)

    def identify(self, key: str) -> str | None:
        """The name of ``key`` if it is accepted, else None."""
        digest = hash_key(key)
        found = None
        for name, known in self._env_hashes:
            if hmac.compare_digest(digest, known):
                found = name
        if found:
            return found
        rows = self.db.query("SELECT name, key_hash FROM api_keys WHERE key_hash = ?", (digest,))
        if rows and hmac.compare_digest(rows[0]["key_hash"], digest):
            return str(rows[0]["name"])
        return None
