"""Idempotency keys: repeats cost nothing, conflicts are 409, concurrent duplicates run once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from support import BACKENDS, CLIENT_KEY, Receiver, Sandbox, Service

from nodes import idempotency
from nodes.idempotency import IdempotencyStore
from nodes.settings import Settings
from nodes.store import Store

pytestmark = BACKENDS

BODY = {"input": "Billing problem", "labels": ["billing", "bug"]}


def rows(service: Service, sql: str) -> list[tuple[object, ...]]:
    return [tuple(row.values()) for row in service.rows(sql)]


def test_repeat_returns_the_stored_answer_and_calls_no_model(service: Service, sandbox: Sandbox) -> None:
    first = service.http.post("/v1/nodes/classify", json=BODY, headers={"Idempotency-Key": "item-42"})
    again = service.http.post("/v1/nodes/classify", json=BODY, headers={"Idempotency-Key": "item-42"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert again.headers["x-tierwise-run-id"] == first.headers["x-tierwise-run-id"]
    assert again.headers["x-tierwise-cost-usd"] == first.headers["x-tierwise-cost-usd"]
    assert len(sandbox.requests()) == 1
    assert rows(service, "SELECT COUNT(*) FROM runs") == [(1,)]


def test_same_key_with_another_body_is_409(service: Service, sandbox: Sandbox) -> None:
    assert service.http.post("/v1/nodes/classify", json=BODY, headers={"Idempotency-Key": "k1"}).status_code == 200
    conflict = service.http.post(
        "/v1/nodes/classify", json={**BODY, "input": "other"}, headers={"Idempotency-Key": "k1"}
    )
    assert conflict.status_code == 409
    assert conflict.json()["type"] == "/problems/idempotency-conflict"
    other_node = service.http.post("/v1/nodes/extract", json=BODY, headers={"Idempotency-Key": "k1"})
    assert other_node.status_code == 409
    assert len(sandbox.requests()) == 1


def test_keys_are_scoped_to_the_caller(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    service = start_service(make_settings(api_keys=[CLIENT_KEY, "second-client-key"]))
    first = service.http.post("/v1/nodes/classify", json=BODY, headers={"Idempotency-Key": "shared"})
    other = httpx.post(
        f"{service.url}/v1/nodes/classify",
        json={**BODY, "input": "another customer"},
        headers={"Idempotency-Key": "shared", "X-Api-Key": "second-client-key"},
        timeout=30,
    )
    assert first.status_code == other.status_code == 200
    assert first.json()["run_id"] != other.json()["run_id"]
    assert len(sandbox.requests()) == 2


def test_key_order_in_json_does_not_matter(service: Service, sandbox: Sandbox) -> None:
    reordered = '{"labels": ["billing", "bug"], "input": "Billing problem"}'
    service.http.post("/v1/nodes/classify", json=BODY, headers={"Idempotency-Key": "k2"})
    again = service.http.post(
        "/v1/nodes/classify", content=reordered, headers={"Idempotency-Key": "k2", "content-type": "application/json"}
    )
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert len(sandbox.requests()) == 1


def test_concurrent_duplicates_run_once(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(latency_ms=300)

    def send(_: int) -> tuple[int, str]:
        response = service.http.post("/v1/nodes/classify", json=BODY, headers={"Idempotency-Key": "burst"})
        return response.status_code, response.json()["run_id"]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(8)))
    assert {status for status, _ in results} == {200}
    assert len({run_id for _, run_id in results}) == 1
    assert len(sandbox.requests()) == 1


def test_a_refused_request_does_not_use_up_its_key(service: Service, sandbox: Sandbox) -> None:
    bad = service.http.post("/v1/nodes/classify", json={"input": "x", "labels": []}, headers={"Idempotency-Key": "k3"})
    assert bad.status_code == 422
    good = service.http.post("/v1/nodes/classify", json=BODY, headers={"Idempotency-Key": "k3"})
    assert good.status_code == 200 and "idempotent-replayed" not in good.headers


def test_a_failed_run_is_replayed_too(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "refusal"}])
    body = {**BODY, "max_tier": "nano"}
    first = service.http.post("/v1/nodes/classify", json=body, headers={"Idempotency-Key": "k4"})
    again = service.http.post("/v1/nodes/classify", json=body, headers={"Idempotency-Key": "k4"})
    assert first.status_code == again.status_code == 502
    assert again.headers["content-type"] == "application/problem+json"
    assert again.json() == first.json()
    assert len(sandbox.requests()) == 1


def test_async_repeat_returns_the_same_run(async_service: Service, receiver: Receiver, sandbox: Sandbox) -> None:
    body = {**BODY, "callback_url": receiver.url}
    first = async_service.http.post("/v1/nodes/classify", json=body, headers={"Idempotency-Key": "job-1"})
    again = async_service.http.post("/v1/nodes/classify", json=body, headers={"Idempotency-Key": "job-1"})
    assert first.status_code == again.status_code == 202
    assert first.json() == again.json()
    receiver.wait_for(1)
    assert rows(async_service, "SELECT COUNT(*) FROM jobs") == [(1,)]
    assert len(sandbox.requests()) == 1


def test_batch_repeat_is_replayed(service: Service, sandbox: Sandbox) -> None:
    batch = {"items": [{"input": "a"}, {"input": "b"}], "defaults": {"labels": ["a", "b"]}}
    first = service.http.post("/v1/nodes/classify/batch", json=batch, headers={"Idempotency-Key": "b1"})
    again = service.http.post("/v1/nodes/classify/batch", json=batch, headers={"Idempotency-Key": "b1"})
    assert first.json() == again.json() and again.headers["idempotent-replayed"] == "true"
    assert len(sandbox.requests()) == 2


def test_unusable_key_is_422(service: Service) -> None:
    response = service.http.post("/v1/nodes/classify", json=BODY, headers={"Idempotency-Key": "x" * 300})
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_stored_answers_expire_after_their_time_to_live(store: Store) -> None:
    idempotency = IdempotencyStore(store, stale_after_s=150, ttl_s=3600)
    async with store.transaction() as tx:
        for key, age in (("old", 7200), ("fresh", 60)):
            await tx.execute(
                "INSERT INTO idempotency (key_id, idempotency_key, request_hash, state, status, headers, body, "
                "started_at) VALUES ('k', ?, 'h', 'done', 200, '{}', '{}', ?)",
                (key, time.time() - age),
            )
        await tx.execute(
            "INSERT INTO idempotency (key_id, idempotency_key, request_hash, state, started_at) "
            "VALUES ('k', 'running-old', 'h', 'running', ?)",
            (time.time() - 7200,),
        )
    assert await idempotency.purge() == 1
    remaining = [row["idempotency_key"] for row in await store.fetchall("SELECT idempotency_key FROM idempotency")]
    assert sorted(remaining) == ["fresh", "running-old"]


async def test_a_live_claim_is_never_taken_over_and_a_dead_one_is(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(idempotency, "RENEW_EVERY_S", 0.05)
    ledger = IdempotencyStore(store, stale_after_s=0.4)
    held = await ledger._try("k_me", "batch-1", "hash")
    assert isinstance(held, idempotency.Claim)
    renewing = asyncio.create_task(ledger.keep_renewed(held))
    try:
        for _ in range(8):  # 0.8 s: twice the staleness, the holder still alive
            await asyncio.sleep(0.1)
            assert await ledger._try("k_me", "batch-1", "hash") is None
    finally:
        renewing.cancel()
    await asyncio.sleep(0.5)  # the holder is gone: nothing renews the claim any more
    assert isinstance(await ledger._try("k_me", "batch-1", "hash"), idempotency.Claim)
