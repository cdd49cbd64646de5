"""The embedded store: one SQLite file in WAL mode, created with its tables on first use.

SQLite runs in aiosqlite's worker threads, so a slow disk never blocks the event loop. Writes go
through one connection, one transaction at a time (``BEGIN IMMEDIATE`` takes the file's write lock
up front, so two transactions never deadlock upgrading a read lock); reads use a second connection
and see only committed data. One service process uses one file: more processes need PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from nodes.errors import ConfigError
from nodes.store.base import DuplicateKey, Params, Row, StorageUnavailable, Store, StoreError, Tx

BUSY_TIMEOUT_MS = 5000
UNAVAILABLE_CODES = frozenset(
    {
        sqlite3.SQLITE_BUSY,
        sqlite3.SQLITE_LOCKED,
        sqlite3.SQLITE_NOMEM,
        sqlite3.SQLITE_READONLY,
        sqlite3.SQLITE_IOERR,
        sqlite3.SQLITE_CORRUPT,
        sqlite3.SQLITE_FULL,
        sqlite3.SQLITE_CANTOPEN,
        sqlite3.SQLITE_PROTOCOL,
    }
)
"""Primary result codes that mean the file cannot be used right now, as opposed to a statement's own fault."""


def _converted(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc).upper():
        return DuplicateKey(str(exc))
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in UNAVAILABLE_CODES:
        return StorageUnavailable(f"SQLite: {exc}")
    return StoreError(f"SQLite: {exc}")


class _SQLiteTx:
    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, params: Params = ()) -> int:
        try:
            cursor = await self._conn.execute(sql, tuple(params))
        except sqlite3.Error as exc:
            raise _converted(exc) from exc
        count = cursor.rowcount
        await cursor.close()
        return count

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        try:
            await self._conn.executemany(sql, [tuple(row) for row in rows])
        except sqlite3.Error as exc:
            raise _converted(exc) from exc

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        try:
            cursor = await self._conn.execute(sql, tuple(params))
            rows = await cursor.fetchall()
        except sqlite3.Error as exc:
            raise _converted(exc) from exc
        await cursor.close()
        return [dict(row) for row in rows]


class SQLiteStore(Store):
    """Tierwise's tables in one SQLite file (or ``:memory:``)."""

    engine = "sqlite"

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SQLiteStore:
        """Open (creating if needed) the file at ``path``; a path that cannot hold a database is a ``ConfigError``."""
        if path != ":memory:":
            parent = Path(path).expanduser().resolve().parent
            if not parent.is_dir():
                raise ConfigError(f"TIERWISE_DB={path!r}: the folder {str(parent)!r} does not exist; create it first.")
        store = cls(path)
        try:
            store._writer = await store._connect()
            # An in-memory database is private to its connection, so it is read through the writer.
            store._reader = store._writer if path == ":memory:" else await store._connect()
        except sqlite3.Error as exc:
            await store.close()
            raise ConfigError(f"TIERWISE_DB={path!r} cannot be used as a SQLite database: {exc}") from exc
        return store

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", f"busy_timeout={BUSY_TIMEOUT_MS}"):
            await conn.execute(f"PRAGMA {pragma}")
        return conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """A write transaction, serialised with every other one of this process."""
        conn = self._writer
        if conn is None:
            raise StorageUnavailable("the SQLite store is closed")
        async with self._write_lock:
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _converted(exc) from exc
            try:
                yield _SQLiteTx(conn)
                await conn.execute("COMMIT")
            except BaseException as exc:
                await self._rollback(conn)
                if isinstance(exc, sqlite3.Error):
                    raise _converted(exc) from exc
                raise

    @staticmethod
    async def _rollback(conn: aiosqlite.Connection) -> None:
        try:
            await conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction was left open (SQLite rolls back by itself on some errors)

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """A read of committed data."""
        conn = self._reader
        if conn is None:
            raise StorageUnavailable("the SQLite store is closed")
        if conn is self._writer:
            async with self._write_lock:
                return await _SQLiteTx(conn).fetchall(sql, params)
        return await _SQLiteTx(conn).fetchall(sql, params)

    async def close(self) -> None:
        """Close both connections."""
        connections: list[Any] = [self._reader, self._writer]
        self._reader = self._writer = None
        for conn in dict.fromkeys(c for c in connections if c is not None):
            await conn.close()
