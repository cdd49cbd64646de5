"""The run record: one value rendered as the answer body, its headers and status, money exact until the edge."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nodes.attempts import Attempt
from nodes.cost import Usage
from nodes.errors import RunDeadlineExceeded, RunFailed
from nodes.ladder import Answer
from nodes.record import SANDBOX_WARNING, RunRecord
from nodes.tiers import Decision

NANO_FAIL = Attempt(
    "nano", "gpt-5.4-nano", "invalid_output", 120, Usage(100, 0, 20, 0), Decimal("0.000045"), error="bad"
)
MINI_OK = Attempt("mini", "gpt-5.4-mini", "ok", 300, Usage(100, 40, 10, 0), Decimal("0.0001023"))


def record(**fields: object) -> RunRecord:
    values: dict[str, object] = {
        "run_id": "run_1",
        "node": "classify",
        "key_id": "env-1",
        "routing": Decision("nano", "node default (nano)"),
        "attempts": (NANO_FAIL, MINI_OK),
        "request": {"input": "x"},
        "metadata": {"row": 3},
        "baseline_cost_usd": Decimal("0.0009"),
        "latency_ms": 430,
        "overhead_ms": 0.41234,
        "created_at": "2026-12-01T10:00:00.000Z",
        "answer": Answer({"label": "bug", "confidence": 0.9}, "mini", "gpt-5.4-mini"),
    }
    values.update(fields)
    return RunRecord(**values)  # type: ignore[arg-type]


def test_a_succeeded_run_renders_the_protocol_body() -> None:
    body = record().body()
    assert body == {
        "run_id": "run_1",
        "node": "classify",
        "output": {"label": "bug", "confidence": 0.9},
        "tier": "mini",
        "model": "gpt-5.4-mini",
        "escalated": True,
        "attempts": [NANO_FAIL.as_dict(), MINI_OK.as_dict()],
        "usage": {
            "input_tokens": 200,
            "cached_input_tokens": 40,
            "output_tokens": 30,
            "reasoning_tokens": 0,
            "cost_usd": 0.0001473,
            "baseline_cost_usd": 0.0009,
            "savings_usd": 0.0007527,
        },
        "routing": {"start_tier": "nano", "reason": "node default (nano)", "step": None},
        "latency_ms": 430,
        "metadata": {"row": 3},
        "sandbox": False,
        "warnings": [],
        "overhead_ms": 0.412,
    }
    assert NANO_FAIL.as_dict()["error"] == "bad" and "error" not in MINI_OK.as_dict()


def test_headers_carry_exact_money() -> None:
    assert record().headers() == {
        "X-Tierwise-Run-Id": "run_1",
        "X-Tierwise-Tier": "mini",
        "X-Tierwise-Cost-Usd": "0.0001473",
        "X-Tierwise-Overhead-Ms": "0.412",
    }
    sandboxed = record(sandbox=True)
    assert sandboxed.headers()["X-Tierwise-Sandbox"] == "true" and sandboxed.body()["warnings"] == [SANDBOX_WARNING]


@pytest.mark.parametrize(("failure", "status", "kind"), [
    (RunFailed("every allowed tier failed", attempts=[NANO_FAIL]), 502, "failed"),
    (RunDeadlineExceeded("the run passed its 120 s cap", attempts=[NANO_FAIL]), 504, "deadline_exceeded"),
])  # fmt: skip
def test_a_failed_run_is_its_problem_with_the_record_members(failure: RunFailed, status: int, kind: str) -> None:
    failed = record(answer=None, failure=failure, attempts=(NANO_FAIL,))
    assert (failed.status, failed.http_status, failed.tier, failed.escalated) == (kind, status, None, False)
    body = failed.body()
    assert body["type"] == f"/problems/{failure.slug}" and body["status"] == status
    assert body["detail"] == failure.detail and body["run_id"] == "run_1" and body["errors"] == []
    assert {"output", "tier", "model", "escalated"}.isdisjoint(body)
    assert body["attempts"] == [NANO_FAIL.as_dict()] and body["usage"]["cost_usd"] == 0.000045
    assert failed.headers()["X-Tierwise-Tier"] == "nano"


def test_the_detail_of_a_failure_names_every_attempt_and_a_deadline_does_not() -> None:
    assert RunFailed("every allowed tier failed", attempts=[NANO_FAIL, MINI_OK]).detail == (
        "every allowed tier failed (nano:invalid_output, mini:ok)"
    )
    assert RunDeadlineExceeded("late", attempts=[NANO_FAIL]).detail == "late"
    assert RunFailed("x", attempts=[NANO_FAIL, MINI_OK]).cost_usd == Decimal("0.0001473")


def test_a_record_has_an_answer_or_a_failure() -> None:
    with pytest.raises(ValueError, match="either an answer or a failure"):
        record(answer=None)
