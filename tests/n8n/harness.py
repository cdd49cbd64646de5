"""A real n8n, driven from the tests: a fresh user folder, imported credentials and workflows, CLI runs.

Two releases are tested: the oldest supported, 2.8.4 (``TIERWISE_N8N_BIN``, or the cache that
``.ci/install-n8n.sh`` fills, ``~/.cache/tierwise/n8n-2.8.4``), and the newest, 2.41.3
(``TIERWISE_N8N_LATEST_BIN``, or the wrapper ``.ci/install-n8n-latest.sh`` writes); ``RELEASES`` lists
them and ``release_params`` makes a fixture run once per release, skipping one that is not installed.
Every ``N8n`` gets its own user folder (its own SQLite database) and its own task-broker port, so
several can run side by side. ``execute`` runs a workflow from its Manual Trigger and returns n8n's own
run record (the IRun JSON that ``n8n execute --rawOutput`` prints).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

N8N_VERSION = "2.8.4"
DEFAULT_BIN = (
    Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / f"tierwise/n8n-{N8N_VERSION}/node_modules/.bin/n8n"
)


LATEST_VERSION = "2.41.3"
LATEST_BIN = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / f"tierwise/n8n-{LATEST_VERSION}/bin/n8n"
"""The wrapper ``.ci/install-n8n-latest.sh`` writes: the newest n8n, on the Node 24 it needs."""


def _executable(configured: str | None, default: Path) -> Path | None:
    path = Path(configured) if configured else default
    return path if path.is_file() and os.access(path, os.X_OK) else None


def n8n_binary() -> Path | None:
    """The pinned n8n, if it is installed."""
    return _executable(os.environ.get("TIERWISE_N8N_BIN"), DEFAULT_BIN)


def n8n_latest_binary() -> Path | None:
    """The newest n8n (``.ci/install-n8n-latest.sh``; ``TIERWISE_N8N_LATEST_BIN`` overrides), if it is installed."""
    return _executable(os.environ.get("TIERWISE_N8N_LATEST_BIN"), LATEST_BIN)


@dataclass(frozen=True)
class Release:
    """One tested n8n release: its version, its binary (None when not installed), and how to install it."""

    version: str
    binary: Path | None
    install: str


RELEASES = (
    Release(LATEST_VERSION, n8n_latest_binary(), ".ci/install-n8n-latest.sh (or set TIERWISE_N8N_LATEST_BIN)"),
    Release(N8N_VERSION, n8n_binary(), ".ci/install-n8n.sh (or set TIERWISE_N8N_BIN)"),
)
"""The newest release first, then the oldest supported one."""


def release_params() -> list[Any]:
    """``pytest.param`` per release, id'd by version, skipped with the reason when it is not installed."""
    return [
        pytest.param(
            release,
            id=f"n8n-{release.version}",
            marks=pytest.mark.skipif(
                release.binary is None, reason=f"n8n {release.version} is not installed: run {release.install}"
            ),
        )
        for release in RELEASES
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Run:
    """One CLI execution: exit code, n8n's run record, and its raw output."""

    returncode: int
    record: dict[str, Any] | None
    stdout: str
    stderr: str

    @property
    def status(self) -> str | None:
        return None if self.record is None else self.record.get("status")

    def output(self, node: str, run: int = 0, branch: int = 0) -> list[dict[str, Any]]:
        """The JSON items a node produced on ``branch`` in its ``run``-th execution."""
        assert self.record is not None, self.stdout + self.stderr
        runs = self.record["data"]["resultData"]["runData"].get(node)
        assert runs, f"node {node!r} did not run; ran: {sorted(self.record['data']['resultData']['runData'])}"
        main = runs[run]["data"]["main"]
        return [item["json"] for item in (main[branch] or [])]

    def ran(self, node: str) -> int:
        """How many times a node ran."""
        assert self.record is not None
        return len(self.record["data"]["resultData"]["runData"].get(node) or [])

    @property
    def error(self) -> str | None:
        if self.record is None:
            return None
        error = self.record["data"]["resultData"].get("error")
        return None if error is None else str(error.get("message"))


class N8n:
    """One n8n installation state: a user folder with its database, credentials and workflows."""

    def __init__(self, binary: Path, folder: Path, *, extra_env: dict[str, str] | None = None) -> None:
        self.binary = binary
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(folder),
            "N8N_USER_FOLDER": str(folder),
            "DB_TYPE": "sqlite",
            "DB_SQLITE_POOL_SIZE": "2",
            "N8N_ENCRYPTION_KEY": "tierwise-tests-encryption-key-0123456789",
            "N8N_DIAGNOSTICS_ENABLED": "false",
            "N8N_VERSION_NOTIFICATIONS_ENABLED": "false",
            "N8N_TEMPLATES_ENABLED": "false",
            "N8N_PERSONALIZATION_ENABLED": "false",
            "N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS": "true",
            "N8N_RUNNERS_BROKER_PORT": str(free_port()),
            "N8N_LOG_LEVEL": "info",
            "N8N_SECURE_COOKIE": "false",
            **(extra_env or {}),
        }

    def cli(self, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.binary), *args], env=self.env, capture_output=True, text=True, timeout=timeout_s, check=False
        )

    def import_credentials(self, credentials: list[dict[str, Any]]) -> None:
        path = self.folder / "credentials.json"
        path.write_text(json.dumps(credentials))
        result = self.cli("import:credentials", f"--input={path}")
        assert result.returncode == 0, result.stdout + result.stderr

    def import_workflow(self, workflow: dict[str, Any]) -> str:
        path = self.folder / f"workflow-{workflow['id']}.json"
        path.write_text(json.dumps(workflow))
        result = self.cli("import:workflow", f"--input={path}")
        assert result.returncode == 0, result.stdout + result.stderr
        return str(workflow["id"])

    def execute(self, workflow_id: str, timeout_s: float = 180) -> Run:
        result = self.cli("execute", f"--id={workflow_id}", "--rawOutput", timeout_s=timeout_s)
        return Run(result.returncode, parse_record(result.stdout), result.stdout, result.stderr)

    def export_nodes(self, path: Path) -> None:
        result = self.cli("export:nodes", f"--output={path}")
        assert result.returncode == 0, result.stdout + result.stderr

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def parse_record(stdout: str) -> dict[str, Any] | None:
    """The run record n8n prints after its log lines, or None when it printed none."""
    decoder = json.JSONDecoder()
    for index in [0, *[i + 1 for i, char in enumerate(stdout) if char == "\n"]]:
        if stdout.startswith("{", index):
            try:
                value, _ = decoder.raw_decode(stdout, index)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict) and "data" in value:
                return value
    return None


class N8nServer:
    """``n8n start`` on a free loopback port, for webhook-triggered workflows."""

    def __init__(self, n8n: N8n) -> None:
        self.n8n = n8n
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> N8nServer:
        env = {**self.n8n.env, "N8N_PORT": str(self.port), "N8N_LISTEN_ADDRESS": "127.0.0.1", "N8N_HOST": "127.0.0.1"}
        log = (self.n8n.folder / "server.log").open("ab")
        self.process = subprocess.Popen([str(self.n8n.binary), "start"], env=env, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + 120
        while True:
            assert self.process.poll() is None, (self.n8n.folder / "server.log").read_text()[-3000:]
            try:
                # readiness comes a few seconds before the REST and webhook routes are mounted
                ready = httpx.get(f"{self.url}/healthz/readiness", timeout=1).status_code == 200
                if ready and httpx.get(f"{self.url}/rest/settings", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "n8n did not become ready"
            time.sleep(0.3)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
