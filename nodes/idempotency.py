"""Idempotency keys: a repeated request returns the first answer and costs nothing.

n8n's Retry On Fail and Make's Break directive resend whole requests. With an ``Idempotency-Key``
header the first request claims the key (scoped to the caller's API key) and its answer is stored
in the same transaction as its run; a repeat with the same body gets that answer back, a repeat
with another body is a 409, and a repeat that arrives while the first is still running waits for it
instead of running twice. A claim belongs to the live request that holds it: the request renews it
(``renew``, every ``RENEW_EVERY_S`` seconds, however long a batch takes), and only a claim left
unrenewed for ``stale_after_s`` (its request died with its process) is taken over. A request that
ends without an answer gives its claim back at once (``release``). The items of a batch sent with a key
are claimed one by one under derived keys (``item_key``), so a retry of a batch cut short reuses
every item already answered instead of running and charging it again. Stored answers are kept for
``TIERWISE_IDEMPOTENCY_TTL_S`` (a week by default) and purged after that, at most once an hour.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from nodes.errors import FieldIssue, IdempotencyConflict, InvalidRequest
from nodes.protocol import Reply
from nodes.store import StorageUnavailable, Store, Tx

logger = logging.getLogger("tierwise.idempotency")

MAX_KEY_LENGTH = 255
POLL_INTERVAL_S = 0.025
PURGE_EVERY_S = 3600.0
RENEW_EVERY_S = 5.0
STALE_AFTER_S = 20.0
"""A claim not renewed for this long belonged to a request that is gone."""


@dataclass(frozen=True)
class Claim:
    """The right to run a request under an idempotency key; ``finish`` stores its answer."""

    key_id: str
    key: str
    request_hash: str


def request_hash(path: str, body: Any) -> str:
    """A fingerprint of the request: its path and its JSON body in canonical form."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()


def item_key(key: str, index: int) -> str:
    """The derived key under which item ``index`` of a batch sent with ``key`` is claimed."""
    return f"{key}#item-{index}"


def check_key(value: str) -> str:
    """Refuse an unusable ``Idempotency-Key`` value with a 422 that says what a key may be."""
    if not 1 <= len(value) <= MAX_KEY_LENGTH or not value.isprintable():
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            errors=[FieldIssue(("header", "Idempotency-Key"), "1 to 255 printable characters")],
        )
    return value


class IdempotencyStore:
    """Claims, stored answers and waiting, backed by the ``idempotency`` table."""

    def __init__(self, store: Store, *, stale_after_s: float = STALE_AFTER_S, ttl_s: float = 7 * 86_400) -> None:
        self.store = store
        self.stale_after_s = stale_after_s
        self.ttl_s = ttl_s
        self._next_purge = 0.0

    async def purge(self, now: float | None = None) -> int:
        """Forget stored answers older than the time to live; returns how many were removed."""
        cutoff = (now if now is not None else time.time()) - self.ttl_s
        async with self.store.transaction() as tx:
            return await tx.execute("DELETE FROM idempotency WHERE state = 'done' AND started_at < ?", (cutoff,))

    async def _try(self, key_id: str, key: str, fingerprint: str) -> Claim | Reply | None:
        """Claim the key, or return its stored answer, or None while another request holds it."""
        now = time.time()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY_S
            await self.purge(now)
        async with self.store.transaction() as tx:
            inserted = await tx.execute(
                "INSERT INTO idempotency (key_id, idempotency_key, request_hash, state, started_at) "
                "VALUES (?, ?, ?, 'running', ?) ON CONFLICT (key_id, idempotency_key) DO NOTHING",
                (key_id, key, fingerprint, now),
            )
            if inserted:
                return Claim(key_id, key, fingerprint)
            row = await tx.fetchone(
                "SELECT request_hash, state, status, headers, body, started_at FROM idempotency "
                "WHERE key_id = ? AND idempotency_key = ?" + self.store.row_lock,
                (key_id, key),
            )
            if row is None:  # given back between the insert and the read: try again
                return None
            if row["request_hash"] != fingerprint:
                raise IdempotencyConflict(
                    "this Idempotency-Key was used with a different request; send a new key for a new request",
                    errors=[FieldIssue(("header", "Idempotency-Key"), "already used with another body")],
                )
            if row["state"] == "done":
                return Reply(int(row["status"]), json.loads(row["body"]), json.loads(row["headers"]))
            if row["started_at"] < now - self.stale_after_s:
                await tx.execute(
                    "UPDATE idempotency SET started_at = ? WHERE key_id = ? AND idempotency_key = ?",
                    (now, key_id, key),
                )
                return Claim(key_id, key, fingerprint)
            return None

    async def claim(self, key_id: str, key: str, fingerprint: str) -> Claim | Reply:
        """Claim ``key`` for this request, or wait for the request holding it and return its answer."""
        while True:
            outcome = await self._try(key_id, key, fingerprint)
            if outcome is not None:
                return outcome
            await asyncio.sleep(POLL_INTERVAL_S)

    async def recover(self) -> int:
        """Give back every claim a previous process left running (SQLite: this process owns the file)."""
        async with self.store.transaction() as tx:
            return await tx.execute("DELETE FROM idempotency WHERE state = 'running'")

    async def renew(self, claim: Claim) -> None:
        """Tell waiters that the request holding ``claim`` is alive."""
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE idempotency SET started_at = ? WHERE key_id = ? AND idempotency_key = ? AND state = 'running'",
                (time.time(), claim.key_id, claim.key),
            )

    async def keep_renewed(self, claim: Claim) -> None:
        """Renew ``claim`` every ``RENEW_EVERY_S`` seconds until cancelled (run beside the request)."""
        while True:
            await asyncio.sleep(RENEW_EVERY_S)
            try:
                await self.renew(claim)
            except StorageUnavailable as exc:
                logger.warning("could not renew the idempotency claim %r: %s", claim.key, exc)

    @staticmethod
    async def finish(tx: Tx, claim: Claim, reply: Reply) -> None:
        """Store the answer of a claimed request, inside the caller's transaction."""
        await tx.execute(
            "UPDATE idempotency SET state = 'done', status = ?, headers = ?, body = ? "
            "WHERE key_id = ? AND idempotency_key = ?",
            (reply.status, json.dumps(reply.headers), json.dumps(reply.body), claim.key_id, claim.key),
        )

    async def release(self, claim: Claim) -> None:
        """Give a claim back unused (the request was refused before it ran), so the key can be reused."""
        async with self.store.transaction() as tx:
            await tx.execute(
                "DELETE FROM idempotency WHERE key_id = ? AND idempotency_key = ? AND state = 'running'",
                (claim.key_id, claim.key),
            )
