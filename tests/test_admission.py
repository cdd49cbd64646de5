"""Admission: the key a request presents, its idempotency claim or replay, and its quotas, in that order."""

from __future__ import annotations

from decimal import Decimal

import pytest
from support import BACKENDS

from nodes.admission import REPLAYED_HEADER, Admission, Admitted, preferred_wait_s, presented_key
from nodes.errors import BudgetExhausted, IdempotencyConflict, TooManyRequests, Unauthorized
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


@pytest.mark.parametrize(
    ("prefer", "expected"),
    [
        (None, 0.0),
        ("wait=30", 30.0),
        ("respond-async, wait=12.5", 12.5),
        ('handling=lenient; wait="20"', 20.0),
        ("wait=600", 90.0),  # capped
        ("return=minimal", 0.0),
    ],
)
def test_a_request_states_how_long_it_will_wait_with_prefer_wait(
    prefer: str | None, expected: float, backend: str
) -> None:
    assert preferred_wait_s({"prefer": prefer} if prefer else {}, 90.0) == expected


async def test_a_request_that_will_wait_is_held_until_its_keys_window_reopens(store: Store) -> None:
    clock = [1000.0]
    door = admission(store, rpm=1)
    door.quotas.clock = lambda: clock[0]
    async with door.admit(ME, "/v1/nodes/classify", {"input": "a"}, None):
        pass
    with pytest.raises(TooManyRequests) as refused:  # not willing to wait, or not long enough: 429 at once
        async with door.admit(ME, "/v1/nodes/classify", {"input": "b"}, None, wait_s=30):
            pass
    assert refused.value.retry_after_s == 60

    async def window_reopens(seconds: float) -> None:
        clock[0] += seconds  # the held request's sleep is the minute passing

    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await window_reopens(seconds)

    door.sleep = sleep
    async with door.admit(ME, "/v1/nodes/classify", {"input": "b"}, None, wait_s=61) as admitted:
        assert isinstance(admitted, Admitted)
    assert slept == [pytest.approx(60.05)]


async def test_a_spent_daily_budget_is_never_waited_for(store: Store) -> None:
    door = Admission(
        KeyRing(store, [KEY]),
        Quotas(store, default_rpm=None, default_budget_usd=Decimal(0)),
        IdempotencyStore(store, stale_after_s=60),
    )
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    door.sleep = sleep
    with pytest.raises(BudgetExhausted):
        async with door.admit(ME, "/v1/nodes/classify", {"input": "a"}, None, wait_s=3600):
            pass
    assert slept == []
