"""API keys: shown once, stored hashed, found on every instance, names unique."""

from __future__ import annotations

from decimal import Decimal

import pytest
from support import BACKENDS

from nodes.errors import InvalidRequest
from nodes.keys import KEY_PREFIX, Caller, KeyRing, hash_key, key_id_of
from nodes.store import Store

pytestmark = BACKENDS


async def test_a_created_key_is_stored_only_as_its_hash(store: Store) -> None:
    ring = KeyRing(store, ["env-key-000001", "env-key-000002"])
    key = await ring.create("n8n-prod", rpm=10, daily_budget_usd=Decimal("1.5"))
    assert key.startswith(KEY_PREFIX) and len(key) > 40
    (row,) = await store.fetchall("SELECT name, key_hash, prefix, rpm, daily_budget_usd FROM api_keys")
    assert row == {
        "name": "n8n-prod",
        "key_hash": hash_key(key),
        "prefix": key[:7],
        "rpm": 10,
        "daily_budget_usd": "1.5",
    }
    assert await ring.count() == 3
    assert [entry["name"] for entry in await ring.listing()] == ["n8n-prod"]


async def test_keys_are_identified_on_any_instance(store: Store) -> None:
    key = await KeyRing(store, []).create("made-elsewhere", rpm=7)
    other_instance = KeyRing(store, ["env-key-000001"])
    assert await other_instance.identify(key) == Caller(key_id_of(hash_key(key)), "made-elsewhere", rpm=7)
    assert await other_instance.identify("env-key-000001") == Caller(key_id_of(hash_key("env-key-000001")), "env-1")
    assert await other_instance.identify("env-key-000002") is None


async def test_ownership_follows_the_key_not_its_name_or_position(store: Store) -> None:
    a, b = "env-key-aaaaaa", "env-key-bbbbbb"
    before = KeyRing(store, [a, b])
    after_rotation = KeyRing(store, [b])  # a removed: b moves into position 1 and takes the name env-1
    first_b, rotated_b = await before.identify(b), await after_rotation.identify(b)
    first_a = await before.identify(a)
    assert first_a is not None and first_b is not None and rotated_b is not None
    assert (first_b.name, rotated_b.name) == ("env-2", "env-1")
    assert first_b.key_id == rotated_b.key_id != first_a.key_id
    assert await after_rotation.identify(a) is None


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("  ", {}, "a key needs a name"),
        ("x", {"rpm": 0}, "--rpm must be at least 1"),
        ("x", {"daily_budget_usd": Decimal(0)}, "--daily-budget-usd must be more than 0"),
        ("env-1", {}, "names starting with 'env-' are kept for keys from TIERWISE_API_KEYS"),
    ],
)
async def test_bad_key_requests_are_refused(store: Store, name: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        await KeyRing(store, []).create(name, **options)  # type: ignore[arg-type]


async def test_a_name_is_used_once(store: Store) -> None:
    ring = KeyRing(store, [])
    await ring.create("twice")
    with pytest.raises(InvalidRequest, match="a key named 'twice' exists already"):
        await ring.create("twice")
