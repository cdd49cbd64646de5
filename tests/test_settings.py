"""Configuration: the contract's environment names, the TOML file, precedence, and start-up refusals."""

from __future__ import annotations

import socket
from decimal import Decimal
from pathlib import Path

import pytest

from nodes.errors import ConfigError
from nodes.settings import load_settings
from nodes.tiers import resolve_tiers, uses_sandbox

ENV_NAMES = [
    "TIERWISE_CONFIG",
    "TIERWISE_API_KEYS",
    "TIERWISE_DB",
    "TIERWISE_SANDBOX",
    "OPENAI_API_KEY",
    "DATABASE_URL",
    *[
        f"TIERWISE_{tier}_{field}"
        for tier in ("NANO", "MINI", "FULL")
        for field in (
            "MODEL",
            "BASE_URL",
            "API_KEY",
            "PRICE_INPUT",
            "PRICE_CACHED_INPUT",
            "PRICE_OUTPUT",
            "TIMEOUT_S",
            "STRUCTURED_OUTPUTS",
        )
    ],
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)


def test_contract_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_NANO_MODEL", "llama3.2:1b")
    monkeypatch.setenv("TIERWISE_NANO_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.setenv("TIERWISE_MINI_API_KEY", "mini-real-key-123")
    monkeypatch.setenv("TIERWISE_FULL_PRICE_INPUT", "3")
    monkeypatch.setenv("TIERWISE_FULL_PRICE_CACHED_INPUT", "0.3")
    monkeypatch.setenv("TIERWISE_FULL_PRICE_OUTPUT", "12.5")
    monkeypatch.setenv("TIERWISE_API_KEYS", "first-key-1, second-key-2")
    monkeypatch.setenv("TIERWISE_DB", "/tmp/other.db")
    monkeypatch.setenv("OPENAI_API_KEY", "openai-real-key-123")
    settings = load_settings()
    assert (settings.nano.model, settings.nano.base_url) == ("llama3.2:1b", "http://127.0.0.1:11434/v1")
    assert settings.nano.price_input == Decimal("0.20")  # untouched fields keep their defaults
    assert settings.mini.api_key == "mini-real-key-123"
    assert (settings.full.price_input, settings.full.price_cached_input, settings.full.price_output) == (
        Decimal("3"),
        Decimal("0.3"),
        Decimal("12.5"),
    )
    assert settings.api_keys == ["first-key-1", "second-key-2"]
    assert settings.db == "/tmp/other.db"
    tiers = resolve_tiers(settings)
    assert tiers["nano"].api_key == "openai-real-key-123"  # falls back to OPENAI_API_KEY
    assert tiers["mini"].api_key == "mini-real-key-123"
    assert tiers["full"].base_url is None
    assert not uses_sandbox(settings)


def test_toml_file_with_environment_winning(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "tierwise.toml"
    config.write_text(
        'api_keys = ["from-toml-key"]\nmax_retries = 5\n[mini]\nmodel = "toml-mini"\n'
        'price_output = 4.4\n[full]\nmodel = "toml-full"\n'
    )
    monkeypatch.setenv("TIERWISE_CONFIG", str(config))
    monkeypatch.setenv("TIERWISE_FULL_MODEL", "env-full")
    settings = load_settings()
    assert settings.api_keys == ["from-toml-key"]
    assert settings.max_retries == 5
    assert (settings.mini.model, settings.mini.price_output, settings.mini.price_input) == (
        "toml-mini",
        Decimal("4.4"),
        Decimal("0.75"),
    )
    assert settings.full.model == "env-full"


def test_missing_config_file_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIERWISE_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match="not a file"):
        load_settings()


def test_unknown_toml_setting_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "tierwise.toml"
    config.write_text("[nano]\nmodle = 'x'\n")
    monkeypatch.setenv("TIERWISE_CONFIG", str(config))
    with pytest.raises(ConfigError, match="TIERWISE_NANO_MODLE"):
        load_settings()


@pytest.mark.parametrize("placeholder", ["sk-...", "your-api-key", "changeme", "<OPENAI_API_KEY>", "sk-xxxx"])
def test_placeholder_keys_are_refused(monkeypatch: pytest.MonkeyPatch, placeholder: str) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", placeholder)
    with pytest.raises(ConfigError, match="OPENAI_API_KEY: .*placeholder"):
        load_settings()
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("TIERWISE_MINI_API_KEY", placeholder)
    with pytest.raises(ConfigError, match="TIERWISE_MINI_API_KEY: .*placeholder"):
        load_settings()


def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERWISE_NANO_PRICE_OUTPUT", "-1")
    with pytest.raises(ConfigError, match="TIERWISE_NANO_PRICE_OUTPUT: .*negative"):
        load_settings()
    monkeypatch.setenv("TIERWISE_NANO_PRICE_OUTPUT", "1")
    monkeypatch.setenv("TIERWISE_API_KEYS", "short")
    with pytest.raises(ConfigError, match="TIERWISE_API_KEYS: .*at least 8"):
        load_settings()


def test_database_url_names_postgresql(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://tierwise@db.internal:5432/tierwise")
    assert load_settings().database_url == "postgresql://tierwise@db.internal:5432/tierwise"


def test_the_suite_cannot_reach_the_network() -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with pytest.raises(OSError, match="only connect to loopback"):
            probe.connect(("203.0.113.7", 443))
    finally:
        probe.close()
