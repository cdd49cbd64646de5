"""The run log: a ``RunRecord`` written as one ``runs`` row and one ``attempts`` row per model call.

The log is the source for costs, budgets, routing audits and stats: each run row keeps the routing
decision and its reason, the totals, the exact answer sent, and whether it ran against the sandbox.
``write`` runs inside the caller's transaction, so what must be committed with the run (a finished
job and its callback, an idempotent answer) is committed with it or not at all.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from nodes.cost import usd_text
from nodes.quotas import add_spend
from nodes.record import RunRecord
from nodes.store import Row, Store, Tx

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_run_id() -> str:
    """A sortable unique id: ``run_`` + a ULID (48-bit milliseconds, 80 random bits, Crockford base32)."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, digit = divmod(value, 32)
        chars.append(_CROCKFORD[digit])
    return "run_" + "".join(reversed(chars))


async def write_run(tx: Tx, record: RunRecord) -> None:
    """Store a finished run and all its attempts inside ``tx``, and add its cost to its key's spend today."""
    usage = record.usage
    await tx.execute(
        """INSERT INTO runs (run_id, node, status, start_tier, routing_reason, final_tier, model, escalated,
           attempt_count, input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_usd,
           baseline_cost_usd, latency_ms, overhead_ms, sandbox, key_id, metadata, request, response,
           created_at, step)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            record.run_id,
            record.node,
            record.status,
            record.routing.tier,
            record.routing.reason,
            record.tier,
            record.model,
            int(record.escalated),
            len(record.attempts),
            usage.input_tokens,
            usage.cached_input_tokens,
            usage.output_tokens,
            usage.reasoning_tokens,
            usd_text(record.cost_usd),
            usd_text(record.baseline_cost_usd),
            record.latency_ms,
            round(record.overhead_ms, 3),
            int(record.sandbox),
            record.key_id,
            json.dumps(record.metadata),
            json.dumps(record.request),
            json.dumps(record.body()),
            record.created_at,
            record.step,
        ),
    )
    await tx.executemany(
        """INSERT INTO attempts (run_id, seq, tier, model, outcome, latency_ms, waited_ms, repair, input_tokens,
           cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, error, processing)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (
                record.run_id,
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
                attempt.processing,
            )
            for seq, attempt in enumerate(record.attempts)
        ],
    )
    if record.key_id is not None:
        await add_spend(tx, record.key_id, record.created_at[:10], record.cost_usd)


async def read_run(store: Store, run_id: str) -> dict[str, Any] | None:
    """A stored run's row (with its ``attempts`` rows), or None."""
    run: Row | None = await store.fetchone("SELECT * FROM runs WHERE run_id = ?", (run_id,))
    if run is None:
        return None
    run["attempts"] = await store.fetchall("SELECT * FROM attempts WHERE run_id = ? ORDER BY seq", (run_id,))
    return run
