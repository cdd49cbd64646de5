"""The ladder over real HTTP: the openai SDK against the sandbox upstream on loopback, one fault kind at a time.

Each test climbs the ladder (attempts on each tier: retries, the repair turn, escalation) and asserts
the exact sequence of attempts (tier, outcome, repair) and the final outcome. Sleeping is recorded,
not done, so backoff delays are asserted exactly and the suite stays fast.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
from support import Sandbox

from nodes.attempts import Attempt, Limits, TierCaller
from nodes.backoff import BackoffPolicy, backoff_delay
from nodes.catalog import NODES, Task
from nodes.cost import Usage, cost_usd
from nodes.errors import RunDeadlineExceeded, RunFailed
from nodes.ladder import Ladder
from nodes.provider import OpenAIProvider
from nodes.settings import Settings
from nodes.tiers import TierName, resolve_tiers

BACKOFF = BackoffPolicy(base_s=0.5, cap_s=8.0, retry_after_cap_s=120.0)


def classify_task(**fields: Any) -> Task:
    node = NODES["classify"]
    return node.task(node.parse({"input": "I was charged twice this month", "labels": ["billing", "bug"], **fields}))


def extract_task() -> Task:
    node = NODES["extract"]
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "email": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "email"],
    }
    return node.task(node.parse({"input": "Ann <ann@example.com>", "schema": schema}))


@dataclass
class Climbed:
    """How one climb ended: the answer or the failure, and every attempt."""

    status: str
    attempts: list[Attempt]
    start: TierName
    output: Any = None
    tier: TierName | None = None
    model: str | None = None
    warnings: tuple[str, ...] = ()
    detail: str = ""
    latency_ms: int = 0
    failure: RunFailed | None = field(default=None, repr=False)

    @property
    def escalated(self) -> bool:
        return self.tier is not None and self.tier != self.start

    @property
    def cost_usd(self) -> Decimal:
        return sum((a.cost_usd for a in self.attempts), Decimal(0))


class Harness:
    """A tier caller and ladder wired to the sandbox, with a recording sleep and a seeded random source."""

    def __init__(self, sandbox: Sandbox, provider: OpenAIProvider, **limits: Any) -> None:
        self.sandbox = sandbox
        self.slept: list[float] = []
        tier_settings = Settings(
            nano={"base_url": sandbox.base_url, "api_key": "k-upstream", "timeout_s": 5},
            mini={"base_url": sandbox.base_url, "api_key": "k-upstream", "timeout_s": 5},
            full={"base_url": sandbox.base_url, "api_key": "k-upstream", "timeout_s": 5},
        )
        self.tiers = resolve_tiers(tier_settings)
        limits.setdefault("backoff", BACKOFF)
        self.caller = TierCaller(provider, Limits(**limits), rng=random.Random(42), sleep=self._sleep)

    async def _sleep(self, seconds: float) -> None:
        self.slept.append(seconds)

    async def run(self, task: Task, start: TierName = "nano", ceiling: TierName = "full") -> Climbed:
        budget = self.caller.budget("run_test")
        try:
            answer = await Ladder(self.tiers).climb(self.caller, budget, task, start, ceiling)
        except RunFailed as failure:
            status = "deadline_exceeded" if isinstance(failure, RunDeadlineExceeded) else "failed"
            latency = round((self.caller.clock() - budget.started) * 1000)
            return Climbed(status, budget.attempts, start, detail=failure.detail, latency_ms=latency, failure=failure)
        return Climbed("succeeded", budget.attempts, start, answer.output, answer.tier, answer.model, answer.warnings)


def trail(report: Climbed) -> list[tuple[str, str, bool]]:
    return [(a.tier, a.outcome, a.repair) for a in report.attempts]


@pytest.fixture
async def provider() -> AsyncIterator[OpenAIProvider]:
    provider = OpenAIProvider()
    yield provider
    await provider.aclose()


@pytest.fixture
def harness(sandbox: Sandbox, provider: OpenAIProvider) -> Callable[..., Harness]:
    return lambda **limits: Harness(sandbox, provider, **limits)


async def test_clean_run_is_one_attempt_priced_from_the_reported_usage(
    harness: Callable[..., Harness], sandbox: Sandbox
) -> None:
    h = harness()
    report = await h.run(classify_task())
    assert report.status == "succeeded"
    assert trail(report) == [("nano", "ok", False)]
    assert report.output["label"] in ("billing", "bug")
    assert report.tier == "nano" and report.model == "gpt-5.4-nano" and not report.escalated
    seen = sandbox.requests()
    assert len(seen) == 1 and seen[0]["response_format"] == "json_schema"
    assert seen[0]["body"]["response_format"]["json_schema"]["strict"] is True
    usage = report.attempts[0].usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert report.cost_usd == cost_usd(usage, h.tiers["nano"].price)
    assert (
        report.cost_usd
        == (Decimal(usage.input_tokens) * Decimal("0.20") + Decimal(usage.output_tokens) * Decimal("1.25")) / 10**6
    )


async def test_rate_limit_retries_same_tier_honouring_retry_after_ms(
    harness: Callable[..., Harness], sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "rate_limit", "model": "*nano*", "times": 2, "retry_after_ms": 20}])
    h = harness()
    report = await h.run(classify_task())
    assert trail(report) == [
        ("nano", "rate_limited", False),
        ("nano", "rate_limited", False),
        ("nano", "ok", False),
    ]
    assert h.slept == [0.02, 0.02]
    assert [a.waited_ms for a in report.attempts] == [0, 20, 20]
    assert report.attempts[0].cost_usd == 0 and report.attempts[0].usage == Usage()
    assert "rate_limit_exceeded" in (report.attempts[0].error or "")
    assert not report.escalated


async def test_rate_limit_retry_after_seconds_header(harness: Callable[..., Harness], sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "rate_limit", "times": 1, "retry_after_s": 1.5}])
    h = harness()
    report = await h.run(classify_task())
    assert trail(report) == [("nano", "rate_limited", False), ("nano", "ok", False)]
    assert h.slept == [1.5]


async def test_exhausted_retries_escalate_with_jittered_backoff(
    harness: Callable[..., Harness], sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "rate_limit", "model": "*nano*"}])
    h = harness(max_retries=3)
    report = await h.run(classify_task())
    assert trail(report) == [("nano", "rate_limited", False)] * 4 + [("mini", "ok", False)]
    rng = random.Random(42)
    assert h.slept == [backoff_delay(n, BACKOFF, rng) for n in range(3)]
    assert report.tier == "mini" and report.model == "gpt-5.4-mini" and report.escalated


async def test_insufficient_quota_is_never_retried(harness: Callable[..., Harness], sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "insufficient_quota", "model": "*nano*"}])
    h = harness()
    report = await h.run(classify_task())
    assert trail(report) == [("nano", "upstream_error", False), ("mini", "ok", False)]
    assert h.slept == []
    assert "insufficient_quota" in (report.attempts[0].error or "")


async def test_server_error_is_retried_then_succeeds(harness: Callable[..., Harness], sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "server_error", "status": 503, "times": 1}])
    h = harness()
    report = await h.run(classify_task())
    assert trail(report) == [("nano", "upstream_error", False), ("nano", "ok", False)]
    assert "HTTP 503" in (report.attempts[0].error or "")
    assert len(h.slept) == 1 and 0 <= h.slept[0] <= 0.5


async def test_persistent_server_errors_stop_at_the_attempt_cap(
    harness: Callable[..., Harness], sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "server_error", "status": 500}])
    h = harness(max_retries=3, max_attempts=10)
    report = await h.run(classify_task())
    assert report.status == "failed"
    assert (
        trail(report)
        == [("nano", "upstream_error", False)] * 4
        + [("mini", "upstream_error", False)] * 4
        + [("full", "upstream_error", False)] * 2
    )
    assert (
        report.detail
        == "stopped after 10 attempts (the cap) ("
        + ", ".join(f"{tier}:upstream_error" for tier in ["nano"] * 4 + ["mini"] * 4 + ["full"] * 2)
        + ")"
    )
    assert report.failure is not None and report.failure.attempts == report.attempts
    assert len(sandbox.requests()) == 10


async def test_slow_reply_times_out_and_is_retried(harness: Callable[..., Harness], sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "slow", "delay_ms": 2000, "times": 1}])
    h = harness()
    h.tiers = resolve_tiers(
        Settings(
            nano={"base_url": sandbox.base_url, "api_key": "k", "timeout_s": 0.3},
            mini={"base_url": sandbox.base_url, "api_key": "k"},
            full={"base_url": sandbox.base_url, "api_key": "k"},
        )
    )
    report = await h.run(classify_task())
    assert trail(report) == [("nano", "timeout", False), ("nano", "ok", False)]
    assert report.attempts[0].latency_ms >= 300


async def test_non_json_gets_one_repair_turn_with_the_parse_error(
    harness: Callable[..., Harness], sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "non_json", "times": 1}])
    h = harness()
    report = await h.run(classify_task())
    assert trail(report) == [("nano", "invalid_output", False), ("nano", "ok", True)]
    first, second = sandbox.requests()
    assert len(second["body"]["messages"]) == len(first["body"]["messages"]) + 2
    assistant, repair = second["body"]["messages"][-2:]
    assert assistant["role"] == "assistant" and assistant["content"].startswith("Sure!")
    assert repair["role"] == "user" and "not valid JSON" in repair["content"]
    # the invalid attempt was billed and is charged to the run
    assert report.attempts[0].cost_usd > 0
    assert report.cost_usd == report.attempts[0].cost_usd + report.attempts[1].cost_usd


async def test_schema_drift_repairs_then_escalates(harness: Callable[..., Harness], sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "schema_drift", "model": "*nano*"}])
    h = harness()
    report = await h.run(extract_task())
    assert trail(report) == [
        ("nano", "invalid_output", False),
        ("nano", "invalid_output", True),
        ("mini", "ok", False),
    ]
    assert "is a required property" in (report.attempts[0].error or "")
    assert "unexpected_field" in (report.attempts[0].error or "")
    repair_text = sandbox.requests()[1]["body"]["messages"][-1]["content"]
    assert "unexpected_field" in repair_text
    assert report.output is not None and set(report.output) <= {"name", "email", "age"}
    assert report.cost_usd == sum((a.cost_usd for a in report.attempts), Decimal(0))


async def test_refusal_escalates_without_repair(harness: Callable[..., Harness], sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "refusal", "model": "*nano*"}])
    h = harness()
    report = await h.run(classify_task())
    assert trail(report) == [("nano", "refusal", False), ("mini", "ok", False)]
    assert "can't help" in (report.attempts[0].error or "")


async def test_truncated_output_escalates(harness: Callable[..., Harness], sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "truncated", "model": "*nano*"}])
    h = harness(max_output_tokens=64)
    report = await h.run(extract_task())
    assert trail(report) == [("nano", "truncated", False), ("mini", "ok", False)]
    assert report.attempts[0].usage.output_tokens == 64


async def test_low_confidence_escalates(harness: Callable[..., Harness], sandbox: Sandbox) -> None:
    sandbox.configure(
        faults=[{"kind": "content", "model": "*nano*", "content": '{"label": "bug", "confidence": 0.31}'}]
    )
    h = harness()
    report = await h.run(classify_task(min_confidence=0.8))
    assert trail(report) == [("nano", "low_confidence", False), ("mini", "ok", False)]
    assert report.output["label"] in ("billing", "bug") and report.output["confidence"] == 0.9
    assert report.warnings == ()


async def test_low_confidence_on_every_allowed_tier_returns_the_most_confident(
    harness: Callable[..., Harness], sandbox: Sandbox
) -> None:
    sandbox.configure(
        faults=[
            {"kind": "content", "model": "*nano*", "content": '{"label": "bug", "confidence": 0.4}'},
            {"kind": "content", "model": "*mini*", "content": '{"label": "billing", "confidence": 0.6}'},
        ]
    )
    h = harness()
    report = await h.run(classify_task(min_confidence=0.8), ceiling="mini")
    assert trail(report) == [("nano", "low_confidence", False), ("mini", "low_confidence", False)]
    assert report.status == "succeeded"
    assert report.output == {"label": "billing", "confidence": 0.6} and report.tier == "mini"
    assert report.warnings and "below min_confidence" in report.warnings[0]


async def test_max_tier_bounds_escalation(harness: Callable[..., Harness], sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "refusal"}])
    h = harness()
    report = await h.run(classify_task(), ceiling="nano")
    assert report.status == "failed"
    assert trail(report) == [("nano", "refusal", False)]
    assert report.detail == "every allowed tier failed (nano:refusal)"


async def test_every_tier_failing_reports_each_attempt_and_total_cost(
    harness: Callable[..., Harness], sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "non_json"}])
    h = harness()
    report = await h.run(classify_task())
    assert report.status == "failed"
    assert trail(report) == [
        ("nano", "invalid_output", False),
        ("nano", "invalid_output", True),
        ("mini", "invalid_output", False),
        ("mini", "invalid_output", True),
        ("full", "invalid_output", False),
        ("full", "invalid_output", True),
    ]
    expected = sum((cost_usd(a.usage, h.tiers[a.tier].price) for a in report.attempts), Decimal(0))
    assert report.cost_usd == expected > 0


async def test_deadline_stops_a_hanging_run(harness: Callable[..., Harness], sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "slow", "delay_ms": 5000}])
    h = harness(run_timeout_s=0.4)
    report = await h.run(classify_task())
    assert report.status == "deadline_exceeded"
    assert trail(report)[0] == ("nano", "timeout", False)
    assert report.latency_ms < 3000


async def test_retry_after_beyond_the_deadline_ends_the_run_without_waiting(
    harness: Callable[..., Harness], sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "rate_limit", "retry_after_s": 60}])
    h = harness(run_timeout_s=5)
    report = await h.run(classify_task())
    assert report.status == "deadline_exceeded"
    assert trail(report) == [("nano", "rate_limited", False)]
    assert h.slept == []


async def test_endpoint_without_json_schema_falls_back_to_json_mode_once(
    harness: Callable[..., Harness], sandbox: Sandbox
) -> None:
    sandbox.configure(supports_json_schema=False)
    h = harness()
    first = await h.run(classify_task())
    second = await h.run(classify_task())
    assert trail(first) == trail(second) == [("nano", "ok", False)]
    formats = [(r["response_format"], r["status"]) for r in sandbox.requests()]
    assert formats == [("json_schema", 400), ("json_object", 200), ("json_object", 200)]
    system_messages = [m["content"] for m in sandbox.requests()[1]["body"]["messages"] if m["role"] == "system"]
    assert any("<json_schema>" in text and '"enum"' in text for text in system_messages)


async def test_configured_json_mode_never_sends_json_schema(sandbox: Sandbox, provider: OpenAIProvider) -> None:
    settings = Settings(
        nano={"base_url": sandbox.base_url, "api_key": "k", "structured_outputs": "json_object"},
        mini={"base_url": sandbox.base_url, "api_key": "k"},
        full={"base_url": sandbox.base_url, "api_key": "k"},
    )
    caller = TierCaller(provider, Limits())
    budget = caller.budget("run_x")
    answer = await Ladder(resolve_tiers(settings)).climb(caller, budget, extract_task(), "nano", "full")
    assert [(a.tier, a.outcome) for a in budget.attempts] == [("nano", "ok")]
    assert [r["response_format"] for r in sandbox.requests()] == ["json_object"]
    assert set(answer.output) <= {"name", "email", "age"} and {"name", "email"} <= set(answer.output)
