"""draft: free text with a word limit, or a JSON document of the user's schema."""

from __future__ import annotations

from typing import Any

from nodes.catalog import NODES


def task(node: str, **fields: Any) -> Any:
    return NODES[node].task(NODES[node].parse(fields))


def test_draft_word_limit_is_checked() -> None:
    t = task("draft", input="x", max_words=3)
    assert t.extra_checks({"text": "one two three"}) == []
    assert t.extra_checks({"text": "one two three four"}) == ["$.text: has 4 words; the limit is 3"]
    assert "at most 3 words" in t.system_prompt
