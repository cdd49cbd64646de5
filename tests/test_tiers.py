"""The tier ladder: tiers bound to endpoints, keys and prices from the settings, the sandbox when nothing is set."""

from __future__ import annotations

from decimal import Decimal

import pytest

from nodes.cost import Price
from nodes.errors import ConfigError
from nodes.settings import load_settings
from nodes.tiers import climb, resolve_tiers, uses_sandbox


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("TIERWISE_") or name in ("OPENAI_API_KEY", "DATABASE_URL"):
            monkeypatch.delenv(name)


def test_sandbox_when_nothing_is_configured_or_on_purpose(monkeypatch: pytest.MonkeyPatch) -> None:
    assert uses_sandbox(load_settings())
    sandbox_tiers = resolve_tiers(load_settings(), sandbox_url="http://127.0.0.1:9/v1")
    assert {tier.base_url for tier in sandbox_tiers.values()} == {"http://127.0.0.1:9/v1"}
    assert [tier.model for tier in sandbox_tiers.values()] == ["gpt-5.4-nano", "gpt-5.4-mini", "gpt-5.4"]
    monkeypatch.setenv("OPENAI_API_KEY", "openai-real-key-123")
    assert not uses_sandbox(load_settings())
    monkeypatch.setenv("TIERWISE_SANDBOX", "1")
    assert uses_sandbox(load_settings())


def test_a_tier_without_any_key_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_NANO_BASE_URL", "http://127.0.0.1:11434/v1")
    settings = load_settings()
    assert not uses_sandbox(settings)
    with pytest.raises(ConfigError, match="mini tier has no API key: set TIERWISE_MINI_API_KEY or OPENAI_API_KEY"):
        resolve_tiers(settings)


def test_local_endpoint_needs_no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for tier in ("NANO", "MINI", "FULL"):
        monkeypatch.setenv(f"TIERWISE_{tier}_BASE_URL", "http://127.0.0.1:11434/v1")
    tiers = resolve_tiers(load_settings())
    assert {tier.api_key for tier in tiers.values()} == {"not-needed"}


@pytest.mark.parametrize(
    ("start", "ceiling", "ladder"),
    [
        ("nano", "full", ["nano", "mini", "full"]),
        ("nano", "mini", ["nano", "mini"]),
        ("mini", "full", ["mini", "full"]),
        ("full", "full", ["full"]),
        ("full", "nano", ["full"]),
        ("nano", "nano", ["nano"]),
    ],
)
def test_climb(start: str, ceiling: str, ladder: list[str]) -> None:
    assert climb(start, ceiling) == ladder  # type: ignore[arg-type]


def test_lanes_default_to_standard_and_flex_on_openai_and_the_sandbox_and_standard_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "openai-real-key-123")
    monkeypatch.setenv("TIERWISE_FULL_BASE_URL", "http://127.0.0.1:8080/v1")
    tiers = resolve_tiers(load_settings())
    assert [tiers[name].offers("flex") for name in ("nano", "mini", "full")] == [True, True, False]
    nano = tiers["nano"]
    assert nano.price_on("flex") == Price(Decimal("0.10"), Decimal("0.01"), Decimal("0.625"))
    assert nano.price_on("standard") == nano.price
    assert (nano.call_timeout_s("flex"), nano.call_timeout_s("standard")) == (900.0, 60.0)
    sandbox = resolve_tiers(load_settings(), sandbox_url="http://127.0.0.1:9/v1")
    assert all(tier.offers("flex") for tier in sandbox.values())


def test_lanes_and_flex_prices_are_configured_per_tier(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_MINI_BASE_URL", "http://127.0.0.1:8080/v1")
    monkeypatch.setenv("TIERWISE_MINI_LANES", "standard, flex")
    monkeypatch.setenv("TIERWISE_MINI_FLEX_PRICE_SHARE", "0.4")
    monkeypatch.setenv("TIERWISE_MINI_FLEX_TIMEOUT_S", "300")
    monkeypatch.setenv("TIERWISE_NANO_LANES", "standard")
    monkeypatch.setenv("OPENAI_API_KEY", "openai-real-key-123")
    tiers = resolve_tiers(load_settings())
    assert not tiers["nano"].offers("flex")
    assert tiers["mini"].price_on("flex").output == Decimal("4.50") * Decimal("0.4")
    assert tiers["mini"].call_timeout_s("flex") == 300.0


def test_a_default_lane_some_tier_lacks_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_PROCESSING", "flex")
    monkeypatch.setenv("TIERWISE_FULL_BASE_URL", "http://127.0.0.1:8080/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "openai-real-key-123")
    with pytest.raises(ConfigError) as refused:
        resolve_tiers(load_settings())
    assert str(refused.value) == (
        "TIERWISE_PROCESSING is flex, but the full tier has no flex lane: set TIERWISE_FULL_LANES if its endpoint "
        "offers it, or leave TIERWISE_PROCESSING at standard and ask for the lane per request."
    )


@pytest.mark.parametrize(
    ("lanes", "message"),
    [
        ("flex", "every tier has the standard lane; list it with the others (standard,flex,batch)"),
        ("standard,batchy", "Input should be 'standard', 'flex' or 'batch'"),
    ],
)
def test_bad_lanes_are_refused_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, lanes: str, message: str
) -> None:
    monkeypatch.setenv("TIERWISE_NANO_LANES", lanes)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "TIERWISE_NANO_LANES" in str(refused.value) and message in str(refused.value)
