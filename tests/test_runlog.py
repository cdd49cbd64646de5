"""The run log: a record written as one run row and its attempt rows, read back whole, on both engines."""

from __future__ import annotations

import json
from decimal import Decimal

from support import BACKENDS
from test_record import record

from nodes.runlog import new_run_id, read_run, write_run
from nodes.store import Store


@BACKENDS
async def test_a_record_is_stored_with_its_attempts_and_its_exact_answer(store: Store) -> None:
    written = record()
    async with store.transaction() as tx:
        await write_run(tx, written)
    run = await read_run(store, "run_1")
    assert run is not None
    assert {key: run[key] for key in ("node", "status", "start_tier", "final_tier", "escalated", "key_id")} == {
        "node": "classify",
        "status": "succeeded",
        "start_tier": "nano",
        "final_tier": "mini",
        "escalated": 1,
        "key_id": "env-1",
    }
    assert (Decimal(run["cost_usd"]), Decimal(run["baseline_cost_usd"])) == (Decimal("0.0001473"), Decimal("0.0009"))
    assert json.loads(run["response"]) == written.body() and json.loads(run["metadata"]) == {"row": 3}
    assert [(a["seq"], a["tier"], a["outcome"], a["cost_usd"]) for a in run["attempts"]] == [
        (0, "nano", "invalid_output", "0.000045"),
        (1, "mini", "ok", "0.0001023"),
    ]
    assert await read_run(store, "run_missing") is None


def test_run_ids_sort_by_time_and_do_not_repeat() -> None:
    ids = [new_run_id() for _ in range(200)]
    assert len(set(ids)) == 200 and all(run_id.startswith("run_") and len(run_id) == 30 for run_id in ids)
    assert ids[0][:14] <= ids[-1][:14]
