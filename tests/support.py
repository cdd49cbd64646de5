"""Handles on running servers for the tests: the sandbox upstream and the service, both on 127.0.0.1."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

from nodes.loopback import LoopbackServer
from nodes.sandbox import SandboxConfig, create_sandbox_app
from nodes.sandbox.server import SandboxState
from nodes.settings import Settings

CLIENT_KEY = "test-client-key-0001"


class Sandbox:
    """A sandbox upstream on loopback, served from a background thread and driven by its control endpoints."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.app = create_sandbox_app(config)
        self._server = LoopbackServer(self.app)
        self.url = ""
        self.base_url = ""
        self.http = httpx.Client(timeout=10)

    def __enter__(self) -> Sandbox:
        self.url = self._server.start_in_thread()
        self.base_url = f"{self.url}/v1"
        self.http = httpx.Client(base_url=self.url, timeout=10)
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
    """A running service and an HTTP client already holding a valid key."""

    def __init__(self, url: str, settings: Settings) -> None:
        self.url = url
        self.settings = settings
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=30)
        self.anonymous = httpx.Client(base_url=url, timeout=30)
