"""Cost arithmetic, checked on the usage objects of real recorded OpenAI responses."""

from __future__ import annotations

from decimal import Decimal

import pytest
from cassettes import load_responses
from hypothesis import given
from hypothesis import strategies as st

from nodes.cost import Price, Usage, cost_usd, total_usage, usd_text
from nodes.settings import Settings

NANO = Price(Decimal("0.20"), Decimal("0.02"), Decimal("1.25"))
MINI = Price(Decimal("0.75"), Decimal("0.075"), Decimal("4.50"))
FULL = Price(Decimal("2.50"), Decimal("0.25"), Decimal("15.00"))


def test_default_price_table_is_the_published_one() -> None:
    settings = Settings()
    assert (settings.nano.price_input, settings.nano.price_cached_input, settings.nano.price_output) == (
        Decimal("0.20"),
        Decimal("0.02"),
        Decimal("1.25"),
    )
    assert (settings.mini.price_input, settings.mini.price_cached_input, settings.mini.price_output) == (
        Decimal("0.75"),
        Decimal("0.075"),
        Decimal("4.50"),
    )
    assert (settings.full.price_input, settings.full.price_cached_input, settings.full.price_output) == (
        Decimal("2.50"),
        Decimal("0.25"),
        Decimal("15.00"),
    )
    assert (settings.nano.model, settings.mini.model, settings.full.model) == (
        "gpt-5.4-nano",
        "gpt-5.4-mini",
        "gpt-5.4",
    )


def test_plain_completion_usage_from_cassette_01() -> None:
    usage = Usage.from_openai(load_responses("01")[0].json()["usage"])
    assert usage == Usage(input_tokens=13, cached_input_tokens=0, output_tokens=29, reasoning_tokens=0)
    # 13 * 0.20 + 29 * 1.25 = 38.85 per million
    assert cost_usd(usage, NANO) == Decimal("0.00003885")


def test_cached_tokens_are_a_subset_of_prompt_tokens_cassette_06() -> None:
    first, second = (Usage.from_openai(r.json()["usage"]) for r in load_responses("06"))
    assert first == Usage(input_tokens=1144, cached_input_tokens=1024, output_tokens=2)
    assert second == Usage(input_tokens=1144, cached_input_tokens=0, output_tokens=3)
    # (1144 - 1024) * 0.75 + 1024 * 0.075 + 2 * 4.50 = 90 + 76.8 + 9 = 175.8 per million
    assert cost_usd(first, MINI) == Decimal("0.0001758")
    # 1144 * 0.75 + 3 * 4.50 = 871.5 per million: the cache hit saved 0.0000957
    assert cost_usd(second, MINI) == Decimal("0.0008715")


def test_reasoning_tokens_are_billed_once_inside_output_cassette_05() -> None:
    usage = Usage.from_openai(load_responses("05")[0].json()["usage"])
    assert usage == Usage(input_tokens=13, cached_input_tokens=0, output_tokens=238, reasoning_tokens=192)
    # 13 * 2.50 + 238 * 15.00 = 3602.5 per million: reasoning has no term of its own
    assert cost_usd(usage, FULL) == Decimal("0.0036025")


def test_missing_usage_costs_nothing() -> None:
    assert Usage.from_openai(None) == Usage()
    assert cost_usd(Usage(), FULL) == Decimal(0)


def test_cached_count_above_prompt_is_capped() -> None:
    assert cost_usd(Usage(input_tokens=10, cached_input_tokens=50), NANO) == Decimal("0.0000002")


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (Decimal("0.0000937"), "0.0000937"),
        (Decimal("0.00116000"), "0.00116"),
        (Decimal(0), "0"),
        (Decimal("12.5"), "12.5"),
    ],
)
def test_usd_text_has_no_exponent(amount: Decimal, text: str) -> None:
    assert usd_text(amount) == text


counts = st.integers(min_value=0, max_value=10**7)


@given(counts, counts, counts, counts)
def test_cost_is_additive_and_never_negative(prompt: int, cached: int, completion: int, reasoning: int) -> None:
    usage = Usage(prompt, min(cached, prompt), completion, min(reasoning, completion))
    assert cost_usd(usage, MINI) >= 0
    assert cost_usd(usage + usage, MINI) == 2 * cost_usd(usage, MINI)
    assert total_usage([usage, usage, usage]) == Usage(
        3 * prompt, 3 * min(cached, prompt), 3 * completion, 3 * min(reasoning, completion)
    )


@given(counts, counts)
def test_cached_input_is_never_dearer_than_uncached(prompt: int, completion: int) -> None:
    cold = Usage(prompt, 0, completion)
    warm = Usage(prompt, prompt, completion)
    assert cost_usd(warm, FULL) <= cost_usd(cold, FULL)
