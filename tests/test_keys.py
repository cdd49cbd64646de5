"""API keys: shown once, stored hashed, found on every instance, names unique."""

from __future__ import annotations

from decimal import Decimal

import pytest
from support import BACKENDS

from nodes.errors import InvalidRequest
from nodes.keys import KEY_PREFIX, KeyRing, hash_key
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
    key = await KeyRing(store, []).create("made-elsewhere")
    other_instance = KeyRing(store, ["env-key-000001"])
    assert await other_instance.identify(key) == "made-elsewhere"
    assert await other_instance.identify("env-key-000001") == "env-1"
    assert await other_instance.identify("env-key-000002") is None


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("  ", {}, "a key needs a name"),
        ("x", {"rpm": 0}, "--rpm must be at least 1"),
        ("x", {"daily_budget_usd": Decimal(0)}, "--daily-budget-usd must be more than 0"),
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
