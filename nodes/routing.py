"""Where a run starts: the requested tier, the node's default, or ``auto``'s cheap rules.

``auto`` looks only at what is free to measure — the output schema's size and nesting, the input's
length, and whether the instructions stack several conditions — and moves a nano-default node up to
mini when any of them says the task is beyond a sorting model. Every decision carries its reason,
which is returned with the run and stored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from nodes.catalog import Task
from nodes.protocol import TierChoice
from nodes.tiers import LADDER, TierName

CHARS_PER_TOKEN = 4
LONG_INPUT_TOKENS = 2_000
MAX_FLAT_FIELDS = 8
MULTI_CONDITION = re.compile(
    r"\b(if|unless|except|only when|only if|otherwise|whereas|provided that|but not)\b", re.IGNORECASE
)
MULTI_CONDITION_THRESHOLD = 2


@dataclass(frozen=True)
class Decision:
    """The starting tier and why."""

    tier: TierName
    reason: str


def count_fields(schema: Any, depth: int = 0) -> tuple[int, int]:
    """Total properties and the deepest object nesting in a JSON Schema (roots count as depth 1)."""
    if not isinstance(schema, dict):
        return 0, depth
    fields, deepest = 0, depth
    properties = schema.get("properties")
    if isinstance(properties, dict):
        deepest = depth + 1
        for child in properties.values():
            child_fields, child_depth = count_fields(child, depth + 1)
            fields += 1 + child_fields
            deepest = max(deepest, child_depth)
    for key in ("items", "anyOf", "oneOf", "$defs", "definitions"):
        nested = schema.get(key)
        children = (
            nested.values()
            if isinstance(nested, dict) and key in ("$defs", "definitions")
            else (nested if isinstance(nested, list) else [nested])
        )
        for child in children:
            child_fields, child_depth = count_fields(child, depth)
            fields += child_fields
            deepest = max(deepest, child_depth)
    return fields, deepest


def auto_rules(task: Task, instructions: str | None) -> list[str]:
    """The reasons, if any, that a task is too much for the nano tier."""
    reasons = []
    if task.structure_hint:
        fields, depth = count_fields(task.structure_hint)
        if fields > MAX_FLAT_FIELDS:
            reasons.append(f"output schema has {fields} fields (> {MAX_FLAT_FIELDS})")
        if depth > 1:
            reasons.append("output schema has nested objects")
    tokens = task.input_chars // CHARS_PER_TOKEN
    if tokens > LONG_INPUT_TOKENS:
        reasons.append(f"input is about {tokens} tokens (> {LONG_INPUT_TOKENS})")
    if instructions:
        conditions = len(MULTI_CONDITION.findall(instructions))
        if conditions >= MULTI_CONDITION_THRESHOLD:
            reasons.append(f"instructions have {conditions} conditions")
    return reasons


def choose_start(
    task: Task,
    requested: TierChoice | None,
    default: TierName,
    ceiling: TierName,
    instructions: str | None = None,
) -> Decision:
    """Pick the starting tier for a run, never above ``ceiling``."""
    if requested is None:
        decision = Decision(default, f"node default ({default})")
    elif requested != "auto":
        decision = Decision(requested, f"requested tier {requested}")
    else:
        reasons = auto_rules(task, instructions)
        if default == "nano" and reasons:
            decision = Decision("mini", "auto: " + "; ".join(reasons))
        else:
            decision = Decision(default, f"auto: no rule moved it from the node default ({default})")
    if LADDER.index(decision.tier) > LADDER.index(ceiling):
        return Decision(ceiling, f"{decision.reason}; capped at max_tier {ceiling}")
    return decision
