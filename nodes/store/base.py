"""The storage seam: what the rest of Tierwise may ask of a database, whichever engine serves it.

Two engines implement it: SQLite (``nodes.store.sqlite``, the embedded default, one file) and
PostgreSQL (``nodes.store.postgres``, shared by any number of service processes). Everything above
this seam writes one dialect of SQL — ``?`` placeholders, ``INSERT … ON CONFLICT``, ``RETURNING`` —
that both engines run; the few things that differ are attributes of the store:

* ``claim_suffix``: appended to a ``SELECT`` that picks work to take, so that on PostgreSQL two
  instances never take the same row (``FOR UPDATE SKIP LOCKED``); ``row_lock`` likewise locks one
  row about to be updated (``FOR UPDATE``). SQLite's write lock already serialises writers.
* ``serialise(tx, name)``: makes a read-then-write on ``name`` atomic across instances (a transaction
  advisory lock on PostgreSQL; a no-op on SQLite, where a write transaction holds the whole file).

Errors, drawn once::

    StoreError                 any storage failure, with the engine's message
    ├── DuplicateKey           a unique constraint refused the row
    └── StorageUnavailable     the database cannot be reached or written (disk full, locked, down)

Rows come back as plain ``dict``s. Times are stored as epoch seconds (``DOUBLE PRECISION``) or as
ISO 8601 text in one fixed format (``created_at``), money as exact decimal text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from nodes.errors import TierwiseError

Row = dict[str, Any]
Params = Sequence[Any]


class StoreError(TierwiseError):
    """A storage operation failed."""


class DuplicateKey(StoreError):
    """A row was refused by a unique constraint (another request or instance wrote it first)."""


class StorageUnavailable(StoreError):
    """The database cannot be reached or written right now."""


class Tx(Protocol):
    """One open transaction: statements run in it are committed together or not at all."""

    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        """Run one statement once per parameter row."""
        ...

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query (or a statement with ``RETURNING``) and return its first row."""
        ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query (or a statement with ``RETURNING``) and return every row."""
        ...


class Store(ABC):
    """A database holding Tierwise's tables, with the schema migrated to the newest version."""

    engine: ClassVar[str]
    claim_suffix: ClassVar[str] = ""
    row_lock: ClassVar[str] = ""
    """Appended to a ``SELECT`` of one row about to be updated (``FOR UPDATE`` on PostgreSQL)."""
    shared: ClassVar[bool] = False
    """True when several service processes may use this store at once."""

    def __init__(self, where: str) -> None:
        self.where = where

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Tx]:
        """Open a write transaction: committed when the block ends, rolled back if it raises."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a read on its own and return every row."""

    async def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Run a read on its own and return its first row, or None."""
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def serialise(self, tx: Tx, name: str) -> None:  # noqa: B027  (a no-op where the engine needs none)
        """Hold, until ``tx`` ends, a lock that every instance takes before touching ``name``."""

    @abstractmethod
    async def close(self) -> None:
        """Release connections."""


def utc_stamp(moment: datetime | None = None) -> str:
    """A UTC time in the stored text form ``2026-11-21T09:00:00.000Z`` (sorts as it reads)."""
    moment = moment or datetime.now(UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
