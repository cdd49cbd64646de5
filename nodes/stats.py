"""Where the money goes: per node and tier, what ran, what it cost, and what it would have cost on full.

Everything is computed from the run log (``runs``, ``attempts``) and the routing audit (``audits``)
over a period, for the runs of one API key. Per node and starting tier: runs, the mix of tiers that
answered, how often and why runs escalated, how often each tier's replies were valid, p50/p95
latency, cost against the all-full baseline, and — where audited — how often the tier agreed with
the tier above, with a recommendation in words. In the totals, the spend on each tier: every model
call made there, failed attempts, repairs, escalations and routing checks included.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from nodes.cost import usd_text
from nodes.errors import FieldIssue, InvalidRequest
from nodes.steps import StepBook
from nodes.store import Store, utc_stamp
from nodes.tiers import LADDER

DEFAULT_PERIOD = timedelta(hours=24)
STEPS_PERIOD = timedelta(days=30)
KEEP_AGREEMENT = 0.95
MIN_AUDITS_FOR_ADVICE = 20
ANSWER_OUTCOMES = ("ok", "invalid_output", "low_confidence", "refusal", "truncated")
_DURATION = re.compile(r"^(\d+)([mhd])$")


@dataclass(frozen=True)
class Period:
    """A half-open time window ``[since, until)`` in UTC."""

    since: datetime
    until: datetime

    def bounds(self) -> tuple[str, str]:
        """The window as the text form stored in ``created_at``."""
        return utc_stamp(self.since), utc_stamp(self.until)


def parse_period(
    since: str | None, until: str | None, *, now: datetime | None = None, default: timedelta = DEFAULT_PERIOD
) -> Period:
    """Read ``since``/``until`` as ISO 8601 times or as ``30m``/``24h``/``7d`` ago; default: the last ``default``."""
    now = now or datetime.now(UTC)

    def read(name: str, value: str | None, default: datetime) -> datetime:
        if value is None or not value.strip():
            return default
        match = _DURATION.match(value.strip())
        if match:
            unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
            try:
                return now - timedelta(**{unit: int(match.group(1))})
            except (OverflowError, ValueError) as exc:  # before year 1, or more digits than an int takes
                message = "is further back than dates go; use a shorter duration such as 30d"
                raise InvalidRequest(f"{name}: {message}", errors=[FieldIssue(("query", name), message)]) from exc
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            message = "must be an ISO 8601 time (2026-11-21T09:00:00Z) or a duration ago such as 30m, 24h or 7d"
            raise InvalidRequest(f"{name}: {message}", errors=[FieldIssue(("query", name), message)]) from exc
        try:
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        except OverflowError as exc:  # 0001-01-01T00:00+14:00 is still year 0 in UTC
            message = "is outside the dates that can be compared; use a time between the years 1 and 9999 in UTC"
            raise InvalidRequest(f"{name}: {message}", errors=[FieldIssue(("query", name), message)]) from exc

    period = Period(read("since", since, now - default), read("until", until, now))
    if period.since >= period.until:
        raise InvalidRequest("since must be before until", errors=[FieldIssue(("query", "since"), "after until")])
    return period


def percentile(values: list[int], q: float) -> int | None:
    """The nearest-rank percentile ``q`` (0–100) of ``values``, or None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def recommendation(node: str, tier: str, audited: int, agreement: float | None) -> str | None:
    """Advice in words from the audit: keep the tier, or start one higher."""
    if agreement is None or tier == "full":
        return None
    above = LADDER[LADDER.index(tier) + 1]
    share = f"{agreement:.0%}"
    if audited < MIN_AUDITS_FOR_ADVICE:
        return f"{node} on {tier}: {share} agreement with {above} on {audited} audited runs; too few to advise yet"
    if agreement >= KEEP_AGREEMENT:
        return f"{node} on {tier} agrees with {above} on {share} of {audited} audited runs: keep"
    return f"{node} on {tier}: {share} agreement with {above} on {audited} audited runs: start on {above}"


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


class Stats:
    """Aggregates the run log for ``GET /v1/stats`` and the dashboard."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def report(self, key_id: str, period: Period) -> dict[str, Any]:
        """The full report for one key over one period."""
        since, until = period.bounds()
        runs = await self.store.fetchall(
            "SELECT run_id, node, status, start_tier, final_tier, escalated, cost_usd, baseline_cost_usd, latency_ms "
            "FROM runs WHERE key_id = ? AND created_at >= ? AND created_at < ?",
            (key_id, since, until),
        )
        attempts = await self.store.fetchall(
            "SELECT r.node, a.run_id, a.tier, a.outcome, a.cost_usd FROM attempts a JOIN runs r ON r.run_id = a.run_id "
            "WHERE r.key_id = ? AND r.created_at >= ? AND r.created_at < ?",
            (key_id, since, until),
        )
        audits = await self.store.fetchall(
            "SELECT au.node, au.tier, au.agreed, au.cost_usd FROM audits au JOIN runs r ON r.run_id = au.run_id "
            "WHERE r.key_id = ? AND au.created_at >= ? AND au.created_at < ?",
            (key_id, since, until),
        )
        reasons: dict[str, Counter[str]] = defaultdict(Counter)
        outcomes: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        spent_on: dict[str, Decimal] = {tier: Decimal(0) for tier in LADDER}
        for row in attempts:
            outcomes[(row["node"], row["tier"])][row["outcome"]] += 1
            spent_on[row["tier"]] += Decimal(row["cost_usd"])
            if row["outcome"] != "ok":
                reasons[row["run_id"]][row["outcome"]] += 1
        audit_rows: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for row in audits:
            audit_rows[(row["node"], row["tier"])].append(row)

        groups: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for row in runs:
            groups[(row["node"], row["start_tier"])].append(row)
        keys = sorted(set(groups) | set(outcomes) | set(audit_rows), key=lambda k: (k[0], LADDER.index(k[1])))
        rows = [self._row(node, tier, groups[(node, tier)], outcomes[(node, tier)], audit_rows[(node, tier)], reasons)
                for node, tier in keys]  # fmt: skip
        cost = sum((Decimal(r["cost_usd"]) for r in runs), Decimal(0))
        baseline = sum((Decimal(r["baseline_cost_usd"]) for r in runs), Decimal(0))
        audit_cost = sum((Decimal(r["cost_usd"]) for r in audits), Decimal(0))
        return {
            "since": period.since.isoformat().replace("+00:00", "Z"),
            "until": period.until.isoformat().replace("+00:00", "Z"),
            "totals": {
                "runs": len(runs),
                "succeeded": sum(1 for r in runs if r["status"] == "succeeded"),
                "failed": sum(1 for r in runs if r["status"] != "succeeded"),
                "cost_usd": usd_text(cost),
                "baseline_cost_usd": usd_text(baseline),
                "savings_usd": usd_text(baseline - cost),
                "savings_share": _ratio_decimal(baseline - cost, baseline),
                "cost_by_tier": {tier: usd_text(amount) for tier, amount in spent_on.items()},
                "audit_cost_usd": usd_text(audit_cost),
                "audited_runs": len(audits),
            },
            "rows": rows,
        }

    def _row(
        self,
        node: str,
        tier: str,
        runs: list[Any],
        outcomes: Counter[str],
        audits: list[Any],
        reasons: dict[str, Counter[str]],
    ) -> dict[str, Any]:
        escalated = [r for r in runs if r["escalated"]]
        escalation_reasons: Counter[str] = Counter()
        for r in escalated:
            escalation_reasons.update(reasons.get(r["run_id"], Counter()))
        cost = sum((Decimal(r["cost_usd"]) for r in runs), Decimal(0))
        baseline = sum((Decimal(r["baseline_cost_usd"]) for r in runs), Decimal(0))
        latencies = [int(r["latency_ms"]) for r in runs]
        answers = sum(outcomes[o] for o in ANSWER_OUTCOMES)
        judged = [a for a in audits if a["agreed"] is not None]
        agreement = _ratio(sum(1 for a in judged if a["agreed"]), len(judged))
        return {
            "node": node,
            "tier": tier,
            "runs": len(runs),
            "succeeded": sum(1 for r in runs if r["status"] == "succeeded"),
            "tier_mix": dict(Counter(r["final_tier"] for r in runs if r["final_tier"])),
            "escalated": len(escalated),
            "escalation_rate": _ratio(len(escalated), len(runs)),
            "escalation_reasons": dict(escalation_reasons),
            "calls": sum(outcomes.values()),
            "outcomes": dict(outcomes),
            "validity_rate": _ratio(outcomes["ok"] + outcomes["low_confidence"], answers),
            "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
            "cost_usd": usd_text(cost),
            "baseline_cost_usd": usd_text(baseline),
            "savings_usd": usd_text(baseline - cost),
            "audit": {
                "audited": len(judged),
                "agreement": agreement,
                "cost_usd": usd_text(sum((Decimal(a["cost_usd"]) for a in audits), Decimal(0))),
                "recommendation": recommendation(node, tier, len(judged), agreement),
            },
        }


def _ratio_decimal(part: Decimal, whole: Decimal) -> float | None:
    return round(float(part / whole), 4) if whole else None


async def steps_report(store: Store, book: StepBook, key_id: str, period: Period) -> dict[str, Any]:
    """``GET /v1/steps``: each step's runs, what it cost, where ``tier: auto`` starts it and why, its audits."""
    since, until = period.bounds()
    runs = await store.fetchall(
        "SELECT step, node, cost_usd, baseline_cost_usd, input_tokens, cached_input_tokens FROM runs "
        "WHERE key_id = ? AND step IS NOT NULL AND created_at >= ? AND created_at < ?",
        (key_id, since, until),
    )
    audit_costs = await store.fetchall(
        "SELECT step, cost_usd FROM audits "
        "WHERE key_id = ? AND step IS NOT NULL AND created_at >= ? AND created_at < ?",
        (key_id, since, until),
    )
    spent_on_audits: dict[str, Decimal] = defaultdict(Decimal)
    for row in audit_costs:
        spent_on_audits[row["step"]] += Decimal(row["cost_usd"])
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in runs:
        grouped[row["step"]].append(row)
    steps = []
    for step in sorted(grouped):
        rows = grouped[step]
        cost = sum((Decimal(r["cost_usd"]) for r in rows), Decimal(0))
        baseline = sum((Decimal(r["baseline_cost_usd"]) for r in rows), Decimal(0))
        tokens = sum(int(r["input_tokens"]) for r in rows)
        cached = sum(int(r["cached_input_tokens"]) for r in rows)
        evidence = await book.evidence(key_id, step)
        decision = book.policy.decide(step, evidence)
        steps.append(
            {
                "step": step,
                "node": rows[0]["node"],
                "runs": len(rows),
                "start_tier": decision[0] if decision else None,
                "reason": decision[1]
                if decision
                else (
                    f"step {step}: too few audited runs yet ({book.policy.min_audits} per tier needed); under tier "
                    "auto the free rules and the nano check decide"
                ),
                "audit": {
                    tier: {
                        "audited": seen.audited,
                        "agreement": _ratio(seen.agreed, seen.audited),
                        "lower_bound": round(seen.lower_bound, 4),
                    }
                    for tier, seen in sorted(evidence.items(), key=lambda item: LADDER.index(item[0]))
                },
                "audit_cost_usd": usd_text(spent_on_audits.get(step, Decimal(0))),
                "cost_usd": usd_text(cost),
                "baseline_cost_usd": usd_text(baseline),
                "savings_usd": usd_text(baseline - cost),
                "cached_input_share": _ratio(cached, tokens),
            }
        )
    return {
        "since": period.since.isoformat().replace("+00:00", "Z"),
        "until": period.until.isoformat().replace("+00:00", "Z"),
        "steps": steps,
    }
