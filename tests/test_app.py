"""The application: settings checked before anything is served, every part wired over one store, stopped in order."""

from __future__ import annotations

from pathlib import Path

import pytest
from scripted import ScriptedProvider

from nodes.app import Tierwise, check_settings, create_app
from nodes.errors import ConfigError
from nodes.settings import Settings


def test_bad_settings_stop_the_app_before_it_serves(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the mini tier has no API key"):
        create_app(Settings(nano={"base_url": "http://127.0.0.1:11434/v1"}, db=str(tmp_path / "t.db")))
    with pytest.raises(ConfigError, match="does not exist; create it first"):
        check_settings(Settings(sandbox=True, db=str(tmp_path / "missing" / "t.db")))


async def test_the_sandbox_serves_every_tier_until_the_app_stops(tmp_path: Path) -> None:
    provider = ScriptedProvider()
    tierwise = await Tierwise.open(Settings(sandbox=True, db=str(tmp_path / "t.db")), provider=provider)
    assert tierwise.sandbox and tierwise.runner.ladder.tiers == {}
    async with tierwise.running(background=False):
        urls = {tier.base_url for tier in tierwise.runner.ladder.tiers.values()}
        assert len(urls) == 1 and next(iter(urls)).startswith("http://127.0.0.1:")
        assert {tier.api_key for tier in tierwise.runner.ladder.tiers.values()} == {"sandbox"}
    assert provider.closed


async def test_the_observers_of_every_run_are_the_metrics_and_the_audit(tmp_path: Path) -> None:
    settings = Settings(openai_api_key="sk-real-looking-key-1234", db=str(tmp_path / "t.db"), job_lease_s=12)
    tierwise = await Tierwise.open(settings, provider=ScriptedProvider())
    try:
        assert tierwise.runner.observers == [tierwise.metrics.observe, tierwise.auditor.consider]
        assert not tierwise.sandbox and set(tierwise.runner.ladder.tiers) == {"nano", "mini", "full"}
        assert tierwise.queue.lease_s == 12
    finally:
        await tierwise.store.close()
