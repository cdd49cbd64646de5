"""Pacing: a batch against an upstream that enforces a per-minute limit runs without a storm of 429s."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from support import Sandbox, Service

from nodes.settings import FullTier, MiniTier, NanoTier, Settings

ITEMS = 60


def run_batch(service: Service) -> list[dict[str, Any]]:
    items = [{"input": f"billing question {n}"} for n in range(ITEMS)]
    response = service.http.post(
        "/v1/nodes/classify/batch", json={"items": items, "defaults": {"labels": ["billing", "bug"]}}, timeout=120
    )
    assert response.status_code == 200
    results: list[dict[str, Any]] = response.json()["results"]
    return results


def test_known_limit_is_respected(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    sandbox.configure(rate_limit_rpm=1200, log_requests=False)
    url = sandbox.base_url
    service = start_service(
        make_settings(nano=NanoTier(base_url=url, api_key="k", rpm=1200), mini=MiniTier(base_url=url, api_key="k"),
                      full=FullTier(base_url=url, api_key="k"), batch_concurrency=32)
    )  # fmt: skip
    results = run_batch(service)
    assert all(r["tier"] == "nano" for r in results)
    stats = sandbox.http.get("/_sandbox/stats").json()
    assert stats["served"] == ITEMS
    # Paced at the limit, with 2% to spare: only requests that scheduling jitter on a busy machine delivers a
    # hair early are refused (0-6 seen), where the first unpaced wave alone would overrun the bucket by 12.
    assert stats["rate_limited"] <= ITEMS // 10


def test_unknown_limit_is_learned_from_the_headers(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(rate_limit_rpm=1200)
    results = run_batch(service)
    assert all(r["output"]["label"] == "billing" for r in results)
    statuses = [r["status"] for r in sandbox.requests()]
    retried = sum(1 for r in results for a in r["attempts"] if a["outcome"] == "rate_limited")
    assert retried == statuses.count(429) and statuses.count(200) == ITEMS
    # Only the first wave — sent before any reply taught the limit — and its retries can overrun the
    # 20-request bucket; once the limit is known, every request is paced under it.
    last_refused = max((n for n, status in enumerate(statuses) if status == 429), default=-1)
    assert last_refused < 2 * service.settings.batch_concurrency
