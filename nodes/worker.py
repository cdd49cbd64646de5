"""Background work: executing queued asynchronous runs and delivering their callbacks.

Both loops read their work from SQLite, so whatever was accepted before a crash is picked up after a
restart. An in-process event wakes the loops at once when new work is added; otherwise they poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import time
from typing import Any

import httpx

from nodes.backoff import BackoffPolicy, backoff_delay, parse_retry_after
from nodes.callbacks import check_callback_url, deliver
from nodes.catalog import NODES
from nodes.errors import InvalidRequest, ProblemError
from nodes.jobs import Delivery, Job, JobQueue
from nodes.service import NodeResponse, Service

logger = logging.getLogger(__name__)

IDLE_POLL_S = 1.0
DELIVERY_BATCH = 32
MAX_JOB_TRIES = 3


def internal_problem(run_id: str, detail: str) -> dict[str, Any]:
    """The problem delivered when a job cannot be run at all."""
    return {
        "type": "/problems/internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": detail,
        "errors": [],
        "run_id": run_id,
    }


class Workers:
    """The job workers and the callback deliverer of one service process."""

    def __init__(self, service: Service, queue: JobQueue) -> None:
        self.service = service
        self.queue = queue
        settings = service.settings
        self.worker_count = settings.job_workers
        self.lease_s = settings.run_timeout_s * 2 + 30
        self.deadline_s = settings.callback_deadline_s
        self.callback_timeout_s = settings.callback_timeout_s
        self.allow_private = settings.callback_allow_private
        self.delivery_backoff = BackoffPolicy(
            base_s=settings.callback_backoff_base_s, cap_s=settings.callback_backoff_cap_s, retry_after_cap_s=3600.0
        )
        self.jobs_added = asyncio.Event()
        self.deliveries_added = asyncio.Event()
        self.rng = random.Random()
        self._job_tasks: list[asyncio.Task[None]] = []
        self._delivery_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._http: httpx.AsyncClient | None = None

    async def start(self) -> None:
        """Requeue what a dead process left behind, then start the loops."""
        recovered = self.queue.recover()
        if recovered:
            logger.warning("requeued %d asynchronous run(s) left unfinished by a previous process", recovered)
        self._http = httpx.AsyncClient(timeout=self.callback_timeout_s, follow_redirects=False)
        self._stopping = False
        self._job_tasks = [
            asyncio.create_task(self._job_loop(), name=f"job-worker-{n}") for n in range(self.worker_count)
        ]
        self._delivery_task = asyncio.create_task(self._delivery_loop(), name="callback-deliverer")

    async def stop(self) -> None:
        """Stop the loops; unfinished work stays in storage for the next start.

        Running jobs are cancelled (they are queued again on the next start, and nothing of theirs was
        committed). Deliveries in flight are given their timeout to finish, so that an answer the
        receiver has taken is also recorded as delivered.
        """
        self._stopping = True
        self.jobs_added.set()
        self.deliveries_added.set()
        for task in self._job_tasks:
            task.cancel()
        for task in self._job_tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._job_tasks = []
        if self._delivery_task is not None:
            try:
                await asyncio.wait_for(self._delivery_task, self.callback_timeout_s + 1)
            except TimeoutError:
                logger.warning("callback deliveries still in flight at shutdown will be made again on the next start")
            self._delivery_task = None
        if self._http is not None:
            await self._http.aclose()

    # -- jobs ------------------------------------------------------------------------------------------

    async def _job_loop(self) -> None:
        while not self._stopping:
            job = self.queue.claim(self.lease_s)
            if job is None:
                self.jobs_added.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.jobs_added.wait(), IDLE_POLL_S)
                continue
            try:
                await self.run_job(job)
            except Exception:
                logger.exception("asynchronous run %s failed inside the service; it will be tried again", job.run_id)

    async def run_job(self, job: Job) -> None:
        """Run one job and queue its answer for delivery, atomically with its run record."""
        node = NODES.get(job.node)
        if node is None or job.tries > MAX_JOB_TRIES:
            self._give_up(job, f"the run could not be executed (node {job.node!r}, try {job.tries})")
            return
        try:
            request = node.parse(job.request)
        except ProblemError as exc:
            self._give_up(job, f"the stored request is no longer valid: {exc.detail}")
            return

        def complete(conn: sqlite3.Connection, response: NodeResponse) -> None:
            status = "failed" if response.is_problem else "succeeded"
            self.queue.complete(conn, job, status=status, body=response.body, deadline_s=self.deadline_s)

        try:
            await self.service.execute(
                node,
                request,
                job.request,
                api_key_name=job.api_key_name,
                received_at=time.monotonic(),
                run_id=job.run_id,
                on_record=complete,
            )
        except sqlite3.IntegrityError:
            logger.warning("asynchronous run %s was completed by another worker; this result is dropped", job.run_id)
            return
        self.deliveries_added.set()

    def _give_up(self, job: Job, detail: str) -> None:
        logger.error("asynchronous run %s: %s", job.run_id, detail)
        with self.queue.db.transaction() as conn:
            self.queue.complete(
                conn,
                job,
                status="failed",
                body=internal_problem(job.run_id, detail),
                deadline_s=self.deadline_s,
            )
        self.deliveries_added.set()

    # -- deliveries ------------------------------------------------------------------------------------

    async def _delivery_loop(self) -> None:
        while not self._stopping:
            due = self.queue.due_deliveries(limit=DELIVERY_BATCH, lease_s=self.callback_timeout_s + 5)
            if due:
                await asyncio.gather(*(self.deliver_one(delivery) for delivery in due))
                continue
            wake = self.queue.wake_time()
            self.deliveries_added.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.deliveries_added.wait(), min(IDLE_POLL_S, wake) if wake else IDLE_POLL_S)

    async def deliver_one(self, delivery: Delivery) -> None:
        """Make one delivery attempt and record its outcome."""
        assert self._http is not None
        attempt = delivery.attempts + 1
        try:
            await check_callback_url(delivery.url, allow_private=self.allow_private)
        except InvalidRequest as exc:
            self.queue.failed(delivery, exc.detail, retry_in_s=self.deadline_s + 1)
            return
        result = await deliver(
            self._http,
            delivery.url,
            delivery.body.encode(),
            delivery_id=delivery.delivery_id,
            run_id=delivery.run_id,
            attempt=attempt,
        )
        if result.delivered:
            self.queue.delivered(delivery.delivery_id)
            return
        advice = parse_retry_after(result.headers) if result.headers else None
        delay = backoff_delay(delivery.attempts, self.delivery_backoff, self.rng, advice)
        if not self.queue.failed(delivery, result.error or "delivery failed", retry_in_s=delay):
            logger.error("gave up delivering run %s to its callback: %s", delivery.run_id, result.error)
