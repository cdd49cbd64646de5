"""The outbox: every asynchronous run's answer, POSTed to its callback URL until the receiver takes it.

An answer enters the outbox in the same transaction that stores its run, so nothing is lost between
"done" and "delivered". The deliverer takes due deliveries under a lease (on PostgreSQL with
``FOR UPDATE SKIP LOCKED``, so one instance at a time has a delivery in flight, and another retakes
it once the lease runs out after a crash), sends each in a task of its own (at most
``DELIVERY_CONCURRENCY`` at once, so one slow receiver holds up no one else), and records the
outcome: 2xx is delivered; anything else is retried with backoff (honouring the receiver's
``Retry-After``) until ``TIERWISE_CALLBACK_DEADLINE_S`` passes. Each delivery has a fixed id, sent as
``X-Tierwise-Delivery-Id``, so a receiver that sees it twice (after a crash between sending and
recording) knows it is the same one, with the same body.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from nodes import __version__
from nodes.backoff import BackoffPolicy, backoff_delay, parse_retry_after
from nodes.errors import InvalidRequest
from nodes.settings import Settings
from nodes.store import Row, StorageUnavailable, Store, Tx, utc_stamp
from nodes.urlguard import UnsafeDestination, check_callback_url, guarded_client

logger = logging.getLogger("tierwise.outbox")

USER_AGENT = f"Tierwise/{__version__} (callback)"
IDLE_POLL_S = 1.0
DELIVERY_CONCURRENCY = 32
LEASE_MARGIN_S = 5.0
STORAGE_RETRY_S = 1.0


@dataclass(frozen=True)
class Delivery:
    """A due callback delivery."""

    delivery_id: str
    run_id: str
    url: str
    body: str
    attempts: int
    deadline_at: float


@dataclass(frozen=True)
class DeliveryResult:
    """How one delivery attempt went."""

    delivered: bool
    status: int | None
    error: str | None
    headers: dict[str, str] | None = None
    final: bool = False
    """True when no retry can succeed (the URL reaches a non-public address)."""


async def deliver(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    *,
    delivery_id: str,
    run_id: str,
    attempt: int,
    deadline_s: float,
) -> DeliveryResult:
    """POST one answer to its callback URL within ``deadline_s`` in all; any 2xx means delivered.

    Only the status and headers of the receiver's answer are read, never its body, so a receiver
    that drips or floods its answer costs at most the deadline and no memory.
    """
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Tierwise-Delivery-Id": delivery_id,
        "X-Tierwise-Run-Id": run_id,
        "X-Tierwise-Delivery-Attempt": str(attempt),
    }
    try:
        async with asyncio.timeout(deadline_s), client.stream("POST", url, content=body, headers=headers) as response:
            status = response.status_code
            answer_headers = {key.lower(): value for key, value in response.headers.items()}
    except UnsafeDestination as exc:
        return DeliveryResult(False, None, str(exc)[:500], final=True)
    except TimeoutError:
        return DeliveryResult(False, None, f"the receiver did not answer within {deadline_s:g} s")
    except httpx.HTTPError as exc:
        return DeliveryResult(False, None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= status < 300:
        return DeliveryResult(True, status, None)
    return DeliveryResult(False, status, f"the receiver answered HTTP {status}", answer_headers)


class Outbox:
    """The ``outbox`` table."""

    def __init__(self, store: Store, *, deadline_s: float) -> None:
        self.store = store
        self.deadline_s = deadline_s
        self.added = asyncio.Event()

    def wake(self) -> None:
        """Tell this process's deliverer that a delivery was added."""
        self.added.set()

    async def add(self, tx: Tx, *, run_id: str, url: str, body: dict[str, Any]) -> str:
        """Queue an answer for delivery inside the caller's transaction; returns the delivery id."""
        now = time.time()
        delivery_id = "dlv_" + uuid.uuid4().hex
        await tx.execute(
            "INSERT INTO outbox (delivery_id, run_id, url, body, status, next_attempt_at, deadline_at) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?)",
            (delivery_id, run_id, url, json.dumps(body), now, now + self.deadline_s),
        )
        return delivery_id

    async def recover(self) -> None:
        """Free deliveries a previous process left in flight (SQLite: this process owns the file)."""
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE outbox SET leased_until = NULL WHERE status = 'pending' AND leased_until IS NOT NULL"
            )

    async def due(self, *, limit: int, lease_s: float) -> list[Delivery]:
        """Deliveries whose time has come, each leased for ``lease_s`` so that one task at a time sends it."""
        now = time.time()
        async with self.store.transaction() as tx:
            rows = await tx.fetchall(
                "SELECT delivery_id, run_id, url, body, attempts, deadline_at FROM outbox "
                "WHERE status = 'pending' AND next_attempt_at <= ? AND (leased_until IS NULL OR leased_until < ?) "
                "ORDER BY next_attempt_at LIMIT ?" + self.store.claim_suffix,
                (now, now, limit),
            )
            await tx.executemany(
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

    async def delivered(self, delivery: Delivery) -> None:
        """Record a 2xx from the receiver."""
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, last_error = NULL, "
                "leased_until = NULL, delivered_at = ? WHERE delivery_id = ?",
                (utc_stamp(), delivery.delivery_id),
            )

    async def failed(self, delivery: Delivery, error: str, retry_in_s: float) -> bool:
        """Record a failed attempt; schedule another, or give up past the deadline. True if it will be retried."""
        now = time.time()
        retry = now + retry_in_s <= delivery.deadline_at
        async with self.store.transaction() as tx:
            await tx.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ?, status = ?, "
                "leased_until = NULL WHERE delivery_id = ?",
                (error, now + retry_in_s, "pending" if retry else "expired", delivery.delivery_id),
            )
        return retry

    async def for_run(self, run_id: str) -> list[Row]:
        """The callback deliveries of a run, for ``GET /v1/runs/{run_id}``."""
        return await self.store.fetchall(
            "SELECT delivery_id, status, attempts, last_error, delivered_at FROM outbox WHERE run_id = ?", (run_id,)
        )

    async def delivered_body(self, run_id: str) -> Any:
        """The answer queued for a run's callback, or None."""
        row = await self.store.fetchone("SELECT body FROM outbox WHERE run_id = ? LIMIT 1", (run_id,))
        return json.loads(row["body"]) if row else None

    async def counts(self) -> dict[str, int]:
        """How many deliveries are in each state."""
        rows = await self.store.fetchall("SELECT status, COUNT(*) AS n FROM outbox GROUP BY status")
        return {str(row["status"]): int(row["n"]) for row in rows}

    async def wake_in(self) -> float | None:
        """Seconds until the next pending delivery is due (0 if one is due now), or None if none is pending."""
        row = await self.store.fetchone(
            "SELECT MIN(CASE WHEN leased_until IS NOT NULL AND leased_until > next_attempt_at "
            "THEN leased_until ELSE next_attempt_at END) AS t FROM outbox WHERE status = 'pending'"
        )
        if row is None or row["t"] is None:
            return None
        return max(0.0, float(row["t"]) - time.time())


class Deliverer:
    """Sends this process's share of the outbox."""

    def __init__(self, settings: Settings, outbox: Outbox, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self.outbox = outbox
        self.backoff = BackoffPolicy(
            base_s=settings.callback_backoff_base_s, cap_s=settings.callback_backoff_cap_s, retry_after_cap_s=3600.0
        )
        self.lease_s = settings.callback_timeout_s + LEASE_MARGIN_S
        self.rng = rng or random.Random()
        self._slots = asyncio.Semaphore(DELIVERY_CONCURRENCY)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._stopping = False

    async def start(self) -> None:
        """Free what a dead process left in flight (SQLite), then start delivering."""
        if not self.outbox.store.shared:
            await self.outbox.recover()
        self._http = guarded_client(
            allow_private=self.settings.callback_allow_private, timeout=self.settings.callback_timeout_s
        )
        self._stopping = False
        self._loop_task = asyncio.create_task(self._loop(), name="tierwise-callback-deliverer")

    async def stop(self) -> None:
        """Stop taking deliveries; those in flight get their timeout to finish, so a taken answer is recorded."""
        self._stopping = True
        if self._loop_task is not None:
            self._loop_task.cancel()  # the loop holds nothing: deliveries in flight are tasks of their own
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
            self._loop_task = None
        if self._in_flight:
            _, pending = await asyncio.wait(self._in_flight, timeout=self.settings.callback_timeout_s + 1)
            if pending:
                logger.warning("callback deliveries still in flight at shutdown will be made again on the next start")
                for task in pending:
                    task.cancel()
        if self._http is not None:
            await self._http.aclose()

    @property
    def alive(self) -> bool:
        """True while the delivering loop runs."""
        return self._loop_task is not None and not self._loop_task.done()

    async def _loop(self) -> None:
        while not self._stopping:
            free = DELIVERY_CONCURRENCY - len(self._in_flight)
            try:
                due = await self.outbox.due(limit=free, lease_s=self.lease_s) if free > 0 else []
                wake = None if due else await self.outbox.wake_in()
            except Exception as exc:  # the loop outlives any failure: a full disk, a lost connection, a bug
                log = logger.error if isinstance(exc, StorageUnavailable) else logger.exception
                log("could not read the outbox (%s); trying again in %g s", exc, STORAGE_RETRY_S)
                await asyncio.sleep(STORAGE_RETRY_S)
                continue
            for delivery in due:
                task = asyncio.create_task(self.deliver_one(delivery), name=f"tierwise-delivery-{delivery.delivery_id}")
                self._in_flight.add(task)
                task.add_done_callback(self._done)
            if due:
                continue
            self.outbox.added.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.outbox.added.wait(), min(IDLE_POLL_S, wake) if wake else IDLE_POLL_S)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a callback delivery failed inside the service", exc_info=task.exception())
        self.outbox.wake()

    async def deliver_one(self, delivery: Delivery) -> None:
        """Make one delivery attempt and record its outcome."""
        assert self._http is not None
        try:
            await check_callback_url(delivery.url, allow_private=self.settings.callback_allow_private)
        except InvalidRequest as exc:
            await self.outbox.failed(delivery, exc.detail, retry_in_s=self.outbox.deadline_s + 1)
            return
        result = await deliver(
            self._http,
            delivery.url,
            delivery.body.encode(),
            delivery_id=delivery.delivery_id,
            run_id=delivery.run_id,
            attempt=delivery.attempts + 1,
            deadline_s=self.settings.callback_timeout_s,
        )
        if result.delivered:
            await self.outbox.delivered(delivery)
            return
        if result.final:
            await self.outbox.failed(delivery, result.error or "refused", retry_in_s=self.outbox.deadline_s + 1)
            logger.error("gave up delivering run %s to its callback: %s", delivery.run_id, result.error)
            return
        advice = parse_retry_after(result.headers) if result.headers else None
        delay = backoff_delay(delivery.attempts, self.backoff, self.rng, advice)
        if not await self.outbox.failed(delivery, result.error or "delivery failed", retry_in_s=delay):
            logger.error("gave up delivering run %s to its callback: %s", delivery.run_id, result.error)
