"""The batch lane: the model calls of work that can wait, sent through the upstream's Batch API at half price.

    run ─ call ─▶ batch_calls row (queued) ─▶ batcher: one JSONL file per tier ─▶ POST /v1/files, /v1/batches
     ▲                                                                              │
     └──── the call's reply ◀── batch_calls row (done) ◀── output/error file ◀──── GET /v1/batches/{id} (polled)

A run on the batch lane (``processing: "batch"``, asynchronous work only) makes its calls as any run
does — validation, the repair turn and escalation included — but each call is a row in ``batch_calls``
that the **batcher** groups with the other queued calls of its tier into one Batch API file. The run
waits for the row's result; a repair or an escalation is simply the run's next call, so it goes into
the next batch. A call still unanswered after ``TIERWISE_BATCH_WAIT_S`` is made on standard instead.

Nothing is lost and nothing is sent twice, across crashes and instances, because everything is in the
store and every call has a fixed identity: the run id and a key made of the call's body and how many
calls of the run had that body before it. A run taken over after a crash makes the same calls in the
same order, so it finds what its predecessor queued (answered, or still in a batch) instead of
queueing it again. A batch is recorded (``upstream_batches``, ``creating``) and its calls marked with
its label in one transaction before it is sent; the label travels in the batch's metadata, so a batch
whose sending was cut short is found at the endpoint by its label — or sent again if it never got
there. Batches are polled under a lease, so one instance at a time reads each.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from nodes.errors import ServerError, UpstreamError, UpstreamTimeout
from nodes.provider import BatchState, ModelReply, ModelRequest, reply_from, request_body
from nodes.settings import StructuredOutputMode
from nodes.store import StorageUnavailable, Store, utc_stamp
from nodes.tiers import Tier, TierName

logger = logging.getLogger("tierwise.batchlane")

STORAGE_RETRY_S = 1.0
RESEND_AFTER_S = 60.0
"""A batch still ``creating`` this long after it was recorded is looked for at the endpoint, and sent if absent."""
MIN_LEASE_S = 5.0
"""An instance polls a batch under a lease of three poll intervals (at least this): another takes over after it."""
MAX_LINES = 50_000
"""The Batch API's limit of requests per file."""
CHAT_COMPLETIONS = "/v1/chat/completions"


@runtime_checkable
class BatchEndpoint(Protocol):
    """What the batcher needs of a provider: the Batch API of a tier's endpoint."""

    async def submit_batch(self, tier: Tier, lines: list[dict[str, Any]], label: str) -> str:
        """Upload the lines and start a batch labelled ``label``; its id."""
        ...

    async def find_batch(self, tier: Tier, label: str) -> str | None:
        """The id of the batch labelled ``label``, if the endpoint has one."""
        ...

    async def batch_state(self, tier: Tier, batch_id: str) -> BatchState:
        """Where a batch stands."""
        ...

    async def batch_lines(self, tier: Tier, file_id: str) -> list[dict[str, Any]]:
        """The lines of an output or error file."""
        ...


class BatchWaitExceeded(UpstreamTimeout):
    """A batch-lane call that no batch answered within ``TIERWISE_BATCH_WAIT_S``: it is made on standard."""

    outcome = "unavailable"
    retryable_by_default = False


def call_key(body: Mapping[str, Any], earlier: int) -> str:
    """A call's identity within its run: its body's hash, and how many calls of the run had that body before."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return f"{digest[:24]}:{earlier}"


def custom_id(run_id: str, key: str) -> str:
    """The Batch API line id of a call (``custom_id``)."""
    return f"{run_id}|{key}"


@dataclass(frozen=True)
class Result:
    """What a batch said to one call: the line's HTTP status and body, or why it has none."""

    status: int | None
    body: Any
    error: str | None = None

    def as_json(self) -> str:
        """The stored form of the result."""
        return json.dumps({"status": self.status, "body": self.body, "error": self.error})

    @classmethod
    def from_json(cls, text: str) -> Result:
        """A stored result."""
        data = json.loads(text)
        return cls(data.get("status"), data.get("body"), data.get("error"))

    def reply(self, tier: Tier, request: ModelRequest, mode: StructuredOutputMode) -> ModelReply:
        """The call's reply, or the ``UpstreamError`` a direct call with this answer would have raised."""
        if self.status == 200:
            return reply_from(self.body, tier, request, mode, {})
        if self.status is None:
            raise ServerError(self.error or "the batch ended without answering this call")
        message = self.body.get("error", {}).get("message") if isinstance(self.body, dict) else None
        retryable = self.status in (408, 409, 429) or self.status >= 500
        raise UpstreamError(
            f"HTTP {self.status} in the batch: {message or 'no message'}"[:500], status=self.status, retryable=retryable
        )


class BatchLane:
    """The runs' side: queue a call, wait for its batch to answer it."""

    def __init__(self, store: Store, *, poll_s: float) -> None:
        self.store = store
        self.poll_s = poll_s
        self.queued = asyncio.Event()
        self._answered: dict[str, asyncio.Event] = {}

    async def complete(
        self,
        run_id: str,
        key: str,
        tier: Tier,
        request: ModelRequest,
        mode: StructuredOutputMode,
        *,
        wait_s: float,
    ) -> ModelReply:
        """The reply to one call of a run, sent in a batch (or found answered or pending after a restart)."""
        row = await self.store.fetchone(
            "SELECT status, result FROM batch_calls WHERE run_id = ? AND call_key = ?", (run_id, key)
        )
        if row is None:
            now = utc_stamp()
            async with self.store.transaction() as tx:
                await tx.execute(
                    "INSERT INTO batch_calls (run_id, call_key, tier, body, status, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, 'queued', ?, ?) ON CONFLICT (run_id, call_key) DO NOTHING",
                    (run_id, key, tier.name, json.dumps(request_body(tier, request, mode)), now, now),
                )
            self.queued.set()
        elif row["status"] == "done":
            return Result.from_json(row["result"]).reply(tier, request, mode)
        name = custom_id(run_id, key)
        event = self._answered.setdefault(name, asyncio.Event())
        deadline = time.monotonic() + wait_s
        try:
            while True:
                row = await self.store.fetchone(
                    "SELECT status, result FROM batch_calls WHERE run_id = ? AND call_key = ?", (run_id, key)
                )
                if row is not None and row["status"] == "done":
                    return Result.from_json(row["result"]).reply(tier, request, mode)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BatchWaitExceeded(
                        f"no batch answered the call within {wait_s:g} s (TIERWISE_BATCH_WAIT_S); made on standard"
                    )
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(left, self.poll_s))
        finally:
            self._answered.pop(name, None)

    def answered(self, names: list[str]) -> None:
        """Wake the runs of this process waiting for these calls."""
        for name in names:
            event = self._answered.get(name)
            if event is not None:
                event.set()


class Batcher:
    """The batches' side: send queued calls as batches, poll the batches, file their answers.

    One loop per process; ``tick`` is one pass (used by tests to step it).
    """

    def __init__(
        self,
        store: Store,
        lane: BatchLane,
        endpoint: BatchEndpoint,
        tiers: Mapping[TierName, Tier] | None = None,
        *,
        collect_s: float,
        poll_s: float,
    ) -> None:
        self.store = store
        self.lane = lane
        self.endpoint = endpoint
        self.tiers: Mapping[TierName, Tier] = tiers or {}
        self.collect_s = collect_s
        self.poll_s = poll_s
        self.lease_s = max(MIN_LEASE_S, 3 * poll_s)
        self.owner = uuid.uuid4().hex
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take back what a dead process held (SQLite: this process owns the file), then start sending and polling."""
        if not self.store.shared:
            async with self.store.transaction() as tx:
                await tx.execute(
                    "UPDATE upstream_batches SET owner = NULL, lease_until = NULL, "
                    "sent_at = CASE WHEN status = 'creating' THEN 0 ELSE sent_at END WHERE status != 'ended'"
                )
        self._loop_task = asyncio.create_task(self._loop(), name="tierwise-batcher")

    async def stop(self) -> None:
        """Stop; what is queued or in a batch stays in the store for the next start (or another instance)."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None

    @property
    def alive(self) -> bool:
        """True while the loop runs."""
        return self._loop_task is not None and not self._loop_task.done()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:  # the loop outlives any failure: storage, the endpoint, a bug
                log = logger.error if isinstance(exc, StorageUnavailable | UpstreamError) else logger.exception
                log("the batcher could not finish a pass (%s); trying again", exc)
                await asyncio.sleep(STORAGE_RETRY_S)
                continue
            self.lane.queued.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.lane.queued.wait(), self.poll_s)
            await asyncio.sleep(self.collect_s)  # let a wave of calls gather into one file

    async def tick(self) -> None:
        """One pass: resend batches whose sending was cut short, send what is queued, poll what is out."""
        await self._resume_creating()
        for tier in self.tiers.values():
            await self._send_queued(tier)
        await self._poll()

    async def _send_queued(self, tier: Tier) -> None:
        label = f"tw-{uuid.uuid4().hex}"
        now = utc_stamp()
        async with self.store.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT run_id, call_key FROM batch_calls WHERE status = 'queued' AND tier = ? "
                "ORDER BY created_at LIMIT ?" + self.store.claim_suffix,
                (tier.name, MAX_LINES),
            )
            if not rows:
                return
            await tx.execute(
                "INSERT INTO upstream_batches (label, tier, status, created_at, updated_at, sent_at) "
                "VALUES (?, ?, 'creating', ?, ?, ?)",
                (label, tier.name, now, now, time.time()),
            )
            await tx.executemany(
                "UPDATE batch_calls SET status = 'submitted', batch_label = ?, updated_at = ? "
                "WHERE run_id = ? AND call_key = ? AND status = 'queued'",
                [(label, now, row["run_id"], row["call_key"]) for row in rows],
            )
        await self._submit(tier, label)

    async def _submit(self, tier: Tier, label: str) -> None:
        rows = await self.store.fetchall(
            "SELECT run_id, call_key, body FROM batch_calls WHERE batch_label = ? ORDER BY created_at", (label,)
        )
        lines = [
            {"custom_id": custom_id(row["run_id"], row["call_key"]), "method": "POST", "url": CHAT_COMPLETIONS,
             "body": json.loads(row["body"])}
            for row in rows
        ]  # fmt: skip
        batch_id = await self.endpoint.submit_batch(tier, lines, label)
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE upstream_batches SET batch_id = ?, status = 'submitted', updated_at = ? WHERE label = ?",
                (batch_id, utc_stamp(), label),
            )
        logger.info("sent %d call(s) of the %s tier as batch %s", len(lines), tier.name, batch_id)

    async def _resume_creating(self) -> None:
        """Batches recorded but never marked sent (a crash in between): adopt the endpoint's, or send them now."""
        stale = time.time() - RESEND_AFTER_S
        rows = await self.store.fetchall(
            "SELECT label, tier FROM upstream_batches WHERE status = 'creating' AND sent_at < ?", (stale,)
        )
        for row in rows:
            tier = self.tiers.get(row["tier"])
            if tier is None or not await self._lease(row["label"]):
                continue
            found = await self.endpoint.find_batch(tier, row["label"])
            if found is None:
                async with self.store.transaction() as tx:
                    await tx.execute(
                        "UPDATE upstream_batches SET sent_at = ? WHERE label = ?", (time.time(), row["label"])
                    )
                await self._submit(tier, row["label"])
                continue
            async with self.store.transaction() as tx:
                await tx.execute(
                    "UPDATE upstream_batches SET batch_id = ?, status = 'submitted', updated_at = ? WHERE label = ?",
                    (found, utc_stamp(), row["label"]),
                )

    async def _lease(self, label: str) -> bool:
        now = time.time()
        async with self.store.transaction() as tx:
            changed = await tx.execute(
                "UPDATE upstream_batches SET owner = ?, lease_until = ? "
                "WHERE label = ? AND (owner IS NULL OR owner = ? OR lease_until < ?)",
                (self.owner, now + self.lease_s, label, self.owner, now),
            )
        return changed == 1

    async def _poll(self) -> None:
        rows = await self.store.fetchall(
            "SELECT label, tier, batch_id FROM upstream_batches WHERE status = 'submitted' ORDER BY created_at"
        )
        for row in rows:
            tier = self.tiers.get(row["tier"])
            if tier is None or not await self._lease(row["label"]):
                continue
            state = await self.endpoint.batch_state(tier, row["batch_id"])
            if not state.ended:
                continue
            await self._file(tier, row["label"], row["batch_id"], state)

    async def _file(self, tier: Tier, label: str, batch_id: str, state: BatchState) -> None:
        """Store an ended batch's answers with their calls, and mark every call of it answered."""
        lines = []
        for file_id in (state.output_file_id, state.error_file_id):
            if file_id:
                lines += await self.endpoint.batch_lines(tier, file_id)
        results: dict[str, Result] = {}
        for line in lines:
            response = line.get("response")
            name = line.get("custom_id")
            if not isinstance(name, str):
                continue
            if isinstance(response, dict) and isinstance(response.get("status_code"), int):
                results[name] = Result(response["status_code"], response.get("body"))
            else:
                error = line.get("error")
                message = error.get("message") if isinstance(error, dict) else None
                results[name] = Result(None, None, f"the batch could not run this call: {message}")
        calls = await self.store.fetchall(
            "SELECT run_id, call_key FROM batch_calls WHERE batch_label = ? AND status = 'submitted'", (label,)
        )
        missing = Result(None, None, f"batch {batch_id} ended ({state.status}) without answering this call")
        now = utc_stamp()
        names = [custom_id(call["run_id"], call["call_key"]) for call in calls]
        async with self.store.transaction() as tx:
            await tx.executemany(
                "UPDATE batch_calls SET status = 'done', result = ?, updated_at = ? "
                "WHERE run_id = ? AND call_key = ? AND status = 'submitted'",
                [
                    (results.get(name, missing).as_json(), now, call["run_id"], call["call_key"])
                    for name, call in zip(names, calls, strict=True)
                ],
            )
            await tx.execute(
                "UPDATE upstream_batches SET status = 'ended', updated_at = ?, owner = NULL WHERE label = ?",
                (now, label),
            )
        self.lane.answered(names)
        logger.info("batch %s (%s tier) %s: %d answer(s) filed", batch_id, tier.name, state.status, len(calls))
