"""The SQLite database: one file, WAL mode, created with its tables on first use.

Tables: ``runs`` (one row per node run, with its routing decision and the response it produced),
``attempts`` (one row per model call, failed ones included), ``api_keys`` (names, SHA-256 hashes
and per-key limits; the key itself is shown once and never stored), ``jobs`` (asynchronous runs,
committed before the 202), ``outbox`` (callback deliveries, kept until the receiver says 2xx or the
deadline passes) and ``idempotency`` (the stored answer to every request sent with an
``Idempotency-Key``), and ``audits`` (runs re-done on a higher tier to measure agreement). One
SQLite file serves one service process.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nodes.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    status TEXT NOT NULL,
    start_tier TEXT NOT NULL,
    routing_reason TEXT NOT NULL,
    final_tier TEXT,
    model TEXT,
    escalated INTEGER NOT NULL,
    attempt_count INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd TEXT NOT NULL,
    baseline_cost_usd TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    overhead_ms REAL NOT NULL,
    sandbox INTEGER NOT NULL,
    api_key_name TEXT,
    metadata TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs (created_at);
CREATE TABLE IF NOT EXISTS attempts (
    run_id TEXT NOT NULL REFERENCES runs (run_id),
    seq INTEGER NOT NULL,
    tier TEXT NOT NULL,
    model TEXT NOT NULL,
    outcome TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    waited_ms INTEGER NOT NULL,
    repair INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    reasoning_tokens INTEGER NOT NULL,
    cost_usd TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS runs_by_key_and_time ON runs (api_key_name, created_at);
CREATE TABLE IF NOT EXISTS api_keys (
    name TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    rpm INTEGER,
    daily_budget_usd TEXT,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS jobs (
    run_id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    request TEXT NOT NULL,
    callback_url TEXT NOT NULL,
    api_key_name TEXT,
    status TEXT NOT NULL,
    worker TEXT,
    lease_until REAL,
    tries INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
CREATE TABLE IF NOT EXISTS outbox (
    delivery_id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    url TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    leased_until REAL,
    deadline_at REAL NOT NULL,
    last_error TEXT,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS audits (
    run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
    node TEXT NOT NULL,
    tier TEXT NOT NULL,
    audit_tier TEXT NOT NULL,
    agreed INTEGER,
    detail TEXT NOT NULL,
    cost_usd TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX IF NOT EXISTS audits_by_time ON audits (created_at);
CREATE TABLE IF NOT EXISTS idempotency (
    key_name TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    status INTEGER,
    headers TEXT,
    body TEXT,
    started_at REAL NOT NULL,
    PRIMARY KEY (key_name, idempotency_key)
);
"""


class Database:
    """A thread-safe handle on the SQLite file, with the schema in place."""

    def __init__(self, path: str) -> None:
        self.path = path
        if path != ":memory:":
            parent = Path(path).expanduser().resolve().parent
            if not parent.is_dir():
                raise ConfigError(f"TIERWISE_DB={path!r}: the folder {str(parent)!r} does not exist; create it first.")
        try:
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"TIERWISE_DB={path!r} cannot be used as a SQLite database: {exc}") from exc
        self._lock = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run statements atomically: committed on success, rolled back on error."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        """Run a read and return every row."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
