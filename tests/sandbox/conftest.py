"""Fixtures for the sandbox tests: a sandbox of their own and an HTTP client on it, reset before every test.

Their clients open a connection per request. The loopback server leaves Nagle's algorithm on for the
connections it accepts (its listening socket is made with protocol 0, so asyncio does not set
``TCP_NODELAY`` on them), and a reply on a reused connection then waits about 40 ms for the client's
delayed ACK between its headers and its body; a fresh connection does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from support import Sandbox


def fresh_connections(**options: Any) -> httpx.Client:
    """An ``httpx.Client`` that closes its connection after every response."""
    return httpx.Client(transport=httpx.HTTPTransport(limits=httpx.Limits(max_keepalive_connections=0)), **options)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    """The sandbox tests' own sandbox, driven over fresh connections."""
    with Sandbox() as sandbox:
        sandbox.http.close()
        sandbox.http = fresh_connections(base_url=sandbox.url, timeout=10)
        yield sandbox


@pytest.fixture(scope="session")
def session_client(sandbox_server: Sandbox) -> Iterator[httpx.Client]:
    """One HTTP client on the sandbox root, with a bearer key."""
    headers = {"Authorization": "Bearer sk-test"}
    with fresh_connections(base_url=sandbox_server.url, headers=headers, timeout=10) as http:
        yield http


@pytest.fixture()
def client(sandbox: Sandbox, session_client: httpx.Client) -> httpx.Client:
    """The session HTTP client, after the sandbox has been reset."""
    return session_client
