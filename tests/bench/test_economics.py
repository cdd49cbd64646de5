"""The economics benchmark's arithmetic: the targets' verdicts, the oracle bound and the audit report."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import economics


def run(correct: bool, cost: str) -> dict[str, Any]:
    return {"correct": correct, "cost": Decimal(cost)}


def configs(mini_cost: str, full_cost: str, mini_correct: int, runs: int) -> dict[str, Any]:
    return {
        "all-mini": {"cost_usd": mini_cost, "correct": mini_correct, "correctness": mini_correct / runs},
        "all-full": {"cost_usd": full_cost},
    }


def test_cost_and_correctness_verdicts() -> None:
    c = configs("1.00", "4.00", 90, 100)
    assert economics.cost_verdicts(Decimal("0.35"), c) == {"cost_vs_mini": "35.0% (met)", "cost_vs_full": "8.8% (met)"}
    assert economics.cost_verdicts(Decimal("0.41"), c) == {
        "cost_vs_mini": "41.0% (missed)",
        "cost_vs_full": "10.2% (missed)",
    }
    assert economics.correctness_verdict(0.88, c) == "-2.0 points (met)"
    assert economics.correctness_verdict(0.87, c) == "-3.0 points (missed)"


def test_oracle_takes_the_cheapest_fixes_first() -> None:
    # 100 runs: nano right on 80; of its 20 misses, mini fixes 15 (cheap ones first), full 3 more, 2 nobody.
    nano = [run(True, "0.001")] * 80 + [run(False, "0.001")] * 20
    mini = [run(True, "0.004")] * 80 + [run(True, "0.003")] * 10 + [run(True, "0.009")] * 5 + [run(False, "0.004")] * 5
    full = [run(True, "0.010")] * 95 + [run(True, "0.020")] * 3 + [run(False, "0.010")] * 2
    baselines = {"all-nano": nano, "all-mini": mini, "all-full": full}
    c = configs("0.40", "1.00", 95, 100)  # budget: min(35% of 0.40, 10% of 1.00) = 0.10
    bound = economics.oracle(baselines, c)
    assert bound["fixable_runs"] == 18
    assert bound["budget_usd"] == "0.1000"
    assert bound["needed_right"] == 93
    # 13 fixes reach 93 right: 10 at +0.002 and 3 at +0.008, on top of nano's 0.100.
    within_band = bound["cheapest_within_band"]
    assert (Decimal(within_band["cost_usd"]), within_band["correct"]) == (Decimal("0.144"), 93)
    assert within_band["correctness_vs_mini"] == "-2.0 points (met)"
    assert within_band["cost_vs_full"] == "14.4% (missed)"
    # nano alone already spends the whole budget.
    within_budget = bound["best_within_budget"]
    assert (Decimal(within_budget["cost_usd"]), within_budget["correct"]) == (Decimal("0.100"), 80)


def test_oracle_within_budget_stops_at_the_budget() -> None:
    nano = [run(False, "0.001")] * 10
    mini = [run(True, "0.002")] * 10
    full = [run(True, "0.005")] * 10
    c = configs("0.05", "1.00", 10, 10)  # budget: min(0.35 * 0.05, 0.10) = 0.0175
    bound = economics.oracle({"all-nano": nano, "all-mini": mini, "all-full": full}, c)
    # nano costs 0.010; each fix adds 0.001, so 7 fit.
    assert bound["best_within_budget"]["correct"] == 7
    assert Decimal(bound["best_within_budget"]["cost_usd"]) == Decimal("0.017")
    assert bound["cheapest_within_band"]["correct"] == 10


def test_audit_report_puts_the_audit_beside_the_truth() -> None:
    items = [SimpleNamespace(index=n, node=node) for n, node in enumerate(["classify", "classify", "extract"])]
    results = {
        "tierwise-nano": [
            {"correct": True, "output": {"label": "a"}},
            {"correct": False, "output": {"label": "b"}},
            {"correct": True, "output": {"x": 1}},
        ],
        "all-mini": [{"correct": True}, {"correct": True}, {"correct": False}],
    }
    audited_runs = [{"index": 0, "output": {"label": "a"}}, {"index": 2, "output": {"x": 2}}]
    audit = {"audited": 2, "agreement": 0.5, "cost_usd": "0.001", "recommendation": "classify on nano: ..."}
    stats = {
        "totals": {"audit_cost_usd": "0.001"},
        "rows": [
            {"node": "classify", "tier": "nano", "runs": 2, "audit": audit},
            {"node": "extract", "tier": "nano", "runs": 1, "audit": {**audit, "audited": 0}},
        ],
    }
    report = economics.audit_report(items, stats, audited_runs, results)  # type: ignore[arg-type]
    assert report["rows"] == [{"node": "classify", "tier": "nano", "runs": 2, **audit}]
    assert report["truth"] == {
        "classify": {"runs": 2, "nano_right": 1, "mini_right": 2},
        "extract": {"runs": 1, "nano_right": 1, "mini_right": 0},
    }
    assert report["same_answers_as_tierwise_nano"] == "1 of 2"
    assert (report["rate"], report["cost_usd"]) == (economics.AUDIT_RATE, "0.001")


def test_oracle_can_start_from_tierwise_own_answers() -> None:
    # Tierwise's runs already fixed two of nano's misses (at a small cost); the oracle moves only what is still wrong.
    nano = [run(True, "0.001")] * 6 + [run(False, "0.001")] * 4
    tierwise = [run(True, "0.001")] * 6 + [run(True, "0.002")] * 2 + [run(False, "0.002")] * 2
    mini = [run(True, "0.005")] * 10
    full = [run(True, "0.020")] * 10
    c = configs("1.00", "1.00", 10, 10)
    baselines = {"all-nano": nano, "all-mini": mini, "all-full": full}
    from_tierwise = economics.oracle(baselines, c, tierwise)
    assert from_tierwise["fixable_runs"] == 2
    # needed: 10 right; tierwise spends 0.014 for 8, each move adds 0.003.
    band = from_tierwise["cheapest_within_band"]
    assert (Decimal(band["cost_usd"]), band["correct"]) == (Decimal("0.020"), 10)
    assert economics.oracle(baselines, c)["fixable_runs"] == 4
