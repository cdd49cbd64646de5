"""The tables, as a list of numbered migrations applied in order at start-up (or by ``tierwise db upgrade``).

Each migration is a list of statements both engines run. The applied versions are kept in
``schema_migrations``; a store opens only once every migration is applied, and several instances
starting together apply each migration once (the upgrade holds the store's ``serialise`` lock).
A database made by an older Tierwise without ``schema_migrations`` has version 1's tables already;
version 1 is written with ``IF NOT EXISTS`` so it adopts them as they are.

Rows that belong to a caller carry its ``key_id``: ``k_`` and the first 24 hex digits of the key's
SHA-256, the same for a key from ``TIERWISE_API_KEYS`` as for one made by ``tierwise keys create``, so
ownership follows the key itself, never its name or its position in a list.

Tables: ``runs`` (one row per node run: its routing decision, totals and the exact answer sent),
``attempts`` (one row per model call, failed ones included), ``api_keys`` (names, SHA-256 hashes and
per-key limits; never the key), ``jobs`` (asynchronous runs, committed before the 202), ``outbox``
(callback deliveries, kept until the receiver says 2xx or the deadline passes), ``audits`` (runs
re-done one tier up), ``idempotency`` (the answer to every request sent with an ``Idempotency-Key``),
``key_requests`` (the last minute of each key's requests, for its per-minute limit) and ``key_spend``
(what each key's runs cost per UTC day, in millionths of a millionth of a dollar, for its budget).
"""

from __future__ import annotations

from dataclasses import dataclass

from nodes.store.base import Store, utc_stamp


@dataclass(frozen=True)
class Migration:
    """One step of the schema."""

    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial tables",
        (
            """CREATE TABLE IF NOT EXISTS runs (
                run_id TEXT PRIMARY KEY,
                node TEXT NOT NULL,
                status TEXT NOT NULL,
                start_tier TEXT NOT NULL,
                routing_reason TEXT NOT NULL,
                final_tier TEXT,
                model TEXT,
                escalated INTEGER NOT NULL,
                attempt_count INTEGER NOT NULL,
                input_tokens BIGINT NOT NULL,
                cached_input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                reasoning_tokens BIGINT NOT NULL,
                cost_usd TEXT NOT NULL,
                baseline_cost_usd TEXT NOT NULL,
                latency_ms BIGINT NOT NULL,
                overhead_ms DOUBLE PRECISION NOT NULL,
                sandbox INTEGER NOT NULL,
                api_key_name TEXT,
                metadata TEXT NOT NULL,
                request TEXT NOT NULL,
                response TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS runs_by_time ON runs (created_at)",
            "CREATE INDEX IF NOT EXISTS runs_by_key_and_time ON runs (api_key_name, created_at)",
            """CREATE TABLE IF NOT EXISTS attempts (
                run_id TEXT NOT NULL REFERENCES runs (run_id),
                seq INTEGER NOT NULL,
                tier TEXT NOT NULL,
                model TEXT NOT NULL,
                outcome TEXT NOT NULL,
                latency_ms BIGINT NOT NULL,
                waited_ms BIGINT NOT NULL,
                repair INTEGER NOT NULL,
                input_tokens BIGINT NOT NULL,
                cached_input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                reasoning_tokens BIGINT NOT NULL,
                cost_usd TEXT NOT NULL,
                error TEXT,
                PRIMARY KEY (run_id, seq)
            )""",
            """CREATE TABLE IF NOT EXISTS api_keys (
                name TEXT PRIMARY KEY,
                key_hash TEXT NOT NULL UNIQUE,
                prefix TEXT NOT NULL,
                rpm INTEGER,
                daily_budget_usd TEXT,
                created_at TEXT NOT NULL
            )""",
            """CREATE TABLE IF NOT EXISTS jobs (
                run_id TEXT PRIMARY KEY,
                node TEXT NOT NULL,
                request TEXT NOT NULL,
                callback_url TEXT NOT NULL,
                api_key_name TEXT,
                status TEXT NOT NULL,
                worker TEXT,
                lease_until DOUBLE PRECISION,
                tries INTEGER NOT NULL DEFAULT 0,
                created_at TEXT NOT NULL,
                finished_at TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at)",
            """CREATE TABLE IF NOT EXISTS outbox (
                delivery_id TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                url TEXT NOT NULL,
                body TEXT NOT NULL,
                status TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at DOUBLE PRECISION NOT NULL,
                leased_until DOUBLE PRECISION,
                deadline_at DOUBLE PRECISION NOT NULL,
                last_error TEXT,
                delivered_at TEXT
            )""",
            "CREATE INDEX IF NOT EXISTS outbox_due ON outbox (status, next_attempt_at)",
            """CREATE TABLE IF NOT EXISTS audits (
                run_id TEXT PRIMARY KEY REFERENCES runs (run_id),
                node TEXT NOT NULL,
                tier TEXT NOT NULL,
                audit_tier TEXT NOT NULL,
                agreed INTEGER,
                detail TEXT NOT NULL,
                cost_usd TEXT NOT NULL,
                created_at TEXT NOT NULL
            )""",
            "CREATE INDEX IF NOT EXISTS audits_by_time ON audits (created_at)",
            """CREATE TABLE IF NOT EXISTS idempotency (
                key_name TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                request_hash TEXT NOT NULL,
                state TEXT NOT NULL,
                status INTEGER,
                headers TEXT,
                body TEXT,
                started_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (key_name, idempotency_key)
            )""",
        ),
    ),
    Migration(
        2,
        "per-key request windows shared by every instance",
        (
            """CREATE TABLE key_requests (
                key_name TEXT NOT NULL,
                at DOUBLE PRECISION NOT NULL
            )""",
            "CREATE INDEX key_requests_by_key ON key_requests (key_name, at)",
            "CREATE INDEX outbox_by_run ON outbox (run_id)",
        ),
    ),
    Migration(
        3,
        "a key's own identity, not its name, owns its runs; a daily spend counter per key",
        (
            "ALTER TABLE runs RENAME COLUMN api_key_name TO key_id",
            "ALTER TABLE jobs RENAME COLUMN api_key_name TO key_id",
            "ALTER TABLE idempotency RENAME COLUMN key_name TO key_id",
            "ALTER TABLE key_requests RENAME COLUMN key_name TO key_id",
            # Rows of keys made with `tierwise keys create` move to the key's identity. Rows written under the
            # positional names of environment keys (env-1, ...) keep them: no key can claim them any more.
            *(
                f"UPDATE {table} SET key_id = (SELECT 'k_' || substr(key_hash, 1, 24) FROM api_keys "
                f"WHERE api_keys.name = {table}.key_id) WHERE key_id IN (SELECT name FROM api_keys)"
                for table in ("runs", "jobs", "idempotency")
            ),
            "DELETE FROM key_requests",
            """CREATE TABLE key_spend (
                key_id TEXT NOT NULL,
                day TEXT NOT NULL,
                cost_picousd BIGINT NOT NULL,
                PRIMARY KEY (key_id, day)
            )""",
            "INSERT INTO key_spend (key_id, day, cost_picousd) SELECT key_id, substr(created_at, 1, 10), "
            "CAST(ROUND(SUM(CAST(cost_usd AS DOUBLE PRECISION)) * 1000000000000) AS BIGINT) FROM runs "
            "WHERE key_id IS NOT NULL GROUP BY key_id, substr(created_at, 1, 10)",
        ),
    ),
    Migration(
        4,
        "steps: the pipeline step of every run and audit, for the tier each step learns",
        (
            "ALTER TABLE runs ADD COLUMN step TEXT",
            "ALTER TABLE audits ADD COLUMN step TEXT",
            "ALTER TABLE audits ADD COLUMN key_id TEXT",
            "CREATE INDEX runs_by_step ON runs (key_id, step, created_at)",
            "CREATE INDEX audits_by_step ON audits (key_id, step, created_at)",
        ),
    ),
    Migration(
        5,
        "lanes: the processing lane every model call was sent and priced on",
        ("ALTER TABLE attempts ADD COLUMN processing TEXT NOT NULL DEFAULT 'standard'",),
    ),
    Migration(
        6,
        "calibration: the probability the cheaper tier's tokens gave the answer an audit judged",
        ("ALTER TABLE audits ADD COLUMN cheaper_probability DOUBLE PRECISION",),
    ),
    Migration(
        7,
        "the batch lane: each run's calls sent through the Batch API, and the batches they went in",
        (
            """CREATE TABLE batch_calls (
                run_id TEXT NOT NULL,
                call_key TEXT NOT NULL,
                tier TEXT NOT NULL,
                body TEXT NOT NULL,
                status TEXT NOT NULL,
                batch_label TEXT,
                result TEXT,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL,
                PRIMARY KEY (run_id, call_key)
            )""",
            "CREATE INDEX batch_calls_by_status ON batch_calls (status, tier, created_at)",
            "CREATE INDEX batch_calls_by_batch ON batch_calls (batch_label)",
            """CREATE TABLE upstream_batches (
                label TEXT PRIMARY KEY,
                tier TEXT NOT NULL,
                batch_id TEXT,
                status TEXT NOT NULL,
                owner TEXT,
                lease_until DOUBLE PRECISION,
                sent_at DOUBLE PRECISION NOT NULL,
                created_at TEXT NOT NULL,
                updated_at TEXT NOT NULL
            )""",
            "CREATE INDEX upstream_batches_by_status ON upstream_batches (status, created_at)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version


async def applied_versions(store: Store) -> set[int]:
    """The migrations already applied to ``store``."""
    async with store.transaction() as tx:
        await store.serialise(tx, "schema")  # two instances creating the table at once would collide
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TEXT NOT NULL)"
        )
        rows = await tx.fetchall("SELECT version FROM schema_migrations")
    return {int(row["version"]) for row in rows}


async def upgrade(store: Store) -> list[Migration]:
    """Apply every migration ``store`` lacks, each in its own transaction; returns those applied."""
    applied: list[Migration] = []
    done = await applied_versions(store)
    for migration in MIGRATIONS:
        if migration.version in done:
            continue
        async with store.transaction() as tx:
            await store.serialise(tx, "schema")
            if await tx.fetchone("SELECT version FROM schema_migrations WHERE version = ?", (migration.version,)):
                continue  # another instance applied it while this one waited for the lock
            for statement in migration.statements:
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, utc_stamp()),
            )
        applied.append(migration)
    return applied
