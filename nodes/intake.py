"""Intake: how an accepted HTTP request becomes work — a run now, a queued job, or a batch of either.

It applies, in order: body parsing (400), the ``Idempotency-Key`` (a stored answer is replayed, a
reused key with another body is 409, a duplicate in flight waits), the caller's quotas (429), the
node's request contract (422), then either runs the request or, with ``callback_url``, commits it as
a job and answers 202. A claim on an idempotency key is stored in the same transaction as what it
produced (the run record, or the queued job), and given back if the request is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from nodes.callbacks import check_callback_url
from nodes.catalog import Node
from nodes.cost import usd_text
from nodes.errors import InvalidRequest, NotFound, ProblemError
from nodes.idempotency import Claim, IdempotencyStore, StoredAnswer, check_key, request_hash
from nodes.jobs import JobQueue
from nodes.jsonbody import parse_json_object
from nodes.protocol import BatchRequest, NodeRequest, validate_request
from nodes.quotas import Quotas
from nodes.runlog import new_run_id
from nodes.service import NodeResponse, Service

REPLAYED_HEADER = "Idempotent-Replayed"


class Intake:
    """Accepts node and batch requests for one service."""

    def __init__(
        self,
        service: Service,
        queue: JobQueue,
        idempotency: IdempotencyStore,
        quotas: Quotas,
        *,
        jobs_added: asyncio.Event | None = None,
    ) -> None:
        self.service = service
        self.queue = queue
        self.idempotency = idempotency
        self.quotas = quotas
        self.jobs_added = jobs_added
        self.settings = service.settings

    # -- one request -------------------------------------------------------------------------------------

    async def submit(
        self, node_name: str, raw: bytes, *, key_name: str, idempotency_key: str | None, received_at: float
    ) -> NodeResponse:
        """Answer ``POST /v1/nodes/{node}``."""
        opened = await self._open(node_name, "", raw, key_name, idempotency_key)
        if isinstance(opened, NodeResponse):
            return opened
        node, data, claim = opened
        with self._given_back_if_refused(claim):
            self.quotas.admit(key_name)
            request = node.parse(data)
            node.task(request)
            if request.callback_url is not None:
                return await self._enqueue(node, request, data, key_name=key_name, claim=claim)
        return await self.service.execute(
            node,
            request,
            data,
            api_key_name=key_name,
            received_at=received_at,
            on_record=self._store_answer(claim),
        )

    async def _open(
        self, node_name: str, suffix: str, raw: bytes, key_name: str, idempotency_key: str | None
    ) -> tuple[Node[Any], dict[str, Any], Claim | None] | NodeResponse:
        """The node, the parsed body and the idempotency claim; or the stored answer to replay."""
        node = self.service.node(node_name)
        data = parse_json_object(raw)
        claim = await self._claim(f"/v1/nodes/{node_name}{suffix}", data, key_name, idempotency_key)
        if isinstance(claim, NodeResponse):
            return claim
        return node, data, claim

    async def _claim(
        self, path: str, data: dict[str, Any], key_name: str, idempotency_key: str | None
    ) -> Claim | NodeResponse | None:
        if idempotency_key is None:
            return None
        fingerprint = request_hash(path, data)
        outcome = await self.idempotency.claim(key_name, check_key(idempotency_key), fingerprint)
        if isinstance(outcome, StoredAnswer):
            return NodeResponse(outcome.status, outcome.body, {**outcome.headers, REPLAYED_HEADER: "true"})
        return outcome

    @contextlib.contextmanager
    def _given_back_if_refused(self, claim: Claim | None) -> Iterator[None]:
        """Release an idempotency claim when the request is refused (4xx) before anything ran."""
        try:
            yield
        except ProblemError:
            if claim is not None:
                self.idempotency.release(claim)
            raise

    def _store_answer(self, claim: Claim | None) -> Any:
        if claim is None:
            return None

        def store(conn: sqlite3.Connection, response: NodeResponse) -> None:
            self.idempotency.finish(conn, claim, response.status, response.headers, response.body)

        return store

    async def _enqueue(
        self,
        node: Node[Any],
        request: NodeRequest,
        data: dict[str, Any],
        *,
        key_name: str,
        claim: Claim | None,
    ) -> NodeResponse:
        assert request.callback_url is not None
        await check_callback_url(request.callback_url, allow_private=self.settings.callback_allow_private)
        run_id = new_run_id()
        status_url = f"/v1/runs/{run_id}"
        body = {"run_id": run_id, "status": "queued", "status_url": status_url}
        headers = {"X-Tierwise-Run-Id": run_id, "Location": status_url}
        if self.service.sandbox:
            headers["X-Tierwise-Sandbox"] = "true"
        with self.queue.db.transaction() as conn:
            self.queue.enqueue(
                conn,
                run_id=run_id,
                node=node.name,
                request=data,
                callback_url=request.callback_url,
                api_key_name=key_name,
            )
            if claim is not None:
                self.idempotency.finish(conn, claim, 202, headers, body)
        if self.jobs_added is not None:
            self.jobs_added.set()
        return NodeResponse(202, body, headers)

    # -- batches -----------------------------------------------------------------------------------------

    async def submit_batch(
        self, node_name: str, raw: bytes, *, key_name: str, idempotency_key: str | None, received_at: float
    ) -> NodeResponse:
        """Answer ``POST /v1/nodes/{node}/batch``: every item's answer, in order; one failure fails no other."""
        opened = await self._open(node_name, "/batch", raw, key_name, idempotency_key)
        if isinstance(opened, NodeResponse):
            return opened
        node, data, claim = opened
        with self._given_back_if_refused(claim):
            batch = validate_request(BatchRequest, data)
            if len(batch.items) > self.settings.max_batch_items:
                raise InvalidRequest(
                    f"items: {len(batch.items)} items is over the limit of {self.settings.max_batch_items} "
                    "(TIERWISE_MAX_BATCH_ITEMS); split the batch"
                )
            self.quotas.admit(key_name)
        limit = asyncio.Semaphore(self.settings.batch_concurrency)

        async def one(item: Any) -> dict[str, Any]:
            async with limit:
                return await self.run_item(node, item, batch.defaults, key_name=key_name)

        results = await asyncio.gather(*(one(item) for item in batch.items))
        summary, cost = batch_summary(results)
        body = {"results": results, "summary": summary}
        headers = {"X-Tierwise-Cost-Usd": usd_text(cost)}
        if claim is not None:
            self.idempotency.finish_now(claim, 200, headers, body)
        return NodeResponse(200, body, headers)

    async def run_item(self, node: Node[Any], item: Any, defaults: dict[str, Any], *, key_name: str) -> dict[str, Any]:
        """Run (or queue) one batch item; its answer, or its problem object — never an exception."""
        try:
            if not isinstance(item, dict):
                raise InvalidRequest(f"each item must be a JSON object, not {type(item).__name__}")
            merged = {**defaults, **item}
            request = node.parse(merged)
            node.task(request)
            if request.callback_url is not None:
                response = await self._enqueue(node, request, merged, key_name=key_name, claim=None)
            else:
                response = await self.service.execute(
                    node, request, merged, api_key_name=key_name, received_at=time.monotonic()
                )
        except ProblemError as exc:
            return exc.to_problem()
        return response.body

    # -- status ------------------------------------------------------------------------------------------

    def run_status(self, run_id: str, *, key_name: str) -> dict[str, Any]:
        """Answer ``GET /v1/runs/{run_id}``: the run's state and, once finished, its answer."""
        job = self.queue.status(run_id)
        run = self.service.runlog.get(run_id)
        owner = run["api_key_name"] if run else (self._job_owner(run_id) if job else None)
        if (job is None and run is None) or owner != key_name:
            raise NotFound(f"there is no run {run_id!r} for this key")
        if job is not None:
            status = job["status"]
        else:
            assert run is not None
            status = "succeeded" if run["status"] == "succeeded" else "failed"
        body: dict[str, Any] = {
            "run_id": run_id,
            "status": status,
            "node": (run or job or {})["node"],
            "created_at": (job or run or {})["created_at"],
            "result": json.loads(run["response"]) if run else self._delivered_body(run_id),
        }
        if job is not None:
            body["callback"] = {"url": job["callback_url"], "deliveries": self.queue.deliveries_for(run_id)}
        return body

    def _job_owner(self, run_id: str) -> str | None:
        rows = self.queue.db.query("SELECT api_key_name FROM jobs WHERE run_id = ?", (run_id,))
        return str(rows[0]["api_key_name"]) if rows and rows[0]["api_key_name"] is not None else None

    def _delivered_body(self, run_id: str) -> Any:
        rows = self.queue.db.query("SELECT body FROM outbox WHERE run_id = ? LIMIT 1", (run_id,))
        return json.loads(rows[0]["body"]) if rows else None


def batch_summary(results: list[dict[str, Any]]) -> tuple[dict[str, Any], Decimal]:
    """Counts and total cost of a batch's answers (problem objects count as failed)."""
    cost = Decimal(0)
    failed = 0
    for result in results:
        usage = result.get("usage")
        if isinstance(usage, dict) and usage.get("cost_usd") is not None:
            cost += Decimal(str(usage["cost_usd"]))
        if isinstance(result.get("status"), int) and result["status"] >= 400:
            failed += 1
    summary = {
        "items": len(results),
        "succeeded": len(results) - failed,
        "failed": failed,
        "cost_usd": float(cost),
    }
    return summary, cost
