"""The ``tierwise`` command as a user runs it.

Commands that stop before serving (keys, batch, lint-make, db upgrade, refused settings) run in this
process through ``main()``; ``serve`` and ``sandbox`` run as real processes on 127.0.0.1 ports, in
the ``slow`` group.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient
from support import Sandbox, Service, store_rows

from nodes.cli import main
from nodes.settings import Settings

TIERWISE = [sys.executable, "-m", "nodes"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TIERWISE_") and k not in ("OPENAI_API_KEY", "DATABASE_URL")
    }
    env.update(TIERWISE_DB=str(tmp_path / "tierwise.db"), **extra)
    return env


class Running:
    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process = process
        self.url = url

    def stop(self) -> str:
        self.process.send_signal(signal.SIGINT)
        try:
            _, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return err


def run_cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str, **env: str
) -> tuple[int, str, str]:
    """Run ``tierwise ARGS`` in this process with only ``env`` (and ``TIERWISE_DB`` in tmp_path) configured."""
    for name in list(os.environ):
        if name.startswith("TIERWISE_") or name in ("OPENAI_API_KEY", "DATABASE_URL", "TIERWISE_CONFIG"):
            monkeypatch.delenv(name)
    for name, value in clean_env(tmp_path, **env).items():
        if name.startswith("TIERWISE_") or name in ("OPENAI_API_KEY", "DATABASE_URL"):
            monkeypatch.setenv(name, value)
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    started: list[Running] = []

    def start(*args: str, **env: str) -> Running:
        port = free_port()
        process = subprocess.Popen(
            [*TIERWISE, "serve", "--port", str(port), *args],
            env=clean_env(tmp_path, **env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        running = Running(process, f"http://127.0.0.1:{port}")
        started.append(running)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"serve exited: {process.communicate()[1]}")
            try:
                if httpx.get(f"{running.url}/healthz", timeout=1).status_code == 200:
                    return running
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError("serve did not become healthy")

    yield start
    for running in started:
        if running.process.poll() is None:
            running.stop()


@pytest.mark.slow
def test_serve_with_no_configuration_runs_the_sandbox_and_says_so(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    running = serve(TIERWISE_API_KEYS="local-dev-key")
    assert httpx.get(f"{running.url}/healthz").json() == {"status": "ok", "sandbox": True}
    response = httpx.post(
        f"{running.url}/v1/nodes/classify",
        headers={"Authorization": "Bearer local-dev-key"},
        json={"input": "I was charged twice", "labels": ["billing", "bug"]},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["sandbox"] is True and response.headers["x-tierwise-sandbox"] == "true"
    assert any("sandbox upstream" in warning for warning in body["warnings"])
    assert body["tier"] == "nano" and body["model"] == "gpt-5.4-nano"
    err = running.stop()
    assert "SANDBOX MODE" in err
    db = tmp_path / "tierwise.db"
    assert db.exists()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT node, sandbox FROM runs").fetchall() == [("classify", 1)]
    conn.close()


@pytest.mark.slow
def test_first_run_without_keys_creates_and_prints_one(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    running = serve()
    response = httpx.get(f"{running.url}/v1/nodes")
    assert response.status_code == 401
    err = running.stop()
    key = next(line.strip() for line in err.splitlines() if line.strip().startswith("tw_"))
    again = serve()
    assert httpx.get(f"{again.url}/v1/nodes", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert "No API key existed" not in again.stop()


@pytest.mark.slow
def test_serve_against_an_upstream_named_by_environment(serve, sandbox: Sandbox) -> None:  # type: ignore[no-untyped-def]
    sandbox.configure(faults=[{"kind": "refusal", "model": "*nano*"}])
    env = {f"TIERWISE_{tier}_BASE_URL": sandbox.base_url for tier in ("NANO", "MINI", "FULL")}
    running = serve(
        TIERWISE_API_KEYS="local-dev-key",
        OPENAI_API_KEY="upstream-key-123",
        TIERWISE_MINI_MODEL="my-mini",
        **env,
    )
    response = httpx.post(
        f"{running.url}/v1/nodes/classify",
        headers={"X-Api-Key": "local-dev-key"},
        json={"input": "hello", "labels": ["a", "b"]},
        timeout=30,
    )
    body = response.json()
    assert response.status_code == 200 and body["sandbox"] is False
    assert [(a["tier"], a["model"], a["outcome"]) for a in body["attempts"]] == [
        ("nano", "gpt-5.4-nano", "refusal"),
        ("mini", "my-mini", "ok"),
    ]
    assert [(r["model"], r["authorization"]) for r in sandbox.requests()] == [
        ("gpt-5.4-nano", True),
        ("my-mini", True),
    ]


def test_keys_create_prints_a_working_key(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    start_service: Callable[[Settings], Service],
    make_settings: Callable[..., Settings],
) -> None:
    code, out, err = run_cli(monkeypatch, capsys, tmp_path, "keys", "create", "--name", "n8n-prod")
    assert code == 0, err
    key = out.strip()
    assert key.startswith("tw_") and len(key) > 40
    assert f"Created key 'n8n-prod' in {tmp_path / 'tierwise.db'}. It is shown only once." in err
    settings = make_settings(db=str(tmp_path / "tierwise.db"), database_url=None)
    [row] = store_rows(settings, "SELECT name, key_hash FROM api_keys")
    assert row["name"] == "n8n-prod" and key not in row["key_hash"] and len(row["key_hash"]) == 64
    code, _, err = run_cli(monkeypatch, capsys, tmp_path, "keys", "create", "--name", "n8n-prod")
    assert code == 2 and "a key named 'n8n-prod' exists already; choose another name" in err
    code, out, _ = run_cli(monkeypatch, capsys, tmp_path, "keys", "list")
    assert code == 0 and out.startswith("n8n-prod\ttw_") and key not in out
    service = start_service(settings)
    assert service.anonymous.get("/v1/nodes", headers={"Authorization": f"Bearer {key}"}).status_code == 200


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OPENAI_API_KEY": "sk-..."}, "OPENAI_API_KEY: Value error, 'sk-...' looks like a placeholder"),
        ({"TIERWISE_NANO_BASE_URL": "http://127.0.0.1:1/v1"}, "the mini tier has no API key"),
        ({"TIERWISE_MAX_RETRIES": "many"}, "TIERWISE_MAX_RETRIES"),
        ({"DATABASE_URL": "mysql://db/x"}, "DATABASE_URL must be a PostgreSQL URL"),
    ],
)
def test_misconfiguration_stops_start_up_with_a_sentence(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    env: dict[str, str],
    message: str,
) -> None:
    code, _, err = run_cli(monkeypatch, capsys, tmp_path, "serve", "--port", str(free_port()), **env)
    assert code == 2
    assert message in err and err.startswith("tierwise: configuration error: ")
    assert "Traceback" not in err


@pytest.mark.slow
def test_sandbox_command_serves_openai_compatible_faults(tmp_path: Path) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text('{"faults": [{"kind": "rate_limit", "times": 1, "retry_after_ms": 250}]}')
    port = free_port()
    process = subprocess.Popen(
        [*TIERWISE, "sandbox", "--port", str(port), "--faults", str(faults)],
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        body = {"model": "gpt-5.4-nano", "messages": [{"role": "user", "content": "hi"}]}
        deadline = time.monotonic() + 30
        while True:
            try:
                first = httpx.post(url, json=body, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert first.status_code == 429
        assert first.headers["retry-after-ms"] == "250"
        assert first.json()["error"]["code"] == "rate_limit_exceeded"
        second = httpx.post(url, json=body, timeout=5)
        assert second.status_code == 200
        assert second.json()["object"] == "chat.completion"
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=15)
    assert "1 fault rule(s)" in err


def test_serve_closes_idle_connections_and_bounds_request_heads(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    served: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(options))
    code, _, _ = run_cli(monkeypatch, capsys, tmp_path, "serve", "--http", "h11", TIERWISE_API_KEYS="local-dev-key")
    assert code == 0
    assert (served["http"], served["timeout_keep_alive"], served["h11_max_incomplete_event_size"]) == (
        "h11",
        5,
        16 * 1024,
    )
    code, _, _ = run_cli(monkeypatch, capsys, tmp_path, "serve", TIERWISE_API_KEYS="local-dev-key")
    assert code == 0 and served["http"] == "auto"


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_sandbox_command_locks_its_control_endpoints_with_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, how: str
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(app))
    if how == "flag":
        code, _, _ = run_cli(monkeypatch, capsys, tmp_path, "sandbox", "--control-token", "steer-token-0001")
    else:
        code, _, _ = run_cli(
            monkeypatch, capsys, tmp_path, "sandbox", TIERWISE_SANDBOX_CONTROL_TOKEN="steer-token-0001"
        )
    assert code == 0
    with TestClient(served[0]) as client:
        assert client.get("/_sandbox/config").status_code == 401
        steered = client.get("/_sandbox/config", headers={"Authorization": "Bearer steer-token-0001"})
        assert steered.status_code == 200
        chat = {"model": "gpt-5.4-nano", "messages": [{"role": "user", "content": "hi"}]}
        assert client.post("/v1/chat/completions", json=chat).status_code == 200


def test_sandbox_command_without_a_token_leaves_its_control_endpoints_open(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.append(app))
    code, _, err = run_cli(monkeypatch, capsys, tmp_path, "sandbox")
    assert code == 0 and "warning" not in err
    with TestClient(served[0]) as client:
        assert client.get("/_sandbox/config").status_code == 200
    code, _, err = run_cli(monkeypatch, capsys, tmp_path, "sandbox", "--host", "0.0.0.0")
    assert code == 0 and "warning: the control endpoints (/_sandbox/*) are open to anyone" in err


def test_sandbox_command_refuses_a_bad_fault_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    faults = tmp_path / "faults.json"
    faults.write_text('{"faults": [{"kind": "meteor"}]}')
    code, _, err = run_cli(
        monkeypatch, capsys, tmp_path, "sandbox", "--port", str(free_port()), "--faults", str(faults)
    )
    assert code == 2
    assert "faults.json" in err and "faults.0.kind" in err
    assert "Traceback" not in err


def test_batch_command_writes_answers_in_input_order(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, sandbox: Sandbox
) -> None:
    sandbox.configure(latency_ms=20, latency_jitter_ms=20)
    lines = [json.dumps({"input": f"item {n}: {'billing' if n % 3 else 'bug'} question"}) for n in range(60)]
    lines.insert(10, "{broken")
    lines.insert(20, "")
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.jsonl"
    code, _, err = run_cli(
        monkeypatch, capsys, tmp_path,
        "batch", str(source), "--node", "classify", "--out", str(out), "--concurrency", "16",
        "--defaults", '{"labels": ["billing", "bug"]}',
        OPENAI_API_KEY="upstream-test-key",
        **{f"TIERWISE_{tier}_BASE_URL": sandbox.base_url for tier in ("NANO", "MINI", "FULL")},
    )  # fmt: skip
    assert code == 1  # one line failed
    answers = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(answers) == 61
    assert answers[10]["status"] == 400 and answers[10]["detail"].startswith(
        "line 11: the request body is not valid JSON"
    )
    labels = [a["output"]["label"] for a in answers if "output" in a]
    expected = ["billing" if n % 3 else "bug" for n in range(60)]
    assert labels == expected
    assert "61 items: 60 succeeded, 1 failed" in err
    assert "100%" in err
    rows = store_rows(Settings(db=str(tmp_path / "tierwise.db")), "SELECT COUNT(*) AS n, MIN(key_id) AS k FROM runs")
    assert rows == [{"n": 60, "k": "cli"}]


def test_batch_command_refuses_an_unknown_node(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text("{}\n")
    code, _, err = run_cli(monkeypatch, capsys, tmp_path, "batch", str(source), "--node", "summarize")
    assert code == 2 and "there is no node 'summarize'" in err


def test_several_processes_need_postgresql(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_cli(monkeypatch, capsys, tmp_path, "serve", "--workers", "2", TIERWISE_API_KEYS="local-dev-key")
    assert code == 2
    assert "--workers 2 needs PostgreSQL: a SQLite file (TIERWISE_DB) serves one process" in err


def test_db_upgrade_migrates_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from nodes.store.schema import LATEST

    code, _, err = run_cli(monkeypatch, capsys, tmp_path, "db", "upgrade")
    assert code == 0 and f"{tmp_path / 'tierwise.db'}: applied migration(s) 1: initial tables" in err
    code, _, err = run_cli(monkeypatch, capsys, tmp_path, "db", "upgrade")
    assert code == 0 and err.strip() == f"{tmp_path / 'tierwise.db'}: already at schema version {LATEST}"


def test_lint_make_command(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    templates = sorted(str(path) for path in (Path(__file__).parents[1] / "templates" / "make").glob("*.json"))
    code, out, err = run_cli(monkeypatch, capsys, tmp_path, "lint-make", "--publishable", *templates)
    assert code == 0, out + err
    assert f"{len(templates)} files checked: 0 errors, 0 warnings" in out + err
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", "flow": [{"id": 1, "module": "http:ActionSendData"}], "metadata": {}}')
    code, out, err = run_cli(monkeypatch, capsys, tmp_path, "lint-make", str(broken))
    assert code == 1
    assert "error" in out + err
