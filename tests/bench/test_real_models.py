"""The real-model benchmark's pure parts: its items from the public data, how answers are graded, ECE, prices."""

from __future__ import annotations

from decimal import Decimal

import pytest
import real_models
from real_models import ece, load_items, prices


def test_items_are_drawn_the_same_way_every_time_and_spread_over_the_intents() -> None:
    items = load_items(32, seed=7)
    assert [item.request for item in items] == [item.request for item in load_items(32, seed=7)]
    classify = [item for item in items if item.node == "classify"]
    extract = [item for item in items if item.node == "extract"]
    assert len(classify) == len(extract) == 32
    assert len({item.truth for item in classify}) == 16  # two of each of the sample's 16 intents
    assert all(item.truth in item.request["labels"] for item in classify)
    assert all(set(item.truth) <= set(item.request["schema"]["properties"]) for item in extract)
    assert {item.request["step"] for item in items} == {"banking77/intent", "nlupp/slots"}


def test_an_extraction_is_right_only_with_exactly_the_true_slots_as_written() -> None:
    (item,) = [i for i in load_items(4, seed=1) if i.node == "extract"][:1]
    truth = dict(item.truth)
    assert real_models.correct(item, {slot: value.upper() + "." for slot, value in truth.items()})
    extra = next(slot for slot in real_models.SLOTS if slot not in truth)
    assert not real_models.correct(item, {**truth, extra: "something else"})  # a slot the message does not have
    assert not real_models.correct(item, {slot: value for slot, value in list(truth.items())[1:]})  # one missing
    assert not real_models.correct(item, None)


def test_expected_calibration_error_is_the_weighted_gap_per_bin() -> None:
    # Bin 0.9-1.0: said 0.95 twice, right once (gap 0.45); bin 0.5-0.6: said 0.5, right (gap 0.5).
    assert ece([(0.95, True), (0.95, False), (0.5, True)]) == pytest.approx((0.45 * 2 + 0.5) / 3)
    assert ece([(1.0, True)]) == 0.0


def test_pseudo_prices_scale_the_full_tier_by_parameters() -> None:
    assert prices("full") == (Decimal("2.5000"), Decimal("0.2500"), Decimal("15.0000"))
    assert prices("nano") < prices("mini") < prices("full")


def test_slot_f1_weighs_slots_found_against_slots_invented() -> None:
    (item,) = [i for i in load_items(8, seed=3) if i.node == "extract" and len(i.truth) == 2][:1]
    (first, value), (second, other) = item.truth.items()
    assert real_models.slot_f1(item, dict(item.truth)) == 1.0
    assert real_models.slot_f1(item, {first: value}) == pytest.approx(2 * 1 * 0.5 / 1.5)  # half the slots found
    invented = next(slot for slot in real_models.SLOTS if slot not in item.truth)
    assert real_models.slot_f1(item, {first: value, second: other, invented: "x"}) == pytest.approx(0.8)
    assert real_models.slot_f1(item, {invented: "x"}) == 0.0
