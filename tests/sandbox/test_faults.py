"""Sandbox configuration: the JSON loader's errors and the fault-rule matcher."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from nodes.errors import ConfigError
from nodes.sandbox import FaultRule, SandboxConfig, load_sandbox_config
from nodes.sandbox.faults import pick_fault


def test_load_defaults_without_a_path() -> None:
    assert load_sandbox_config(None) == SandboxConfig()


def test_load_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.json"
    path.write_text(json.dumps({"latency_ms": 5, "faults": [{"kind": "slow", "delay_ms": 10, "model": "gpt-*"}]}))
    config = load_sandbox_config(str(path))
    assert config.latency_ms == 5
    assert config.faults == [FaultRule(kind="slow", delay_ms=10, model="gpt-*")]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "{latency_ms: 5}",
            "is not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2",
        ),
        ('{"faults": [{"kind": "explode"}]}', "is invalid: faults.0.kind: Input should be"),
        ('{"latency": 5}', "is invalid: latency: Extra inputs are not permitted"),
        ("[]", "is invalid: (top level): Input should be a valid dictionary"),
    ],
    ids=["not-json", "bad-kind", "extra-field", "not-an-object"],
)
def test_load_errors_name_the_file_and_the_problem(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_sandbox_config(str(path))
    assert str(caught.value).startswith(f"sandbox config {str(path)!r} ")
    assert fragment in str(caught.value)


def test_load_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match="cannot be read: No such file or directory"):
        load_sandbox_config(str(path))


def test_pick_fault_order_glob_and_times() -> None:
    rules = [
        FaultRule(kind="refusal", model="*nano*", times=1),
        FaultRule(kind="slow", model="gpt-4.1-*"),
    ]
    rng = random.Random(0)
    assert pick_fault(rules, "claude", rng) is None
    assert pick_fault(rules, "gpt-4.1-nano", rng) is rules[0]
    assert rules[0].times == 0
    assert pick_fault(rules, "gpt-4.1-nano", rng) is rules[1]
    assert pick_fault(rules, "GPT-4.1-nano", rng) is None
    assert rules[1].times is None


def test_pick_fault_probability_draws_only_when_needed() -> None:
    certain = [FaultRule(kind="refusal", probability=1.0)]
    rng = random.Random(3)
    state = rng.getstate()
    assert pick_fault(certain, "m", rng) is certain[0]
    assert rng.getstate() == state
    never = [FaultRule(kind="refusal", probability=0.0)]
    assert pick_fault(never, "m", rng) is None
    half = [FaultRule(kind="refusal", probability=0.5)]
    fired = [pick_fault(half, "m", random.Random(seed)) is not None for seed in range(200)]
    assert 60 < sum(fired) < 140


def test_config_forbids_extra_fields_and_checks_ranges() -> None:
    with pytest.raises(ValueError):
        FaultRule.model_validate({"kind": "slow", "extra": 1})
    with pytest.raises(ValueError):
        FaultRule.model_validate({"kind": "server_error", "status": 501})
    with pytest.raises(ValueError):
        SandboxConfig.model_validate({"cached_prompt_tokens": -1})
