"""Where a run starts: the request, the node's default, or auto's free rules and its nano check."""

from __future__ import annotations

from typing import Any

import pytest

from nodes.catalog import NODES
from nodes.start_tier import COMPLEXITY_EXCERPT_CHARS, choose_start, complexity_request, count_fields


def task(node: str, **fields: Any) -> Any:
    return NODES[node].task(NODES[node].parse(fields))


def test_count_fields() -> None:
    flat = {"type": "object", "properties": {k: {"type": "string"} for k in "abc"}}
    nested = {
        "type": "object",
        "properties": {
            "a": {"type": "object", "properties": {"b": {"type": "string"}}},
            "c": {"type": "array", "items": {"type": "object", "properties": {"d": {"type": "string"}}}},
        },
    }
    assert count_fields(flat) == (3, 1)
    assert count_fields(nested) == (4, 2)


@pytest.mark.parametrize(
    ("fields", "requested", "expected_tier", "reason"),
    [
        ({"input": "x", "labels": ["a"]}, None, "nano", "node default (nano)"),
        ({"input": "x", "labels": ["a"]}, "full", "full", "requested tier full"),
        (
            {"input": "x", "labels": ["a"]},
            "auto",
            "nano",
            "auto: short input, small flat output, no stacked conditions",
        ),
        (
            {"input": "word " * 2500, "labels": ["a"]},
            "auto",
            "mini",
            "auto: input is about 3125 tokens (> 2000)",
        ),
        (
            {
                "input": "x",
                "labels": ["a"],
                "instructions": "Use a if it is urgent unless the sender is internal",
            },
            "auto",
            "mini",
            "auto: instructions have 2 conditions",
        ),
    ],
)
def test_choose_start(fields: dict[str, Any], requested: str | None, expected_tier: str, reason: str) -> None:
    t = task("classify", **fields)
    decision = choose_start(t, requested, "nano", "full", fields.get("instructions"))  # type: ignore[arg-type]
    assert decision is not None
    assert (decision.tier, decision.reason) == (expected_tier, reason)


def test_auto_wide_schema_and_ceiling() -> None:
    wide = {"type": "object", "properties": {f"f{i}": {"type": "string"} for i in range(9)}}
    t = task("extract", input="x", schema=wide)
    wide_decision = choose_start(t, "auto", "nano", "full")
    assert wide_decision is not None and wide_decision.reason == "auto: output schema has 9 fields (> 8)"
    capped = choose_start(t, "auto", "nano", "nano")
    assert capped is not None
    assert (capped.tier, capped.reason) == (
        "nano",
        "auto: output schema has 9 fields (> 8); capped at max_tier nano",
    )


def test_auto_is_unsure_between_the_clear_cases() -> None:
    middle = task("classify", input="word " * 500, labels=["a", "b"], instructions="Use a if it is urgent.")
    assert choose_start(middle, "auto", "nano", "full", "Use a if it is urgent.") is None
    judge = task("judge", candidate="ok", criteria=["short"])
    floored = choose_start(judge, "auto", "full", "full")
    assert floored is not None and floored.tier == "mini"
    assert (
        floored.reason == "auto: short input, small flat output, no stacked conditions; judge starts no lower than mini"
    )


def test_auto_judge_skips_the_check_when_the_rules_are_unsure() -> None:
    long_candidate = "The reply explains the refund in detail. " * 60
    judge = task("judge", candidate=long_candidate, criteria=["polite", "accurate"])
    decision = choose_start(judge, "auto", "full", "full")
    assert decision is not None
    assert (decision.tier, decision.reason) == (
        "mini",
        "auto: judge starts no lower than mini; no complexity check needed",
    )
    capped = choose_start(judge, "auto", "full", "nano")
    assert capped is not None and capped.tier == "nano"


def test_complexity_check_sees_instructions_size_and_an_excerpt() -> None:
    document = "A" * 700 + "TAIL-MARKER"
    t = task("extract", input=document, schema={"type": "object", "properties": {"a": {"type": "string"}}})
    request = complexity_request(t, "Take the total unless it is a draft.")
    text = request["input"]
    assert text.startswith("Task type: extract\nAuthor's instructions: Take the total unless it is a draft.\n")
    assert "Output: 1 fields, 1 level(s) of nesting\n" in text
    assert f"Material: about {t.input_chars // 4} tokens; its first {COMPLEXITY_EXCERPT_CHARS} characters:" in text
    assert t.user_prompt[:COMPLEXITY_EXCERPT_CHARS] in text and "TAIL-MARKER" not in text
    assert (request["tier"], request["max_tier"]) == ("nano", "nano")
    assert [label["name"] for label in request["labels"]] == ["SIMPLE", "MODERATE", "COMPLEX"]


def test_complexity_check_describes_a_draft_as_free_text() -> None:
    t = task("draft", input="Customer asks for a refund.", instructions="Offer a refund if the order is late.")
    assert "\nOutput: free text\n" in complexity_request(t, "Offer a refund if the order is late.")["input"]
