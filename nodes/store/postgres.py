"""The shared store: PostgreSQL via ``DATABASE_URL``, for any number of service processes.

psycopg 3's async driver with a connection pool. The database is the only coordinator between
instances: work is claimed with ``SELECT … FOR UPDATE SKIP LOCKED``, read-then-write sequences on
one name (a key's request window, the schema upgrade) hold a transaction-scoped advisory lock, and
unique constraints settle races (two instances claiming one idempotency key). SQL arrives in the
shared dialect with ``?`` placeholders and is rewritten once per statement text to psycopg's ``%s``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from nodes.errors import ConfigError
from nodes.store.base import DuplicateKey, Params, Row, StorageUnavailable, Store, StoreError, Tx

POOL_MAX = 10
CONNECT_TIMEOUT_S = 10.0


@lru_cache(maxsize=512)
def to_psycopg(sql: str) -> str:
    """Rewrite ``?`` placeholders as ``%s`` (and a literal ``%`` as ``%%``)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _converted(exc: psycopg.Error) -> StoreError:
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return DuplicateKey(str(exc))
    if isinstance(exc, psycopg.OperationalError | psycopg.errors.DiskFull | psycopg.errors.ReadOnlySqlTransaction):
        return StorageUnavailable(f"PostgreSQL: {exc}")
    return StoreError(f"PostgreSQL: {exc}")


class _PostgresTx:
    def __init__(self, conn: psycopg.AsyncConnection[Row]) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        try:
            cursor = await self._conn.execute(to_psycopg(sql), tuple(params))
        except psycopg.Error as exc:
            raise _converted(exc) from exc
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            async with self._conn.cursor() as cursor:
                await cursor.executemany(to_psycopg(sql), [tuple(row) for row in rows])
        except psycopg.Error as exc:
            raise _converted(exc) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        try:
            cursor = await self._conn.execute(to_psycopg(sql), tuple(params))
            return await cursor.fetchone()
        except psycopg.Error as exc:
            raise _converted(exc) from exc

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            cursor = await self._conn.execute(to_psycopg(sql), tuple(params))
            return await cursor.fetchall()
        except psycopg.Error as exc:
            raise _converted(exc) from exc


class PostgresStore(Store):
    """Tierwise's tables in a PostgreSQL database."""

    engine = "postgresql"
    claim_suffix = " FOR UPDATE SKIP LOCKED"
    row_lock = " FOR UPDATE"
    shared = True

    def __init__(self, url: str, pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]]) -> None:
        super().__init__(_redacted(url))
        self._pool = pool

    @classmethod
    async def open(cls, url: str, *, max_size: int = POOL_MAX) -> PostgresStore:
        """Connect to ``url``; a server that cannot be reached is a ``ConfigError`` naming ``DATABASE_URL``."""
        try:  # one plain connection first: it fails fast and says why, where a pool would keep retrying
            probe = await psycopg.AsyncConnection.connect(url, connect_timeout=int(CONNECT_TIMEOUT_S))
        except psycopg.Error as exc:
            reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip()) or type(exc).__name__
            raise ConfigError(
                f"DATABASE_URL={_redacted(url)!r}: cannot connect to PostgreSQL ({reason}); check the URL and "
                "that the server is running."
            ) from exc
        await probe.close()
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Row]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            kwargs={"row_factory": dict_row, "autocommit": True},
            open=False,
            timeout=CONNECT_TIMEOUT_S,
            name="tierwise",
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:
            await pool.close()
            raise ConfigError(
                f"DATABASE_URL={_redacted(url)!r}: cannot connect to PostgreSQL ({exc}); check the URL and that the "
                "server is running."
            ) from exc
        return cls(url, pool)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A transaction on a pooled connection."""
        try:
            async with self._pool.connection() as conn, conn.transaction():
                yield _PostgresTx(conn)
        except psycopg.Error as exc:
            raise _converted(exc) from exc
        except TimeoutError as exc:  # the pool had no connection to give in time
            raise StorageUnavailable(f"PostgreSQL: no connection available ({exc})") from exc

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """A read in autocommit mode."""
        try:
            async with self._pool.connection() as conn:
                return await _PostgresTx(conn).fetchall(sql, params)
        except psycopg.Error as exc:  # the connection itself failed
            raise _converted(exc) from exc
        except TimeoutError as exc:
            raise StorageUnavailable(f"PostgreSQL: no connection available ({exc})") from exc

    async def serialise(self, tx: Tx, name: str) -> None:
        """A transaction advisory lock on ``name``: every instance waits for the holder's commit."""
        await tx.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (f"tierwise:{name}",))

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()


def _redacted(url: str) -> Any:
    """``url`` with any password replaced, for messages."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable URL>"
    if info.get("password"):
        return url.replace(str(info["password"]), "***")
    return url
