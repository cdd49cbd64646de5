"""Idempotency keys: a repeated request returns the first answer and costs nothing.

n8n's Retry On Fail and Make's Break directive resend whole requests. With an ``Idempotency-Key``
header the first request claims the key (scoped to the caller's API key) and its answer is stored
in the same transaction as its run; a repeat with the same body gets that answer back, a repeat
with another body is a 409, and a repeat that arrives while the first is still running waits for it
instead of running twice. A claim whose request died with its process is taken over once it is older
than the run's own time cap. Stored answers are kept for ``TIERWISE_IDEMPOTENCY_TTL_S`` (a week by
default) and purged after that, at most once an hour, so the table does not grow without end.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from nodes.errors import FieldIssue, IdempotencyConflict, InvalidRequest
from nodes.storage import Database

MAX_KEY_LENGTH = 255
POLL_INTERVAL_S = 0.025
PURGE_EVERY_S = 3600.0


@dataclass(frozen=True)
class StoredAnswer:
    """A stored answer, replayed as it was sent."""

    status: int
    headers: dict[str, str]
    body: Any


@dataclass(frozen=True)
class Claim:
    """The right to run a request under an idempotency key; ``finish`` stores its answer."""

    key_name: str
    key: str
    request_hash: str


def request_hash(path: str, body: Any) -> str:
    """A fingerprint of the request: its path and its JSON body in canonical form."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{path}\n{canonical}".encode()).hexdigest()


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

    def __init__(self, db: Database, *, stale_after_s: float, ttl_s: float = 7 * 86_400) -> None:
        self.db = db
        self.stale_after_s = stale_after_s
        self.ttl_s = ttl_s
        self._next_purge = 0.0

    def purge(self, now: float | None = None) -> int:
        """Forget stored answers older than the time to live; returns how many were removed."""
        cutoff = (now if now is not None else time.time()) - self.ttl_s
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM idempotency WHERE state = 'done' AND started_at < ?", (cutoff,)).rowcount

    def _try(self, key_name: str, key: str, fingerprint: str) -> Claim | StoredAnswer | None:
        """Claim the key, or return its stored answer, or None while another request holds it."""
        now = time.time()
        if now >= self._next_purge:
            self._next_purge = now + PURGE_EVERY_S
            self.purge(now)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT request_hash, state, status, headers, body, started_at FROM idempotency "
                "WHERE key_name = ? AND idempotency_key = ?",
                (key_name, key),
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO idempotency (key_name, idempotency_key, request_hash, state, started_at) "
                    "VALUES (?, ?, ?, 'running', ?)",
                    (key_name, key, fingerprint, now),
                )
                return Claim(key_name, key, fingerprint)
            if row["request_hash"] != fingerprint:
                raise IdempotencyConflict(
                    "this Idempotency-Key was used with a different request; send a new key for a new request",
                    errors=[FieldIssue(("header", "Idempotency-Key"), "already used with another body")],
                )
            if row["state"] == "done":
                return StoredAnswer(int(row["status"]), json.loads(row["headers"]), json.loads(row["body"]))
            if row["started_at"] < now - self.stale_after_s:
                conn.execute(
                    "UPDATE idempotency SET started_at = ? WHERE key_name = ? AND idempotency_key = ?",
                    (now, key_name, key),
                )
                return Claim(key_name, key, fingerprint)
            return None

    async def claim(self, key_name: str, key: str, fingerprint: str) -> Claim | StoredAnswer:
        """Claim ``key`` for this request, or wait for the request holding it and return its answer."""
        while True:
            outcome = self._try(key_name, key, fingerprint)
            if outcome is not None:
                return outcome
            await asyncio.sleep(POLL_INTERVAL_S)

    @staticmethod
    def finish(conn: sqlite3.Connection, claim: Claim, status: int, headers: dict[str, str], body: Any) -> None:
        """Store the answer of a claimed request, inside the caller's transaction."""
        conn.execute(
            "UPDATE idempotency SET state = 'done', status = ?, headers = ?, body = ? "
            "WHERE key_name = ? AND idempotency_key = ?",
            (status, json.dumps(headers), json.dumps(body), claim.key_name, claim.key),
        )

    def finish_now(self, claim: Claim, status: int, headers: dict[str, str], body: Any) -> None:
        """Store the answer of a claimed request in a transaction of its own."""
        with self.db.transaction() as conn:
            self.finish(conn, claim, status, headers, body)

    def release(self, claim: Claim) -> None:
        """Give a claim back unused (the request was refused before it ran), so the key can be reused."""
        with self.db.transaction() as conn:
            conn.execute(
                "DELETE FROM idempotency WHERE key_name = ? AND idempotency_key = ? AND state = 'running'",
                (claim.key_name, claim.key),
            )
