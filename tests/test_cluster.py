"""Many instances on one PostgreSQL database: shared work, a SIGKILL of one, nothing lost or doubled.

Two real ``tierwise serve`` processes share a fresh PostgreSQL schema. Asynchronous runs are sent to
both, and every fourth run is sent to both with the same ``Idempotency-Key``; one instance is killed
with SIGKILL mid-way, the rest goes to the survivor. Every accepted run must reach the receiver, each
duplicate must have run once, and no delivery id may carry two different bodies. ``--workers 2``
serves one port from two processes that share the queue.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import Receiver, Sandbox, store_rows
from test_cli import clean_env, free_port

from nodes.settings import Settings

KEY = "cluster-test-key-01"
RUNS = 200
KILL_AFTER = 100

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("backend", ["postgres"], indirect=True)]


def start(env: dict[str, str], port: int, log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "nodes", "serve", "--port", str(port), "--log-level", "warning", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, log.read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the service did not start"
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cluster_env(tmp_path: Path, sandbox: Sandbox, store_location: dict[str, Any], **extra: str) -> dict[str, str]:
    return clean_env(
        tmp_path,
        DATABASE_URL=store_location["database_url"],
        TIERWISE_API_KEYS=KEY,
        OPENAI_API_KEY="upstream-test-key",
        TIERWISE_CALLBACK_ALLOW_PRIVATE="1",
        TIERWISE_CALLBACK_BACKOFF_BASE_S="0.05",
        TIERWISE_CALLBACK_BACKOFF_CAP_S="0.2",
        TIERWISE_CALLBACK_TIMEOUT_S="2",
        TIERWISE_JOB_WORKERS="4",
        TIERWISE_JOB_LEASE_S="3",
        **{f"TIERWISE_{tier}_BASE_URL": sandbox.base_url for tier in ("NANO", "MINI", "FULL")},
        **extra,
    )


def wait_until_delivered(settings: Settings, count: int, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        done = store_rows(settings, "SELECT COUNT(*) AS n FROM outbox WHERE status = 'delivered'")[0]["n"]
        if done >= count:
            return
        assert time.monotonic() < deadline, f"{done} of {count} deliveries recorded"
        time.sleep(0.1)


def test_two_instances_survive_a_sigkill_with_nothing_lost_or_doubled(
    tmp_path: Path, sandbox: Sandbox, receiver: Receiver, store_location: dict[str, Any]
) -> None:
    sandbox.configure(latency_ms=150)
    receiver.answers = [500, 503, 500, 500]
    env = cluster_env(tmp_path, sandbox, store_location)
    settings = Settings(database_url=store_location["database_url"])
    ports = [free_port(), free_port()]
    processes = [start(env, port, tmp_path / f"serve-{n}.log") for n, port in enumerate(ports)]
    clients = [
        httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Api-Key": KEY}, timeout=30) for port in ports
    ]

    def post(client: httpx.Client, n: int) -> str:
        response = client.post(
            "/v1/nodes/classify",
            json={"input": f"ticket {n}", "labels": ["billing", "bug"], "callback_url": f"{receiver.url}/cb/{n}"},
            headers={"Idempotency-Key": f"item-{n}"},
        )
        assert response.status_code == 202, response.text
        return str(response.json()["run_id"])

    accepted: dict[int, str] = {}
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for n in range(RUNS):
                if n == KILL_AFTER:
                    os.kill(processes[0].pid, signal.SIGKILL)
                    processes[0].wait(timeout=10)
                alive = clients[1:] if n >= KILL_AFTER else clients
                if n % 4 == 0 and len(alive) == 2:
                    twins = list(pool.map(post, alive, [n, n]))
                    assert twins[0] == twins[1], f"the duplicates of item {n} answered two runs"
                    accepted[n] = twins[0]
                else:
                    accepted[n] = post(alive[n % len(alive)], n)
            # The survivor replays the killed instance's answers for keys it already holds.
            for n in range(0, KILL_AFTER, 8):
                assert post(clients[1], n) == accepted[n]
        wait_until_delivered(settings, RUNS)
    finally:
        for client in clients:
            client.close()
        for process in processes:
            stop(process)

    assert len(set(accepted.values())) == RUNS
    by_run: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record in receiver.received:
        by_run[record["headers"]["x-tierwise-run-id"]].append(record)
    assert set(by_run) == set(accepted.values())
    bodies_by_delivery: dict[str, set[bytes]] = defaultdict(set)
    for record in receiver.received:
        bodies_by_delivery[record["headers"]["x-tierwise-delivery-id"]].add(record["body"])
    assert all(len(bodies) == 1 for bodies in bodies_by_delivery.values())
    for n, run_id in accepted.items():
        records = by_run[run_id]
        assert {r["headers"]["x-tierwise-delivery-id"] for r in records} == {
            records[0]["headers"]["x-tierwise-delivery-id"]
        }
        assert {r["path"] for r in records} == {f"/cb/{n}"}
        answer = json.loads(records[0]["body"])
        assert answer["run_id"] == run_id and answer["output"]["label"] in ("billing", "bug")
        assert any(r.get("answered") == 200 for r in records)
    assert store_rows(settings, "SELECT status, COUNT(*) AS n FROM jobs GROUP BY status") == [
        {"status": "succeeded", "n": RUNS}
    ]
    assert store_rows(settings, "SELECT status, COUNT(*) AS n FROM outbox GROUP BY status") == [
        {"status": "delivered", "n": RUNS}
    ]
    assert store_rows(settings, "SELECT COUNT(*) AS n, COUNT(DISTINCT run_id) AS runs FROM runs") == [
        {"n": RUNS, "runs": RUNS}
    ]
    assert store_rows(settings, "SELECT COUNT(*) AS n FROM idempotency WHERE state = 'done'") == [{"n": RUNS}]
    workers = store_rows(settings, "SELECT COUNT(DISTINCT worker) AS n FROM jobs")[0]["n"]
    assert workers == 2, "both instances should have run jobs"
    taken_over = store_rows(settings, "SELECT COUNT(*) AS n FROM jobs WHERE tries > 1")[0]["n"]
    assert taken_over >= 1, "the kill came when the killed instance held no job: nothing was taken over"


def test_workers_serve_one_port_from_several_processes(
    tmp_path: Path, sandbox: Sandbox, receiver: Receiver, store_location: dict[str, Any]
) -> None:
    sandbox.configure(latency_ms=100)
    env = cluster_env(tmp_path, sandbox, store_location)
    settings = Settings(database_url=store_location["database_url"])
    port = free_port()
    process = start(env, port, tmp_path / "serve.log", "--workers", "2")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Api-Key": KEY}, timeout=30) as client:

            def post(n: int) -> int:
                body = {"input": f"t{n}", "labels": ["a", "b"], "callback_url": f"{receiver.url}/cb/{n}"}
                with httpx.Client(base_url=str(client.base_url), headers={"X-Api-Key": KEY}, timeout=30) as own:
                    return own.post("/v1/nodes/classify", json=body).status_code

            with ThreadPoolExecutor(max_workers=8) as pool:
                assert list(pool.map(post, range(40))) == [202] * 40
        wait_until_delivered(settings, 40)
    finally:
        stop(process)
    assert store_rows(settings, "SELECT COUNT(DISTINCT worker) AS n FROM jobs")[0]["n"] == 2
    assert len(receiver.received) == 40
