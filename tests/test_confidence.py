"""Confidence from token probabilities, isotonic calibration, and how a reply's confidence is assessed."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import INTENT, LEARNING, Sandbox, Service

from nodes.confidence import (
    MIN_OUTCOMES,
    Calibration,
    Confidence,
    TokenLogprob,
    assess,
    parse_logprobs,
    value_probability,
    with_confidence,
)
from nodes.settings import MiniTier, NanoTier, Settings

CONTENT = '{"label": "billing", "confidence": 0.95}'


def tokens(*parts: tuple[str, float]) -> list[TokenLogprob]:
    return [TokenLogprob(text, logprob) for text, logprob in parts]


LABEL_TOKENS = tokens(
    ('{"', -0.001), ("label", -0.001), ('":', -0.001), (' "', -0.01), ("bill", math.log(0.8)), ("ing", math.log(0.9)),
    ('",', -0.02), (' "confidence', -0.001), ('":', 0.0), (" 0.95", -0.3), ("}", 0.0),
)  # fmt: skip


def test_the_value_probability_multiplies_every_token_overlapping_the_value_quotes_included() -> None:
    # ' "' and '",' overlap the value's quotes; the confidence digits do not count.
    expected = math.exp(-0.01 + math.log(0.8) + math.log(0.9) - 0.02)
    assert value_probability(CONTENT, LABEL_TOKENS, "label") == pytest.approx(expected, rel=1e-12)


def test_no_probability_when_the_tokens_do_not_spell_the_reply_or_the_member_is_missing() -> None:
    assert value_probability(CONTENT + " ", LABEL_TOKENS, "label") is None
    assert value_probability(CONTENT, LABEL_TOKENS, "verdict") is None
    assert value_probability('{"label": 3}', tokens(('{"label": 3}', -0.1)), "label") is None


def test_isotonic_calibration_pools_adjacent_violators_exactly() -> None:
    pairs = [(0.1, False), (0.2, True), (0.3, False), (0.4, False), (0.5, True), (0.6, True)]
    fitted = Calibration.fit(pairs, min_outcomes=6)
    assert fitted is not None
    # 0.1 → 0; (0.2, 0.3, 0.4) pool to 1/3; 0.5 and 0.6 pool to 1.
    assert fitted.thresholds == (0.1, 0.4, 0.6) and fitted.values == (0.0, 1 / 3, 1.0)
    assert [fitted(p) for p in (0.05, 0.1, 0.25, 0.4, 0.45, 0.99)] == [0.0, 0.0, 1 / 3, 1 / 3, 1.0, 1.0]
    assert fitted.outcomes == 6


def test_too_few_outcomes_leave_a_step_uncalibrated() -> None:
    assert Calibration.fit([(0.9, True)] * (MIN_OUTCOMES - 1)) is None
    assert Calibration.fit([(0.9, True)] * MIN_OUTCOMES) is not None


@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), min_size=1, max_size=200))
def test_a_calibration_is_monotone_and_keeps_the_share_of_agreed_answers(pairs: list[tuple[float, bool]]) -> None:
    fitted = Calibration.fit(pairs, min_outcomes=1)
    assert fitted is not None
    assert list(fitted.values) == sorted(fitted.values) and list(fitted.thresholds) == sorted(fitted.thresholds)
    assert all(0 <= value <= 1 for value in fitted.values)
    # Isotonic regression preserves the mean of the outcomes.
    mean = sum(fitted(p) for p, _ in pairs) / len(pairs)
    assert mean == pytest.approx(sum(agreed for _, agreed in pairs) / len(pairs), abs=1e-9)


def test_an_overconfident_step_is_pulled_down_to_how_often_it_held_up() -> None:
    rng = random.Random(3)
    # The model's tokens say 0.95 on every answer, but only 60% of them agree with the tier above.
    pairs = [(0.95, rng.random() < 0.6) for _ in range(200)] + [(0.99, True)] * 50
    fitted = Calibration.fit(pairs)
    assert fitted is not None
    held = sum(agreed for p, agreed in pairs if p == 0.95) / 200
    assert fitted(0.95) == pytest.approx(held) and fitted(0.99) == 1.0


def test_the_value_is_calibrated_else_the_token_probability_else_the_models_word() -> None:
    assert Confidence(0.9, 0.8, 0.6, "").value == 0.6 and Confidence(0.9, 0.8, 0.6, "").source == "calibrated"
    assert Confidence(0.9, 0.8, None, "").value == 0.8 and Confidence(0.9, 0.8, None, "").source == "logprob"
    assert Confidence(0.9, None, None, "").value == 0.9 and Confidence(0.9, None, None, "").source == "self_reported"


def test_assess_reads_the_tokens_and_says_whether_it_calibrated() -> None:
    probability = value_probability(CONTENT, LABEL_TOKENS, "label")
    assert probability is not None
    value = {"label": "billing", "confidence": 0.95}
    raw = assess("label", value, CONTENT, LABEL_TOKENS, None)
    assert raw == Confidence(
        0.95,
        probability,
        None,
        "uncalibrated: too few audit outcomes of this step on this tier yet",
    )
    fitted = Calibration.fit([(0.5, False), (0.7, True)], min_outcomes=2)
    calibrated = assess("label", value, CONTENT, LABEL_TOKENS, fitted)
    assert calibrated is not None and calibrated.calibrated == 1.0  # probability ~0.7 is in the top block
    assert calibrated.note == "isotonic over 2 audit outcomes of this step on this tier"
    assert calibrated.as_dict() == {
        "value": 1.0,
        "source": "calibrated",
        "self_reported": 0.95,
        "logprob": round(probability, 4),
        "calibrated": 1.0,
        "calibration": "isotonic over 2 audit outcomes of this step on this tier",
    }
    assert assess("label", value, CONTENT, None, None) is None


def test_a_classify_output_carries_the_confidence_that_counts() -> None:
    value = {"label": "billing", "confidence": 0.95}
    assert with_confidence(value, Confidence(0.95, 0.71234567, None, "")) == {"label": "billing", "confidence": 0.7123}
    assert with_confidence(value, None) is value
    verdict = {"verdict": "pass", "score": 0.9, "reasons": ["ok"], "best_index": None}
    assert with_confidence(verdict, Confidence(None, 0.8, None, "")) is verdict  # a verdict has no confidence member


def test_logprobs_are_read_from_a_choice_or_not_at_all() -> None:
    choice = {"logprobs": {"content": [{"token": "a", "logprob": -0.5, "bytes": [97], "top_logprobs": []}]}}
    assert parse_logprobs(choice) == (TokenLogprob("a", -0.5),)
    assert parse_logprobs({"logprobs": None}) is None
    assert parse_logprobs({"logprobs": {"content": [{"token": "a", "logprob": "x"}]}}) is None
    assert parse_logprobs({"logprobs": {"content": [{"token": "a", "logprob": float("-inf")}]}}) is None


# --- end to end over the sandbox ----------------------------------------------------------------------------------


def logprob_settings(make_settings: Callable[..., Settings], sandbox: Sandbox, **overrides: Any) -> Settings:
    tier = {"base_url": sandbox.base_url, "api_key": "upstream-test-key", "logprobs": True}
    return make_settings(nano=NanoTier(**tier), mini=MiniTier(**tier), **overrides)


def test_a_tier_with_logprobs_gives_classify_a_confidence_from_its_tokens(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    service = start_service(logprob_settings(make_settings, sandbox))
    sandbox.configure(faults=[{"kind": "content", "content": '{"label": "billing", "confidence": 0.42}'}])
    body = service.http.post("/v1/nodes/classify", json={"input": "charged twice", "labels": ["billing", "bug"]}).json()
    assert body["confidence"] == {
        "value": 0.42,
        "source": "logprob",
        "self_reported": 0.42,
        "logprob": 0.42,
        "calibrated": None,
        "calibration": "uncalibrated: too few audit outcomes of this step on this tier yet",
    }
    assert body["output"] == {"label": "billing", "confidence": 0.42}
    (sent,) = sandbox.requests()
    assert (sent["body"]["logprobs"], sent["body"]["top_logprobs"]) == (True, 1)
    sandbox.configure()
    judged = service.http.post(
        "/v1/nodes/judge", json={"candidate": "Refunded.", "criteria": ["polite"], "tier": "mini"}
    ).json()
    assert judged["confidence"]["source"] == "logprob" and judged["confidence"]["self_reported"] is None
    drafted = service.http.post("/v1/nodes/draft", json={"input": "x"}).json()
    assert "confidence" not in drafted and "logprobs" not in sandbox.requests()[-1]["body"]


def test_a_tier_without_logprobs_keeps_the_models_word(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    nano = NanoTier(base_url=sandbox.base_url, api_key="upstream-test-key", logprobs=False)
    service = start_service(make_settings(nano=nano))
    body = service.http.post("/v1/nodes/classify", json={"input": "charged twice", "labels": ["billing", "bug"]}).json()
    assert "confidence" not in body and "logprobs" not in sandbox.requests()[0]["body"]


def test_a_steps_audits_calibrate_its_confidence(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    service = start_service(logprob_settings(make_settings, sandbox, **LEARNING))
    for _ in range(6):
        first = service.http.post("/v1/nodes/classify", json=INTENT).json()
        assert first["confidence"]["source"] == "logprob"
    deadline = time.monotonic() + 20
    while len(service.rows("SELECT run_id FROM audits WHERE agreed IS NOT NULL")) < 6:
        assert time.monotonic() < deadline, "the audits did not come"
        time.sleep(0.05)
    audits = service.rows("SELECT tier, audit_tier, agreed, cheaper_probability FROM audits")
    # Each run on mini was audited on nano, the cheaper tier: its tokens' probability is what is kept.
    assert {(a["tier"], a["audit_tier"], a["agreed"]) for a in audits} == {("mini", "nano", 1)}
    assert all(a["cheaper_probability"] == pytest.approx(0.9) for a in audits)
    learned = service.http.post("/v1/nodes/classify", json=INTENT).json()
    assert learned["tier"] == "nano"
    assert learned["confidence"] == {
        "value": 1.0,
        "source": "calibrated",
        "self_reported": 0.9,
        "logprob": 0.9,
        "calibrated": 1.0,
        "calibration": "isotonic over 6 audit outcomes of this step on this tier",
    }
    assert learned["output"]["confidence"] == 1.0
