"""Per-key limits: requests per minute and daily budgets, answered 429 with Retry-After."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from support import BACKENDS, Service

from nodes.errors import BudgetExhausted, TooManyRequests
from nodes.quotas import Quotas, seconds_to_utc_midnight
from nodes.settings import Settings
from nodes.store import Store

pytestmark = BACKENDS

BODY = {"input": "x", "labels": ["a"]}


def test_requests_per_minute(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings]
) -> None:
    service = start_service(make_settings(key_rpm=2))
    assert [service.http.post("/v1/nodes/classify", json=BODY).status_code for _ in range(2)] == [200, 200]
    refused = service.http.post("/v1/nodes/classify", json=BODY)
    assert refused.status_code == 429
    problem = refused.json()
    assert problem["type"] == "/problems/rate-limited" and problem["limit"] == "requests_per_minute"
    assert "2 requests per minute" in problem["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 60 and problem["retry_after_s"] == int(
        refused.headers["retry-after"]
    )


def test_daily_budget(start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings]) -> None:
    service = start_service(make_settings(key_daily_budget_usd=Decimal("0.00001")))
    first = service.http.post("/v1/nodes/classify", json=BODY)
    assert first.status_code == 200 and Decimal(first.headers["x-tierwise-cost-usd"]) > Decimal("0.00001")
    refused = service.http.post("/v1/nodes/classify", json=BODY)
    assert refused.status_code == 429
    problem = refused.json()
    assert problem["type"] == "/problems/budget-exhausted" and problem["limit"] == "daily_budget_usd"
    assert "daily budget is $0.00001" in problem["detail"]
    assert 1 <= int(refused.headers["retry-after"]) <= 86_400


async def test_window_slides_and_retry_after_is_exact(store: Store) -> None:
    now = [1000.0]
    quotas = Quotas(store, default_rpm=3, default_budget_usd=None, clock=lambda: now[0])
    for offset in (0, 10, 20):
        now[0] = 1000.0 + offset
        await quotas.admit("k")
    now[0] = 1030.0
    with pytest.raises(TooManyRequests) as refused:
        await quotas.admit("k")
    assert refused.value.retry_after_s == 30 and refused.value.headers["Retry-After"] == "30"
    now[0] = 1060.0
    await quotas.admit("k")
    await quotas.admit("other-key")
    assert [row["at"] for row in await store.fetchall("SELECT at FROM key_requests WHERE key_name = 'k'")] == [
        1010.0,
        1020.0,
        1060.0,
    ]


async def test_two_instances_share_one_window(store: Store) -> None:
    now = [1000.0]
    first = Quotas(store, default_rpm=2, default_budget_usd=None, clock=lambda: now[0])
    second = Quotas(store, default_rpm=2, default_budget_usd=None, clock=lambda: now[0])
    await first.admit("k")
    await second.admit("k")
    with pytest.raises(TooManyRequests):
        await first.admit("k")
    with pytest.raises(TooManyRequests):
        await second.admit("k")


async def test_budget_resets_at_utc_midnight(store: Store) -> None:
    async with store.transaction() as tx:
        for created, cost in (("2026-11-20T23:59:59.000Z", "5"), ("2026-11-21T08:00:00.000Z", "0.75")):
            await tx.execute(
                "INSERT INTO runs (run_id, node, status, start_tier, routing_reason, escalated, attempt_count, "
                "input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, baseline_cost_usd, "
                "latency_ms, overhead_ms, sandbox, api_key_name, metadata, request, response, created_at) VALUES "
                "(?, 'classify', 'succeeded', 'nano', 'r', 0, 1, 0, 0, 0, 0, ?, '0', 0, 0, 0, 'k', "
                "'{}', '{}', '{}', ?)",
                (f"run_{created}", cost, created),
            )
    noon = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    quotas = Quotas(store, default_rpm=None, default_budget_usd=Decimal("1"), wall_clock=lambda: noon)
    assert await quotas.spent_today("k") == Decimal("0.75")
    await quotas.admit("k")
    tight = Quotas(store, default_rpm=None, default_budget_usd=Decimal("0.75"), wall_clock=lambda: noon)
    with pytest.raises(BudgetExhausted) as refused:
        await tight.admit("k")
    assert refused.value.retry_after_s == 12 * 3600
    assert seconds_to_utc_midnight(datetime(2026, 11, 21, 23, 59, 30, tzinfo=UTC)) == 30


def test_a_key_of_its_own_overrides_the_defaults(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(key_rpm=100)
    created = subprocess.run(
        [sys.executable, "-m", "nodes", "keys", "create", "--name", "tight", "--rpm", "1"],
        env={"TIERWISE_DB": settings.db, "DATABASE_URL": settings.database_url or "", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    service = start_service(settings)
    headers = {"Authorization": f"Bearer {key}"}
    assert httpx.post(f"{service.url}/v1/nodes/classify", json=BODY, headers=headers, timeout=30).status_code == 200
    assert httpx.post(f"{service.url}/v1/nodes/classify", json=BODY, headers=headers, timeout=30).status_code == 429
    assert service.http.post("/v1/nodes/classify", json=BODY).status_code == 200
