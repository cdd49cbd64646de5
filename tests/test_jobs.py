"""The job queue on both engines: claims under leases, takeover of dead instances' work, completion once."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from scripted import FakeClock, ScriptedProvider, reply, scripted_tiers
from support import BACKENDS

from nodes.attempts import Limits, TierCaller
from nodes.jobs import JobQueue, JobWorkers
from nodes.ladder import Ladder
from nodes.outbox import Outbox
from nodes.runner import Runner
from nodes.settings import Settings
from nodes.store import StorageUnavailable, Store

pytestmark = BACKENDS
BODY = {"input": "charged twice", "labels": ["billing", "bug"], "callback_url": "https://hooks.example.com/x"}


async def enqueue(store: Store, queue: JobQueue, *run_ids: str, node: str = "classify") -> None:
    for run_id in run_ids:
        async with store.transaction() as tx:
            await queue.enqueue(
                tx, run_id=run_id, node=node, request=BODY, callback_url=BODY["callback_url"], key_id="env-1"
            )
        await asyncio.sleep(0.002)  # distinct created_at stamps: the queue is first in, first out


async def test_claims_take_the_oldest_job_under_a_lease(store: Store) -> None:
    queue = JobQueue(store, worker_id="w1", lease_s=30)
    await enqueue(store, queue, "run_a", "run_b")
    before = time.time()
    first = await queue.claim()
    assert first is not None and (first.run_id, first.tries, first.request) == ("run_a", 1, BODY)
    row = await store.fetchone("SELECT status, worker, lease_until FROM jobs WHERE run_id = 'run_a'")
    assert row is not None and (row["status"], row["worker"]) == ("running", "w1")
    assert before + 30 <= row["lease_until"] <= time.time() + 30
    second = await queue.claim()
    assert second is not None and second.run_id == "run_b"
    assert await queue.claim() is None
    assert await queue.counts() == {"running": 2}


async def test_instances_claiming_at_once_never_take_the_same_job(store: Store) -> None:
    queues = [JobQueue(store, worker_id=f"w{n}") for n in range(4)]
    await enqueue(store, queues[0], *(f"run_{n:02d}" for n in range(12)))
    claimed = await asyncio.gather(*(queue.claim() for queue in queues for _ in range(4)))
    taken = [job.run_id for job in claimed if job is not None]
    assert sorted(taken) == [f"run_{n:02d}" for n in range(12)]


async def test_a_dead_instances_job_is_taken_over_and_its_late_result_dropped(store: Store) -> None:
    dead = JobQueue(store, worker_id="dead", lease_s=1)
    alive = JobQueue(store, worker_id="alive", lease_s=30)
    await enqueue(store, dead, "run_a")
    held = await dead.claim()
    assert held is not None and await alive.claim() is None
    async with store.transaction() as tx:
        await tx.execute("UPDATE jobs SET lease_until = ? WHERE run_id = 'run_a'", (time.time() - 1,))
    taken = await alive.claim()
    assert taken is not None and (taken.run_id, taken.tries) == ("run_a", 2)
    assert not await dead.renew(held)
    async with store.transaction() as tx:
        assert not await dead.complete(tx, held, status="succeeded")
    async with store.transaction() as tx:
        assert await alive.complete(tx, taken, status="succeeded")
    assert await alive.counts() == {"succeeded": 1}


async def test_renewing_keeps_the_lease_and_recover_requeues_what_others_left_running(store: Store) -> None:
    mine = JobQueue(store, worker_id="me", lease_s=5)
    await enqueue(store, mine, "run_a", "run_b")
    job = await mine.claim()
    assert job is not None and await mine.renew(job)
    previous = JobQueue(store, worker_id="previous")
    async with store.transaction() as tx:
        await tx.execute("UPDATE jobs SET status = 'running', worker = 'previous' WHERE run_id = 'run_b'")
    assert await mine.recover() == 1
    assert (await store.fetchone("SELECT status FROM jobs WHERE run_id = 'run_b'")) == {"status": "queued"}
    assert (await store.fetchone("SELECT status FROM jobs WHERE run_id = 'run_a'")) == {"status": "running"}
    assert previous.worker_id == "previous"


async def test_a_worker_stores_the_run_finishes_the_job_and_queues_the_answer_together(store: Store) -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply({"label": "billing", "confidence": 0.9}), clock=clock)
    runner = Runner(
        TierCaller(provider, Limits(), clock=clock, sleep=clock.sleep), Ladder(scripted_tiers()), sandbox=False
    )
    queue = JobQueue(store, worker_id="w1")
    outbox = Outbox(store, deadline_s=3600)
    workers = JobWorkers(Settings(), store, queue, runner, outbox)
    await enqueue(store, queue, "run_a")
    job = await queue.claim()
    assert job is not None
    await workers.run_job(job)
    assert await queue.counts() == {"succeeded": 1}
    (run,) = await store.fetchall("SELECT run_id, status, key_id FROM runs")
    assert run == {"run_id": "run_a", "status": "succeeded", "key_id": "env-1"}
    (delivery,) = await store.fetchall("SELECT run_id, url, status, body FROM outbox")
    assert (delivery["run_id"], delivery["url"], delivery["status"]) == ("run_a", BODY["callback_url"], "pending")
    assert json.loads(delivery["body"])["output"] == {"label": "billing", "confidence": 0.9}


async def test_a_job_that_cannot_run_is_answered_with_a_problem(store: Store) -> None:
    queue = JobQueue(store, worker_id="w1")
    outbox = Outbox(store, deadline_s=3600)
    workers = JobWorkers(Settings(), store, queue, runner=None, outbox=outbox)  # type: ignore[arg-type]
    await enqueue(store, queue, "run_a", node="summarise")
    job = await queue.claim()
    assert job is not None
    await workers.run_job(job)
    (delivery,) = await store.fetchall("SELECT body FROM outbox")
    problem = json.loads(delivery["body"])
    assert (problem["type"], problem["status"], problem["run_id"]) == ("/problems/internal-error", 500, "run_a")
    assert problem["detail"] == "the run could not be executed (node 'summarise', try 1)"
    assert await queue.counts() == {"failed": 1}


async def test_the_claiming_loop_outlives_storage_failures(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from nodes import jobs

    monkeypatch.setattr(jobs, "STORAGE_RETRY_S", 0.01)
    queue = JobQueue(store, worker_id="w1")
    ran: list[str] = []
    failures = [StorageUnavailable("SQLite: database or disk is full"), RuntimeError("a bug")]
    real_claim = queue.claim

    async def flaky_claim() -> jobs.Job | None:
        if failures:
            raise failures.pop(0)
        return await real_claim()

    monkeypatch.setattr(queue, "claim", flaky_claim)
    workers = JobWorkers(Settings(), store, queue, runner=None, outbox=Outbox(store, deadline_s=60))  # type: ignore[arg-type]

    async def run_job(job: jobs.Job) -> None:
        ran.append(job.run_id)

    monkeypatch.setattr(workers, "run_job", run_job)
    await enqueue(store, queue, "run_a")
    await workers.start()
    try:
        for _ in range(200):
            if ran:
                break
            await asyncio.sleep(0.01)
        assert ran == ["run_a"] and failures == [] and workers.alive
    finally:
        await workers.stop()
    assert not workers.alive
