"""Submissions: how an admitted node request becomes work — a run now, a queued job, or a batch of either.

    body ─▶ node request (422) ─▶ task ─┬─ callback_url ─▶ job committed, then 202
                                        └─ otherwise ────▶ runner ─▶ record stored ─▶ 200 / 502 / 504

A run's record and, with an Idempotency-Key, its stored answer are written in one transaction; a
queued job and its 202 likewise. A batch runs its items concurrently (each one stored as its own
run) and answers every item in order, its success response or its problem; one item's failure never
fails the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nodes.admission import Admission, Admitted
from nodes.catalog import NODES, Node, Task
from nodes.cost import usd_text
from nodes.errors import InvalidRequest, NotFound, ProblemError
from nodes.idempotency import Claim, IdempotencyStore, item_key, request_hash
from nodes.jobs import JobQueue
from nodes.jsonbody import parse_json_object
from nodes.keys import Caller
from nodes.protocol import BatchRequest, NodeRequest, Reply, validate_request
from nodes.record import RunRecord
from nodes.runlog import new_run_id, write_run
from nodes.runner import Runner
from nodes.settings import Settings
from nodes.store import Store
from nodes.urlguard import check_callback_url


def find_node(name: str) -> Node[Any]:
    """The node called ``name``, or a 404 problem listing the ones that exist."""
    node = NODES.get(name)
    if node is None:
        raise NotFound(f"there is no node {name!r}; the nodes are: {', '.join(NODES)}")
    return node


class Submissions:
    """Accepts node and batch requests for one service process."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        admission: Admission,
        runner: Runner,
        queue: JobQueue,
    ) -> None:
        self.settings = settings
        self.store = store
        self.admission = admission
        self.idempotency: IdempotencyStore = admission.idempotency
        self.runner = runner
        self.queue = queue

    async def node(
        self,
        node_name: str,
        raw: bytes,
        *,
        caller: Caller,
        idempotency_key: str | None,
        received_at: float,
        wait_s: float = 0.0,
    ) -> Reply:
        """Answer ``POST /v1/nodes/{node}`` (``wait_s``: how long it may wait for the key's request window)."""
        node = find_node(node_name)
        data = parse_json_object(raw)
        path = f"/v1/nodes/{node_name}"
        async with self.admission.admit(caller, path, data, idempotency_key, wait_s=wait_s) as admitted:
            if isinstance(admitted, Reply):
                return admitted
            request = node.parse(data)
            task = node.task(request)
            self.runner.check_lane(node, request)
            if request.callback_url is not None:
                return await self.enqueue(node, request, data, admitted)
            return reply_of(await self.run_now(node, request, task, data, admitted, received_at))

    async def run_now(
        self,
        node: Node[Any],
        request: NodeRequest,
        task: Task,
        data: dict[str, Any],
        admitted: Admitted,
        received_at: float,
        *,
        answer: Callable[[RunRecord], Reply] | None = None,
        timeout_s: float | None = None,
    ) -> RunRecord:
        """Run a request and store its record (and its idempotent answer) in one transaction.

        ``answer`` renders the record as the reply an Idempotency-Key replays (the node protocol's by
        default); ``timeout_s`` shortens the run's time cap.
        """
        caller = admitted.caller

        async def within_budget(running: Decimal) -> None:
            await self.admission.quotas.ensure_budget(caller, running=running)

        record = await self.runner.run(
            node,
            request,
            task,
            run_id=new_run_id(),
            raw=data,
            key_id=caller.key_id,
            received_at=received_at,
            spend_check=within_budget,
            timeout_s=timeout_s,
        )
        async with self.store.transaction() as tx:
            await write_run(tx, record)
            if admitted.claim is not None:
                await self.idempotency.finish(tx, admitted.claim, (answer or reply_of)(record))
        self.runner.observe(record, task)
        return record

    async def enqueue(self, node: Node[Any], request: NodeRequest, data: dict[str, Any], admitted: Admitted) -> Reply:
        """Commit an asynchronous request as a job, then answer 202 with where to follow it."""
        assert request.callback_url is not None
        await check_callback_url(request.callback_url, allow_private=self.settings.callback_allow_private)
        run_id = new_run_id()
        status_url = f"/v1/runs/{run_id}"
        headers = {"X-Tierwise-Run-Id": run_id, "Location": status_url}
        if self.runner.sandbox:
            headers["X-Tierwise-Sandbox"] = "true"
        reply = Reply(202, {"run_id": run_id, "status": "queued", "status_url": status_url}, headers)
        async with self.store.transaction() as tx:
            await self.queue.enqueue(
                tx,
                run_id=run_id,
                node=node.name,
                request=data,
                callback_url=request.callback_url,
                key_id=admitted.caller.key_id,
            )
            if admitted.claim is not None:
                await self.idempotency.finish(tx, admitted.claim, reply)
        self.queue.wake()
        return reply

    async def batch(
        self,
        node_name: str,
        raw: bytes,
        *,
        caller: Caller,
        idempotency_key: str | None,
        received_at: float,
        wait_s: float = 0.0,
    ) -> Reply:
        """Answer ``POST /v1/nodes/{node}/batch``: every item's answer, in order."""
        node = find_node(node_name)
        data = parse_json_object(raw)
        path = f"/v1/nodes/{node_name}/batch"
        async with self.admission.admit(caller, path, data, idempotency_key, wait_s=wait_s) as admitted:
            if isinstance(admitted, Reply):
                return admitted
            batch = validate_request(BatchRequest, data)
            if len(batch.items) > self.settings.max_batch_items:
                raise InvalidRequest(
                    f"items: {len(batch.items)} items is over the limit of {self.settings.max_batch_items} "
                    "(TIERWISE_MAX_BATCH_ITEMS); split the batch"
                )
            limit = asyncio.Semaphore(self.settings.batch_concurrency)

            claim = admitted.claim

            async def one(index: int, item: Any) -> ItemAnswer:
                async with limit:
                    if claim is None:
                        return await self.item(node, item, batch.defaults, caller=caller)
                    return await self.claimed_item(node, item, batch.defaults, caller, item_key(claim.key, index))

            answers = await asyncio.gather(*(one(index, item) for index, item in enumerate(batch.items)))
            cost = sum((answer.cost_usd for answer in answers), Decimal(0))
            failed = sum(1 for answer in answers if answer.failed)
            summary = {
                "items": len(answers),
                "succeeded": len(answers) - failed,
                "failed": failed,
                "cost_usd": float(cost),
            }
            body = {"results": [answer.body for answer in answers], "summary": summary}
            reply = Reply(200, body, {"X-Tierwise-Cost-Usd": usd_text(cost)})
            if admitted.claim is not None:
                async with self.store.transaction() as tx:
                    await self.idempotency.finish(tx, admitted.claim, reply)
            return reply

    async def claimed_item(
        self, node: Node[Any], item: Any, defaults: dict[str, Any], caller: Caller, key: str
    ) -> ItemAnswer:
        """One item of a batch sent with an Idempotency-Key: its stored answer if a retry finds one, else run it.

        The item's answer is stored under its own derived key in the transaction that stores its run, so
        a batch cut short (a crash, a dropped connection) is retried without paying twice for what is done.
        """
        merged = {**defaults, **item} if isinstance(item, dict) else item
        outcome = await self.idempotency.claim(caller.key_id, key, request_hash(f"/v1/nodes/{node.name}", merged))
        if isinstance(outcome, Reply):
            usage = outcome.body.get("usage") if isinstance(outcome.body, dict) else None
            cost = Decimal(str(usage["cost_usd"])) if isinstance(usage, dict) and "cost_usd" in usage else Decimal(0)
            return ItemAnswer(outcome.body, cost, failed=outcome.is_problem)
        try:
            answer = await self.item(node, item, defaults, caller=caller, claim=outcome)
        except BaseException:
            await self.idempotency.release(outcome)
            raise
        if answer.stored is False:
            await self.idempotency.release(outcome)  # refused before it ran: nothing to replay
        return answer

    async def item(
        self, node: Node[Any], item: Any, defaults: dict[str, Any], *, caller: Caller, claim: Claim | None = None
    ) -> ItemAnswer:
        """Run (or queue) one batch item; its answer, or its problem object — never an exception."""
        try:
            await self.admission.quotas.ensure_budget(caller)  # a batch stops where the key's budget runs out
            if not isinstance(item, dict):
                raise InvalidRequest(f"each item must be a JSON object, not {type(item).__name__}")
            merged = {**defaults, **item}
            request = node.parse(merged)
            task = node.task(request)
            self.runner.check_lane(node, request)
            admitted = Admitted(caller, claim)
            if request.callback_url is not None:
                queued = await self.enqueue(node, request, merged, admitted)
                return ItemAnswer(queued.body, Decimal(0), failed=False)
            record = await self.run_now(node, request, task, merged, admitted, time.monotonic())
        except ProblemError as exc:
            return ItemAnswer(exc.to_problem(), Decimal(0), failed=True, stored=False)
        return ItemAnswer(record.body(), record.cost_usd, failed=record.failure is not None)


@dataclass(frozen=True)
class ItemAnswer:
    """One batch item's answer body, what it cost, whether it failed, and whether it was stored (ran)."""

    body: dict[str, Any]
    cost_usd: Decimal
    failed: bool
    stored: bool = True


def reply_of(record: RunRecord) -> Reply:
    """The HTTP answer for a run."""
    return Reply(record.http_status, record.body(), record.headers())
