"""Steps: what a request belongs to, and the tier each step has earned from its own audited traffic.

A **step** is one position in a caller's pipeline — the same node asked the same thing thousands of
times (``support-triage/intent``). A request names its step in the ``step`` field, or gets one from its
fingerprint: the node and what makes the task the same task (instructions, labels, schema, format),
never the material being worked on. Difficulty is mostly a property of the step, so under ``tier:
auto`` each step starts on the cheapest tier its evidence supports:

* the routing audit re-runs a sample of a step's runs on the neighbouring tier and records whether the
  two answers agree (``nodes.audit``); for each cheaper tier the evidence is *k of n audited runs agreed
  with the tier above*;
* a tier is **earned** when the one-sided 95% Wilson lower bound on its agreement clears
  ``TIERWISE_STEP_AGREEMENT`` (0.9) over at least ``TIERWISE_STEP_MIN_AUDITS`` (30) audited runs, and
  **short** when the upper bound is below it: proof either way, one to move down, one to move up;
* the step starts on the cheapest earned tier; a tier that is short sends the step to the tier above it,
  where it stays unless that tier is short too; while the cheapest tier is neither, the free rules and the
  nano check decide (the cold start). Agreement that is neither proven nor refuted never moves a step up:
  a step is not put on a dearer tier for want of evidence;
* only recent evidence counts (the last ``EVIDENCE_WINDOW`` audits per tier), so a step whose inputs
  drift is moved up or down as the agreement moves.

Every decision carries its reason with the numbers ("step support-triage/intent: nano agrees with mini
on 96% of 180 audited runs (lower bound 92%) → nano").

The same audits calibrate the step's confidences: each records the probability the cheaper tier's
tokens gave its answer, and per tier those (probability, agreed) pairs fit the map that
``nodes.confidence`` reads a new answer's probability through.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodes.confidence import Calibration
from nodes.store import Store
from nodes.tiers import LADDER, TierName

EVIDENCE_WINDOW = 500
Z_95 = 1.6448536269514722
"""One-sided 95%: the bound a claim of "at least" (or "below") is held to."""


def fingerprint(node: str, parts: dict[str, Any]) -> str:
    """The default step of a request: its node and a short hash of what makes it the same task."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"{node}/{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def wilson_upper_bound(agreed: int, audited: int, z: float = Z_95) -> float:
    """The upper end of the Wilson score interval for ``agreed`` of ``audited`` (1 when nothing was audited)."""
    if audited <= 0:
        return 1.0
    return 1.0 - wilson_lower_bound(audited - agreed, audited, z)


def wilson_lower_bound(agreed: int, audited: int, z: float = Z_95) -> float:
    """The lower end of the Wilson score interval for ``agreed`` of ``audited`` (0 when nothing was audited)."""
    if audited <= 0:
        return 0.0
    p = agreed / audited
    denominator = 1 + z * z / audited
    centre = p + z * z / (2 * audited)
    margin = z * math.sqrt(p * (1 - p) / audited + z * z / (4 * audited * audited))
    return min(p, max(0.0, (centre - margin) / denominator))  # the clamp absorbs rounding at p = 0 and p = 1


@dataclass(frozen=True)
class Evidence:
    """How often ``tier`` agreed with the tier above it, over the step's recent audits."""

    tier: TierName
    audited: int
    agreed: int

    @property
    def agreement(self) -> float | None:
        """The share that agreed, or None before any audit."""
        return self.agreed / self.audited if self.audited else None

    @property
    def lower_bound(self) -> float:
        """The one-sided 95% Wilson lower bound on the agreement."""
        return wilson_lower_bound(self.agreed, self.audited)

    @property
    def upper_bound(self) -> float:
        """The one-sided 95% Wilson upper bound on the agreement."""
        return wilson_upper_bound(self.agreed, self.audited)

    def describe(self, *, upper: bool = False) -> str:
        """The evidence in words, for a decision's reason (with the bound that decided it)."""
        above = LADDER[LADDER.index(self.tier) + 1]
        share = f"{self.agreement:.0%}" if self.agreement is not None else "n/a"
        bound = f"upper bound {self.upper_bound:.0%}" if upper else f"lower bound {self.lower_bound:.0%}"
        return f"{self.tier} agrees with {above} on {share} of {self.audited} audited runs ({bound})"


@dataclass(frozen=True)
class StepPolicy:
    """When a tier counts as earned."""

    agreement: float = 0.9
    min_audits: int = 30

    def earned(self, evidence: Evidence) -> bool:
        """True when ``evidence`` shows the tier right often enough, with enough audits to be sure."""
        return evidence.audited >= self.min_audits and evidence.lower_bound >= self.agreement

    def short(self, evidence: Evidence) -> bool:
        """True when ``evidence`` shows the tier agreeing less often than needed, with enough audits to be sure."""
        return evidence.audited >= self.min_audits and evidence.upper_bound < self.agreement

    def settled(self, evidence: Evidence) -> bool:
        """True when there is enough evidence about the tier to stop auditing it at the higher, learning rate."""
        return evidence.audited >= self.min_audits

    def decide(self, step: str, evidence: dict[TierName, Evidence]) -> tuple[TierName, str] | None:
        """The tier a step starts on and why, or None while the evidence cannot decide yet (cold start).

        A tier shown short is not started on again until new evidence clears it; the tier above it is then
        the floor, and the step stays there unless that tier is shown short too.
        """
        failed: list[str] = []
        for tier in LADDER[:-1]:
            seen = evidence.get(tier, Evidence(tier, 0, 0))
            if self.earned(seen):
                return tier, f"step {step}: {'; '.join([*failed, seen.describe()])} → {tier}"
            if not self.short(seen):
                if not failed:
                    return None
                why = "too few yet" if not self.settled(seen) else "not shown short"
                return tier, f"step {step}: {'; '.join(failed)} → {tier} (its own audits: {why})"
            failed.append(seen.describe(upper=True))
        return LADDER[-1], f"step {step}: {'; '.join(failed)} → {LADDER[-1]}"


def lower_of(tier: str, audit_tier: str) -> TierName:
    """The cheaper of an audited run's tier and its audit's tier: whose agreement the audit measures."""
    lower = min(LADDER.index(tier), LADDER.index(audit_tier))
    return LADDER[lower]


class StepBook:
    """Each step's evidence, read from the audits every instance writes, and the tier it earns.

    Evidence is read at most every ``cache_s`` seconds per step and process (it changes by one audit
    at a time), so a step's decision costs one query now and then, not one per request.
    """

    def __init__(
        self, store: Store, policy: StepPolicy, *, cache_s: float = 15.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.store = store
        self.policy = policy
        self.cache_s = cache_s
        self.clock = clock
        self._cache: dict[tuple[str, str], tuple[float, dict[TierName, Evidence], dict[TierName, Calibration]]] = {}

    async def evidence(self, key_id: str, step: str) -> dict[TierName, Evidence]:
        """How often each cheaper tier agreed with the one above on this step's recent audits."""
        return (await self._read(key_id, step))[0]

    async def calibrations(self, key_id: str, step: str) -> dict[TierName, Calibration]:
        """Per cheaper tier, the map from its token probabilities to how often its answers held up in audits."""
        return (await self._read(key_id, step))[1]

    async def _read(self, key_id: str, step: str) -> tuple[dict[TierName, Evidence], dict[TierName, Calibration]]:
        cached = self._cache.get((key_id, step))
        if cached is not None and self.clock() - cached[0] < self.cache_s:
            return cached[1], cached[2]
        rows = await self.store.fetchall(
            "SELECT tier, audit_tier, agreed, cheaper_probability FROM audits "
            "WHERE key_id = ? AND step = ? AND agreed IS NOT NULL ORDER BY created_at DESC LIMIT ?",
            (key_id, step, EVIDENCE_WINDOW * (len(LADDER) - 1)),
        )
        counts: dict[TierName, list[int]] = {}
        outcomes: dict[TierName, list[tuple[float, bool]]] = {}
        for row in rows:
            tier = lower_of(row["tier"], row["audit_tier"])
            seen = counts.setdefault(tier, [0, 0])
            if seen[0] < EVIDENCE_WINDOW:
                seen[0] += 1
                seen[1] += int(row["agreed"])
                if row["cheaper_probability"] is not None:
                    outcomes.setdefault(tier, []).append((float(row["cheaper_probability"]), bool(row["agreed"])))
        evidence = {tier: Evidence(tier, audited, agreed) for tier, (audited, agreed) in counts.items()}
        fitted = {tier: Calibration.fit(pairs, min_outcomes=self.policy.min_audits) for tier, pairs in outcomes.items()}
        calibrations = {tier: fit for tier, fit in fitted.items() if fit is not None}
        self._cache[(key_id, step)] = (self.clock(), evidence, calibrations)
        return evidence, calibrations

    def forget(self, key_id: str, step: str) -> None:
        """Drop the cached evidence of a step (a new audit of it was just stored here)."""
        self._cache.pop((key_id, step), None)

    async def decide(self, key_id: str, step: str) -> tuple[TierName, str] | None:
        """The tier the step has earned and why, or None while its evidence cannot decide."""
        return self.policy.decide(step, await self.evidence(key_id, step))
