"""Admission: the key a request presents, its idempotency claim or replay, and its quotas, in that order."""

from __future__ import annotations

from decimal import Decimal

import pytest
from support import BACKENDS

from nodes.admission import REPLAYED_HEADER, Admission, Admitted, presented_key
from nodes.errors import IdempotencyConflict, TooManyRequests, Unauthorized
from nodes.idempotency import IdempotencyStore
from nodes.keys import Caller, KeyRing, hash_key, key_id_of
from nodes.protocol import Reply
from nodes.quotas import Quotas
from nodes.store import Store

pytestmark = BACKENDS
KEY = "an-environment-key"
ME = Caller("k_me", "env-1")
OTHER = Caller("k_other", "env-2")


def admission(store: Store, *, rpm: int | None = None) -> Admission:
    return Admission(
        KeyRing(store, [KEY]),
        Quotas(store, default_rpm=rpm, default_budget_usd=None),
        IdempotencyStore(store, stale_after_s=60),
    )


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "an API key is required: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'"),
        ({"authorization": "Basic abc"}, "the Authorization header must be 'Bearer <key>'"),
        ({"authorization": "Bearer "}, "the Authorization header must be 'Bearer <key>'"),
        ({"x-api-key": "  "}, "an API key is required: send 'Authorization: Bearer <key>' or 'X-Api-Key: <key>'"),
    ],
)
def test_a_request_without_a_usable_key_is_told_how_to_send_one(
    backend: str, headers: dict[str, str], message: str
) -> None:
    with pytest.raises(Unauthorized) as refused:
        presented_key(headers)
    assert refused.value.detail == message and refused.value.headers == {"WWW-Authenticate": 'Bearer realm="tierwise"'}


async def test_keys_from_the_environment_and_the_store_are_known_by_name(store: Store) -> None:
    gate = admission(store)
    made = await gate.keys.create("n8n-prod", rpm=5, daily_budget_usd=Decimal("2"))
    assert await gate.caller({"authorization": f"Bearer {KEY}"}) == Caller(key_id_of(hash_key(KEY)), "env-1")
    assert await gate.caller({"x-api-key": made}) == Caller(
        key_id_of(hash_key(made)), "n8n-prod", rpm=5, daily_budget_usd=Decimal("2")
    )
    with pytest.raises(Unauthorized, match="the API key is not valid"):
        await gate.caller({"x-api-key": "tw_not-a-key"})


async def test_a_stored_answer_is_replayed_before_any_limit_is_counted(store: Store) -> None:
    gate = admission(store, rpm=1)
    body = {"input": "x", "labels": ["a"]}
    async with gate.admit(ME, "/v1/nodes/classify", body, "item-1") as admitted:
        assert isinstance(admitted, Admitted) and admitted.claim is not None
        async with store.transaction() as tx:
            await gate.idempotency.finish(
                tx, admitted.claim, Reply(200, {"run_id": "run_1"}, {"X-Tierwise-Tier": "nano"})
            )
    async with gate.admit(ME, "/v1/nodes/classify", body, "item-1") as replayed:
        assert replayed == Reply(200, {"run_id": "run_1"}, {"X-Tierwise-Tier": "nano", REPLAYED_HEADER: "true"})
    with pytest.raises(IdempotencyConflict):
        async with gate.admit(ME, "/v1/nodes/classify", {**body, "input": "y"}, "item-1"):
            pass


async def test_a_refused_or_broken_request_gives_its_claim_back(store: Store) -> None:
    gate = admission(store, rpm=1)
    async with gate.admit(ME, "/v1/nodes/classify", {"n": 0}, None):
        pass
    with pytest.raises(TooManyRequests):
        async with gate.admit(ME, "/v1/nodes/classify", {"n": 1}, "item-2"):
            pass
    with pytest.raises(RuntimeError):
        async with gate.admit(OTHER, "/v1/nodes/classify", {"n": 2}, "item-3"):
            raise RuntimeError("a bug after admission")
    assert await store.fetchall("SELECT * FROM idempotency") == []
