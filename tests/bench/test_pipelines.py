"""The step economics benchmark: its workload builder, its simulator additions and its report arithmetic.

Everything here is pure: no process, no network.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
import step_economics as se
from pipelines import COMPLEXITY, LEVELS, STEPS, Item, Run, all_runs, build, markers, mix
from profiles import ModelBehaviour, find_truths

from nodes.catalog import NODES
from nodes.sandbox import ChatRequest
from nodes.start_tier import COMPLEXITY_EXCERPT_CHARS

ITEMS = build(3000, 7)
RUNS = all_runs(ITEMS)


def test_build_is_fixed_by_its_arguments_and_numbers_runs_in_order() -> None:
    assert build(3000, 7) == ITEMS
    assert build(3000, 11) != ITEMS
    assert len(RUNS) >= 3000 and len(all_runs(ITEMS[:-1])) < 3000
    assert [run.index for run in RUNS] == list(range(len(RUNS)))
    assert all(run.item == item.index for item in ITEMS for run in item.runs)
    assert set(mix(RUNS).steps) == set(STEPS)


def test_items_flow_through_their_pipeline_in_order_and_branch_on_their_truth() -> None:
    order = list(STEPS)
    for item in ITEMS:
        names = [run.step.name for run in item.runs]
        assert all(run.step.design == item.design for run in item.runs)
        assert names == sorted(names, key=order.index) or item.design == "research-synthesis"
        truth = {run.step.name.split("/")[1]: run.truth for run in item.runs}
        if item.design == "support-triage":
            assert names[:2] == ["support-triage/intent", "support-triage/urgency"]
            spam, urgent = truth["intent"]["label"] == "spam", truth["urgency"]["label"] == "urgent"
            escalated = not spam and (truth["intent"]["label"] == "complaint" or urgent)
            assert len(names) == (2 if spam else 3)
            assert ("support-triage/escalation" in names) == escalated
        elif item.design == "document-extraction":
            kind = truth["doc-type"]["label"]
            assert ("document-extraction/fields" in names) == (kind != "other")
            assert ("document-extraction/lines" in names) == (kind in ("invoice", "purchase_order"))
        elif item.design == "content":
            assert ("content/revision" in names) == (truth["review"]["verdict"] == "fail")
        elif item.design == "research-synthesis":
            assert names.count("research-synthesis/sources") in (3, 4, 5)
            assert names[-2:] == ["research-synthesis/synthesis", "research-synthesis/verdict"]


def test_every_step_keeps_its_fixed_fields_and_levels_follow_its_weights() -> None:
    for name, step in STEPS.items():
        mine = [run for run in RUNS if run.step.name == name]
        for run in mine:
            assert {key: run.body[key] for key in step.fixed} == step.fixed
        if len(mine) < 200:
            continue
        counts = Counter(run.level for run in mine)
        for level in LEVELS:
            assert abs(counts[level] / len(mine) - step.expected_share(level)) < 0.08, (name, level)


def test_every_request_is_valid_and_the_complexity_check_sees_its_truth() -> None:
    first = {run.step.name: run for run in reversed(RUNS)}
    assert set(first) == set(STEPS)
    for run in [*RUNS[:400], *first.values()]:
        node = NODES[run.node]
        task = node.task(node.parse(run.request("auto", flex=True)))
        truths = [t.values for t in find_truths(task.user_prompt)]
        assert truths[:2] == [run.truth, {"label": COMPLEXITY[run.level]}]
        if run.node != "judge":  # under auto a judge never takes the check
            check = f'[[truth: {{"label": "{COMPLEXITY[run.level]}"}}]]'
            assert check in task.user_prompt[:COMPLEXITY_EXCERPT_CHARS], run.step.name


def test_markers_tell_the_level() -> None:
    assert markers({"label": "bug"}, "easy") == (
        '[[truth: {"label": "bug"}]]\n[[truth: {"label": "SIMPLE"}]]\n[[level: easy]]\n'
    )
    hard = markers({"text": "T-1"}, "hard", words=40)
    assert hard.startswith('[[truth multi: {"text": "T-1"}]]\n[[truth: {"label": "COMPLEX"}]]\n[[level: hard]]')
    assert hard.endswith("[[words: 40]]\n")
    assert "[[level" not in markers({"a": 1}, "multi") + markers({"a": 1}, "simple")


def test_a_request_carries_its_step_tier_and_flex_only_where_tolerated() -> None:
    intent = next(run for run in RUNS if run.step.name == "support-triage/intent")
    reply = next(run for run in RUNS if run.step.name == "support-triage/reply")
    assert not intent.step.flex and reply.step.flex
    assert intent.request("auto", flex=True)["step"] == "support-triage/intent"
    assert "processing" not in intent.request("auto", flex=True)
    assert reply.request("nano", flex=True)["processing"] == "flex"
    assert "processing" not in reply.request("nano") and "tier" not in reply.request(None)


def run_of(truth: dict[str, Any], name: str = "support-triage/reply") -> Run:
    return Run(0, 0, STEPS[name], {}, truth, "simple")


def test_free_text_is_right_when_it_holds_the_keyword_and_fields_when_equal() -> None:
    assert se.is_correct(run_of({"text": "T-12345"}), {"text": "Your ticket t-12345 is with us."})
    assert not se.is_correct(run_of({"text": "T-12345"}), {"text": "Your ticket is with us."})
    content = run_of({"body": "audit log search"}, "content/draft")
    assert se.is_correct(content, {"title": "x", "body": "Meet Audit Log Search."})
    fields = run_of({"total": 12.0, "currency": "EUR"}, "document-extraction/fields")
    assert se.is_correct(fields, {"total": 12, "currency": "EUR", "vendor": "v"})
    assert not se.is_correct(fields, {"total": 12.5, "currency": "EUR"})
    assert not se.is_correct(fields, None)


VERDICT = {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["pass", "fail"]}}}


def audit_prompt(reference: str, candidate: str) -> str:
    draft = '<input>\n[[truth multi: {"text": "T-777"}]]\n[[truth: {"label": "MODERATE"}]]\nTicket T-777\n</input>'
    return (
        f"<criteria>\n- serves the task in the input at least as well as this reference answer: {reference}\n"
        f"</criteria>\n\n<input>\n{draft}\n</input>\n\n<candidates>\n[0]\n{candidate}\n</candidates>"
    )


def test_text_verdict_fails_a_candidate_only_when_it_lacks_the_reference_keyword() -> None:
    assert se.text_verdict(VERDICT, audit_prompt("About T-777.", "About ticket T-777.")) == "pass"
    assert se.text_verdict(VERDICT, audit_prompt("About T-777.", "About your ticket.")) == "fail"
    assert se.text_verdict(VERDICT, audit_prompt("About it.", "About your ticket.")) == "pass"
    own = '[[truth: {"verdict": "fail"}]]\n' + audit_prompt("About T-777.", "About your ticket.")
    assert se.text_verdict(VERDICT, own) is None
    assert se.text_verdict({"type": "object", "properties": {"label": {}}}, audit_prompt("T-777", "x")) is None
    assert se.text_verdict(VERDICT, 'no blocks [[truth: {"text": "T-777"}]]') is None


CLASSIFY = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["a", "b", "c"]}, "confidence": {"type": "number"}},
    "required": ["label", "confidence"],
    "additionalProperties": False,
}
CHECK = {
    **CLASSIFY,
    "properties": {"label": {"type": "string", "enum": ["SIMPLE", "MODERATE", "COMPLEX"]}, "confidence": {}},
}


def request(text: str, schema: dict[str, Any], key: int = 0) -> ChatRequest:
    messages = [{"role": "system", "content": f"Classify. {key}"}, {"role": "user", "content": text}]
    return ChatRequest(model="m", messages=messages, kind="json_schema", schema=schema, max_tokens=None, seed=7)


def test_levels_take_their_own_rates_and_questions_about_an_item_do_not() -> None:
    profile = ModelBehaviour(correct_rate_simple=0.0, correct_rate_multi=0.0)
    shaper = se.LevelShaper({"m": profile}, {"easy": {"m": 1.0}, "hard": {"m": 1.0}})
    easy = markers({"label": "b"}, "easy")
    hard = markers({"label": "b"}, "hard")
    simple = markers({"label": "b"}, "simple")
    answers = [
        [json.loads(shaper.shape(request(text, CLASSIFY, n), {"label": "a", "confidence": 1}).content)["label"]
         for n in range(20)]
        for text in (easy, hard, simple)
    ]  # fmt: skip
    assert set(answers[0]) == set(answers[1]) == {"b"} and "b" not in answers[2]
    # Tierwise's complexity check quotes the item, level marker and all, and keeps the plain profile.
    checked = shaper.shape(request(easy, CHECK), {"label": "MODERATE", "confidence": 1})
    assert checked is not None and json.loads(checked.content)["label"] != "SIMPLE"
    assert shaper.leveled("other", profile, easy) is profile


def outcome(index: int, correct: bool, cost: str, flex: bool = False) -> se.Outcome:
    price = Decimal(cost)
    return se.Outcome(index, True, True, correct, price, "x", flex_cost=price / 2 if flex else price)


def test_oracle_moves_the_cheapest_wrong_runs_first_until_it_has_enough() -> None:
    runs = [run_of({"text": "k"}) for _ in range(4)]
    runs = [Run(n, n, run.step, {}, run.truth, "simple") for n, run in enumerate(runs)]
    nano = {n: outcome(n, n == 0, "1") for n in range(4)}
    mini = {0: outcome(0, True, "3"), 1: outcome(1, True, "5", flex=True), 2: outcome(2, False, "3")}
    mini[3] = outcome(3, True, "2")
    full = {n: outcome(n, True, "10") for n in range(4)}
    baselines = {"all-nano": nano, "all-mini": mini, "all-full": full}
    assert se.oracle(runs, baselines, 2) == {"cost_usd": "5", "correct": 2, "reached": True, "fixable": 3}
    everything = se.oracle(runs, baselines, None)
    assert (Decimal(everything["cost_usd"]), everything["correct"]) == (Decimal(18), 4)
    flex = se.oracle(runs, baselines, 3, flex=True)
    assert (Decimal(flex["cost_usd"]), flex["correct"]) == (Decimal("6.5"), 3)
    assert not se.oracle(runs, baselines, 5)["reached"]


def test_step_oracle_pins_each_step_to_its_cheapest_tier_within_a_point_of_all_mini() -> None:
    def row(runs: int, right: dict[str, int], cost: dict[str, str]) -> dict[str, Any]:
        return {"runs": runs, "right": Counter(right), "cost": {k: Decimal(v) for k, v in cost.items()}}

    table = {
        "support-triage/intent": row(
            100,
            {"all-mini": 98, "tier-nano": 97, "tier-mini": 99, "tier-full": 99},
            {"tier-nano": "1", "tier-mini": "3"},
        ),
        "pr-review/review": row(
            100,
            {"all-mini": 80, "tier-nano": 60, "tier-mini": 78, "tier-full": 95},
            {"tier-nano": "1", "tier-mini": "3", "tier-full": "10"},
        ),
    }
    found = se.step_oracle(table)
    assert found == {
        "tiers": {"support-triage/intent": "nano", "pr-review/review": "full"},
        "cost_usd": "11",
        "correct": 192,
    }
    # intent tolerates no latency (standard price); the review goes on flex.
    assert se.step_oracle(table, flex=True)["cost_usd"] == "6.0"


def test_best_pinning_trades_a_little_correctness_on_one_step_for_cost_overall() -> None:
    def row(right: tuple[int, int, int], cost: tuple[str, str, str]) -> dict[str, Any]:
        return {
            "right": {f"tier-{tier}": r for tier, r in zip(se.LADDER, right, strict=True)},
            "cost": {f"tier-{tier}": c for tier, c in zip(se.LADDER, cost, strict=True)},
        }

    table = {
        "support-triage/intent": row((95, 99, 99), ("1", "3", "10")),  # nano 4 behind mini, for 2 less
        "pr-review/review": row((60, 90, 95), ("1", "3", "10")),
    }
    assert se.step_oracle_at(table, 189) == {
        "tiers": {"support-triage/intent": "mini", "pr-review/review": "mini"},
        "cost_usd": "6",
        "correct": 189,
        "reached": True,
    }
    cheaper = se.step_oracle_at(table, 185)
    assert (cheaper["tiers"]["support-triage/intent"], cheaper["cost_usd"], cheaper["correct"]) == ("nano", "4", 185)
    # The most right answers: intent on mini at standard prices (no flex), the review on full at flex prices.
    assert se.step_oracle_at(table, 194, flex=True)["cost_usd"] == "8.0"
    assert not se.step_oracle_at(table, 195)["reached"]


def test_shortfall_puts_each_step_beside_its_oracle_tier() -> None:
    def row(start: dict[str, int], cost: dict[str, str]) -> dict[str, Any]:
        return {"runs": sum(start.values()), "start": {"auto-flex": start}, "cost": cost}

    report = {
        "by_step": {
            "support-triage/intent": row({"mini": 8, "nano": 2}, {"auto-flex": "3", "tier-nano": "1"}),
            "pr-review/review": row({"mini": 10}, {"auto-flex": "2", "tier-full": "10"}),
        },
        "step_oracle": {
            "flex": {"tiers": {"support-triage/intent": "nano", "pr-review/review": "full"}, "cost_usd": "6"}
        },
        "steady": {"auto-flex": {"audit_cost_usd": "0.5"}},
    }
    gap = se.shortfall(report, "auto-flex")
    assert [(r["step"], r["start"], r["place"], r["excess_usd"]) for r in gap["rows"]] == [
        ("support-triage/intent", "mini", "above", "2"),  # intent tolerates no latency: standard price
        ("pr-review/review", "mini", "below", "-3.0"),  # the review goes on flex: half of tier-full's 10
    ]
    assert gap["excess_usd"] == {"above": "2", "at": "0", "below": "-3.0"}
    assert se.money("-3.0") == "-$3.0000"


def test_waves_hold_whole_items_and_at_least_the_size() -> None:
    groups = se.waves(ITEMS[:60], 50)
    assert [item for group in groups for item in group] == ITEMS[:60]
    assert all(sum(len(item.runs) for item in group) >= 50 for group in groups[:-1])
    assert all(sum(len(item.runs) for item in group[:-1]) < 50 for group in groups)


def test_decision_timeline_keeps_only_the_changes() -> None:
    history = [
        se.Wave(0, 99, Decimal(0), 0, {"a": None}),
        se.Wave(100, 199, Decimal(0), 0, {"a": "mini", "b": None}),
        se.Wave(200, 299, Decimal(0), 0, {"a": "mini", "b": "nano"}),
    ]
    assert se.decision_timeline(history) == {"a": [(100, None), (200, "mini")], "b": [(200, None), (300, "nano")]}


def test_learning_curve_sums_waves_and_compares_with_all_mini_on_the_same_runs() -> None:
    mine = {n: outcome(n, n % 2 == 0, "1") for n in range(4)}
    mini = {n: outcome(n, True, "4") for n in range(4)}
    history = [se.Wave(0, 1, Decimal("0.5"), 1, {}), se.Wave(2, 3, Decimal("1.5"), 2, {})]
    rows = se.learning_curve(history, mine, mini)
    assert [(row["runs"], row["correct"], row["mini_correct"]) for row in rows] == [(2, 1, 2), (2, 1, 2)]
    (block,) = se.curve(rows, every=2)
    assert block["runs"] == "0-3"
    assert (block["cost_vs_mini"], block["audit_vs_mini"], block["correctness"]) == (6 / 16, 2 / 16, 0.5)
    assert block["tier_mix"] == {"nano": 0.0, "mini": 0.0, "full": 0.0}  # the outcomes' tier is "x"


def test_summary_counts_items_right_only_when_every_run_is() -> None:
    step = STEPS["support-triage/intent"]
    items = [
        Item(0, "support-triage", (Run(0, 0, step, {}, {}, "easy"), Run(1, 0, step, {}, {}, "easy"))),
        Item(1, "support-triage", (Run(2, 1, step, {}, {}, "easy"),)),
    ]
    outcomes = [outcome(0, True, "1"), outcome(1, False, "2"), outcome(2, True, "3", flex=True)]
    summary = se.summarise(outcomes, items)
    assert (summary["items"], summary["items_right"], summary["correct"]) == (2, 1, 2)
    assert (summary["cost_usd"], se.summarise(outcomes, items, flex=True)["cost_usd"]) == ("6", "4.5")


def verdict_report(auto_cost: str, auto_right: float, oracle_cost: str) -> dict[str, Any]:
    def arm(cost: str, right: float) -> dict[str, Any]:
        return {"standard_cost_usd": cost, "total_cost_usd": cost, "correctness": right, "validity": 1.0,
                "explicit_errors": 0}  # fmt: skip

    return {
        "steady": {"all-mini": arm("10", 0.95), "all-full": arm("40", 0.97), "auto": arm(auto_cost, auto_right)},
        "oracle": {"same_correctness": {"auto": {"cost_usd": oracle_cost, "reached": True}}},
    }


@pytest.mark.parametrize(
    ("cost", "right", "oracle_cost", "met"),
    [
        ("5", 0.94, "4", [True, True, True, True]),
        ("5.01", 0.9399, "3.3", [True, False, False, False]),
    ],
)
def test_verdicts_hold_each_configuration_to_the_targets(
    cost: str, right: float, oracle_cost: str, met: list[bool]
) -> None:
    (found,) = se.verdicts(verdict_report(cost, right, oracle_cost))
    assert found["configuration"] == "auto"
    assert [check["met"] for check in found["checks"].values()] == met


def test_simulator_config_gives_every_tier_its_level_rates_and_flex_refusals() -> None:
    config = se.StepSimulatorConfig.model_validate(se.simulator_config(7))
    assert config.sandbox().faults[0].kind == "resource_unavailable"
    for tier, settings in se.TIERS.items():
        assert config.behaviour[settings.model].latency_ms == 0
        assert config.levels["hard"][settings.model] == se.LEVEL_RATES["hard"][tier]
