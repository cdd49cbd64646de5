"""Storage outages, for real: a full disk, and a write lock held by another process past the busy timeout.

The service keeps its SQLite file on a tiny tmpfs that a filler file then fills. While the disk is full,
requests that need storage get a 503 problem with ``Retry-After`` (an asynchronous request is never
accepted), ``/healthz`` keeps answering and the workers keep running;
once space is freed, everything works again without a restart. Mounting needs root: without it the
full-disk test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import Receiver, Sandbox, Service

from nodes.settings import Settings
from nodes.store import sqlite as sqlite_store

pytestmark = pytest.mark.slow
BODY = {"input": "I was charged twice", "labels": ["billing", "bug"]}


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs mounted for this test."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'not root'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte with a filler file; returns it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as sink:
        with contextlib.suppress(OSError):  # ENOSPC: the disk is full
            while True:
                sink.write(b"\0" * 4096)
    return filler


def test_a_full_disk_is_a_503_until_space_is_freed(
    tiny_disk: Path,
    start_service: Callable[[Settings], Service],
    make_settings: Callable[..., Settings],
    receiver: Receiver,
    sandbox: Sandbox,
) -> None:
    service = start_service(
        make_settings(db=str(tiny_disk / "tierwise.db"), database_url=None, callback_allow_private=True)
    )
    assert service.http.post("/v1/nodes/classify", json=BODY).status_code == 200
    filler = fill(tiny_disk)
    statuses = []
    for n in range(30):  # SQLite has a few free pages left; the disk is full within a few runs
        response = service.http.post("/v1/nodes/classify", json={**BODY, "input": f"ticket {n} " + "x" * 2000})
        statuses.append(response.status_code)
        if response.status_code == 503:
            break
    assert statuses[-1] == 503, statuses
    problem = response.json()
    assert problem["type"] == "/problems/service-unavailable" and response.headers["retry-after"] == "5"
    queued = service.http.post("/v1/nodes/classify", json={**BODY, "callback_url": f"{receiver.url}/x"})
    assert queued.status_code == 503  # never a 202 for work that could not be stored
    assert service.anonymous.get("/healthz").status_code == 200
    # The background loops keep running through the outage (they log it and try again).
    readiness = service.anonymous.get("/readyz").json()
    assert readiness["jobs"]["running"] and readiness["deliveries"]["running"]

    filler.unlink()
    assert service.http.post("/v1/nodes/classify", json=BODY).status_code == 200
    accepted = service.http.post("/v1/nodes/classify", json={**BODY, "callback_url": f"{receiver.url}/y"})
    assert accepted.status_code == 202
    receiver.wait_for(1)
    assert service.anonymous.get("/readyz").json()["status"] == "ready"


def test_a_write_lock_held_past_the_busy_timeout_is_a_503_and_healthz_stays_responsive(
    start_service: Callable[[Settings], Service],
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setattr(sqlite_store, "BUSY_TIMEOUT_MS", 1000)
    settings = make_settings(db=str(tmp_path / "locked.db"), database_url=None)
    service = start_service(settings)
    holder = sqlite3.connect(settings.db, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        started = time.monotonic()
        health_seconds: list[float] = []

        def probe() -> None:
            while time.monotonic() - started < 1.0:
                began = time.monotonic()
                assert service.anonymous.get("/healthz").status_code == 200
                health_seconds.append(time.monotonic() - began)
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        response = service.http.post("/v1/nodes/classify", json=BODY)
        prober.join()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert response.status_code == 503 and response.headers["retry-after"] == "5"
    assert response.json()["type"] == "/problems/service-unavailable"
    # /healthz kept answering while the write waited for the lock: the event loop was never blocked by it.
    assert len(health_seconds) >= 3
    assert service.http.post("/v1/nodes/classify", json=BODY).status_code == 200
    assert os.path.exists(settings.db)
