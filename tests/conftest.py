"""Shared fixtures: the sandbox upstream and the service, each a real uvicorn server on 127.0.0.1, and stores.

Nothing here reaches beyond loopback: every tier of every service under test points at the sandbox.
Storage runs on SQLite by default; a test (or a whole module) that takes the ``backend`` fixture
parametrised with ``BACKENDS`` runs on both SQLite and the local PostgreSQL server, each test in a
fresh schema of its own. Without a PostgreSQL server the PostgreSQL cases are skipped with the reason,
except under CI (``CI`` set), where they fail.
A test gets a service of its own from ``start_service``, or shares one with the other tests of its module
through ``pooled_service`` (see ``ServicePool`` for when that is safe).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest
from support import CLIENT_KEY, POSTGRES_URL, Receiver, Sandbox, Service

from nodes.app import create_app
from nodes.loopback import LoopbackServer
from nodes.settings import FullTier, MiniTier, NanoTier, Settings
from nodes.store import Store, open_store

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback_only(address: object) -> None:
    host = address[0] if isinstance(address, tuple) else None
    if isinstance(host, str) and not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
        raise OSError(f"tests may only connect to loopback addresses, not {host}")


def _guarded_connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _loopback_only(address)
    _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _loopback_only(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True, scope="session")
def no_network() -> Iterator[None]:
    """Refuse, in this process, any connection that is not to a loopback address: no test reaches the network."""
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[Sandbox]:
    with Sandbox() as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(sandbox_server: Sandbox) -> Sandbox:
    """The sandbox, with faults cleared and its request log emptied."""
    sandbox_server.reset()
    return sandbox_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the code-quality gates first: mypy is the longest single test, so it should not start last."""
    items.sort(key=lambda item: item.path.name != "test_quality.py")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the code-quality gates at once when they are part of the run, so they overlap the tests.

    Under pytest-xdist the workers already share the cores, and a gate started in a worker that does not
    run its test would never be waited for, so there the gates start when their tests run.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    if any(item.path.name == "test_quality.py" for item in session.items):
        from test_quality import start_gates

        start_gates()


@cache
def postgres_missing() -> str | None:
    """Why the local PostgreSQL server cannot be used, or None when it can."""
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL server at {POSTGRES_URL} ({str(exc).strip()}); set TIERWISE_TEST_DATABASE_URL"
    return None


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    """The storage engine under test: ``sqlite`` unless a test is parametrised with ``BACKENDS``."""
    name: str = getattr(request, "param", "sqlite")
    if name == "postgres" and (reason := postgres_missing()):
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return name


@pytest.fixture
def store_location(backend: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Settings naming a fresh, empty store of the engine under test."""
    if backend == "sqlite":
        yield {"db": str(tmp_path / "tierwise.db")}
        return
    schema = f"tw_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield {"database_url": f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}", "db": str(tmp_path / "x.db")}
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
async def store(store_location: dict[str, Any]) -> AsyncIterator[Store]:
    """An opened, migrated store of the engine under test."""
    opened = await open_store(Settings(**store_location))
    yield opened
    await opened.close()


def tier_overrides(base_url: str) -> dict[str, Any]:
    """Settings that point every tier at ``base_url`` with a throwaway key, as the sandbox mode sets them.

    The sandbox offers flex and batch on every tier, and logprobs on nano and mini (as OpenAI's endpoint does).
    """
    tier: dict[str, Any] = {
        "base_url": base_url,
        "api_key": "upstream-test-key",
        "lanes": ["standard", "flex", "batch"],
    }
    return {
        "nano": NanoTier(**tier, logprobs=True),
        "mini": MiniTier(**tier, logprobs=True),
        "full": FullTier(**tier, logprobs=False),
    }


def service_settings(base_url: str, store: dict[str, Any], **overrides: Any) -> Settings:
    """Settings for a service whose tiers all use the upstream at ``base_url``, with fast backoff, on ``store``."""
    values: dict[str, Any] = {
        **tier_overrides(base_url),
        **store,
        "api_keys": [CLIENT_KEY],
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def make_settings(store_location: dict[str, Any], sandbox: Sandbox) -> Callable[..., Settings]:
    """Settings for a service whose tiers all use the sandbox, with fast backoff, on the store under test."""

    def build(**overrides: Any) -> Settings:
        return service_settings(sandbox.base_url, store_location, **overrides)

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
        service.close()
        server.stop_thread()


#: The keys every pooled service accepts; each test on the pool is handed one no other test has used.
POOLED_KEYS = [f"test-pooled-key-{n:04d}" for n in range(1, 257)]


class ServicePool:
    """Services shared by the tests of one module: one server per distinct settings, a fresh API key per test.

    Starting and stopping a service costs about a quarter of a second (uvicorn looks for a shutdown request
    every 0.1 s, then gives connections 0.1 s to close), which is most of the time of a test that makes a few
    calls. What one request leaves behind for the next (idempotency answers, per-key rate limits and budgets)
    is kept per API key, so a test holding a key of its own sees what it would see on a service of its own.
    Use it only for tests that read nothing service-wide (stats, metrics, the run log, the job queue) and
    leave no work running when they end.
    """

    def __init__(self, base_url: str, directory: Path) -> None:
        self._base_url = base_url
        self._directory = directory
        self._running: dict[str, tuple[LoopbackServer, str, Settings]] = {}
        self._keys = iter(POOLED_KEYS)

    def service(self, **overrides: Any) -> Service:
        """A handle on the pooled service with these settings (started on first use), holding an unused key."""
        name = repr(sorted(overrides.items()))
        if name not in self._running:
            db = self._directory / f"tierwise-{len(self._running)}.db"
            settings = service_settings(self._base_url, {"db": str(db)}, api_keys=POOLED_KEYS, **overrides)
            server = LoopbackServer(create_app(settings))
            self._running[name] = (server, server.start_in_thread(), settings)
        _, url, settings = self._running[name]
        key = next(self._keys, None)
        assert key is not None, f"the service pool has only {len(POOLED_KEYS)} keys"
        return Service(url, settings, key)

    def stop(self) -> None:
        """Stop every pooled server, all at once (each takes a few tenths of a second to shut down)."""
        with ThreadPoolExecutor() as executor:
            list(executor.map(lambda running: running[0].stop_thread(), self._running.values()))


@pytest.fixture(scope="module")
def service_pool(sandbox_server: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServicePool]:
    pool = ServicePool(sandbox_server.base_url, tmp_path_factory.mktemp("services"))
    yield pool
    pool.stop()


@pytest.fixture
def pooled_service(service_pool: ServicePool, sandbox: Sandbox) -> Iterator[Callable[..., Service]]:
    """``pooled_service(**settings)``: a service shared with the module's other tests, through a key of this test's."""
    handles: list[Service] = []

    def get(**overrides: Any) -> Service:
        handles.append(service_pool.service(**overrides))
        return handles[-1]

    yield get
    for handle in handles:
        handle.close()


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
