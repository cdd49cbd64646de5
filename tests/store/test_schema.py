"""Migrations: applied once, in order, by any number of instances at once; older databases adopted as they are."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from support import BACKENDS

from nodes.settings import Settings
from nodes.store import Store, open_store
from nodes.store.schema import LATEST, MIGRATIONS, applied_versions, upgrade


@BACKENDS
async def test_a_new_store_has_every_migration_once(store: Store) -> None:
    assert await applied_versions(store) == {migration.version for migration in MIGRATIONS}
    assert LATEST == MIGRATIONS[-1].version
    assert await upgrade(store) == []
    rows = await store.fetchall("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(row["version"], row["name"]) for row in rows] == [(m.version, m.name) for m in MIGRATIONS]


@BACKENDS
async def test_instances_starting_together_apply_each_migration_once(store_location: dict[str, Any]) -> None:
    settings = Settings(**store_location)
    bare = [await open_store(settings, migrate=False) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(upgrade(store) for store in bare))
        assert sorted(m.version for batch in applied for m in batch) == [m.version for m in MIGRATIONS]
        assert await applied_versions(bare[0]) == {m.version for m in MIGRATIONS}
    finally:
        for store in bare:
            await store.close()


async def test_a_database_made_before_migrations_is_adopted_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    legacy = sqlite3.connect(path)
    for statement in MIGRATIONS[0].statements:
        legacy.execute(statement)
    legacy.execute(
        "INSERT INTO api_keys (name, key_hash, prefix, created_at) VALUES ('n8n-prod', 'abc', 'tw_abcd', "
        "'2026-11-20T09:00:00.000Z')"
    )
    legacy.commit()
    legacy.close()
    store = await open_store(Settings(db=str(path)))
    try:
        assert await applied_versions(store) == {m.version for m in MIGRATIONS}
        assert await store.fetchall("SELECT name, prefix FROM api_keys") == [{"name": "n8n-prod", "prefix": "tw_abcd"}]
        assert await store.fetchall("SELECT COUNT(*) AS n FROM key_requests") == [{"n": 0}]
    finally:
        await store.close()


async def test_runs_of_stored_keys_move_to_the_keys_identity(tmp_path: Path) -> None:
    from nodes.keys import key_id_of

    path = tmp_path / "named.db"
    store = await open_store(Settings(db=str(path)), migrate=False)
    try:
        for migration in MIGRATIONS[:1]:  # a database made before migrations existed
            async with store.transaction() as tx:
                for statement in migration.statements:
                    await tx.execute(statement)
        async with store.transaction() as tx:
            await tx.execute(
                "INSERT INTO api_keys (name, key_hash, prefix, created_at) VALUES ('n8n-prod', ?, 'tw_abcd', 'x')",
                ("ab" * 32,),
            )
            for run_id, owner, cost in (("run_1", "n8n-prod", "0.25"), ("run_2", "env-1", "0.5")):
                await tx.execute(
                    "INSERT INTO runs (run_id, node, status, start_tier, routing_reason, escalated, attempt_count, "
                    "input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, cost_usd, "
                    "baseline_cost_usd, latency_ms, overhead_ms, sandbox, api_key_name, metadata, request, "
                    "response, created_at) VALUES (?, 'classify', 'succeeded', 'nano', 'r', 0, 1, 0, 0, 0, 0, ?, "
                    "'0', 0, 0, 0, ?, '{}', '{}', '{}', '2026-11-21T08:00:00.000Z')",
                    (run_id, cost, owner),
                )
        await upgrade(store)
        rows = await store.fetchall("SELECT run_id, key_id FROM runs ORDER BY run_id")
        assert rows == [{"run_id": "run_1", "key_id": key_id_of("ab" * 32)}, {"run_id": "run_2", "key_id": "env-1"}]
        spend = await store.fetchall("SELECT key_id, day, cost_picousd FROM key_spend ORDER BY key_id")
        assert spend == [
            {"key_id": "env-1", "day": "2026-11-21", "cost_picousd": 500_000_000_000},
            {"key_id": key_id_of("ab" * 32), "day": "2026-11-21", "cost_picousd": 250_000_000_000},
        ]
    finally:
        await store.close()
