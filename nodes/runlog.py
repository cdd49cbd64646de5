"""The run log: every run and every attempt written to storage, and read back by id.

The log is the source for costs, routing audits and stats: each run row keeps the routing decision
and its reason, the totals, the exact response sent, and whether it ran against the sandbox.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable
from typing import Any

from nodes.cost import usd_text
from nodes.pipeline import RunReport
from nodes.storage import Database

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_run_id() -> str:
    """A sortable unique id: ``run_`` + a ULID (48-bit milliseconds, 80 random bits, Crockford base32)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "run_" + "".join(reversed(chars))


class RunLog:
    """Writes and reads runs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def record(
        self,
        report: RunReport,
        *,
        baseline_cost: str,
        request: dict[str, Any],
        response: dict[str, Any],
        metadata: dict[str, Any],
        sandbox: bool,
        api_key_name: str | None,
        also: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        """Store a finished run and all its attempts in one transaction.

        ``also`` runs inside the same transaction, so whatever depends on the run (a job marked done,
        a callback queued, an idempotent answer stored) is committed with it or not at all.
        """
        usage = report.usage
        with self.db.transaction() as conn:
            conn.execute(
                """INSERT INTO runs (run_id, node, status, start_tier, routing_reason, final_tier, model,
                   escalated, attempt_count, input_tokens, cached_input_tokens, output_tokens,
                   reasoning_tokens,
                   cost_usd, baseline_cost_usd, latency_ms, overhead_ms, sandbox, api_key_name, metadata,
                   request, response)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    report.run_id,
                    report.node,
                    report.status,
                    report.routing.tier,
                    report.routing.reason,
                    report.tier,
                    report.model,
                    int(report.escalated),
                    len(report.attempts),
                    usage.input_tokens,
                    usage.cached_input_tokens,
                    usage.output_tokens,
                    usage.reasoning_tokens,
                    usd_text(report.cost_usd),
                    baseline_cost,
                    report.latency_ms,
                    report.overhead_ms,
                    int(sandbox),
                    api_key_name,
                    json.dumps(metadata),
                    json.dumps(request),
                    json.dumps(response),
                ),
            )
            conn.executemany(
                """INSERT INTO attempts (run_id, seq, tier, model, outcome, latency_ms, waited_ms, repair,
                   input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, error)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [
                    (
                        report.run_id,
                        seq,
                        attempt.tier,
                        attempt.model,
                        attempt.outcome,
                        attempt.latency_ms,
                        attempt.waited_ms,
                        int(attempt.repair),
                        attempt.usage.input_tokens,
                        attempt.usage.cached_input_tokens,
                        attempt.usage.output_tokens,
                        attempt.usage.reasoning_tokens,
                        usd_text(attempt.cost_usd),
                        attempt.error,
                    )
                    for seq, attempt in enumerate(report.attempts)
                ],
            )
            if also is not None:
                also(conn)

    def get(self, run_id: str) -> dict[str, Any] | None:
        """A stored run's row as a dict (with ``attempts`` rows), or None."""
        rows = self.db.query("SELECT * FROM runs WHERE run_id = ?", (run_id,))
        if not rows:
            return None
        run = dict(rows[0])
        run["attempts"] = [
            dict(row) for row in self.db.query("SELECT * FROM attempts WHERE run_id = ? ORDER BY seq", (run_id,))
        ]
        return run
