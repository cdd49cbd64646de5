"""Handles on running servers for the tests: the sandbox upstream and the service, both on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import sqlite3
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nodes.loopback import LoopbackServer
from nodes.sandbox import SandboxConfig, create_sandbox_app
from nodes.sandbox.server import SandboxState
from nodes.settings import Settings

CLIENT_KEY = "test-client-key-0001"
POSTGRES_URL = os.environ.get("TIERWISE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgres"], indirect=True)
"""Run a test (or, as ``pytestmark``, a module) on SQLite and on PostgreSQL."""

#: One TLS context for every test client: httpx would otherwise build one per client, loading the CA bundle
#: each time (tens of milliseconds). The clients only speak plain HTTP to loopback.
TLS = ssl.create_default_context()


class Sandbox:
    """A sandbox upstream on loopback, served from a background thread and driven by its control endpoints.

    With ``control_token`` the control endpoints ask for it, and ``http`` sends it.
    """

    def __init__(self, config: SandboxConfig | None = None, *, control_token: str | None = None) -> None:
        self.app = create_sandbox_app(config, control_token=control_token)
        self._server = LoopbackServer(self.app)
        self._headers = {"Authorization": f"Bearer {control_token}"} if control_token else {}
        self.url = ""
        self.base_url = ""
        self.http = httpx.Client(timeout=10, verify=TLS)

    def __enter__(self) -> Sandbox:
        self.url = self._server.start_in_thread()
        self.base_url = f"{self.url}/v1"
        self.http = httpx.Client(base_url=self.url, headers=self._headers, timeout=10, verify=TLS)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.http.close()
        self._server.stop_thread()

    @property
    def state(self) -> SandboxState:
        state: SandboxState = self.app.state.sandbox
        return state

    def configure(self, **config: Any) -> None:
        response = self.http.put("/_sandbox/config", json=config)
        assert response.status_code == 200, response.text

    def reset(self) -> None:
        self.configure()
        assert self.http.delete("/_sandbox/requests").status_code == 204

    def requests(self) -> list[dict[str, Any]]:
        response = self.http.get("/_sandbox/requests")
        assert response.status_code == 200
        return list(response.json()["requests"])


class Service:
    """A running service, the API key to call it with, and an HTTP client already holding that key."""

    def __init__(self, url: str, settings: Settings, key: str = CLIENT_KEY) -> None:
        self.url = url
        self.settings = settings
        self.key = key
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30, verify=TLS)
        self.anonymous = httpx.Client(base_url=url, timeout=30, verify=TLS)

    def close(self) -> None:
        self.http.close()
        self.anonymous.close()

    def rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Read the service's store directly (SQL with ``?`` placeholders, on either engine)."""
        return store_rows(self.settings, sql, params)


def store_rows(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a query against the store ``settings`` name, read with the engine's own driver."""
    if settings.database_url:
        with psycopg.connect(settings.database_url, row_factory=dict_row) as conn:
            return list(conn.execute(sql.replace("?", "%s"), params).fetchall())
    conn = sqlite3.connect(settings.db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql, params).fetchall()]
    finally:
        conn.close()


class Receiver:
    """A callback receiver on loopback that records every delivery and answers as scripted.

    ``answers`` is consumed one per request (status codes, or (status, headers)); 200 once it is empty.
    """

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.answers: list[int | tuple[int, dict[str, str]]] = []

        async def hook(request: Request) -> Response:
            body = await request.body()
            self.received.append(
                {
                    "path": request.scope["raw_path"].decode()
                    + ("?" + request.scope["query_string"].decode() if request.scope["query_string"] else ""),
                    "headers": {key.lower(): value for key, value in request.headers.items()},
                    "body": body,
                }
            )
            answer = self.answers.pop(0) if self.answers else 200
            status, headers = answer if isinstance(answer, tuple) else (answer, {})
            self.received[-1]["answered"] = status
            return Response(status_code=status, headers=headers)

        self._server = LoopbackServer(Starlette(routes=[Route("/{path:path}", hook, methods=["POST"])]))
        self.url = ""

    def __enter__(self) -> Receiver:
        self.url = self._server.start_in_thread()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.stop_thread()

    def wait_for(self, count: int, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        """Block until ``count`` deliveries have arrived; fail the test after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} deliveries arrived"
            time.sleep(0.02)
        return list(self.received)


@contextmanager
def interrupted_after(seconds: float) -> Iterator[None]:
    """Raise ``TimeoutError`` inside the block once it has run ``seconds`` (in the main thread, as tests run).

    A signal handler runs even in the middle of a long ``re`` match, which checks for signals as it goes,
    while a thread's join timeout or ``asyncio.timeout`` would only see the match end: this bounds code that
    may be stuck in C. pytest-timeout's own alarm is put back afterwards.
    """

    def late(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, late)
    remaining, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if remaining:
            signal.setitimer(signal.ITIMER_REAL, max(remaining - (time.monotonic() - started), 0.001), interval)


#: Settings under which a tier auto step learns from every run: all audited, six audits enough, half agreeing.
LEARNING = {
    "audit_learning_rate": 1.0,
    "audit_settled_rate": 1.0,
    "audit_spend_share": 1.0,
    "step_min_audits": 6,
    "step_agreement": 0.5,
}
#: A tier auto step whose two conditions start it on mini until its audits earn nano.
INTENT = {
    "input": "A billing question: I was charged twice for my subscription",
    "labels": ["billing", "bug"],
    "instructions": "Say billing if money is mentioned, unless it is a refund request about a bug.",
    "tier": "auto",
    "step": "support-triage/intent",
}
