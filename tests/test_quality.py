"""The code-quality gates run with the suite: ruff lint and format, and mypy --strict on the package.

The gates are separate processes started as soon as the suite is collected (``start_gates``, called from
``conftest.py``), so they run on another core while the rest of the suite runs; each test here waits for
its gate's verdict. A cold mypy takes about twenty seconds, which this keeps off the suite's wall time.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GATES = {
    "ruff-check": [sys.executable, "-m", "ruff", "check", "nodes", "tests"],
    "ruff-format": [sys.executable, "-m", "ruff", "format", "--check", "nodes", "tests"],
    "mypy-strict": [sys.executable, "-m", "mypy", "nodes"],
}
_running: dict[str, subprocess.Popen[str]] = {}


def start_gates() -> None:
    """Start every gate in the background (once)."""
    for name, command in GATES.items():
        if name not in _running:
            _running[name] = subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )


@pytest.mark.parametrize("gate", list(GATES))
def test_quality_gate(gate: str) -> None:
    start_gates()
    output, _ = _running[gate].communicate(timeout=300)
    assert _running[gate].returncode == 0, output
