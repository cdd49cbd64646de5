"""Which store the settings name, and locations refused before anything is opened."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import BACKENDS

from nodes.errors import ConfigError
from nodes.settings import Settings
from nodes.store import Store, check_location, utc_stamp
from nodes.store.postgres import PostgresStore
from nodes.store.sqlite import SQLiteStore


@BACKENDS
async def test_the_settings_choose_the_engine(store: Store, backend: str) -> None:
    expected = {"sqlite": SQLiteStore, "postgres": PostgresStore}[backend]
    assert isinstance(store, expected) and store.shared is (backend == "postgres")
    assert await store.fetchone("SELECT 1 AS one") == {"one": 1}


def test_locations_that_cannot_work_are_refused_with_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="DATABASE_URL must be a PostgreSQL URL"):
        check_location(Settings(database_url="mysql://localhost/x"))
    with pytest.raises(ConfigError, match="TIERWISE_DB=.* does not exist"):
        check_location(Settings(db=str(tmp_path / "nowhere" / "t.db")))
    check_location(Settings(db=str(tmp_path / "t.db")))
    check_location(Settings(database_url="postgres://db.internal/tierwise"))


def test_stamps_sort_as_they_read() -> None:
    from datetime import UTC, datetime

    assert utc_stamp(datetime(2026, 11, 21, 9, 0, 0, 5000, tzinfo=UTC)) == "2026-11-21T09:00:00.005Z"
