"""The copied fixtures in tests/fixtures: each named in SOURCES.md, and identical to its source when that is beside us.

The copies under ``COPIED`` mirror the shared fixture collection (``../shared/fixtures/``, same layout), which CI
has beside the checkout and a clone does not. ``pytest -m shared`` compares them byte for byte.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED = ROOT.parent / "shared" / "fixtures"
COPIED = ("openai-cassettes", "make-blueprints", "make-blueprints-v4", "real-data")

COPIES = sorted(
    path.relative_to(FIXTURES).as_posix() for name in COPIED for path in (FIXTURES / name).rglob("*") if path.is_file()
)


def test_every_copied_fixture_is_described_in_sources() -> None:
    assert COPIES, f"no fixtures under {FIXTURES}"
    sources = (FIXTURES / "SOURCES.md").read_text(encoding="utf-8")
    assert [name for name in COPIES if f"`{Path(name).name}`" not in sources] == []


@pytest.mark.shared
@pytest.mark.parametrize("name", COPIES)
def test_copy_is_identical_to_the_shared_fixture(name: str) -> None:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is not beside the checkout; nothing to compare the copies with")
    source = SHARED / name
    assert source.is_file(), f"{name} has no source in {SHARED}"
    assert (FIXTURES / name).read_bytes() == source.read_bytes(), f"{name} differs from {source}"
