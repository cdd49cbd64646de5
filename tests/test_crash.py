"""Crash safety: a service killed with SIGKILL mid-work loses no accepted run and answers each exactly once.

A real ``tierwise serve`` process runs asynchronous jobs against the sandbox upstream and delivers
their answers to a receiver that refuses the first deliveries; it is killed at full speed, started
again on the same SQLite file, and every accepted run must reach the receiver — duplicates only as
redeliveries of the same delivery id with the same body.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from support import Receiver, Sandbox, store_rows
from test_cli import clean_env, free_port

from nodes.settings import Settings

KEY = "crash-test-key-01"
pytestmark = pytest.mark.slow
JOBS = 40


def start(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "nodes", "serve", "--port", str(port), "--log-level", "warning"],
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


def outbox_delivered(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'delivered'").fetchone()[0])
    finally:
        conn.close()


def test_kill_9_mid_work_loses_nothing_and_answers_once(tmp_path: Path, sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.configure(latency_ms=150)
    receiver.answers = [500, 503, 500, 500]
    env = clean_env(
        tmp_path,
        TIERWISE_API_KEYS=KEY,
        OPENAI_API_KEY="upstream-test-key",
        TIERWISE_CALLBACK_ALLOW_PRIVATE="1",
        TIERWISE_CALLBACK_BACKOFF_BASE_S="0.05",
        TIERWISE_CALLBACK_BACKOFF_CAP_S="0.2",
        TIERWISE_JOB_WORKERS="4",
        **{f"TIERWISE_{tier}_BASE_URL": sandbox.base_url for tier in ("NANO", "MINI", "FULL")},
    )
    port = free_port()
    first = start(env, port, tmp_path / "serve.log")
    accepted = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Api-Key": KEY}, timeout=10) as client:
        for n in range(JOBS):
            response = client.post(
                "/v1/nodes/classify",
                json={"input": f"ticket {n}", "labels": ["billing", "bug"], "callback_url": f"{receiver.url}/cb/{n}"},
            )
            assert response.status_code == 202, response.text
            accepted.append(response.json()["run_id"])
    receiver.wait_for(6)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    delivered_before = {r["headers"]["x-tierwise-run-id"] for r in receiver.received if r.get("answered") == 200}
    assert len(delivered_before) < JOBS, "the kill came too late to test anything"

    second = start(env, port, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 60
        while True:
            done = outbox_delivered(tmp_path / "tierwise.db")
            if done == JOBS:
                break
            assert time.monotonic() < deadline, f"{done} of {JOBS} deliveries recorded"
            time.sleep(0.05)
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=15)

    by_run: dict[str, list[dict[str, object]]] = defaultdict(list)
    for record in receiver.received:
        by_run[str(record["headers"]["x-tierwise-run-id"])].append(record)  # type: ignore[index]
    assert set(by_run) == set(accepted)
    for run_id, records in by_run.items():
        delivery_ids = {r["headers"]["x-tierwise-delivery-id"] for r in records}  # type: ignore[index]
        bodies = {r["body"] for r in records}
        assert len(delivery_ids) == 1, (run_id, delivery_ids)
        assert len(bodies) == 1, run_id
        answer = json.loads(next(iter(bodies)))  # type: ignore[arg-type]
        assert answer["run_id"] == run_id and answer["output"]["label"] in ("billing", "bug")
        assert sum(1 for r in records if r.get("answered") == 200) >= 1
        n = accepted.index(run_id)
        assert {r["path"] for r in records} == {f"/cb/{n}"}

    conn = sqlite3.connect(tmp_path / "tierwise.db")
    try:
        assert conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall() == [("succeeded", JOBS)]
        assert conn.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall() == [("delivered", JOBS)]
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM runs").fetchone() == (JOBS, JOBS)
    finally:
        conn.close()


def test_a_batch_cut_short_by_kill_9_is_retried_without_paying_twice(tmp_path: Path, sandbox: Sandbox) -> None:
    sandbox.configure(latency_ms=200)
    env = clean_env(
        tmp_path,
        TIERWISE_API_KEYS=KEY,
        OPENAI_API_KEY="upstream-test-key",
        TIERWISE_BATCH_CONCURRENCY="4",
        **{f"TIERWISE_{tier}_BASE_URL": sandbox.base_url for tier in ("NANO", "MINI", "FULL")},
    )
    port = free_port()
    body = {"items": [{"input": f"ticket {n}"} for n in range(24)], "defaults": {"labels": ["billing", "bug"]}}
    headers = {"X-Api-Key": KEY, "Idempotency-Key": "nightly-batch-7"}
    first = start(env, port, tmp_path / "serve.log")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
        with contextlib.suppress(httpx.TransportError):
            client.post("/v1/nodes/classify/batch", json=body, headers=headers, timeout=0.7)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=10)
    done_before = store_rows(Settings(db=str(tmp_path / "tierwise.db")), "SELECT COUNT(*) AS n FROM runs")[0]["n"]
    assert 0 < done_before < 24, "the kill should come mid-batch"
    calls_before = len(sandbox.requests())

    second = start(env, port, tmp_path / "serve.log")
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
            answer = client.post("/v1/nodes/classify/batch", json=body, headers=headers)
            replay = client.post("/v1/nodes/classify/batch", json=body, headers=headers)
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=15)
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["output"]["label"] in ("billing", "bug") for r in results] == [True] * 24
    rows = store_rows(
        Settings(db=str(tmp_path / "tierwise.db")), "SELECT COUNT(*) AS n, COUNT(DISTINCT run_id) AS d FROM runs"
    )
    assert rows == [{"n": 24, "d": 24}]  # every item ran once: those done before the kill were reused
    # The items in flight at the kill may have reached the upstream without being recorded; nothing else ran twice.
    assert len(sandbox.requests()) - calls_before <= 24 - done_before
    assert replay.json() == answer.json() and replay.headers["idempotent-replayed"] == "true"


def test_kill_9_while_batches_are_out_resumes_them_without_sending_anything_twice(
    tmp_path: Path, sandbox: Sandbox, receiver: Receiver
) -> None:
    sandbox.configure(batch_delay_ms=2500)
    env = clean_env(
        tmp_path,
        TIERWISE_API_KEYS=KEY,
        OPENAI_API_KEY="upstream-test-key",
        TIERWISE_CALLBACK_ALLOW_PRIVATE="1",
        TIERWISE_BATCH_COLLECT_S="0.3",
        TIERWISE_BATCH_POLL_S="0.1",
        **{f"TIERWISE_{tier}_BASE_URL": sandbox.base_url for tier in ("NANO", "MINI", "FULL")},
        **{f"TIERWISE_{tier}_LANES": "standard,batch" for tier in ("NANO", "MINI", "FULL")},
    )
    port = free_port()
    first = start(env, port, tmp_path / "serve.log")
    accepted = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Api-Key": KEY}, timeout=10) as client:
        for n in range(10):
            body = {"input": f"ticket {n}", "labels": ["billing", "bug"], "processing": "batch",
                    "callback_url": f"{receiver.url}/cb/{n}"}  # fmt: skip
            response = client.post("/v1/nodes/classify", json=body)
            assert response.status_code == 202, response.text
            accepted.append(response.json()["run_id"])
    settings = Settings(db=str(tmp_path / "tierwise.db"))
    deadline = time.monotonic() + 20
    sent = (
        "SELECT COUNT(*) AS n FROM batch_calls c JOIN upstream_batches b ON c.batch_label = b.label "
        "WHERE b.status = 'submitted'"
    )
    while store_rows(settings, sent)[0]["n"] < 10:
        assert time.monotonic() < deadline, "the calls were not sent as batches"
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)  # every call is out in a batch that has not answered yet
    first.wait(timeout=10)
    assert receiver.received == []
    sent_before = sandbox.http.get("/v1/batches", params={"limit": 100}).json()["data"]

    second = start(env, port, tmp_path / "serve.log")
    try:
        receiver.wait_for(10, timeout_s=60)
    finally:
        second.send_signal(signal.SIGINT)
        second.wait(timeout=15)
    batches = sandbox.http.get("/v1/batches", params={"limit": 100}).json()["data"]
    assert [batch["id"] for batch in batches] == [batch["id"] for batch in sent_before]  # none sent again
    lines = [
        json.loads(line)["custom_id"]
        for batch in batches
        for line in sandbox.http.get(f"/v1/files/{batch['input_file_id']}/content").text.splitlines()
    ]
    assert sorted(custom.split("|")[0] for custom in lines) == sorted(accepted)  # each call once
    assert sorted(r["headers"]["x-tierwise-run-id"] for r in receiver.received) == sorted(accepted)
    for record in receiver.received:
        (attempt,) = json.loads(record["body"])["attempts"]
        assert (attempt["processing"], attempt["outcome"]) == ("batch", "ok")
    assert store_rows(settings, "SELECT status, COUNT(*) AS n FROM batch_calls GROUP BY status") == [
        {"status": "done", "n": 10}
    ]
