"""The durable queue of asynchronous runs and the outbox of their callback deliveries.

A run sent with ``callback_url`` is committed to ``jobs`` before the 202 is sent. A worker claims it
(``queued → running``, with a lease), runs it, and in ONE transaction stores the run, marks the job
done and puts the answer in the ``outbox``. The outbox is then delivered until the receiver answers
2xx or the delivery deadline passes; each delivery has a fixed id, so a receiver that sees it twice
(after a crash between sending and recording) knows it is the same one. On start-up, jobs left
``running`` by a dead process are queued again; since the run record and the outbox row are written
with the job's completion, a re-run can never produce a second, different answer.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from dataclasses import dataclass
from typing import Any

from nodes.storage import Database


@dataclass(frozen=True)
class Job:
    """A claimed asynchronous run."""

    run_id: str
    node: str
    request: dict[str, Any]
    callback_url: str
    api_key_name: str | None
    tries: int


@dataclass(frozen=True)
class Delivery:
    """A due callback delivery."""

    delivery_id: str
    run_id: str
    url: str
    body: str
    attempts: int
    deadline_at: float


class JobQueue:
    """Jobs and outbox rows in SQLite."""

    def __init__(self, db: Database, *, worker_id: str | None = None) -> None:
        self.db = db
        self.worker_id = worker_id or uuid.uuid4().hex

    # -- jobs ----------------------------------------------------------------------------------------

    @staticmethod
    def enqueue(
        conn: sqlite3.Connection,
        *,
        run_id: str,
        node: str,
        request: dict[str, Any],
        callback_url: str,
        api_key_name: str | None,
    ) -> None:
        """Add a job inside the caller's transaction."""
        conn.execute(
            "INSERT INTO jobs (run_id, node, request, callback_url, api_key_name, status) "
            "VALUES (?, ?, ?, ?, ?, 'queued')",
            (run_id, node, json.dumps(request), callback_url, api_key_name),
        )

    def recover(self) -> int:
        """Take back what a dead process held: queue its running jobs again, free its deliveries in flight.

        Returns how many jobs were queued again. A delivery that was in flight may have reached its
        receiver; it is sent again with the same delivery id.
        """
        with self.db.transaction() as conn:
            cursor = conn.execute(
                "UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL "
                "WHERE status = 'running' AND (worker IS NULL OR worker != ?)",
                (self.worker_id,),
            )
            conn.execute("UPDATE outbox SET leased_until = NULL WHERE status = 'pending' AND leased_until IS NOT NULL")
            return cursor.rowcount

    def claim(self, lease_s: float) -> Job | None:
        """Take the oldest queued job (or one whose lease ran out), or None."""
        now = time.time()
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT run_id, node, request, callback_url, api_key_name, tries FROM jobs "
                "WHERE status = 'queued' OR (status = 'running' AND lease_until < ?) "
                "ORDER BY created_at LIMIT 1",
                (now,),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET status = 'running', worker = ?, lease_until = ?, tries = tries + 1 WHERE run_id = ?",
                (self.worker_id, now + lease_s, row["run_id"]),
            )
        return Job(
            run_id=row["run_id"],
            node=row["node"],
            request=json.loads(row["request"]),
            callback_url=row["callback_url"],
            api_key_name=row["api_key_name"],
            tries=int(row["tries"]) + 1,
        )

    @staticmethod
    def complete(conn: sqlite3.Connection, job: Job, *, status: str, body: dict[str, Any], deadline_s: float) -> str:
        """Mark a job finished and queue its callback, inside the transaction that stores its run.

        Returns the delivery id.
        """
        now = time.time()
        delivery_id = "dlv_" + uuid.uuid4().hex
        conn.execute(
            "UPDATE jobs SET status = ?, lease_until = NULL, "
            "finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE run_id = ?",
            (status, job.run_id),
        )
        conn.execute(
            "INSERT INTO outbox (delivery_id, run_id, url, body, status, next_attempt_at, deadline_at) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (delivery_id, job.run_id, job.callback_url, json.dumps(body), now, now + deadline_s),
        )
        return delivery_id

    def status(self, run_id: str) -> dict[str, Any] | None:
        """A job's row, or None when no job has that run id."""
        rows = self.db.query(
            "SELECT run_id, node, status, tries, created_at, finished_at, callback_url FROM jobs WHERE run_id = ?",
            (run_id,),
        )
        return dict(rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        """How many jobs and deliveries are in each state."""
        result: dict[str, int] = {}
        for row in self.db.query("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status"):
            result[f"jobs_{row['status']}"] = int(row["n"])
        for row in self.db.query("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status"):
            result[f"deliveries_{row['status']}"] = int(row["n"])
        return result

    # -- outbox --------------------------------------------------------------------------------------

    def due_deliveries(self, *, limit: int, lease_s: float) -> list[Delivery]:
        """Deliveries whose time has come, each leased for ``lease_s`` so it is sent by one task at a time."""
        now = time.time()
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT delivery_id, run_id, url, body, attempts, deadline_at FROM outbox "
                "WHERE status = 'pending' AND next_attempt_at <= ? AND (leased_until IS NULL OR leased_until < ?) "
                "ORDER BY next_attempt_at LIMIT ?",
                (now, now, limit),
            ).fetchall()
            conn.executemany(
                "UPDATE outbox SET leased_until = ? WHERE delivery_id = ?",
                [(now + lease_s, row["delivery_id"]) for row in rows],
            )
        return [
            Delivery(
                delivery_id=row["delivery_id"],
                run_id=row["run_id"],
                url=row["url"],
                body=row["body"],
                attempts=int(row["attempts"]),
                deadline_at=float(row["deadline_at"]),
            )
            for row in rows
        ]

    def delivered(self, delivery_id: str) -> None:
        """Record a 2xx from the receiver."""
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, last_error = NULL, "
                "leased_until = NULL, delivered_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE delivery_id = ?",
                (delivery_id,),
            )

    def failed(self, delivery: Delivery, error: str, retry_in_s: float) -> bool:
        """Record a failed attempt; schedule another, or give up past the deadline. True if retried."""
        now = time.time()
        retry = now + retry_in_s <= delivery.deadline_at
        with self.db.transaction() as conn:
            conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, status = ?, "
                "leased_until = NULL "
                "WHERE delivery_id = ?",
                (error, now + retry_in_s, "pending" if retry else "expired", delivery.delivery_id),
            )
        return retry

    def deliveries_for(self, run_id: str) -> list[dict[str, Any]]:
        """The callback deliveries of a run, for ``GET /v1/runs/{run_id}``."""
        rows = self.db.query(
            "SELECT delivery_id, status, attempts, last_error, delivered_at FROM outbox WHERE run_id = ?",
            (run_id,),
        )
        return [dict(row) for row in rows]

    def wake_time(self) -> float | None:
        """Seconds until the next pending delivery is due (0 if one is due now), or None if none is pending."""
        rows = self.db.query(
            "SELECT MIN(MAX(next_attempt_at, COALESCE(leased_until, 0))) AS t FROM outbox WHERE status = 'pending'"
        )
        if not rows or rows[0]["t"] is None:
            return None
        return max(0.0, float(rows[0]["t"]) - time.time())
