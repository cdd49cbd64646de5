"""judge: a fixed verdict object whose best_index is bounded to the candidates."""

from __future__ import annotations

from typing import Any

from nodes.catalog import NODES


def task(node: str, **fields: Any) -> Any:
    return NODES[node].task(NODES[node].parse(fields))


def test_judge_bounds_best_index() -> None:
    t = task("judge", candidates=["a", "b", "c"], criteria=["short"])
    assert t.strict_schema["properties"]["best_index"] == {
        "type": ["integer", "null"],
        "minimum": 0,
        "maximum": 2,
    }
    assert "[0]\na\n\n[1]\nb\n\n[2]\nc" in t.user_prompt
    assert t.extra_checks({"best_index": 3}) == ["$.best_index: 3 is not a candidate index (0 to 2, or null)"]
    assert t.extra_checks({"best_index": None}) == []
