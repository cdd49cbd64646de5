"""Steps: fingerprints that ignore the material, Wilson bounds, and the tier a step's evidence earns."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import INTENT, LEARNING, Sandbox, Service

from nodes.settings import Settings
from nodes.steps import Evidence, StepPolicy, fingerprint, wilson_lower_bound, wilson_upper_bound


def test_the_fingerprint_is_the_task_not_the_material() -> None:
    labels = {"instructions": "be strict", "labels": ["billing", "bug"]}
    first = fingerprint("classify", labels)
    assert first == fingerprint("classify", {"labels": ["billing", "bug"], "instructions": "be strict"})
    assert first.startswith("classify/") and len(first) == len("classify/") + 16
    assert first != fingerprint("classify", {**labels, "labels": ["billing", "bug", "other"]})
    assert first != fingerprint("extract", labels)


def test_wilson_bounds_match_the_textbook() -> None:
    # One-sided 95% bounds: the ends of the two-sided 90% Wilson interval (z = 1.645).
    assert wilson_lower_bound(0, 0) == 0.0 and wilson_upper_bound(0, 0) == 1.0
    assert wilson_lower_bound(96, 100) == pytest.approx(0.9138, abs=1e-4)
    assert wilson_upper_bound(96, 100) == pytest.approx(0.9819, abs=1e-4)
    assert wilson_lower_bound(180, 180) == pytest.approx(0.9852, abs=1e-4)
    assert wilson_lower_bound(9, 10) == pytest.approx(0.6523, abs=1e-4)
    assert wilson_upper_bound(75, 100) == pytest.approx(0.8140, abs=1e-4)
    # 30 agreeing audits of 30 clear 0.9 (0.917); 29 of 30 do not (0.864).
    assert wilson_lower_bound(30, 30) > 0.9 > wilson_lower_bound(29, 30)


@given(audited=st.integers(1, 5000), data=st.data())
def test_the_bound_is_below_the_share_and_rises_with_the_evidence(audited: int, data: st.DataObject) -> None:
    agreed = data.draw(st.integers(0, audited))
    bound = wilson_lower_bound(agreed, audited)
    assert 0.0 <= bound <= agreed / audited <= wilson_upper_bound(agreed, audited) <= 1.0
    assert wilson_lower_bound(agreed * 2, audited * 2) >= bound - 1e-12


POLICY = StepPolicy(agreement=0.9, min_audits=30)


def decide(nano: tuple[int, int] | None, mini: tuple[int, int] | None = None) -> tuple[str, str] | None:
    evidence = {}
    if nano:
        evidence["nano"] = Evidence("nano", *nano)
    if mini:
        evidence["mini"] = Evidence("mini", *mini)
    return POLICY.decide("support/intent", evidence)  # type: ignore[arg-type]


def test_a_step_earns_the_cheapest_tier_its_audits_support() -> None:
    assert decide((180, 173)) == (
        "nano",
        "step support/intent: nano agrees with mini on 96% of 180 audited runs (lower bound 93%) → nano",
    )


def test_thin_evidence_leaves_the_decision_to_the_rules() -> None:
    assert decide(None) is None
    assert decide((29, 29)) is None  # all agreed, but too few to be sure


def test_a_tier_shown_short_puts_the_step_on_the_next_one_up() -> None:
    # nano agreed on 80% of 40: its upper bound (88%) is below 90%, so nano is short.
    assert decide((40, 32)) == (
        "mini",
        "step support/intent: nano agrees with mini on 80% of 40 audited runs (upper bound 88%) → mini "
        "(its own audits: too few yet)",
    )
    assert decide((40, 32), (100, 98))[0] == "mini"  # type: ignore[index]
    assert decide((40, 32), (100, 75)) == (  # mini shown short too: upper bound 81%
        "full",
        "step support/intent: nano agrees with mini on 80% of 40 audited runs (upper bound 88%); "
        "mini agrees with full on 75% of 100 audited runs (upper bound 81%) → full",
    )


def test_agreement_neither_proven_nor_refuted_never_moves_a_step_up() -> None:
    assert decide((100, 88)) is None  # nano: 88% of 100, bounds 82% to 92%: the cold start decides
    assert decide((40, 32), (100, 88)) == (  # mini undecided the same way: it stays on mini, not full
        "mini",
        "step support/intent: nano agrees with mini on 80% of 40 audited runs (upper bound 88%) → mini "
        "(its own audits: not shown short)",
    )


def test_new_evidence_moves_a_step_back_down() -> None:
    assert decide((40, 32))[0] == "mini"  # type: ignore[index]
    assert decide((400, 392))[0] == "nano"  # type: ignore[index]


# -- learning from a service's own traffic ---------------------------------------------------------------


def wait_for_audits(service: Service, count: int) -> None:
    deadline = time.monotonic() + 20
    while len(service.rows("SELECT run_id FROM audits WHERE agreed IS NOT NULL")) < count:
        assert time.monotonic() < deadline, "the audits did not come"
        time.sleep(0.05)


def test_a_step_earns_nano_from_its_own_audits_and_says_why(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings]
) -> None:
    service = start_service(make_settings(**LEARNING))
    first = service.http.post("/v1/nodes/classify", json=INTENT).json()
    assert (first["routing"]["start_tier"], first["routing"]["step"]) == ("mini", "support-triage/intent")
    assert first["routing"]["reason"].startswith("auto: instructions have 2 conditions")
    for _ in range(5):
        service.http.post("/v1/nodes/classify", json=INTENT)
    wait_for_audits(service, 6)  # each run on mini is audited on nano: the sandbox's tiers agree
    audits = service.rows("SELECT tier, audit_tier, agreed, step FROM audits")
    assert {(a["tier"], a["audit_tier"], a["agreed"], a["step"]) for a in audits} == {
        ("mini", "nano", 1, "support-triage/intent")
    }
    time.sleep(0.3)
    learned = service.http.post("/v1/nodes/classify", json=INTENT).json()
    assert learned["tier"] == "nano" and learned["routing"]["start_tier"] == "nano"
    assert learned["routing"]["reason"].startswith(
        "step support-triage/intent: nano agrees with mini on 100% of 6 audited runs (lower bound"
    )
    listed = service.http.get("/v1/steps").json()["steps"]
    [step] = [s for s in listed if s["step"] == "support-triage/intent"]
    assert (step["node"], step["runs"], step["start_tier"]) == ("classify", 7, "nano")
    assert step["audit"]["nano"]["audited"] >= 6 and step["audit"]["nano"]["agreement"] == 1.0
    assert Decimal(step["savings_usd"]) > 0 and Decimal(step["audit_cost_usd"]) > 0


def test_a_step_whose_cheap_tier_disagrees_stays_up(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "content", "model": "*nano*", "content": '{"label": "bug", "confidence": 0.9}'}])
    service = start_service(make_settings(**LEARNING))
    for _ in range(6):
        assert service.http.post("/v1/nodes/classify", json=INTENT).json()["tier"] == "mini"
    wait_for_audits(service, 6)
    time.sleep(0.3)
    body = service.http.post("/v1/nodes/classify", json=INTENT).json()
    assert body["routing"]["start_tier"] == "mini"
    assert body["routing"]["reason"].startswith(
        "step support-triage/intent: nano agrees with mini on 0% of 6 audited runs (upper bound 31%) → mini "
        "(its own audits: too few yet)"
    )
