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
from support import BACKENDS, CLIENT_KEY, Sandbox, Service

from nodes.errors import BudgetExhausted, TooManyRequests
from nodes.keys import Caller
from nodes.quotas import Quotas, add_spend, seconds_to_utc_midnight, to_picousd
from nodes.settings import Settings
from nodes.store import Store

pytestmark = BACKENDS
K = Caller("k", "k")

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
        await quotas.admit(K)
    now[0] = 1030.0
    with pytest.raises(TooManyRequests) as refused:
        await quotas.admit(K)
    assert refused.value.retry_after_s == 30 and refused.value.headers["Retry-After"] == "30"
    now[0] = 1060.0
    await quotas.admit(K)
    await quotas.admit(Caller("k_other", "other"))
    assert [row["at"] for row in await store.fetchall("SELECT at FROM key_requests WHERE key_id = 'k'")] == [
        1010.0,
        1020.0,
        1060.0,
    ]


async def test_two_instances_share_one_window(store: Store) -> None:
    now = [1000.0]
    first = Quotas(store, default_rpm=2, default_budget_usd=None, clock=lambda: now[0])
    second = Quotas(store, default_rpm=2, default_budget_usd=None, clock=lambda: now[0])
    await first.admit(K)
    await second.admit(K)
    with pytest.raises(TooManyRequests):
        await first.admit(K)
    with pytest.raises(TooManyRequests):
        await second.admit(K)


async def test_budget_resets_at_utc_midnight(store: Store) -> None:
    async with store.transaction() as tx:
        await add_spend(tx, "k", "2026-11-20", Decimal("5"))
        await add_spend(tx, "k", "2026-11-21", Decimal("0.5"))
        await add_spend(tx, "k", "2026-11-21", Decimal("0.25"))
    noon = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    quotas = Quotas(store, default_rpm=None, default_budget_usd=Decimal("1"), wall_clock=lambda: noon)
    assert await quotas.spent_today("k") == Decimal("0.75")
    await quotas.admit(K)
    tight = Quotas(store, default_rpm=None, default_budget_usd=Decimal("0.75"), wall_clock=lambda: noon)
    with pytest.raises(BudgetExhausted) as refused:
        await tight.admit(K)
    assert refused.value.retry_after_s == 12 * 3600
    with pytest.raises(BudgetExhausted):
        await quotas.ensure_budget(K, running=Decimal("0.25"))
    await quotas.ensure_budget(Caller("k", "k", daily_budget_usd=Decimal("2")), running=Decimal("1"))
    assert seconds_to_utc_midnight(datetime(2026, 11, 21, 23, 59, 30, tzinfo=UTC)) == 30


def test_spend_is_counted_up_to_the_last_picodollar(backend: str) -> None:
    assert to_picousd(Decimal("0.00003245")) == 32_450_000
    assert to_picousd(Decimal("1E-13")) == 1


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


def test_a_batch_and_a_long_run_stop_where_the_budget_runs_out(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    budget = Decimal("0.00009")
    service = start_service(make_settings(key_daily_budget_usd=budget, batch_concurrency=1))
    items = [{"input": f"ticket {n}"} for n in range(12)]
    response = service.http.post("/v1/nodes/classify/batch", json={"items": items, "defaults": {"labels": ["a", "b"]}})
    assert response.status_code == 200
    results = response.json()["results"]
    costs = [Decimal(str(r["usage"]["cost_usd"])) for r in results if "output" in r]
    refused = results[len(costs) :]
    assert costs and all(r["type"] == "/problems/budget-exhausted" and r["status"] == 429 for r in refused)
    assert sum(costs[:-1]) < budget <= sum(costs)  # items ran while the spend was under the budget, no longer
    # A run that needs more calls stops before the call that would go past the budget.
    sandbox.configure(faults=[{"kind": "schema_drift", "model": "*"}])
    fresh = start_service(
        make_settings(key_daily_budget_usd=Decimal("0.0000001"), api_keys=[CLIENT_KEY, "a-key-with-no-spend"])
    )
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    stopped = fresh.anonymous.post(
        "/v1/nodes/extract", json={"input": "Ann", "schema": schema}, headers={"X-Api-Key": "a-key-with-no-spend"}
    )
    assert stopped.status_code == 429 and stopped.headers["retry-after"]
    problem = stopped.json()
    assert problem["type"] == "/problems/budget-exhausted" and len(problem["attempts"]) == 1
    assert problem["usage"]["cost_usd"] > 0
