"""The SQLite store: transactions commit or roll back whole, reads see committed data, errors keep their meaning."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from nodes.errors import ConfigError
from nodes.store import DuplicateKey, StorageUnavailable, StoreError
from nodes.store.sqlite import SQLiteStore

INSERT = "INSERT INTO key_requests (key_id, at) VALUES (?, ?)"


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> SQLiteStore:
    from nodes.store.schema import upgrade

    store = await SQLiteStore.open(str(tmp_path / "t.db"))
    await upgrade(store)
    yield store  # type: ignore[misc]
    await store.close()


async def test_a_transaction_commits_whole_or_not_at_all(sqlite_store: SQLiteStore) -> None:
    async with sqlite_store.transaction() as tx:
        await tx.execute(INSERT, ("a", 1.0))
        assert await tx.execute("UPDATE key_requests SET at = 2.0 WHERE key_id = 'a'") == 1
    with pytest.raises(RuntimeError):
        async with sqlite_store.transaction() as tx:
            await tx.execute(INSERT, ("b", 1.0))
            raise RuntimeError("the caller changed its mind")
    assert await sqlite_store.fetchall("SELECT key_id, at FROM key_requests") == [{"key_id": "a", "at": 2.0}]


async def test_reads_see_only_committed_rows(sqlite_store: SQLiteStore) -> None:
    inside = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with sqlite_store.transaction() as tx:
            await tx.execute(INSERT, ("pending", 1.0))
            inside.set()
            await release.wait()

    task = asyncio.create_task(writer())
    await inside.wait()
    assert await sqlite_store.fetchall("SELECT * FROM key_requests") == []
    release.set()
    await task
    assert len(await sqlite_store.fetchall("SELECT * FROM key_requests")) == 1


async def test_unique_violations_and_broken_statements_are_told_apart(sqlite_store: SQLiteStore) -> None:
    async with sqlite_store.transaction() as tx:
        await tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'x', 'now')")
    with pytest.raises(DuplicateKey):
        async with sqlite_store.transaction() as tx:
            await tx.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'x', 'now')")
    with pytest.raises(StoreError) as broken:
        await sqlite_store.fetchall("SELECT * FROM no_such_table")
    assert not isinstance(broken.value, StorageUnavailable) and "no such table" in str(broken.value)


async def test_a_read_only_database_is_storage_unavailable(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "q.db"))
    try:
        assert store._writer is not None
        await store._writer.execute("PRAGMA query_only = ON")
        with pytest.raises(StorageUnavailable, match="readonly|read-only|attempt to write"):
            async with store.transaction() as tx:
                await tx.execute("CREATE TABLE t (x INTEGER)")
    finally:
        await store.close()


async def test_a_closed_store_and_a_missing_folder_say_so(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "c.db"))
    await store.close()
    with pytest.raises(StorageUnavailable, match="closed"):
        await store.fetchall("SELECT 1")
    with pytest.raises(ConfigError, match="does not exist; create it first"):
        await SQLiteStore.open(str(tmp_path / "missing" / "t.db"))
