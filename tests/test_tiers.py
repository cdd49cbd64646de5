"""The tier ladder: tiers bound to endpoints, keys and prices from the settings, the sandbox when nothing is set."""

from __future__ import annotations

import pytest

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
