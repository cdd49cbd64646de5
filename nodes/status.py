"""``GET /v1/runs/{run_id}``: where a run stands, whether it ran at once or was queued with a callback.

A synchronous run exists only as its record; an asynchronous one is a job first (``queued``,
``running``), then a job with a record and an outbox delivery. The answer names the state, the
result once there is one, and for asynchronous runs the callback URL and every delivery's progress.
Only the key that made a run can read it; to any other key it does not exist.
"""

from __future__ import annotations

import json
from typing import Any

from nodes.errors import NotFound
from nodes.jobs import JobQueue
from nodes.outbox import Outbox
from nodes.store import Store


async def run_status(store: Store, queue: JobQueue, outbox: Outbox, run_id: str, *, key_id: str) -> dict[str, Any]:
    """The state of ``run_id`` as seen by the key ``key_id``, or a 404."""
    job = await queue.status(run_id)
    run = await store.fetchone(
        "SELECT node, status, key_id, response, created_at FROM runs WHERE run_id = ?", (run_id,)
    )
    owner = run["key_id"] if run else (job["key_id"] if job else None)
    if (job is None and run is None) or owner != key_id:
        raise NotFound(f"there is no run {run_id!r} for this key")
    if job is not None:
        status = job["status"]
    else:
        assert run is not None
        status = "succeeded" if run["status"] == "succeeded" else "failed"
    first = job or run
    assert first is not None
    body: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "node": first["node"],
        "created_at": first["created_at"],
        "result": json.loads(run["response"]) if run else await outbox.delivered_body(run_id),
    }
    if job is not None:
        body["callback"] = {"url": job["callback_url"], "deliveries": await outbox.for_run(run_id)}
    return body
