"""Asynchronous runs: the durable job queue and the workers that execute it.

A request with ``callback_url`` is committed to ``jobs`` before its 202 is sent. A worker claims the
oldest queued job (``queued → running``, under a lease it renews while the run goes on), runs it,
and in ONE transaction marks the job done, stores the run and puts its answer in the outbox
(``nodes.outbox``), which delivers it. On PostgreSQL any number of instances share the queue: a
claim takes the row with ``FOR UPDATE SKIP LOCKED``, so each job runs on one instance at a time, and
a job whose instance died is taken again when its lease runs out. Completion is conditional on the
lease still being this worker's, so a job that two workers ended up running is stored once: the
second completion finds the job no longer its own and drops its result. A SQLite file belongs to one
process, so on start-up that process takes back at once whatever it left running when it died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from nodes.catalog import NODES
from nodes.errors import InternalError, ProblemError
from nodes.outbox import Outbox
from nodes.runlog import write_run
from nodes.runner import Runner
from nodes.settings import Settings
from nodes.store import Row, StorageUnavailable, Store, Tx, utc_stamp

logger = logging.getLogger("tierwise.jobs")

IDLE_POLL_S = 1.0
LEASE_S = 30.0
MAX_JOB_TRIES = 3
MAX_PARKED = 50_000
STORAGE_RETRY_S = 1.0


@dataclass(frozen=True)
class Job:
    """A claimed asynchronous run."""

    run_id: str
    node: str
    request: dict[str, Any]
    callback_url: str
    key_id: str | None
    tries: int


class JobQueue:
    """The ``jobs`` table: enqueue, claim under a lease, complete."""

    def __init__(self, store: Store, *, worker_id: str | None = None, lease_s: float = LEASE_S) -> None:
        self.store = store
        self.worker_id = worker_id or uuid.uuid4().hex
        self.lease_s = lease_s
        self.added = asyncio.Event()

    def wake(self) -> None:
        """Tell this process's workers that a job was added."""
        self.added.set()

    @staticmethod
    async def enqueue(
        tx: Tx,
        *,
        run_id: str,
        node: str,
        request: dict[str, Any],
        callback_url: str,
        key_id: str | None,
    ) -> None:
        """Add a job inside the caller's transaction."""
        await tx.execute(
            "INSERT INTO jobs (run_id, node, request, callback_url, key_id, status, created_at) "
            "VALUES (?, ?, ?, ?, ?, 'queued', ?)",
            (run_id, node, json.dumps(request), callback_url, key_id, utc_stamp()),
        )

    async def recover(self) -> int:
        """Queue again every job left running by a previous process (SQLite: this process owns the file)."""
        async with self.store.transaction() as tx:
            return await tx.execute(
                "UPDATE jobs SET status = 'queued', worker = NULL, lease_until = NULL "
                "WHERE status = 'running' AND (worker IS NULL OR worker != ?)",
                (self.worker_id,),
            )

    async def claim(self) -> Job | None:
        """Take the oldest queued job (or one whose lease ran out), or None."""
        now = time.time()
        async with self.store.transaction() as tx:
            row = await tx.fetchone(
                "SELECT run_id, node, request, callback_url, key_id, tries FROM jobs "
                "WHERE status = 'queued' OR (status = 'running' AND lease_until < ?) "
                "ORDER BY created_at LIMIT 1" + self.store.claim_suffix,
                (now,),
            )
            if row is None:
                return None
            await tx.execute(
                "UPDATE jobs SET status = 'running', worker = ?, lease_until = ?, tries = tries + 1 WHERE run_id = ?",
                (self.worker_id, now + self.lease_s, row["run_id"]),
            )
        return Job(
            run_id=row["run_id"],
            node=row["node"],
            request=json.loads(row["request"]),
            callback_url=row["callback_url"],
            key_id=row["key_id"],
            tries=int(row["tries"]) + 1,
        )

    async def renew(self, job: Job) -> bool:
        """Extend this worker's lease on a running job; False if the job is no longer this worker's."""
        async with self.store.transaction() as tx:
            changed = await tx.execute(
                "UPDATE jobs SET lease_until = ? WHERE run_id = ? AND status = 'running' AND worker = ?",
                (time.time() + self.lease_s, job.run_id, self.worker_id),
            )
        return changed == 1

    async def complete(self, tx: Tx, job: Job, *, status: str) -> bool:
        """Mark a job finished inside the caller's transaction; False if it is no longer this worker's."""
        changed = await tx.execute(
            "UPDATE jobs SET status = ?, lease_until = NULL, finished_at = ? "
            "WHERE run_id = ? AND status = 'running' AND worker = ?",
            (status, utc_stamp(), job.run_id, self.worker_id),
        )
        return changed == 1

    async def status(self, run_id: str) -> Row | None:
        """A job's row, or None when no job has that run id."""
        return await self.store.fetchone(
            "SELECT run_id, node, status, tries, created_at, finished_at, callback_url, key_id "
            "FROM jobs WHERE run_id = ?",
            (run_id,),
        )

    async def counts(self) -> dict[str, int]:
        """How many jobs are in each state."""
        rows = await self.store.fetchall("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
        return {str(row["status"]): int(row["n"]) for row in rows}


class JobWorkers:
    """Runs this process's share of the queue: one loop claims jobs while a slot is free, each runs as a task.

    At most ``TIERWISE_JOB_WORKERS`` jobs run at once. A job on the batch lane spends its time waiting for
    its batches, so it takes no slot (at most ``MAX_PARKED`` of them wait at once). When the queue is empty
    the loop sleeps until a job is added in this process or a second passes (another instance may have
    added one).
    """

    def __init__(self, settings: Settings, store: Store, queue: JobQueue, runner: Runner, outbox: Outbox) -> None:
        self.settings = settings
        self.store = store
        self.queue = queue
        self.runner = runner
        self.outbox = outbox
        self._running: set[asyncio.Task[None]] = set()
        self._parked: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take back what a dead process left behind (SQLite), then start claiming."""
        if not self.store.shared:
            recovered = await self.queue.recover()
            if recovered:
                logger.warning("requeued %d asynchronous run(s) left unfinished by a previous process", recovered)
        self._loop_task = asyncio.create_task(self._loop(), name="tierwise-job-claimer")

    async def stop(self) -> None:
        """Stop claiming and cancel running jobs; they stay in storage for the next start (or another instance)."""
        tasks = [task for task in (self._loop_task, *self._running, *self._parked) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop_task = None
        self._running.clear()
        self._parked.clear()

    @property
    def alive(self) -> bool:
        """True while the claiming loop runs."""
        return self._loop_task is not None and not self._loop_task.done()

    async def _loop(self) -> None:
        while True:
            job = None
            if len(self._running) < self.settings.job_workers and len(self._parked) < MAX_PARKED:
                try:
                    job = await self.queue.claim()
                except Exception as exc:  # the loop outlives any failure: a full disk, a lost connection, a bug
                    log = logger.error if isinstance(exc, StorageUnavailable) else logger.exception
                    log("could not claim a job (%s); trying again in %g s", exc, STORAGE_RETRY_S)
                    await asyncio.sleep(STORAGE_RETRY_S)
                    continue
            if job is not None:
                task = asyncio.create_task(self._run(job), name=f"tierwise-job-{job.run_id}")
                (self._parked if self._batched(job) else self._running).add(task)
                task.add_done_callback(self._finished)
                continue
            self.queue.added.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.added.wait(), IDLE_POLL_S)

    def _batched(self, job: Job) -> bool:
        """Whether a job's calls go on the batch lane (its own processing, else the service's default)."""
        return (job.request.get("processing") or self.settings.processing) == "batch"

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        self._parked.discard(task)
        self.queue.wake()  # a slot is free

    async def _run(self, job: Job) -> None:
        try:
            await self.run_job(job)
        except Exception:
            logger.exception("asynchronous run %s failed inside the service; it will be tried again", job.run_id)

    async def run_job(self, job: Job) -> None:
        """Run one job and queue its answer for delivery, atomically with its run record."""
        node = NODES.get(job.node)
        if node is None or job.tries > MAX_JOB_TRIES:
            await self._give_up(job, f"the run could not be executed (node {job.node!r}, try {job.tries})")
            return
        try:
            request = node.parse(job.request)
            task = node.task(request)
        except ProblemError as exc:
            await self._give_up(job, f"the stored request is no longer valid: {exc.detail}")
            return
        renewer = asyncio.create_task(self._keep_lease(job))
        try:
            record = await self.runner.run(
                node,
                request,
                task,
                run_id=job.run_id,
                raw=job.request,
                key_id=job.key_id,
                received_at=time.monotonic(),
            )
        finally:
            renewer.cancel()
        async with self.store.transaction() as tx:
            if not await self.queue.complete(tx, job, status="failed" if record.failure else "succeeded"):
                logger.warning(
                    "asynchronous run %s was taken over by another worker; this result is dropped", job.run_id
                )
                return
            await write_run(tx, record)
            await self.outbox.add(tx, run_id=job.run_id, url=job.callback_url, body=record.body())
        self.runner.observe(record, task)
        self.outbox.wake()

    async def _keep_lease(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.queue.lease_s / 3)
            try:
                if not await self.queue.renew(job):
                    return
            except StorageUnavailable as exc:
                logger.error("could not renew the lease of run %s: %s", job.run_id, exc)

    async def _give_up(self, job: Job, detail: str) -> None:
        logger.error("asynchronous run %s: %s", job.run_id, detail)
        problem = InternalError(detail, run_id=job.run_id).to_problem()
        async with self.store.transaction() as tx:
            if await self.queue.complete(tx, job, status="failed"):
                await self.outbox.add(tx, run_id=job.run_id, url=job.callback_url, body=problem)
        self.outbox.wake()
