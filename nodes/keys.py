"""API keys: made by the CLI (``tierwise keys create``) or given in ``TIERWISE_API_KEYS``.

Keys made by the CLI are random, shown once, and stored only as SHA-256 hashes; lookups compare
hashes in constant time. A key is high-entropy, so a plain hash (not a password KDF) is the right tool.

Whatever a caller owns — its runs, jobs, stats, idempotent answers, request window and spend — is
filed under its ``key_id``: ``k_`` and the first 24 hex digits of the key's hash. The id follows the
key itself: the same key from the environment or from the store has the same id, a key removed from
``TIERWISE_API_KEYS`` takes its runs with it, and no name, however chosen, reaches another key's data.
Names are labels for people (``env-1``, ``env-2``, … for environment keys, by position); ``env-*``
names are kept for those, and a stored name is used once. Stored keys are found on every instance; a
key once found is remembered by this process (keys are never changed after they are made).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from decimal import Decimal

from nodes.errors import InvalidRequest
from nodes.store import DuplicateKey, Row, Store, utc_stamp

KEY_PREFIX = "tw_"
ENV_NAME_PREFIX = "env-"


def hash_key(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(digest: str) -> str:
    """The stable identity of the key whose hash is ``digest``."""
    return "k_" + digest[:24]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's identity, its name, and its own limits (None: the service's defaults)."""

    key_id: str
    name: str
    rpm: int | None = None
    daily_budget_usd: Decimal | None = None


class KeyRing:
    """The keys the service accepts: the environment's and the database's."""

    def __init__(self, store: Store, env_keys: list[str]) -> None:
        self.store = store
        self._env = [(f"{ENV_NAME_PREFIX}{index + 1}", hash_key(key)) for index, key in enumerate(env_keys)]
        self._known: dict[str, Caller] = {}

    async def create(self, name: str, *, rpm: int | None = None, daily_budget_usd: Decimal | None = None) -> str:
        """Make, store and return a new key called ``name``; the key is not retrievable later.

        ``rpm`` and ``daily_budget_usd`` are this key's own limits, overriding the service-wide defaults.
        """
        if not name.strip():
            raise InvalidRequest("a key needs a name")
        if name.startswith(ENV_NAME_PREFIX):
            raise InvalidRequest(
                f"names starting with {ENV_NAME_PREFIX!r} are kept for keys from TIERWISE_API_KEYS; choose another name"
            )
        if rpm is not None and rpm < 1:
            raise InvalidRequest("--rpm must be at least 1")
        if daily_budget_usd is not None and daily_budget_usd <= 0:
            raise InvalidRequest("--daily-budget-usd must be more than 0")
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        budget = str(daily_budget_usd) if daily_budget_usd else None
        try:
            async with self.store.transaction() as tx:
                await tx.execute(
                    "INSERT INTO api_keys (name, key_hash, prefix, rpm, daily_budget_usd, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (name, hash_key(key), key[:7], rpm, budget, utc_stamp()),
                )
        except DuplicateKey as exc:
            raise InvalidRequest(f"a key named {name!r} exists already; choose another name") from exc
        return key

    async def count(self) -> int:
        """How many keys are accepted."""
        row = await self.store.fetchone("SELECT COUNT(*) AS n FROM api_keys")
        return len(self._env) + int(row["n"] if row else 0)

    async def listing(self) -> list[Row]:
        """The stored keys' names, prefixes and limits (never the keys)."""
        return await self.store.fetchall(
            "SELECT name, prefix, rpm, daily_budget_usd, created_at FROM api_keys ORDER BY created_at"
        )

    async def identify(self, key: str) -> Caller | None:
        """Who ``key`` belongs to if it is accepted, else None."""
        digest = hash_key(key)
        found = None
        for name, known in self._env:
            if hmac.compare_digest(digest, known):
                found = Caller(key_id_of(digest), name)
        if found is not None:
            return found
        if digest in self._known:
            return self._known[digest]
        row = await self.store.fetchone(
            "SELECT name, key_hash, rpm, daily_budget_usd FROM api_keys WHERE key_hash = ?", (digest,)
        )
        if row is None or not hmac.compare_digest(str(row["key_hash"]), digest):
            return None
        budget = row["daily_budget_usd"]
        caller = Caller(
            key_id_of(digest),
            str(row["name"]),
            int(row["rpm"]) if row["rpm"] is not None else None,
            Decimal(budget) if budget is not None else None,
        )
        self._known[digest] = caller
        return caller
