"""The dashboard in a real browser: headless Chromium loads the page, which fetches /v1/stats and draws it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support import CLIENT_KEY, INTENT, LEARNING, Sandbox, Service

from nodes.settings import Settings

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)"),
]
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--virtual-time-budget=8000", "--window-size=1280,900",
]  # fmt: skip


def browse(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / "chromium-profile"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True, text=True, timeout=90, env={**os.environ, "HOME": str(tmp_path)},
    )  # fmt: skip


@pytest.mark.timeout(180)
def test_dashboard_charts_the_stats(service: Service, sandbox: Sandbox, tmp_path: Path) -> None:
    for text in ("billing question", "bug report", "billing again"):
        assert service.http.post("/v1/nodes/classify", json={"input": text, "labels": ["billing", "bug"]}).is_success
    sandbox.configure(faults=[{"kind": "refusal", "model": "*nano*", "times": 1}])
    assert service.http.post("/v1/nodes/classify", json={"input": "billing", "labels": ["billing", "bug"]}).is_success
    sandbox.configure()
    assert service.http.post("/v1/nodes/draft", json={"input": "x", "instructions": "say hi"}).is_success

    url = f"{service.url}/dashboard#key={CLIENT_KEY}&since=1h"
    dom = browse(tmp_path, url, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "<td>classify</td><td>nano</td><td>4</td><td>1 (25.0%)</td><td>refusal 1</td>" in html
    assert "<td>draft</td><td>mini</td><td>1</td>" in html
    assert '<div class="value">5 (0 failed)</div>' in html
    assert html.count('<rect x="80"') >= 4  # cost bars for two nodes, spent and baseline
    assert 'aria-label="tier mix per node"' in html
    spend = html.split('aria-label="spend by tier"', 1)[1].split("</svg>", 1)[0]
    assert spend.count("<rect") == 2 and 'fill="#2f9e44"' in spend and 'fill="#1c7ed6"' in spend  # nano, mini
    assert ">mini $" in spend

    screenshot = tmp_path / "dashboard.png"
    shot = browse(tmp_path, url, f"--screenshot={screenshot}")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert screenshot.stat().st_size > 20_000
    print(f"dashboard screenshot: {screenshot}")


def test_dashboard_says_what_is_wrong_with_a_bad_key(service: Service, tmp_path: Path) -> None:
    dom = browse(tmp_path, f"{service.url}/dashboard#key=not-a-key", "--dump-dom")
    assert dom.returncode == 0
    assert '<span id="status" class="error">the API key is not valid' in dom.stdout


@pytest.mark.timeout(180)
def test_dashboard_lists_the_steps_where_auto_starts_them_and_why(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    service = start_service(make_settings(**LEARNING))
    for _ in range(6):
        assert service.http.post("/v1/nodes/classify", json=INTENT).is_success
    deadline = time.monotonic() + 20
    while len(service.rows("SELECT run_id FROM audits WHERE agreed IS NOT NULL")) < 6:
        assert time.monotonic() < deadline, "the audits did not come"
        time.sleep(0.05)
    assert service.http.post("/v1/nodes/draft", json={"input": "x", "instructions": "say hi"}).is_success
    (draft_step,) = [s for s in service.http.get("/v1/steps").json()["steps"] if s["node"] == "draft"]

    dom = browse(tmp_path, f"{service.url}/dashboard#key={service.key}&since=1h", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    steps = dom.stdout.split('<table id="steps">', 1)[1].split("</table>", 1)[0]
    assert (
        '<tr><td>support-triage/intent</td><td>classify</td><td>6</td><td>nano<div class="advice">'
        "step support-triage/intent: nano agrees with mini on 100% of 6 audited runs (lower bound"
    ) in steps
    assert "<td>nano 100.0% of 6 (≥ " in steps
    assert f"<tr><td>{draft_step['step']}</td><td>draft</td><td>1</td><td>not decided yet<div" in steps
    assert "<td>not audited yet</td>" in steps
