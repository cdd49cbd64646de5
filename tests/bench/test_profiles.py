"""Behaviour profiles: validation, truth markers, seeded rates, wrong answers, confidence and latency."""

from __future__ import annotations

import json
import math
import random
import re
import statistics
from collections import Counter
from typing import Any

import jsonschema
import pytest
from profiles import (
    ConfidenceSpread,
    ModelBehaviour,
    Shaped,
    find_truths,
    find_words,
    is_nested,
    messages_text,
    shape_json,
    shape_text,
)
from pydantic import ValidationError

from nodes.sandbox.synth import synthesize

LABELS = ["billing", "bug", "feature_request", "account", "other"]
CLASSIFY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "label": {"type": "string", "enum": LABELS},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["label", "confidence"],
    "additionalProperties": False,
}
COMPLEXITY: dict[str, Any] = {
    **CLASSIFY,
    "properties": {**CLASSIFY["properties"], "label": {"type": "string", "enum": ["SIMPLE", "MODERATE", "COMPLEX"]}},
}
INVOICE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "vendor": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "vat_id": {"type": "string"}},
            "required": ["name", "vat_id"],
            "additionalProperties": False,
        },
        "total": {"type": "number"},
        "currency": {"type": "string", "enum": ["EUR", "USD"]},
        "paid": {"type": "boolean"},
        "lines": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}},
                "required": ["sku", "quantity"],
                "additionalProperties": False,
            },
        },
        "note": {"type": ["string", "null"]},
    },
    "required": ["vendor", "total", "currency", "paid", "lines", "note"],
    "additionalProperties": False,
}
INVOICE_TRUTH: dict[str, Any] = {
    "vendor": {"name": "Acme GmbH", "vat_id": "DE123456789"},
    "total": 1234.5,
    "currency": "EUR",
    "paid": False,
    "lines": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 5}],
    "note": None,
}
FLAT: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
    "required": ["name", "email"],
    "additionalProperties": False,
}
VERDICT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reasons": {"type": "array", "items": {"type": "string"}, "minItems": 1},
    },
    "required": ["verdict", "score", "reasons"],
    "additionalProperties": False,
}
TEXT: dict[str, Any] = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
    "additionalProperties": False,
}
NANO = ModelBehaviour(
    invalid_json_rate=0.022,
    schema_violation_rate=0.038,
    schema_violation_rate_nested=0.08,
    correct_rate_simple=0.95,
    correct_rate_multi=0.71,
    right_confidence=ConfidenceSpread(mean=0.88, sd=0.07),
    wrong_confidence=ConfidenceSpread(mean=0.72, sd=0.13),
)


def streams(seed: int, key: object) -> Any:
    return lambda aspect: random.Random(f"{seed}|{key}|{aspect}")


def shape(profile: ModelBehaviour, schema: dict[str, Any], text: str, key: object = 0) -> Shaped:
    base = synthesize(schema, random.Random(f"base|{key}"))
    return shape_json(profile, schema, base, text, streams(7, key))


def marker(truth: dict[str, Any], multi: bool = False) -> str:
    return f"[[truth{' multi' if multi else ''}: {json.dumps(truth)}]]"


def leaves(value: Any, path: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    if isinstance(value, dict):
        return {leaf: part for key, child in value.items() for leaf, part in leaves(child, (*path, key)).items()}
    if isinstance(value, list):
        return {leaf: part for i, child in enumerate(value) for leaf, part in leaves(child, (*path, i)).items()}
    return {path: value}


def below(threshold: float, mean: float, sd: float) -> float:
    """P(N(mean, sd) < threshold)."""
    return 0.5 * (1 + math.erf((threshold - mean) / (sd * math.sqrt(2))))


# -- configuration ---------------------------------------------------------------------------------


def test_defaults_are_a_perfect_instant_model() -> None:
    profile = ModelBehaviour()
    assert (profile.invalid_json_rate, profile.schema_violation_rate, profile.nested_rate) == (0, 0, 0)
    assert (profile.correct_rate_simple, profile.correct_rate_multi) == (1, 1)
    assert profile.latency_s(random.Random(0), 100) == 0
    shaped = shape(profile, CLASSIFY, marker({"label": "bug"}))
    assert json.loads(shaped.content) == {"label": "bug", "confidence": 0.9}


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"invalid_json_rate": 0.6, "schema_violation_rate": 0.5}, "invalid_json_rate + schema_violation_rate"),
        ({"invalid_json_rate": 0.6, "schema_violation_rate_nested": 0.5}, "schema_violation_rate_nested"),
        ({"correct_rate_multi": 1.5}, "less than or equal to 1"),
        ({"latency_ms": -1}, "greater than or equal to 0"),
        ({"wrong_confidence": {"mean": 0.9}, "right_confidence": {"mean": 0.8}}, "less sure when wrong"),
        ({"right_confidence": {"mean": 0.9, "spread": 1}}, "Extra inputs are not permitted"),
        ({"correct_rate": 0.9}, "Extra inputs are not permitted"),
    ],
    ids=["rates-sum", "nested-sum", "rate-range", "latency", "confidence-order", "spread-field", "unknown-field"],
)
def test_profile_validation(fields: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(fragment)):
        ModelBehaviour.model_validate(fields)


# -- markers ---------------------------------------------------------------------------------------


def test_find_truths_reads_both_kinds_in_order_and_skips_malformed_ones() -> None:
    text = (
        '<input>\n[[truth multi: {"a": {"b": [1, "]]"]}}]]\n[[truth: {"label": "SIMPLE"}]]\n'
        '[[truth: not json]] [[truth: [1, 2]]] [[truth: {"x": 1}]\n[[truth:{"y":true}  ]] text\n</input>'
    )
    truths = find_truths(text)
    assert [(t.values, t.multi) for t in truths] == [
        ({"a": {"b": [1, "]]"]}}, True),
        ({"label": "SIMPLE"}, False),
        ({"y": True}, False),
    ]
    assert find_truths("no markers [[multi]]") == []


def test_find_words() -> None:
    assert find_words("x [[words: 120]] [[words: 5]]") == 120
    assert find_words("[[words:0]]") == 1
    assert find_words("[[words: many]]") is None


def test_markers_are_looked_for_in_every_message() -> None:
    messages = [
        {"role": "system", "content": "Classify."},
        {"role": "user", "content": [{"type": "text", "text": "[[truth: "}, {"type": "text", "text": '{"a": 1}]]'}]},
        "not a message",
    ]
    assert messages_text(messages) == 'Classify.\n[[truth: {"a": 1}]]'
    assert [t.values for t in find_truths(messages_text(messages))] == [{"a": 1}]


def test_is_nested() -> None:
    assert is_nested(INVOICE)
    assert not is_nested(FLAT)
    assert not is_nested(CLASSIFY)
    array_of_objects = {"type": "object", "properties": {"rows": INVOICE["properties"]["lines"]}}
    assert is_nested(array_of_objects)
    by_ref = {"type": "object", "properties": {"a": {"$ref": "#/$defs/A"}}, "$defs": {"A": FLAT}}
    assert is_nested(by_ref)


# -- seeded counts ---------------------------------------------------------------------------------


def validity_for(draw: float, invalid_json_rate: float, violation_rate: float) -> str:
    """The validity a profile gives a reply whose ``validity`` draw is ``draw``."""
    if draw < invalid_json_rate:
        return "invalid_json"
    return "schema_violation" if draw < invalid_json_rate + violation_rate else "valid"


def test_each_outcome_is_one_seeded_draw_against_the_profile_rates() -> None:
    # Every reply's validity and correctness follow from its own uniform draw compared with the rates, so the
    # rates hold exactly (a draw below 0.022 is invalid JSON, ...), and a seeded sample reaches every outcome.
    flat: Counter[str] = Counter()
    nested: Counter[str] = Counter()
    for i in range(400):
        multi = i % 4 == 0
        flat_reply = shape(NANO, CLASSIFY, marker({"label": LABELS[i % 5]}, multi=multi), key=i)
        nested_reply = shape(NANO, INVOICE, marker(INVOICE_TRUTH), key=i)
        validity, correct = streams(7, i)("validity").random(), streams(7, i)("correct").random()
        assert flat_reply.validity == validity_for(validity, 0.022, 0.038)
        assert nested_reply.validity == validity_for(validity, 0.022, 0.08)
        assert flat_reply.answer == ("correct" if correct < (0.71 if multi else 0.95) else "wrong")
        assert nested_reply.answer == ("correct" if correct < 0.95 else "wrong")
        assert (flat_reply.multi, nested_reply.multi) == (multi, False)
        flat.update([flat_reply.validity, f"{flat_reply.answer} {'multi' if multi else 'simple'}"])
        nested.update([nested_reply.validity, nested_reply.answer])
    # Pinned for seed 7.
    assert flat == Counter(
        {
            "valid": 364,
            "schema_violation": 24,
            "invalid_json": 12,
            "correct simple": 279,
            "correct multi": 74,
            "wrong simple": 21,
            "wrong multi": 26,
        }
    )
    assert nested == Counter({"valid": 342, "schema_violation": 46, "invalid_json": 12, "correct": 377, "wrong": 23})


def test_same_request_same_draws_and_aspects_are_independent() -> None:
    first = [shape(NANO, CLASSIFY, marker({"label": "bug"}), key=i) for i in range(200)]
    again = [shape(NANO, CLASSIFY, marker({"label": "bug"}), key=i) for i in reversed(range(200))][::-1]
    assert first == again
    # Changing the validity rates does not move a single correctness draw.
    valid_only = NANO.model_copy(update={"invalid_json_rate": 0.0, "schema_violation_rate": 0.0})
    other = [shape(valid_only, CLASSIFY, marker({"label": "bug"}), key=i) for i in range(200)]
    assert [s.answer for s in other] == [s.answer for s in first]
    assert all(s.validity == "valid" for s in other)


# -- right and wrong answers -----------------------------------------------------------------------


def test_right_answers_carry_the_truth_and_wrong_ones_differ_but_stay_valid() -> None:
    always_wrong = ModelBehaviour(correct_rate_simple=0.0, correct_rate_multi=0.0)
    always_right = ModelBehaviour()
    validator = jsonschema.Draft202012Validator(INVOICE)
    changed: Counter[str] = Counter()
    for i in range(300):
        right = json.loads(shape(always_right, INVOICE, marker(INVOICE_TRUTH), key=i).content)
        assert right == INVOICE_TRUTH
        reply = shape(always_wrong, INVOICE, marker(INVOICE_TRUTH), key=i)
        wrong = json.loads(reply.content)
        assert reply.answer == "wrong" and reply.validity == "valid"
        validator.validate(wrong)
        assert wrong != INVOICE_TRUTH
        differing = {pair[0][0] for pair in set(leaves(wrong).items()) ^ set(leaves(INVOICE_TRUTH).items())}
        assert len(differing) == 1, (wrong, differing)
        changed.update(differing)
    assert set(changed) == set(INVOICE_TRUTH)


def test_classify_wrong_answers_are_other_labels() -> None:
    always_wrong = ModelBehaviour(correct_rate_simple=0.0)
    labels = Counter()
    for i in range(200):
        reply = json.loads(shape(always_wrong, CLASSIFY, marker({"label": "bug"}), key=i).content)
        assert reply["label"] in LABELS and reply["label"] != "bug"
        labels[reply["label"]] += 1
    assert set(labels) == {"billing", "feature_request", "account", "other"}


def test_judge_wrong_answer_is_the_other_verdict() -> None:
    always_wrong = ModelBehaviour(correct_rate_simple=0.0)
    for i in range(20):
        assert json.loads(shape(always_wrong, VERDICT, marker({"verdict": "pass"}), key=i).content)["verdict"] == "fail"
        assert json.loads(shape(ModelBehaviour(), VERDICT, marker({"verdict": "fail"}), key=i).content)["verdict"] == (
            "fail"
        )


def test_draft_keyword_and_length() -> None:
    text = marker({"text": "REF-48213"}, multi=True) + "\n[[words: 40]]\nThe customer wants a reply."
    right = shape(ModelBehaviour(correct_rate_multi=1.0), TEXT, text)
    wrong = shape(ModelBehaviour(correct_rate_multi=0.0), TEXT, text)
    assert (right.answer, right.multi, wrong.answer) == ("correct", True, "wrong")
    right_text, wrong_text = json.loads(right.content)["text"], json.loads(wrong.content)["text"]
    assert "REF-48213" in right_text and len(right_text.split()) == 41
    assert "ref-48213" not in wrong_text.lower() and len(wrong_text.split()) == 40


def test_text_requests_take_a_text_keyword() -> None:
    base = "A plain paragraph."
    right = shape_text(ModelBehaviour(), base, marker({"text": "Tuesday"}), streams(7, 0))
    wrong = shape_text(ModelBehaviour(correct_rate_simple=0.0), base, marker({"text": "Tuesday"}), streams(7, 0))
    assert "Tuesday" in right.content and right.answer == "correct"
    assert "Tuesday" not in wrong.content and wrong.answer == "wrong"
    assert shape_text(ModelBehaviour(), base, "no marker", streams(7, 0)) == Shaped(base, "valid", "no_truth")


def test_multi_marker_uses_the_multi_rate() -> None:
    profile = ModelBehaviour(correct_rate_simple=1.0, correct_rate_multi=0.0)
    simple = [shape(profile, CLASSIFY, marker({"label": "bug"}), key=i).answer for i in range(50)]
    multi = [shape(profile, CLASSIFY, marker({"label": "bug"}, multi=True), key=i).answer for i in range(50)]
    assert set(simple) == {"correct"} and set(multi) == {"wrong"}


def test_the_first_truth_that_fits_the_schema_is_used() -> None:
    # A task's own truth and the truth of the complexity check asked about it, as the benchmark sends them.
    text = marker({"label": "bug"}, multi=True) + "\n" + marker({"label": "MODERATE"}) + "\nticket text"
    task = shape(ModelBehaviour(), CLASSIFY, text)
    check = shape(ModelBehaviour(), COMPLEXITY, text)
    assert json.loads(task.content)["label"] == "bug" and task.multi
    assert json.loads(check.content)["label"] == "MODERATE" and not check.multi
    # Keys that are not properties, or values the schema refuses, do not fit.
    assert shape(ModelBehaviour(), FLAT, text).answer == "no_truth"
    assert shape(ModelBehaviour(), VERDICT, marker({"verdict": "maybe"})).answer == "no_truth"
    assert shape(ModelBehaviour(), FLAT, "no markers").answer == "no_truth"


# -- confidence ------------------------------------------------------------------------------------


def test_confidence_is_drawn_from_the_right_or_the_wrong_spread() -> None:
    profile = NANO.model_copy(update={"invalid_json_rate": 0.0, "schema_violation_rate": 0.0})
    answers: Counter[str] = Counter()
    for i in range(200):
        reply = shape(profile, CLASSIFY, marker({"label": "bug"}, multi=True), key=i)
        spread = profile.right_confidence if reply.answer == "correct" else profile.wrong_confidence
        assert reply.confidence == spread.draw(streams(7, i)("confidence"), 0.0, 1.0)
        assert json.loads(reply.content)["confidence"] == reply.confidence
        answers[reply.answer] += 1
    assert answers == Counter({"correct": 142, "wrong": 58})


def test_confidence_spreads_and_what_a_floor_catches() -> None:
    rng = random.Random(3)
    right = [NANO.right_confidence.draw(rng) for _ in range(20_000)]
    wrong = [NANO.wrong_confidence.draw(rng) for _ in range(20_000)]
    assert all(0 <= value <= 1 for value in right + wrong)
    assert abs(statistics.fmean(right) - 0.88) < 0.01 and abs(statistics.stdev(right) - 0.07) < 0.01
    assert abs(statistics.fmean(wrong) - 0.72) < 0.015 and abs(statistics.stdev(wrong) - 0.13) < 0.015
    # A min_confidence of 0.7 catches part of the wrong answers, and few right ones.
    caught = sum(value < 0.7 for value in wrong) / len(wrong)
    false_alarms = sum(value < 0.7 for value in right) / len(right)
    assert abs(caught - below(0.7, 0.72, 0.13)) < 0.04
    assert abs(false_alarms - below(0.7, 0.88, 0.07)) < 0.01
    assert 0.3 < caught < 0.6


def test_confidence_spread_is_clipped_and_rounded() -> None:
    rng = random.Random(1)
    values = [ConfidenceSpread(mean=0.95, sd=0.3).draw(rng) for _ in range(500)]
    assert max(values) == 1.0 and min(values) >= 0.0
    assert all(round(value, 2) == value for value in values)
    assert ConfidenceSpread(mean=0.4).draw(rng, low=0.5) == 0.5


# -- latency ---------------------------------------------------------------------------------------


def test_latency_is_lognormal_around_the_median_plus_decoding() -> None:
    profile = ModelBehaviour(latency_ms=400, latency_sigma=0.5, latency_per_output_token_ms=10)
    rng = random.Random(5)
    samples = [profile.latency_s(rng, 0) * 1000 for _ in range(4000)]
    assert abs(statistics.median(samples) - 400) < 20
    logs = [math.log(value) for value in samples]
    assert abs(statistics.stdev(logs) - 0.5) < 0.03
    assert ModelBehaviour(latency_ms=300, latency_per_output_token_ms=10).latency_s(rng, 50) == pytest.approx(0.8)
