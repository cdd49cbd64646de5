"""Attempts on one tier: call the model, retry transient failures with backoff, check, repair once.

    call ──transient failure (429, 5xx, timeout…)──▶ back off, call again (at most max_retries)
      │                                                 └─ not retryable, or retries used up ─▶ give the tier up
      ├─ flex found no capacity (not billed) ───────▶ the same call at once on standard (or flex after a backoff)
      ├─ no batch answered within the batch wait ──▶ the same call at once on standard
      ├─ a check fails and a repair turn is left ──▶ call again, told the errors
      └─ otherwise ─────────────────────────────────▶ the tier's verdict (accepted, or why not)

Every call becomes an ``Attempt``, failed ones too, appended to the run's ``RunBudget``, which also
holds the caps every call of the run shares — the attempt cap and the deadline — whether the call
answers, repairs, escalates or checks where to start. Retry (this module) and escalation
(``nodes.ladder``) are separate: a tier that cannot answer ends here with a ``Rejection``, and the
ladder decides what happens next.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from nodes.backoff import BackoffPolicy, backoff_delay
from nodes.batchlane import BatchLane, BatchWaitExceeded, call_key
from nodes.catalog import Task
from nodes.checks import Accepted, Outcome, Rejection, Verdict, judge_reply
from nodes.confidence import Calibration
from nodes.cost import Usage, cost_usd, total_usage
from nodes.errors import (
    BudgetExhausted,
    CapacityUnavailable,
    RateLimited,
    RunDeadlineExceeded,
    RunFailed,
    RunOverBudget,
    UpstreamError,
    UpstreamTimeout,
)
from nodes.lanes import FLEX_SERVICE_TIER, Lane, lane_answered
from nodes.pacing import Limiters, TierLimiter
from nodes.provider import ModelReply, ModelRequest, Provider, request_body
from nodes.settings import Settings
from nodes.tiers import Tier, TierName

Purpose = Literal["answer", "routing"]
Sleep = Callable[[float], Awaitable[None]]

OUTPUT_ESTIMATE_TOKENS = 256
CHARS_PER_TOKEN = 4
REPAIR_PROMPT = (
    "Your previous reply was not acceptable:\n{errors}\n"
    "Reply again with only the corrected JSON object, satisfying the schema exactly."
)
TOOL_REPAIR_PROMPT = (
    "The call was not made: its arguments were not acceptable:\n{errors}\n"
    "Call the tool again with corrected arguments that satisfy its parameters schema exactly."
)


@dataclass(frozen=True)
class Limits:
    """The caps and retry knobs every run shares, taken from the settings."""

    max_retries: int = 3
    repair_turns: int = 1
    max_attempts: int = 10
    run_timeout_s: float = 120.0
    max_output_tokens: int = 4096
    backoff: BackoffPolicy = field(default_factory=BackoffPolicy)
    flex_unavailable: Literal["standard", "retry"] = "standard"
    batch_wait_s: float = 86_400.0

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
            flex_unavailable=settings.flex_unavailable,
            batch_wait_s=settings.batch_wait_s,
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
    purpose: Purpose = "answer"
    processing: Lane = "standard"

    def as_dict(self) -> dict[str, Any]:
        """The attempt as it appears in a response's ``attempts`` list (money as a JSON number)."""
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
            "processing": self.processing,
        }
        if self.error is not None:
            body["error"] = self.error
        if self.purpose != "answer":
            body["purpose"] = self.purpose
        return body


SpendCheck = Callable[[Decimal], Awaitable[None]]
"""Raises ``BudgetExhausted`` when the caller's spend, with a run's cost so far, has reached its budget."""


class RunBudget:
    """A run in progress: its attempts so far, the caps they share, and how its calls are sent.

    The caps are the attempt cap, the deadline and the caller's spend; the calls go on the processing
    lane the run asked for, with its step as the prompt-cache key, and their confidences are read
    through the step's calibrations (one per tier, from its audits).
    """

    def __init__(
        self,
        run_id: str,
        limits: Limits,
        clock: Callable[[], float] = time.monotonic,
        *,
        spend_check: SpendCheck | None = None,
        processing: Lane = "standard",
        cache_key: str | None = None,
        calibrations: Mapping[TierName, Calibration] | None = None,
        timeout_s: float | None = None,
    ) -> None:
        self.run_id = run_id
        self.limits = limits
        self.clock = clock
        self.spend_check = spend_check
        self.processing = processing
        self.cache_key = cache_key
        self.calibrations: Mapping[TierName, Calibration] = calibrations or {}
        self.started = clock()
        self.timeout_s = limits.run_timeout_s if timeout_s is None else min(timeout_s, limits.run_timeout_s)
        # A batch-lane run may wait for its batches first, then still needs its own time.
        waiting = limits.batch_wait_s if processing == "batch" else 0.0
        self.deadline = self.started + waiting + self.timeout_s
        self.attempts: list[Attempt] = []
        self.batch_calls: dict[str, int] = {}
        """How many batch-lane calls of this run had each body so far (part of each call's identity)."""

    @property
    def remaining_s(self) -> float:
        """Seconds left before the run's deadline."""
        return self.deadline - self.clock()

    @property
    def usage(self) -> Usage:
        """Tokens of every attempt so far."""
        return total_usage(attempt.usage for attempt in self.attempts)

    def deadline_exceeded(self, detail: str) -> RunDeadlineExceeded:
        """The failure to raise when the deadline has passed (or would pass)."""
        return RunDeadlineExceeded(detail, attempts=self.attempts)

    @property
    def cost_usd(self) -> Decimal:
        """What the run has cost so far."""
        return sum((attempt.cost_usd for attempt in self.attempts), Decimal(0))

    async def ensure_room(self) -> None:
        """Raise unless one more call fits under the attempt cap, before the deadline and within the budget.

        The budget was checked when the request was admitted, so it is checked again only from the
        second call on.
        """
        if len(self.attempts) >= self.limits.max_attempts:
            raise RunFailed(f"stopped after {len(self.attempts)} attempts (the cap)", attempts=self.attempts)
        if self.remaining_s <= 0:
            raise self.deadline_exceeded(f"the run passed its {self.timeout_s:g} s cap")
        if self.spend_check is not None and self.attempts:
            try:
                await self.spend_check(self.cost_usd)
            except BudgetExhausted as exc:
                raise RunOverBudget(
                    f"{exc.detail}; the run stopped before its next model call",
                    attempts=self.attempts,
                    retry_after_s=exc.retry_after_s,
                ) from None


@dataclass(frozen=True)
class TierResult:
    """What one tier made of a task: its verdict on the last reply (or why no reply came)."""

    tier: TierName
    model: str
    verdict: Verdict

    @property
    def accepted(self) -> bool:
        """True when the tier produced an output that passed every check."""
        return isinstance(self.verdict, Accepted)


def repair_turn(reply: ModelReply, rejection: Rejection) -> list[dict[str, Any]]:
    """The messages of a repair turn: the model's reply, then what was wrong with it.

    A reply that called tools is answered, call by call, with a tool result saying what was wrong, as
    a conversation with tool calls must continue; any other reply gets one user message.
    """
    errors = "\n".join(f"- {error}" for error in rejection.errors)
    if reply.tool_calls:
        said: dict[str, Any] = {"role": "assistant", "content": reply.content, "tool_calls": list(reply.tool_calls)}
        results = [
            {"role": "tool", "tool_call_id": str(call.get("id")), "content": TOOL_REPAIR_PROMPT.format(errors=errors)}
            for call in reply.tool_calls
        ]
        return [said, *results]
    return [
        {"role": "assistant", "content": reply.content or ""},
        {"role": "user", "content": REPAIR_PROMPT.format(errors=errors)},
    ]


def content_chars(content: Any) -> int:
    """The length of a message's content: its text, or its parts as JSON."""
    if isinstance(content, str):
        return len(content)
    return 0 if content is None else len(json.dumps(content, ensure_ascii=False, default=str))


def estimate_tokens(messages: list[dict[str, Any]], max_output_tokens: int) -> int:
    """A cheap guess at a call's tokens, for pacing; corrected with the real usage afterwards."""
    chars = sum(content_chars(message.get("content")) for message in messages)
    return chars // CHARS_PER_TOKEN + min(max_output_tokens, OUTPUT_ESTIMATE_TOKENS)


class TierCaller:
    """Makes a run's attempts on one tier at a time through the provider, paced per tier."""

    def __init__(
        self,
        provider: Provider,
        limits: Limits,
        *,
        pacing: Limiters | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        batch_lane: BatchLane | None = None,
    ) -> None:
        self.provider = provider
        self.limits = limits
        self.pacing = pacing
        self.batch_lane = batch_lane
        self.rng = rng or random.Random()
        self.clock = clock
        self.sleep = sleep

    def budget(
        self,
        run_id: str,
        *,
        spend_check: SpendCheck | None = None,
        processing: Lane = "standard",
        cache_key: str | None = None,
        calibrations: Mapping[TierName, Calibration] | None = None,
        timeout_s: float | None = None,
    ) -> RunBudget:
        """A fresh budget for a run, on this caller's clock (``timeout_s`` shortens the run's time cap)."""
        return RunBudget(
            run_id,
            self.limits,
            self.clock,
            spend_check=spend_check,
            processing=processing,
            cache_key=cache_key,
            calibrations=calibrations,
            timeout_s=timeout_s,
        )

    async def attempt(self, run: RunBudget, tier: Tier, task: Task, *, purpose: Purpose = "answer") -> TierResult:
        """Work ``task`` on ``tier`` until it is accepted or the tier is given up; raises when the run's caps end it."""
        messages = list(task.conversation) or [
            {"role": "system", "content": task.system_prompt},
            {"role": "user", "content": task.user_prompt},
        ]
        retries = repairs = 0
        waited_s = 0.0
        lane: Lane = run.processing if tier.offers(run.processing) else "standard"
        if lane == "batch" and self.batch_lane is None:
            lane = "standard"
        pacer = self.pacing[tier.name] if self.pacing is not None else None
        while True:
            await run.ensure_room()
            estimate = estimate_tokens(messages, self.limits.max_output_tokens)
            if pacer is not None and lane != "batch":  # the Batch API has limits of its own
                waited_s += await self._paced(run, pacer, estimate)
            started = self.clock()
            try:
                reply = await self._call(run, tier, task, messages, lane)
            except UpstreamError as error:
                if pacer is not None:
                    pacer.observe_headers(error.headers)
                    if isinstance(error, RateLimited):
                        pacer.observe_rate_limited(error.retry_after_s)
                run.attempts.append(self._failed(tier, error, started, repairs > 0, waited_s, purpose, lane))
                if isinstance(error, BatchWaitExceeded) and lane == "batch":
                    lane, waited_s = "standard", 0.0
                    continue
                if isinstance(error, CapacityUnavailable) and lane == "flex":
                    if self.limits.flex_unavailable == "standard" or retries >= self.limits.max_retries:
                        lane, waited_s = "standard", 0.0
                    else:
                        waited_s = await self._back_off(run, retries, error)
                        retries += 1
                    continue
                if not error.retryable or retries >= self.limits.max_retries:
                    return TierResult(tier.name, tier.model, Rejection(error.outcome, [error.message]))  # type: ignore[arg-type]
                waited_s = await self._back_off(run, retries, error)
                retries += 1
                continue
            if pacer is not None:
                pacer.settle(estimate, reply.usage.input_tokens + reply.usage.output_tokens)
                pacer.observe_headers(reply.headers)
            verdict = judge_reply(task, reply, calibration=run.calibrations.get(tier.name))
            answered_on = lane_answered(lane, reply.service_tier)
            run.attempts.append(
                self._answered(tier, reply, verdict, started, repairs > 0, waited_s, purpose, answered_on)
            )
            waited_s = 0.0
            if isinstance(verdict, Rejection) and verdict.repairable and repairs < self.limits.repair_turns:
                repairs += 1
                messages = [*messages, *repair_turn(reply, verdict)]
                continue
            return TierResult(tier.name, reply.model, verdict)

    async def _paced(self, run: RunBudget, pacer: TierLimiter, estimate: int) -> float:
        """Wait for the tier's rate limit to allow a call; returns the seconds waited."""
        try:
            async with asyncio.timeout(run.remaining_s):
                return await pacer.acquire(estimate)
        except TimeoutError:
            raise run.deadline_exceeded("the run's deadline passed while waiting for the tier's rate limit") from None

    async def _back_off(self, run: RunBudget, retries: int, error: UpstreamError) -> float:
        """Sleep before retry number ``retries``; returns the seconds slept."""
        delay = backoff_delay(retries, self.limits.backoff, self.rng, error.retry_after_s)
        if self.clock() + delay >= run.deadline:
            raise run.deadline_exceeded(
                f"the next retry ({delay:.1f} s away) would pass the run's {run.timeout_s:g} s cap"
            )
        await self.sleep(delay)
        return delay

    async def _call(
        self, run: RunBudget, tier: Tier, task: Task, messages: list[dict[str, Any]], lane: Lane
    ) -> ModelReply:
        """One model call on ``lane``, bounded by what is left of the run."""
        remaining = run.remaining_s
        request = ModelRequest(
            messages=messages,
            schema_name=task.schema_name,
            output_schema=task.strict_schema,
            max_output_tokens=min(
                task.max_output_tokens or self.limits.max_output_tokens, self.limits.max_output_tokens
            ),
            timeout_s=min(tier.call_timeout_s(lane), max(remaining, 0.001)),
            output_kind=task.output_kind,
            tools=task.tools,
            options=task.call_options,
            service_tier=FLEX_SERVICE_TIER if lane == "flex" else None,
            prompt_cache_key=run.cache_key,
            logprobs=tier.logprobs and task.confidence_key is not None,
        )
        try:
            async with asyncio.timeout(remaining):
                if lane == "batch" and self.batch_lane is not None:
                    return await self._batched(run, tier, request, min(self.limits.batch_wait_s, remaining))
                return await self.provider.complete(tier, request)
        except TimeoutError:
            raise UpstreamTimeout("the run's deadline passed during the call", retryable=False) from None

    async def _batched(self, run: RunBudget, tier: Tier, request: ModelRequest, wait_s: float) -> ModelReply:
        """One call through the batch lane, under its identity in the run (so a run taken over finds it)."""
        assert self.batch_lane is not None
        mode = tier.structured_outputs
        digest = call_key(request_body(tier, request, mode), 0).split(":")[0]
        earlier = run.batch_calls.get(digest, 0)
        run.batch_calls[digest] = earlier + 1
        return await self.batch_lane.complete(run.run_id, f"{digest}:{earlier}", tier, request, mode, wait_s=wait_s)

    def _answered(
        self,
        tier: Tier,
        reply: ModelReply,
        verdict: Verdict,
        started: float,
        repair: bool,
        waited_s: float,
        purpose: Purpose,
        lane: Lane,
    ) -> Attempt:
        elapsed = self.clock() - started
        return Attempt(
            tier=tier.name,
            model=reply.model,
            outcome=verdict.outcome,
            latency_ms=round(elapsed * 1000),
            usage=reply.usage,
            cost_usd=cost_usd(reply.usage, tier.price_on(lane)),
            repair=repair,
            waited_ms=round(waited_s * 1000),
            error="; ".join(verdict.errors)[:1000] if verdict.errors else None,
            elapsed_s=elapsed,
            waited_s=waited_s,
            purpose=purpose,
            processing=lane,
        )

    def _failed(
        self,
        tier: Tier,
        error: UpstreamError,
        started: float,
        repair: bool,
        waited_s: float,
        purpose: Purpose,
        lane: Lane,
    ) -> Attempt:
        elapsed = self.clock() - started
        return Attempt(
            tier=tier.name,
            model=tier.model,
            outcome=error.outcome,  # type: ignore[arg-type]
            latency_ms=round(elapsed * 1000),
            usage=Usage(),
            cost_usd=Decimal(0),
            repair=repair,
            waited_ms=round(waited_s * 1000),
            error=error.message,
            elapsed_s=elapsed,
            waited_s=waited_s,
            purpose=purpose,
            processing=lane,
        )
