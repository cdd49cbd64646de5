"""One run of one node: attempts, the repair turn, retries and escalation, within hard caps.

For each tier on the ladder, from the starting tier up to ``max_tier``::

    call the model ──transient failure──▶ back off, retry the same tier (at most max_retries)
        │                                     └─ retries exhausted ─▶ next tier
        ├─ refusal / content filter ─────────▶ next tier
        ├─ finish_reason = length ───────────▶ next tier
        ├─ invalid output ─▶ one repair turn with the validator's errors ─▶ still invalid ─▶ next tier
        ├─ confidence < min_confidence ──────▶ next tier (kept as a fallback answer)
        └─ valid ────────────────────────────▶ done

Retry (same tier, transient errors) and escalation (next tier, wrong answers) are separate. A run
never makes more than ``max_attempts`` calls nor runs past ``run_timeout_s``; every call is recorded
and priced, failed ones too, and the run's cost is their sum.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from nodes.backoff import BackoffPolicy, backoff_delay
from nodes.catalog import Task
from nodes.cost import Usage, cost_usd, total_usage
from nodes.errors import UpstreamError
from nodes.provider import ModelReply, ModelRequest, Provider
from nodes.ratelimit import Limiters
from nodes.settings import Settings
from nodes.tiers import Decision, Tier, TierName, climb
from nodes.validate import check_reply, schema_errors

Outcome = Literal[
    "ok",
    "invalid_output",
    "low_confidence",
    "refusal",
    "truncated",
    "rate_limited",
    "upstream_error",
    "timeout",
]
RunStatus = Literal["succeeded", "failed", "deadline_exceeded"]

OUTPUT_ESTIMATE_TOKENS = 256
CHARS_PER_TOKEN = 4


def estimate_tokens(messages: list[dict[str, str]], max_output_tokens: int) -> int:
    """A cheap guess at a call's tokens, for pacing; corrected with the real usage afterwards."""
    chars = sum(len(message["content"]) for message in messages)
    return chars // CHARS_PER_TOKEN + min(max_output_tokens, OUTPUT_ESTIMATE_TOKENS)


REPAIR_PROMPT = (
    "Your previous reply was not acceptable:\n{errors}\n"
    "Reply again with only the corrected JSON object, satisfying the schema exactly."
)


@dataclass(frozen=True)
class Limits:
    """The per-run caps and retry knobs, taken from the settings."""

    max_retries: int = 3
    repair_turns: int = 1
    max_attempts: int = 10
    run_timeout_s: float = 120.0
    max_output_tokens: int = 4096
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        """Read the limits from the service settings."""
        return cls(
            max_retries=settings.max_retries,
            repair_turns=settings.repair_turns,
            max_attempts=settings.max_attempts,
            run_timeout_s=settings.run_timeout_s,
            max_output_tokens=settings.max_output_tokens,
            backoff=BackoffPolicy(settings.backoff_base_s, settings.backoff_cap_s, settings.retry_after_cap_s),
        )


@dataclass(frozen=True)
class Attempt:
    """One model call of a run, as recorded and returned."""

    tier: TierName
    model: str
    outcome: Outcome
    latency_ms: int
    usage: Usage
    cost_usd: Decimal
    repair: bool = False
    waited_ms: int = 0
    error: str | None = None
    elapsed_s: float = 0.0
    waited_s: float = 0.0
    purpose: str = "answer"

    def as_dict(self) -> dict[str, Any]:
        """The attempt as it appears in a response's ``attempts`` list."""
        body: dict[str, Any] = {
            "tier": self.tier,
            "model": self.model,
            "outcome": self.outcome,
            "latency_ms": self.latency_ms,
            "input_tokens": self.usage.input_tokens,
            "cached_input_tokens": self.usage.cached_input_tokens,
            "output_tokens": self.usage.output_tokens,
            "reasoning_tokens": self.usage.reasoning_tokens,
            "cost_usd": float(self.cost_usd),
            "repair": self.repair,
            "waited_ms": self.waited_ms,
        }
        if self.error is not None:
            body["error"] = self.error
        if self.purpose != "answer":
            body["purpose"] = self.purpose
        return body


@dataclass
class RunReport:
    """Everything known about a finished run: the basis of the response and of the stored record."""

    run_id: str
    node: str
    status: RunStatus
    routing: Decision
    attempts: list[Attempt]
    output: Any = None
    tier: TierName | None = None
    model: str | None = None
    latency_ms: int = 0
    overhead_ms: float = 0.0
    detail: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def usage(self) -> Usage:
        """Tokens of every attempt, summed."""
        return total_usage(attempt.usage for attempt in self.attempts)

    @property
    def cost_usd(self) -> Decimal:
        """What the run cost, failed attempts included."""
        return sum((attempt.cost_usd for attempt in self.attempts), Decimal(0))

    @property
    def escalated(self) -> bool:
        """True when the answer came from a tier above the starting one."""
        return self.tier is not None and self.tier != self.routing.tier


Sleep = Callable[[float], Awaitable[None]]


class Pipeline:
    """Runs tasks over the tier ladder with one provider."""

    def __init__(
        self,
        tiers: dict[TierName, Tier],
        provider: Provider,
        limits: Limits,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        pacing: Limiters | None = None,
    ) -> None:
        self.tiers = tiers
        self.provider = provider
        self.limits = limits
        self.pacing = pacing
        self.rng = rng or random.Random()
        self.clock = clock
        self.sleep = sleep

    def baseline_cost(self, usage: Usage) -> Decimal:
        """What ``usage`` would have cost on the full tier."""
        return cost_usd(usage, self.tiers["full"].price)

    async def run(self, run_id: str, task: Task, routing: Decision, max_tier: TierName) -> RunReport:
        """Run ``task`` from ``routing.tier`` up to ``max_tier``; never raises for model failures."""
        started = self.clock()
        deadline = started + self.limits.run_timeout_s
        attempts: list[Attempt] = []
        fallback: tuple[Any, TierName, str, float] | None = None
        report = RunReport(run_id=run_id, node=task.node, status="failed", routing=routing, attempts=attempts)

        def finish(status: RunStatus, detail: str = "") -> RunReport:
            elapsed_ms = (self.clock() - started) * 1000
            report.status = status
            report.detail = detail
            report.latency_ms = round(elapsed_ms)
            model_ms = sum(attempt.elapsed_s + attempt.waited_s for attempt in attempts) * 1000
            report.overhead_ms = max(0.0, round(elapsed_ms - model_ms, 3))
            return report

        for tier_name in climb(routing.tier, max_tier):
            tier = self.tiers[tier_name]
            messages = [
                {"role": "system", "content": task.system_prompt},
                {"role": "user", "content": task.user_prompt},
            ]
            retries = repairs = 0
            repairing = False
            pending_wait_s = 0.0
            while True:
                if len(attempts) >= self.limits.max_attempts:
                    return self._give_up(finish, fallback, f"stopped after {len(attempts)} attempts (the cap)")
                remaining = deadline - self.clock()
                if remaining <= 0:
                    return finish("deadline_exceeded", f"the run passed its {self.limits.run_timeout_s:g} s cap")
                request = ModelRequest(
                    messages=messages,
                    schema_name=task.schema_name,
                    output_schema=task.strict_schema,
                    max_output_tokens=self.limits.max_output_tokens,
                    timeout_s=min(tier.timeout_s, remaining),
                )
                pacer = self.pacing[tier_name] if self.pacing is not None else None
                estimate = estimate_tokens(messages, self.limits.max_output_tokens)
                if pacer is not None:
                    try:
                        async with asyncio.timeout(remaining):
                            pending_wait_s += await pacer.acquire(estimate)
                    except TimeoutError:
                        return finish(
                            "deadline_exceeded", "the run's deadline passed while waiting for the tier's rate limit"
                        )
                    remaining = deadline - self.clock()
                call_started = self.clock()
                try:
                    async with asyncio.timeout(remaining):
                        reply = await self.provider.complete(tier, request)
                    if pacer is not None:
                        pacer.settle(estimate, reply.usage.input_tokens + reply.usage.output_tokens)
                        pacer.observe_headers(reply.headers)
                except (UpstreamError, TimeoutError) as exc:
                    error = (
                        exc
                        if isinstance(exc, UpstreamError)
                        else UpstreamError(
                            "the run's deadline passed during the call", outcome="timeout", retryable=False
                        )
                    )
                    if pacer is not None and error.headers:
                        pacer.observe_headers(error.headers)
                    if pacer is not None and error.status == 429 and error.code != "insufficient_quota":
                        pacer.observe_rate_limited(error.retry_after_s)
                    attempts.append(self._failed_attempt(tier, error, call_started, repairing, pending_wait_s))
                    if not error.retryable or retries >= self.limits.max_retries:
                        break
                    delay = backoff_delay(retries, self.limits.backoff, self.rng, error.retry_after_s)
                    retries += 1
                    if self.clock() + delay >= deadline:
                        return finish(
                            "deadline_exceeded",
                            f"the next retry ({delay:.1f} s away) would pass the run's "
                            f"{self.limits.run_timeout_s:g} s cap",
                        )
                    await self.sleep(delay)
                    pending_wait_s = delay
                    continue
                pending_wait, pending_wait_s = pending_wait_s, 0.0
                outcome, value, errors = self._judge_reply(task, reply)
                attempts.append(self._attempt(tier, reply, outcome, call_started, repairing, pending_wait, errors))
                if outcome == "ok":
                    report.output, report.tier, report.model = value, tier_name, reply.model
                    return finish("succeeded")
                if outcome == "low_confidence":
                    confidence = float(value.get("confidence", 0))
                    if fallback is None or confidence >= fallback[3]:
                        fallback = (value, tier_name, reply.model, confidence)
                    break
                if outcome == "invalid_output" and repairs < self.limits.repair_turns:
                    repairs += 1
                    repairing = True
                    messages = [
                        *messages,
                        {"role": "assistant", "content": reply.content or ""},
                        {
                            "role": "user",
                            "content": REPAIR_PROMPT.format(errors="\n".join(f"- {e}" for e in errors)),
                        },
                    ]
                    continue
                break
        return self._give_up(finish, fallback, "every allowed tier failed")

    def _give_up(
        self,
        finish: Callable[[RunStatus, str], RunReport],
        fallback: tuple[Any, TierName, str, float] | None,
        detail: str,
    ) -> RunReport:
        if fallback is None:
            return finish("failed", detail)
        report = finish("succeeded", "")
        report.output, report.tier, report.model, confidence = fallback
        report.warnings.append(
            f"confidence {confidence:g} is below min_confidence on every allowed tier; "
            f"this is the most confident answer (from {report.tier})"
        )
        return report

    def _judge_reply(self, task: Task, reply: ModelReply) -> tuple[Outcome, Any, list[str]]:
        if reply.refusal or reply.finish_reason == "content_filter":
            return "refusal", None, [reply.refusal or "the content filter stopped the reply"]
        if reply.finish_reason == "length":
            return "truncated", None, ["the reply was cut off at the output token limit"]
        checked = check_reply(reply.content, task.strict_schema)
        if not checked.ok:
            return "invalid_output", None, checked.errors
        value = task.finalize(checked.value)
        problems = schema_errors(value, task.output_schema) + task.extra_checks(value)
        if problems:
            return "invalid_output", None, problems
        if task.min_confidence is not None and float(value.get("confidence", 0)) < task.min_confidence:
            return (
                "low_confidence",
                value,
                [f"confidence {value.get('confidence')} is below min_confidence {task.min_confidence}"],
            )
        return "ok", value, []

    def _attempt(
        self,
        tier: Tier,
        reply: ModelReply,
        outcome: Outcome,
        started: float,
        repair: bool,
        waited_s: float,
        errors: list[str],
    ) -> Attempt:
        elapsed = self.clock() - started
        return Attempt(
            tier=tier.name,
            model=reply.model,
            outcome=outcome,
            latency_ms=round(elapsed * 1000),
            usage=reply.usage,
            cost_usd=cost_usd(reply.usage, tier.price),
            repair=repair,
            waited_ms=round(waited_s * 1000),
            error="; ".join(errors)[:1000] if errors else None,
            elapsed_s=elapsed,
            waited_s=waited_s,
        )

    def _failed_attempt(
        self, tier: Tier, error: UpstreamError, started: float, repair: bool, waited_s: float
    ) -> Attempt:
        outcome: Outcome = error.outcome  # type: ignore[assignment]
        elapsed = self.clock() - started
        return Attempt(
            tier=tier.name,
            model=tier.model,
            outcome=outcome,
            latency_ms=round(elapsed * 1000),
            usage=Usage(),
            cost_usd=Decimal(0),
            repair=repair,
            waited_ms=round(waited_s * 1000),
            error=error.message,
            elapsed_s=elapsed,
            waited_s=waited_s,
        )
