"""Fixtures for the sandbox tests: one HTTP client on the shared sandbox, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from support import TLS, Sandbox


@pytest.fixture(scope="session")
def session_client(sandbox_server: Sandbox) -> Iterator[httpx.Client]:
    """One HTTP client on the sandbox root, with a bearer key."""
    headers = {"Authorization": "Bearer sk-test"}
    with httpx.Client(base_url=sandbox_server.url, headers=headers, timeout=10, verify=TLS) as http:
        yield http


@pytest.fixture()
def client(sandbox: Sandbox, session_client: httpx.Client) -> httpx.Client:
    """The session HTTP client, after the sandbox has been reset."""
    return session_client
