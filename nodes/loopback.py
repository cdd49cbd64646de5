"""Serve an ASGI app on a loopback port from inside this process: the embedded sandbox, and test servers.

The socket is bound before the server starts (port 0 picks a free port), so the URL is known at once
and nothing races for the port. Signal handling stays with the process's main server.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class LoopbackServer:
    """An ASGI app served on 127.0.0.1, started and stopped by its owner."""

    def __init__(self, app: ASGIApp, *, port: int = 0, host: str = "127.0.0.1") -> None:
        # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP, and
        # without it Nagle's algorithm and the peer's delayed ACK add ~40 ms to every response.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="auto", timeout_graceful_shutdown=2
        )
        self._server = _EmbeddedServer(config)
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> str:
        """Start serving in the running event loop; returns the base URL once it accepts connections."""
        self._task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the embedded server stopped during start-up")
            await asyncio.sleep(0.005)
        return self.url

    async def stop(self) -> None:
        """Stop serving and wait for the server to finish."""
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._socket.close()

    def start_in_thread(self, timeout_s: float = 10.0) -> str:
        """Start serving on a background thread with its own event loop; returns the base URL."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._server.serve(sockets=[self._socket])), daemon=True
        )
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout_s / 0.005)):
            if self._server.started:
                return self.url
            if not self._thread.is_alive():
                break
            deadline.wait(0.005)
        raise RuntimeError("the loopback server did not start")

    def stop_thread(self, timeout_s: float = 10.0) -> None:
        """Stop a server started with ``start_in_thread``."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._socket.close()
