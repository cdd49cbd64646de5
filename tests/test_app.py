"""The application: settings checked before anything is served, every part wired over one store, stopped in order."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from scripted import ScriptedProvider

from nodes.app import Tierwise, check_settings, create_app
from nodes.errors import ConfigError
from nodes.keys import Caller
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


async def test_the_embedded_sandbox_obeys_no_other_process(tmp_path: Path) -> None:
    tierwise = await Tierwise.open(Settings(sandbox=True, db=str(tmp_path / "t.db"), api_keys=["local-key-0001"]))
    async with tierwise.running(background=False):
        [base_url] = {tier.base_url for tier in tierwise.runner.ladder.tiers.values()}
        assert base_url is not None
        root = base_url.removesuffix("/v1")
        async with httpx.AsyncClient(base_url=root) as http:
            steer = await http.put("/_sandbox/config", json={"faults": [{"kind": "refusal"}]})
            assert steer.status_code == 401
            assert (await http.get("/_sandbox/requests")).status_code == 401
        reply = await tierwise.submissions.node(
            "classify",
            b'{"input": "I was charged twice", "labels": ["billing", "bug"]}',
            caller=Caller("k_local", "env-1"),
            idempotency_key=None,
            received_at=time.monotonic(),
        )
        assert reply.status == 200 and reply.body["output"]["label"] in ("billing", "bug")


async def test_the_observers_of_every_run_are_the_metrics_and_the_audit(tmp_path: Path) -> None:
    settings = Settings(openai_api_key="sk-real-looking-key-1234", db=str(tmp_path / "t.db"), job_lease_s=12)
    tierwise = await Tierwise.open(settings, provider=ScriptedProvider())
    try:
        assert tierwise.runner.observers == [tierwise.metrics.observe, tierwise.auditor.consider]
        assert not tierwise.sandbox and set(tierwise.runner.ladder.tiers) == {"nano", "mini", "full"}
        assert tierwise.queue.lease_s == 12
    finally:
        await tierwise.store.close()
