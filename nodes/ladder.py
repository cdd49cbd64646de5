"""The escalation ladder: the tiers a run may climb, and the outcomes that make it climb.

    nano ──▶ mini ──▶ full          from the starting tier up to the request's max_tier

A tier that gives up (``nodes.attempts``) with an outcome in ``escalate_on`` passes the task to the
next rung. The best answer given with too little confidence is kept as a fallback: if no tier does
better, it is returned with a warning rather than failing the run. When the last rung gives up, or
the run's attempt cap is reached with no fallback, one ``RunFailed`` is raised carrying every
attempt of the run; past the deadline, ``RunDeadlineExceeded``. Nothing else in the service decides
to escalate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from nodes.attempts import RunBudget, TierCaller, TierResult
from nodes.catalog import Task
from nodes.checks import Accepted, Outcome, Rejection
from nodes.confidence import Confidence
from nodes.errors import FieldIssue, InvalidRequest, RunDeadlineExceeded, RunFailed
from nodes.lanes import Lane
from nodes.tiers import LADDER, Tier, TierName

ESCALATE_ON: frozenset[Outcome] = frozenset(
    {
        "invalid_output",
        "low_confidence",
        "refusal",
        "truncated",
        "rate_limited",
        "unavailable",
        "upstream_error",
        "timeout",
    }
)


@dataclass(frozen=True)
class Answer:
    """The output a run returns, the tier and model that gave it, and anything the caller should know."""

    output: Any
    tier: TierName
    model: str
    warnings: tuple[str, ...] = ()
    confidence: Confidence | None = None


@dataclass(frozen=True)
class Ladder:
    """The rungs (tiers bound to endpoints) and the outcomes that climb them."""

    tiers: Mapping[TierName, Tier]
    escalate_on: frozenset[Outcome] = field(default=ESCALATE_ON)

    def rungs(self, start: TierName, ceiling: TierName) -> list[Tier]:
        """The tiers from ``start`` up to ``ceiling`` inclusive (just ``start`` if it is above the ceiling)."""
        first, last = LADDER.index(start), LADDER.index(ceiling)
        return [self.tiers[name] for name in LADDER[first : max(first, last) + 1]]

    def refuse_missing_lane(self, lane: Lane, lowest: TierName, ceiling: TierName) -> None:
        """Raise ``InvalidRequest`` unless every tier a run may use, ``lowest`` to ``ceiling``, offers ``lane``."""
        for tier in self.rungs(lowest, ceiling):
            if not tier.offers(lane):
                upper = tier.name.upper()
                raise InvalidRequest(
                    f"processing: the {tier.name} tier ({tier.model}) has no {lane} lane, and this run may use it; "
                    f"send processing standard, keep max_tier below {tier.name}, or set TIERWISE_{upper}_LANES "
                    f"if its endpoint offers {lane}",
                    errors=[FieldIssue(("processing",), f"the {tier.name} tier has no {lane} lane")],
                )

    async def climb(self, caller: TierCaller, run: RunBudget, task: Task, start: TierName, ceiling: TierName) -> Answer:
        """Work ``task`` from ``start`` up to ``ceiling`` until a tier's answer is accepted."""
        fallback: TierResult | None = None
        try:
            for tier in self.rungs(start, ceiling):
                result = await caller.attempt(run, tier, task)
                if isinstance(result.verdict, Accepted):
                    return Answer(result.verdict.value, result.tier, result.model, confidence=result.verdict.confidence)
                fallback = _better_fallback(fallback, result)
                if result.verdict.outcome not in self.escalate_on:
                    break
        except RunDeadlineExceeded:
            raise
        except RunFailed:
            if fallback is None:
                raise
        if fallback is not None:
            return _fallback_answer(fallback)
        raise RunFailed("every allowed tier failed", attempts=run.attempts)


def _confidence(result: TierResult) -> float:
    verdict = result.verdict
    value = verdict.fallback if isinstance(verdict, Rejection) else None
    return float(value.get("confidence", 0)) if isinstance(value, dict) else 0.0


def _better_fallback(kept: TierResult | None, result: TierResult) -> TierResult | None:
    """The more confident of two fallback answers (the higher tier's on a tie)."""
    if not isinstance(result.verdict, Rejection) or result.verdict.fallback is None:
        return kept
    if kept is None or _confidence(result) >= _confidence(kept):
        return result
    return kept


def _fallback_answer(result: TierResult) -> Answer:
    assert isinstance(result.verdict, Rejection)
    if result.verdict.note is not None:
        warning = f"{result.verdict.note}; this is the answer of {result.tier}"
    else:
        warning = (
            f"confidence {_confidence(result):g} is below min_confidence on every allowed tier; "
            f"this is the most confident answer (from {result.tier})"
        )
    return Answer(result.verdict.fallback, result.tier, result.model, (warning,), result.verdict.confidence)
