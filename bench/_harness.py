"""Shared pieces of the benchmarks: processes on loopback, percentiles, and the machine's description."""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

KEY = "bench-client-key-01"
BENCH = Path(__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "p50": round(percentile(values, 50), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "mean": round(statistics.fmean(values), 3) if values else float("nan"),
    }


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{os.cpu_count()} cores ({cpu}){memory}, {system}, Python {platform.python_version()}"


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not start") from None
            time.sleep(0.05)


@contextmanager
def server_process(
    command: list[str], health_path: str, env: dict[str, str] | None = None, cwd: str | None = None
) -> Iterator[str]:
    """``python COMMAND --port P`` in its own process; yields its root URL once ``health_path`` answers.

    With ``cwd``, the process runs there, so ``python -m nodes`` serves the checkout in that folder.
    """
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, *command, "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(f"http://127.0.0.1:{port}{health_path}", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


@contextmanager
def tierwise_process(
    args: list[str], health_path: str, env: dict[str, str] | None = None, cwd: str | None = None
) -> Iterator[str]:
    """``python -m nodes ARGS --port P`` in its own process; yields its root URL once ``health_path`` answers."""
    with server_process(["-m", "nodes", *args], health_path, env, cwd) as url:
        yield url


@contextmanager
def sandbox_process(config: dict[str, Any]) -> Iterator[str]:
    """``tierwise sandbox`` in its own process; yields its /v1 base URL."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "sandbox.json"
        path.write_text(json.dumps(config))
        with tierwise_process(["sandbox", "--faults", str(path)], "/_sandbox/config") as url:
            yield f"{url}/v1"


@contextmanager
def simulator_process(config: dict[str, Any]) -> Iterator[str]:
    """``bench/simulator.py``, the sandbox with behaviour profiles, in its own process; yields its /v1 base URL."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "simulator.json"
        path.write_text(json.dumps(config))
        with server_process([str(BENCH / "simulator.py"), "--config", str(path)], "/_sandbox/config") as url:
            yield f"{url}/v1"


def service_env(upstream: str, folder: str, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("TIERWISE_") and k not in ("OPENAI_API_KEY", "DATABASE_URL")
    }
    env.update(
        TIERWISE_DB=str(Path(folder) / "bench.db"),
        TIERWISE_API_KEYS=KEY,
        OPENAI_API_KEY="bench-upstream-key",
        **{f"TIERWISE_{tier}_BASE_URL": upstream for tier in ("NANO", "MINI", "FULL")},
        **extra,
    )
    return env


@contextmanager
def service_process(upstream: str, *args: str, checkout: str | None = None, **extra: str) -> Iterator[str]:
    """``tierwise serve ARGS`` in its own process against ``upstream`` (from ``checkout``, if given); yields its URL."""
    with tempfile.TemporaryDirectory() as folder:
        env = service_env(upstream, folder, **extra)
        with tierwise_process(["serve", *args], "/healthz", env=env, cwd=checkout) as url:
            yield url
