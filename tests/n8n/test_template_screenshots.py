"""The templates as a user first sees them: each one opened in the n8n editor, in headless Chromium, and photographed.

One ``n8n start`` serves the module: the owner account is made through ``POST /rest/owner/setup`` (a fresh
instance has none), which also logs in, and the templates and the "Tierwise API key" credential are
imported beforehand with the CLI. Debian's ``chromium`` (as in ``tests/test_dashboard.py``) opens
``/workflow/<id>`` with that login cookie, set over the DevTools protocol, waits until the canvas has
drawn every node and saves a PNG at the editor's default zoom (fit to the window), into the test's
``tmp_path`` and into ``/tmp/tierwise-screens/n8n-<version>/`` for a person to look at. It runs on
every tested release that is installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from n8n.harness import N8n, N8nServer, Release, free_port, release_params
from test_template_structure import TEMPLATE_DIR, TEMPLATE_NAMES
from websockets.sync.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENS = Path("/tmp/tierwise-screens")
WINDOW = (1920, 1080)
pytestmark = [
    pytest.mark.n8n,
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
]  # fmt: skip
OWNER = {"email": "owner@example.com", "firstName": "Tierwise", "lastName": "Tests", "password": "Passw0rd-Test-123"}


class DevTools:
    """The one page of a headless Chromium, driven over the DevTools protocol."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.next_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")


@pytest.fixture(scope="module", params=release_params())
def release(request: pytest.FixtureRequest) -> Release:
    """Each tested n8n release in turn."""
    chosen: Release = request.param
    return chosen


@pytest.fixture(scope="module")
def editor(tmp_path_factory: pytest.TempPathFactory, release: Release) -> Iterator[tuple[str, str]]:
    """A running n8n with every template imported; yields (its URL, the owner's login cookie)."""
    assert release.binary is not None
    n8n = N8n(release.binary, tmp_path_factory.mktemp(f"n8n-editor-{release.version}"))
    n8n.import_credentials(
        [{"id": "TierwiseApiKey01", "name": "Tierwise API key", "type": "httpBearerAuth", "data": {"token": "x"}}]
    )
    for name in TEMPLATE_NAMES:
        n8n.import_workflow(json.loads((TEMPLATE_DIR / name).read_text(encoding="utf-8")))
    with N8nServer(n8n) as server:
        response = httpx.post(f"{server.url}/rest/owner/setup", json=OWNER, timeout=30)
        assert response.status_code == 200, response.text
        cookie = response.cookies.get("n8n-auth")
        assert cookie, response.headers
        yield server.url, cookie
    n8n.remove()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    assert CHROMIUM is not None
    port = free_port()
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--remote-debugging-port={port}", f"--user-data-dir={tmp_path / 'profile'}", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=1).json()
                page = next(target for target in pages if target["type"] == "page")
                break
            except (httpx.TransportError, StopIteration, ValueError):
                assert process.poll() is None and time.monotonic() < deadline, "chromium did not start"
                time.sleep(0.2)
        with connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10) as socket:
            yield DevTools(socket)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_the_editor_shows_the_template(
    name: str, release: Release, editor: tuple[str, str], browser: DevTools, tmp_path: Path
) -> None:
    url, cookie = editor
    workflow = json.loads((TEMPLATE_DIR / name).read_text(encoding="utf-8"))
    browser.call("Network.enable")
    browser.call("Network.setCookie", name="n8n-auth", value=cookie, domain="127.0.0.1", path="/", httpOnly=True)
    browser.call(
        "Emulation.setDeviceMetricsOverride", width=WINDOW[0], height=WINDOW[1], deviceScaleFactor=1, mobile=False
    )
    browser.call("Page.enable")
    browser.call("Page.navigate", url=f"{url}/workflow/{workflow['id']}")
    expected = len(workflow["nodes"])
    deadline = time.monotonic() + 120
    while (drawn := browser.evaluate("document.querySelectorAll('.vue-flow__node').length") or 0) < expected:
        assert time.monotonic() < deadline, (drawn, browser.evaluate("document.body.innerText.slice(0, 500)"))
        time.sleep(0.5)
    time.sleep(3)  # the canvas fits the view after the nodes are drawn; fonts and edges settle
    text = browser.evaluate("document.body.innerText")
    # The big button runs the Manual Trigger (with the sample): the disabled Webhook is not offered.
    assert re.search(r"\nExecute workflow\n", text) and not re.search(r"Execute workflow\s+from", text), text[-300:]
    for node in workflow["nodes"]:
        if node["type"] != "n8n-nodes-base.stickyNote":
            assert node["name"] in text, node["name"]
    shot = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
    assert shot.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(shot[16:20], "big"), int.from_bytes(shot[20:24], "big")
    assert (width, height) == WINDOW
    assert len(shot) > 60_000  # a drawn canvas, not a blank page or the sign-in form
    path = tmp_path / name.replace(".json", ".png")
    path.write_bytes(shot)
    copy = SCREENS / f"n8n-{release.version}" / path.name
    copy.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, copy)
    print(f"{name}: {copy}")
