"""Storage: one seam (``Store``), two engines, the schema and its migrations.

``open_store(settings)`` opens SQLite at ``TIERWISE_DB`` (the embedded default) or PostgreSQL at
``DATABASE_URL`` when that is set, and brings the schema up to date before returning, so the user
never runs SQL by hand.
"""

from __future__ import annotations

from pathlib import Path

from nodes.errors import ConfigError
from nodes.settings import Settings
from nodes.store.base import DuplicateKey, Row, StorageUnavailable, Store, StoreError, Tx, utc_stamp
from nodes.store.schema import upgrade


def check_location(settings: Settings) -> None:
    """Refuse, before anything is opened, a store location that cannot work (``ConfigError``)."""
    if settings.database_url:
        if not settings.database_url.startswith(("postgresql://", "postgres://")):
            raise ConfigError(
                "DATABASE_URL must be a PostgreSQL URL (postgresql://user:password@host:5432/database); "
                "unset it to use SQLite at TIERWISE_DB."
            )
        return
    if settings.db != ":memory:":
        parent = Path(settings.db).expanduser().resolve().parent
        if not parent.is_dir():
            raise ConfigError(
                f"TIERWISE_DB={settings.db!r}: the folder {str(parent)!r} does not exist; create it first."
            )


async def open_store(settings: Settings, *, migrate: bool = True) -> Store:
    """The store the settings name, with every migration applied (unless ``migrate`` is false)."""
    store: Store
    if settings.database_url:
        from nodes.store.postgres import PostgresStore

        store = await PostgresStore.open(settings.database_url)
    else:
        from nodes.store.sqlite import SQLiteStore

        store = await SQLiteStore.open(settings.db)
    if migrate:
        try:
            await upgrade(store)
        except BaseException:
            await store.close()
            raise
    return store


__all__ = [
    "DuplicateKey",
    "Row",
    "StorageUnavailable",
    "Store",
    "StoreError",
    "Tx",
    "check_location",
    "open_store",
    "utc_stamp",
]
