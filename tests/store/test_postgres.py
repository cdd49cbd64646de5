"""The PostgreSQL store: the shared SQL dialect rewritten for psycopg, locks across instances, errors kept apart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from nodes.errors import ConfigError
from nodes.settings import Settings
from nodes.store import DuplicateKey, Store, open_store
from nodes.store.postgres import PostgresStore, to_psycopg

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)


def test_placeholders_are_rewritten_and_percent_signs_kept(backend: str) -> None:
    assert to_psycopg("SELECT ? WHERE a LIKE 'x%' AND b = ?") == "SELECT %s WHERE a LIKE 'x%%' AND b = %s"


async def test_an_unreachable_server_is_a_configuration_error_naming_the_url(backend: str) -> None:
    with pytest.raises(ConfigError) as refused:
        await PostgresStore.open("postgresql://u:secret@127.0.0.1:1/x")
    message = str(refused.value)
    assert message.startswith("DATABASE_URL='postgresql://u:***@127.0.0.1:1/x': cannot connect to PostgreSQL (")
    assert "Connection refused" in message and "secret" not in message


async def test_unique_violations_are_duplicate_keys(store: Store) -> None:
    sql = "INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'x', 'now')"
    async with store.transaction() as tx:
        await tx.execute(sql)
    with pytest.raises(DuplicateKey):
        async with store.transaction() as tx:
            await tx.execute(sql)


async def test_serialise_makes_instances_take_turns(store_location: dict[str, Any]) -> None:
    first = await open_store(Settings(**store_location))
    second = await open_store(Settings(**store_location))
    order: list[str] = []
    holding = asyncio.Event()
    release = asyncio.Event()

    async def holder() -> None:
        async with first.transaction() as tx:
            await first.serialise(tx, "rpm:k")
            holding.set()
            await release.wait()
            order.append("first commits")

    async def waiter() -> None:
        await holding.wait()
        async with second.transaction() as tx:
            await second.serialise(tx, "rpm:k")
            order.append("second has the lock")

    try:
        tasks = [asyncio.create_task(holder()), asyncio.create_task(waiter())]
        await holding.wait()
        await asyncio.sleep(0.2)
        assert order == []
        release.set()
        await asyncio.gather(*tasks)
        assert order == ["first commits", "second has the lock"]
    finally:
        await first.close()
        await second.close()
