"""Shared fixtures: the sandbox upstream and the service, each a real uvicorn server on 127.0.0.1.

Nothing here reaches beyond loopback: every tier of every service under test points at the sandbox.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import CLIENT_KEY, Receiver, Sandbox, Service

from nodes.app import create_app
from nodes.loopback import LoopbackServer
from nodes.settings import FullTier, MiniTier, NanoTier, Settings


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Sandbox:
    """The sandbox, with faults cleared and its request log emptied."""
    sandbox_server.reset()
    return sandbox_server


def tier_overrides(base_url: str) -> dict[str, Any]:
    """Settings that point every tier at ``base_url`` with a throwaway key."""
    return {
        "nano": NanoTier(base_url=base_url, api_key="upstream-test-key"),
        "mini": MiniTier(base_url=base_url, api_key="upstream-test-key"),
        "full": FullTier(base_url=base_url, api_key="upstream-test-key"),
    }


@pytest.fixture
def make_settings(tmp_path: Path, sandbox: Sandbox) -> Callable[..., Settings]:
    """Settings for a service whose tiers all use the sandbox, with fast backoff."""

    def build(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            **tier_overrides(sandbox.base_url),
            "db": str(tmp_path / "tierwise.db"),
            "api_keys": [CLIENT_KEY],
            "backoff_base_s": 0.01,
            "backoff_cap_s": 0.05,
        }
        values.update(overrides)
        return Settings(**values)

    return build


@pytest.fixture
def start_service() -> Iterator[Callable[[Settings], Service]]:
    servers: list[tuple[LoopbackServer, Service]] = []

    def start(settings: Settings) -> Service:
        server = LoopbackServer(create_app(settings))
        service = Service(server.start_in_thread(), settings)
        servers.append((server, service))
        return service

    yield start
    for server, service in servers:
        service.http.close()
        service.anonymous.close()
        server.stop_thread()


@pytest.fixture
def service(start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings]) -> Service:
    """The service with default limits, every tier on the sandbox."""
    return start_service(make_settings())


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A callback receiver on loopback."""
    with Receiver() as running:
        yield running


@pytest.fixture
def async_service(start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings]) -> Service:
    """The service with loopback callbacks allowed and fast callback retries."""
    return start_service(
        make_settings(callback_allow_private=True, callback_backoff_base_s=0.05, callback_backoff_cap_s=0.2)
    )
