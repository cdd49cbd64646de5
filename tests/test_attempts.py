"""Attempts on one tier, with a scripted provider and a fake clock: retries, backoff, repair, caps, pacing."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from scripted import FakeClock, ScriptedProvider, fail, reply, scripted_tiers

from nodes.attempts import REPAIR_PROMPT, Limits, RunBudget, TierCaller, estimate_tokens
from nodes.backoff import BackoffPolicy, backoff_delay
from nodes.catalog import NODES, Task
from nodes.checks import Accepted, Rejection
from nodes.cost import Usage
from nodes.errors import (
    CapacityUnavailable,
    ConnectionFailed,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    RunDeadlineExceeded,
    RunFailed,
    ServerError,
)
from nodes.pacing import Limiters
from nodes.settings import Settings
from nodes.tiers import resolve_tiers

TIERS = scripted_tiers()
POLICY = BackoffPolicy(base_s=0.5, cap_s=8.0, retry_after_cap_s=120.0)
ANSWER = {"label": "billing", "confidence": 0.9}


def classify_task(**fields: object) -> Task:
    node = NODES["classify"]
    return node.task(node.parse({"input": "I was charged twice", "labels": ["billing", "bug"], **fields}))


def caller(provider: ScriptedProvider, clock: FakeClock, **limits: object) -> TierCaller:
    provider.clock = clock
    limits.setdefault("backoff", POLICY)
    return TierCaller(provider, Limits(**limits), rng=random.Random(7), clock=clock, sleep=clock.sleep)  # type: ignore[arg-type]


def trail(budget: RunBudget) -> list[tuple[str, str, bool, int]]:
    return [(a.tier, a.outcome, a.repair, a.waited_ms) for a in budget.attempts]


async def test_an_accepted_reply_is_one_attempt_timed_and_priced() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply(ANSWER, usage=Usage(input_tokens=400, output_tokens=20), elapsed_s=0.25))
    tiers_caller = caller(provider, clock)
    budget = tiers_caller.budget("run_1")
    result = await tiers_caller.attempt(budget, TIERS["nano"], classify_task())
    assert result.accepted and result.verdict == Accepted(ANSWER)
    (attempt,) = budget.attempts
    assert (attempt.tier, attempt.outcome, attempt.latency_ms, attempt.purpose) == ("nano", "ok", 250, "answer")
    assert attempt.cost_usd == (400 * Decimal("0.20") + 20 * Decimal("1.25")) / 10**6
    (call,) = provider.calls
    assert call[1].messages[0]["role"] == "system" and call[1].schema_name == "classification"


async def test_transient_failures_are_retried_with_the_computed_backoff_then_the_tier_is_given_up() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(*[fail(ServerError("HTTP 503"))] * 4)
    tiers_caller = caller(provider, clock, max_retries=3)
    budget = tiers_caller.budget("run_1")
    result = await tiers_caller.attempt(budget, TIERS["nano"], classify_task())
    assert result.verdict == Rejection("upstream_error", ["HTTP 503"])
    rng = random.Random(7)
    expected = [backoff_delay(n, POLICY, rng) for n in range(3)]
    assert clock.slept == expected
    assert trail(budget) == [("nano", "upstream_error", False, 0)] + [
        ("nano", "upstream_error", False, round(delay * 1000)) for delay in expected
    ]
    assert all(a.cost_usd == 0 and a.usage == Usage() for a in budget.attempts)


async def test_retry_after_wins_over_the_computed_delay() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(fail(RateLimited("HTTP 429", retry_after_s=2.5)), reply(ANSWER))
    tiers_caller = caller(provider, clock)
    budget = tiers_caller.budget("run_1")
    assert (await tiers_caller.attempt(budget, TIERS["nano"], classify_task())).accepted
    assert clock.slept == [2.5]
    assert trail(budget) == [("nano", "rate_limited", False, 0), ("nano", "ok", False, 2500)]


@pytest.mark.parametrize("error", [QuotaExhausted("insufficient_quota"), RequestRejected("HTTP 400")])
async def test_failures_that_waiting_cannot_fix_are_not_retried(error: Exception) -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(fail(error))  # type: ignore[arg-type]
    tiers_caller = caller(provider, clock)
    budget = tiers_caller.budget("run_1")
    result = await tiers_caller.attempt(budget, TIERS["mini"], classify_task())
    assert not result.accepted and clock.slept == [] and len(provider.calls) == 1


async def test_the_servers_word_on_retrying_is_kept() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(fail(ServerError("HTTP 500", retryable=False)))
    tiers_caller = caller(provider, clock)
    result = await tiers_caller.attempt(tiers_caller.budget("r"), TIERS["nano"], classify_task())
    assert isinstance(result.verdict, Rejection) and len(provider.calls) == 1


async def test_invalid_output_gets_one_repair_turn_carrying_the_reply_and_its_errors() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply({"label": "refund", "confidence": 0.9}), reply(ANSWER))
    tiers_caller = caller(provider, clock)
    budget = tiers_caller.budget("run_1")
    result = await tiers_caller.attempt(budget, TIERS["nano"], classify_task())
    assert result.accepted
    assert trail(budget) == [("nano", "invalid_output", False, 0), ("nano", "ok", True, 0)]
    first, second = (request for _, request in provider.calls)
    assert second.messages[:2] == first.messages
    assistant, repair = second.messages[2:]
    assert assistant == {"role": "assistant", "content": '{"label": "refund", "confidence": 0.9}'}
    assert repair["role"] == "user"
    assert repair["content"] == REPAIR_PROMPT.format(errors=f"- {budget.attempts[0].error}")
    assert "'refund' is not one of ['billing', 'bug']" in (budget.attempts[0].error or "")


async def test_a_second_invalid_reply_gives_the_tier_up() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply("not json"), reply("still not json"))
    tiers_caller = caller(provider, clock, repair_turns=1)
    budget = tiers_caller.budget("run_1")
    result = await tiers_caller.attempt(budget, TIERS["nano"], classify_task())
    assert isinstance(result.verdict, Rejection) and result.verdict.outcome == "invalid_output"
    assert [a.repair for a in budget.attempts] == [False, True]


async def test_a_refusal_is_not_repaired() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply(None, refusal="I can't help with that"))
    tiers_caller = caller(provider, clock)
    budget = tiers_caller.budget("run_1")
    result = await tiers_caller.attempt(budget, TIERS["nano"], classify_task())
    assert result.verdict == Rejection("refusal", ["I can't help with that"])
    assert len(provider.calls) == 1


async def test_the_attempt_cap_ends_the_run_with_every_attempt() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(*[fail(ConnectionFailed("refused"))] * 5)
    tiers_caller = caller(provider, clock, max_retries=10, max_attempts=3)
    budget = tiers_caller.budget("run_1")
    with pytest.raises(RunFailed) as failed:
        await tiers_caller.attempt(budget, TIERS["nano"], classify_task())
    assert failed.value.detail == (
        "stopped after 3 attempts (the cap) (nano:upstream_error, nano:upstream_error, nano:upstream_error)"
    )
    assert failed.value.attempts == budget.attempts and len(budget.attempts) == 3


async def test_a_retry_that_would_pass_the_deadline_ends_the_run_without_sleeping() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(fail(RateLimited("HTTP 429", retry_after_s=30), elapsed_s=1))
    tiers_caller = caller(provider, clock, run_timeout_s=20)
    budget = tiers_caller.budget("run_1")
    with pytest.raises(RunDeadlineExceeded) as late:
        await tiers_caller.attempt(budget, TIERS["nano"], classify_task())
    assert late.value.detail == "the next retry (30.0 s away) would pass the run's 20 s cap"
    assert clock.slept == [] and len(budget.attempts) == 1


async def test_a_spent_deadline_ends_the_run_before_the_next_call() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply("not json", elapsed_s=21))
    tiers_caller = caller(provider, clock, run_timeout_s=20)
    budget = tiers_caller.budget("run_1")
    with pytest.raises(RunDeadlineExceeded) as late:
        await tiers_caller.attempt(budget, TIERS["nano"], classify_task())
    assert late.value.detail == "the run passed its 20 s cap" and len(provider.calls) == 1


async def test_routing_attempts_are_marked_as_such() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply(ANSWER))
    tiers_caller = caller(provider, clock)
    budget = tiers_caller.budget("run_1")
    await tiers_caller.attempt(budget, TIERS["nano"], classify_task(), purpose="routing")
    assert budget.attempts[0].purpose == "routing" and budget.attempts[0].as_dict()["purpose"] == "routing"


async def test_pacing_wait_is_recorded_and_the_estimate_settled_with_the_real_usage() -> None:
    clock = FakeClock()
    pacing = Limiters({"nano": (60, None), "mini": (None, None), "full": (None, None)}, clock=clock, sleep=clock.sleep)
    provider = ScriptedProvider.of(reply(ANSWER), reply(ANSWER))
    tiers_caller = TierCaller(provider, Limits(), pacing=pacing, clock=clock, sleep=clock.sleep)
    budget = tiers_caller.budget("run_1")
    for _ in range(2):
        await tiers_caller.attempt(budget, TIERS["nano"], classify_task())
    # 60 requests a minute with a bucket of one: the second call waits one second for its slot.
    assert [a.waited_ms for a in budget.attempts] == [0, 1000]


def test_token_estimate_counts_characters_and_a_bounded_reply() -> None:
    messages = [{"role": "system", "content": "x" * 400}, {"role": "user", "content": "y" * 400}]
    assert estimate_tokens(messages, 4096) == 200 + 256
    assert estimate_tokens(messages, 100) == 200 + 100


# --- processing lanes ---------------------------------------------------------------------------------------------

FLEX_USAGE = Usage(input_tokens=400, output_tokens=20)
NANO_STANDARD = (400 * Decimal("0.20") + 20 * Decimal("1.25")) / 10**6


def lanes(budget: RunBudget) -> list[tuple[str, str, Decimal]]:
    return [(a.processing, a.outcome, a.cost_usd) for a in budget.attempts]


async def test_a_flex_call_is_sent_as_flex_and_priced_at_half() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply(ANSWER, usage=FLEX_USAGE, service_tier="flex"))
    tiers_caller = caller(provider, clock)
    budget = tiers_caller.budget("run_1", processing="flex", cache_key="tw-step")
    assert (await tiers_caller.attempt(budget, TIERS["nano"], classify_task())).accepted
    assert lanes(budget) == [("flex", "ok", NANO_STANDARD / 2)]
    ((_, request),) = provider.calls
    assert (request.service_tier, request.prompt_cache_key, request.timeout_s) == ("flex", "tw-step", 120.0)
    assert budget.attempts[0].as_dict()["processing"] == "flex"


async def test_a_flex_call_answered_on_default_is_priced_as_standard() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply(ANSWER, usage=FLEX_USAGE, service_tier="default"))
    tiers_caller = caller(provider, clock)
    budget = tiers_caller.budget("run_1", processing="flex")
    await tiers_caller.attempt(budget, TIERS["nano"], classify_task())
    assert lanes(budget) == [("standard", "ok", NANO_STANDARD)]


async def test_no_flex_capacity_costs_nothing_and_the_call_is_repeated_at_once_on_standard() -> None:
    clock = FakeClock()
    unavailable = CapacityUnavailable("HTTP 429 resource_unavailable", status=429, code="resource_unavailable")
    provider = ScriptedProvider.of(fail(unavailable, elapsed_s=0.5), reply(ANSWER, usage=FLEX_USAGE))
    tiers_caller = caller(provider, clock)
    budget = tiers_caller.budget("run_1", processing="flex")
    assert (await tiers_caller.attempt(budget, TIERS["nano"], classify_task())).accepted
    assert lanes(budget) == [("flex", "unavailable", Decimal(0)), ("standard", "ok", NANO_STANDARD)]
    assert clock.slept == []
    assert [request.service_tier for _, request in provider.calls] == ["flex", None]


async def test_with_retry_no_flex_capacity_is_waited_out_on_flex_then_standard_once_retries_are_used() -> None:
    clock = FakeClock()
    unavailable = CapacityUnavailable("HTTP 429 resource_unavailable", status=429, code="resource_unavailable")
    provider = ScriptedProvider.of(*[fail(unavailable)] * 3, reply(ANSWER, usage=FLEX_USAGE))
    tiers_caller = caller(provider, clock, max_retries=2, flex_unavailable="retry")
    budget = tiers_caller.budget("run_1", processing="flex")
    assert (await tiers_caller.attempt(budget, TIERS["nano"], classify_task())).accepted
    rng = random.Random(7)
    assert clock.slept == [backoff_delay(n, POLICY, rng) for n in range(2)]
    assert [request.service_tier for _, request in provider.calls] == ["flex", "flex", "flex", None]
    assert lanes(budget)[-1] == ("standard", "ok", NANO_STANDARD)


async def test_a_tier_without_flex_is_called_on_standard() -> None:
    local = {"base_url": "http://127.0.0.1:9/v1", "lanes": ["standard"]}
    tiers = resolve_tiers(Settings(nano=local, mini=local, full=local))
    clock = FakeClock()
    provider = ScriptedProvider.of(reply(ANSWER, usage=FLEX_USAGE))
    tiers_caller = caller(provider, clock)
    budget = tiers_caller.budget("audit", processing="flex")
    await tiers_caller.attempt(budget, tiers["nano"], classify_task())
    assert lanes(budget) == [("standard", "ok", NANO_STANDARD)] and provider.calls[0][1].service_tier is None


async def test_a_flex_call_may_take_the_flex_timeout_but_never_past_the_deadline() -> None:
    clock = FakeClock()
    provider = ScriptedProvider.of(reply(ANSWER), reply(ANSWER))
    tiers_caller = caller(provider, clock, run_timeout_s=3600)
    await tiers_caller.attempt(tiers_caller.budget("r1", processing="flex"), TIERS["nano"], classify_task())
    short = caller(provider, clock, run_timeout_s=120)
    await short.attempt(short.budget("r2", processing="flex"), TIERS["nano"], classify_task())
    assert [request.timeout_s for _, request in provider.calls] == [900.0, 120.0]
