"""Fixtures for the sandbox tests: an HTTP client on the session's sandbox, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support import Sandbox


@pytest.fixture(scope="session")
def session_client(sandbox_server: Sandbox) -> Iterator[httpx.Client]:
    """One keep-alive HTTP client on the sandbox root, with a bearer key."""
    with httpx.Client(base_url=sandbox_server.url, headers={"Authorization": "Bearer sk-test"}, timeout=10) as http:
        yield http


@pytest.fixture()
def client(sandbox: Sandbox, session_client: httpx.Client) -> httpx.Client:
    """The session HTTP client, after the sandbox has been reset."""
    return session_client
