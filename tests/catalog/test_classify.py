"""classify: labels as an enum, descriptions in the prompt, multi-label answers."""

from __future__ import annotations

from typing import Any

from nodes.catalog import NODES


def task(node: str, **fields: Any) -> Any:
    return NODES[node].task(NODES[node].parse(fields))


def test_classify_labels_become_an_enum_and_descriptions_reach_the_prompt() -> None:
    t = task(
        "classify",
        input="refund please",
        labels=["billing", {"name": "bug", "description": "something broke"}],
    )
    assert t.strict_schema["properties"]["label"] == {"type": "string", "enum": ["billing", "bug"]}
    assert t.strict_schema["required"] == ["label", "confidence"]
    assert "<labels>\n- billing\n- bug: something broke\n</labels>" in t.user_prompt
    assert t.user_prompt.endswith("<input>\nrefund please\n</input>")
    assert t.min_confidence is None


def test_multi_label_schema_and_duplicate_labels_removed() -> None:
    t = task("classify", input="x", labels=["a", "b"], multi_label=True, min_confidence=0.7)
    assert t.strict_schema["properties"]["labels"] == {
        "type": "array",
        "items": {"type": "string", "enum": ["a", "b"]},
    }
    assert t.finalize({"labels": ["a", "a", "b"], "confidence": 0.8}) == {
        "labels": ["a", "b"],
        "confidence": 0.8,
    }
    assert t.min_confidence == 0.7
