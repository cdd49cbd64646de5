"""One run end to end with a scripted provider: starting tier, ladder, the record, the observers."""

from __future__ import annotations

import logging
import time
from decimal import Decimal
from typing import Any

import pytest
from scripted import FakeClock, ScriptedProvider, fail, reply, scripted_tiers

from nodes.attempts import Limits, TierCaller
from nodes.catalog import NODES
from nodes.cost import Usage
from nodes.errors import BudgetExhausted, RunDeadlineExceeded, ServerError
from nodes.ladder import Ladder
from nodes.record import RunRecord
from nodes.runner import Finished, Runner

TIERS = scripted_tiers()
LABELS = ["billing", "bug"]


def runner(provider: ScriptedProvider, clock: FakeClock, **limits: Any) -> Runner:
    provider.clock = clock
    caller = TierCaller(provider, Limits(**limits), clock=clock, sleep=clock.sleep)
    return Runner(caller, Ladder(TIERS), sandbox=False)


async def run(subject: Runner, body: dict[str, Any], node: str = "classify") -> RunRecord:
    found = NODES[node]
    request = found.parse(body)
    return await subject.run(
        found,
        request,
        found.task(request),
        run_id="run_test",
        raw=body,
        key_id="env-1",
        received_at=time.monotonic(),
    )


async def test_a_run_on_the_node_default_records_its_routing_cost_and_baseline() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(
        reply({"label": "bug", "confidence": 0.8}, usage=Usage(input_tokens=1000, output_tokens=100), elapsed_s=0.3)
    )
    record = await run(runner(provider, clock), {"input": "it crashes", "labels": LABELS, "metadata": {"row": 7}})
    assert (record.status, record.tier, record.output, record.escalated) == (
        "succeeded",
        "nano",
        {"label": "bug", "confidence": 0.8},
        False,
    )
    assert (record.routing.tier, record.routing.reason) == ("nano", "node default (nano)")
    assert record.cost_usd == Decimal("0.000325")  # 1000 * 0.20 + 100 * 1.25 per million
    assert record.baseline_cost_usd == Decimal("0.004")  # the same tokens at 2.50 and 15.00
    assert record.latency_ms == 300 and record.metadata == {"row": 7} and record.key_id == "env-1"
    assert record.request == {"input": "it crashes", "labels": LABELS, "metadata": {"row": 7}}


async def test_auto_pays_for_its_check_inside_the_run() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(
        reply({"label": "MODERATE", "confidence": 0.9}),
        mini=[reply({"label": "bug", "confidence": 0.9})],
    )
    body = {"input": "word " * 400, "labels": LABELS, "tier": "auto"}
    record = await run(runner(provider, clock), body)
    assert provider.tiers_called() == ["nano", "mini"]
    assert [(a.tier, a.purpose) for a in record.attempts] == [("nano", "routing"), ("mini", "answer")]
    assert record.routing.reason == "auto: nano rated the task MODERATE → mini"
    assert record.cost_usd == sum((a.cost_usd for a in record.attempts), Decimal(0))
    assert not record.escalated and record.tier == "mini"


async def test_every_tier_failing_is_a_record_carrying_the_failure() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(*[fail(ServerError("HTTP 500"))] * 3)
    record = await run(runner(provider, clock, max_retries=0), {"input": "x", "labels": LABELS})
    assert record.status == "failed" and record.http_status == 502 and record.answer is None
    assert record.failure is not None
    assert (
        record.failure.detail
        == "every allowed tier failed (nano:upstream_error, mini:upstream_error, full:upstream_error)"
    )
    assert [a.tier for a in record.attempts] == ["nano", "mini", "full"]


async def test_a_deadline_during_the_routing_check_is_a_504() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply("garbage", elapsed_s=5))
    body = {"input": "word " * 400, "labels": LABELS, "tier": "auto"}
    record = await run(runner(provider, clock, run_timeout_s=4), body)
    assert isinstance(record.failure, RunDeadlineExceeded) and record.http_status == 504
    assert [a.purpose for a in record.attempts] == ["routing"]


async def test_observers_see_each_stored_run_and_their_failures_are_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    subject = runner(ScriptedProvider.of(reply({"label": "bug", "confidence": 0.8})), clock)
    seen: list[Finished] = []

    def broken(finished: Finished) -> None:
        raise RuntimeError("observer bug")

    subject.observers += [broken, seen.append]
    record = await run(subject, {"input": "x", "labels": LABELS})
    task = NODES["classify"].task(NODES["classify"].parse({"input": "x", "labels": LABELS}))
    with caplog.at_level(logging.ERROR, logger="tierwise.runner"):
        subject.observe(record, task)
    assert [finished.record for finished in seen] == [record]
    assert "an observer failed on run run_test" in caplog.text


async def test_a_fault_during_the_run_is_recorded_with_what_was_spent(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply("not json"), reply({"label": "bug", "confidence": 0.9}))
    subject = runner(provider, clock)

    async def broken_budget(running: Decimal) -> None:
        raise RecursionError("a bug deep in a check")

    found = NODES["classify"]
    body = {"input": "x", "labels": LABELS}
    request = found.parse(body)
    with caplog.at_level(logging.ERROR, logger="tierwise.runner"):
        record = await subject.run(
            found,
            request,
            found.task(request),
            run_id="run_test",
            raw=body,
            key_id="k_1",
            received_at=time.monotonic(),
            spend_check=broken_budget,
        )
    assert record.http_status == 500 and record.body()["type"] == "/problems/internal-error"
    assert [a.outcome for a in record.attempts] == ["invalid_output"] and record.cost_usd > 0
    assert "run run_test was broken off by an unexpected error" in caplog.text


async def test_a_run_stops_where_the_budget_runs_out() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply("not json"), reply({"label": "bug", "confidence": 0.9}))
    subject = runner(provider, clock)
    checked: list[Decimal] = []

    async def budget_of_one_call(running: Decimal) -> None:
        checked.append(running)
        raise BudgetExhausted("this key has spent $1 today (UTC), its daily budget is $1", retry_after_s=3600)

    found = NODES["classify"]
    body = {"input": "x", "labels": LABELS}
    request = found.parse(body)
    record = await subject.run(
        found, request, found.task(request), run_id="run_test", raw=body, key_id="k_1",
        received_at=time.monotonic(), spend_check=budget_of_one_call,
    )  # fmt: skip
    assert record.http_status == 429 and record.headers()["Retry-After"] == "3600"
    assert len(provider.calls) == 1 and checked == [record.attempts[0].cost_usd]
    body_out = record.body()
    assert (body_out["type"], body_out["limit"], body_out["retry_after_s"]) == (
        "/problems/budget-exhausted",
        "daily_budget_usd",
        3600,
    )
    assert body_out["detail"].endswith("; the run stopped before its next model call")
