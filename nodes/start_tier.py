"""Where a run starts: the requested tier, the node's default, or ``auto``.

``auto`` first looks only at what is free to measure — the output schema's size and nesting, the
input's length, and whether the instructions stack several conditions. Where those rules are unsure
it asks the nano tier to rate the task SIMPLE / MODERATE / COMPLEX (→ nano / mini / full), as one
attempt of the run itself (``purpose: routing``): its cost is the run's, and it shares the run's
attempt cap and deadline. A check that fails starts the run on mini. No run starts above its
``max_tier``, and a judge never starts below mini under ``auto``. Every decision carries its reason,
which is returned with the run and stored.
"""

from __future__ import annotations

import re
from typing import Any

from nodes.attempts import RunBudget, TierCaller
from nodes.catalog import NODES, Task
from nodes.checks import Accepted
from nodes.ladder import Ladder
from nodes.protocol import TierChoice
from nodes.tiers import LADDER, Decision, TierName

CHARS_PER_TOKEN = 4
LONG_INPUT_TOKENS = 2_000
MAX_FLAT_FIELDS = 8
MULTI_CONDITION = re.compile(
    r"\b(if|unless|except|only when|only if|otherwise|whereas|provided that|but not)\b", re.IGNORECASE
)
MULTI_CONDITION_THRESHOLD = 2
SIMPLE_INPUT_TOKENS = 300
SIMPLE_MAX_FIELDS = 4
COMPLEXITY_EXCERPT_CHARS = 600
AUTO_FLOOR: dict[str, TierName] = {"judge": "mini"}
COMPLEXITY_LABELS = {
    "SIMPLE": "one clear-cut decision or lookup that a small model does reliably",
    "MODERATE": "several conditions, some judgement, or a structured answer with a handful of fields",
    "COMPLEX": "multi-step reasoning, long or subtle material, or a nested structured answer",
}
COMPLEXITY_TIERS: dict[str, TierName] = {"SIMPLE": "nano", "MODERATE": "mini", "COMPLEX": "full"}


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


def authored(task: Task, instructions: str | None) -> str | None:
    """The author's instructions: the request's, or a conversation's system messages."""
    return instructions if instructions is not None or not task.conversation else task.system_prompt


def auto_rules(task: Task, instructions: str | None) -> list[str]:
    """The reasons, if any, that a task is too much for the nano tier."""
    instructions = authored(task, instructions)
    reasons = []
    if task.tools:
        reasons.append(f"the model may call {len(task.tools)} tool(s)")
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


def clearly_simple(task: Task, instructions: str | None) -> bool:
    """True for a task no rule doubts: short input, a small flat output, no stacked conditions."""
    instructions = authored(task, instructions)
    fields, depth = count_fields(task.structure_hint) if task.structure_hint else (0, 1)
    conditions = len(MULTI_CONDITION.findall(instructions or ""))
    return (
        task.input_chars // CHARS_PER_TOKEN <= SIMPLE_INPUT_TOKENS
        and fields <= SIMPLE_MAX_FIELDS
        and depth <= 1
        and conditions == 0
    )


def rule_decision(task: Task, instructions: str | None) -> Decision | None:
    """``auto``'s free rules: a definite tier, or None when they are unsure and the nano check should decide.

    A node with a floor under ``auto`` (judge) never needs the check: it starts on its floor.
    """
    reasons = auto_rules(task, instructions)
    if reasons:
        return Decision("mini", "auto: " + "; ".join(reasons))
    if clearly_simple(task, instructions):
        return Decision("nano", "auto: short input, small flat output, no stacked conditions")
    floor = AUTO_FLOOR.get(task.node)
    if floor:
        # The floor already rules nano out; a check would only choose between mini and full, not worth a call.
        return Decision(floor, f"auto: {task.node} starts no lower than {floor}; no complexity check needed")
    return None


def bounded(decision: Decision, node: str, ceiling: TierName) -> Decision:
    """Apply the node's floor under ``auto`` (a judge never starts on nano) and the ``max_tier`` ceiling."""
    floor = AUTO_FLOOR.get(node)
    if decision.reason.startswith("auto") and floor and LADDER.index(decision.tier) < LADDER.index(floor):
        decision = Decision(floor, f"{decision.reason}; {node} starts no lower than {floor}")
    if LADDER.index(decision.tier) > LADDER.index(ceiling):
        return Decision(ceiling, f"{decision.reason}; capped at max_tier {ceiling}")
    return decision


def choose_start(
    task: Task,
    requested: TierChoice | None,
    default: TierName,
    ceiling: TierName,
    instructions: str | None = None,
) -> Decision | None:
    """Pick the starting tier without calling a model; None when ``auto`` needs the nano complexity check."""
    if requested is None:
        decision: Decision | None = Decision(default, f"node default ({default})")
    elif requested != "auto":
        decision = Decision(requested, f"requested tier {requested}")
    else:
        decision = rule_decision(task, instructions)
    return None if decision is None else bounded(decision, task.node, ceiling)


def complexity_request(task: Task, instructions: str | None) -> dict[str, Any]:
    """The classify request that asks nano how hard ``task`` is."""
    instructions = authored(task, instructions)
    if task.structure_hint:
        fields, depth = count_fields(task.structure_hint)
        output = f"{fields} fields, {depth} level(s) of nesting"
    else:
        output = "free text"
    excerpt = task.user_prompt[:COMPLEXITY_EXCERPT_CHARS]
    description = (
        f"Task type: {task.node}\n"
        f"Author's instructions: {instructions.strip()[:COMPLEXITY_EXCERPT_CHARS] if instructions else '(none)'}\n"
        f"Output: {output}\n"
        f"Material: about {task.input_chars // CHARS_PER_TOKEN} tokens; "
        f"its first {COMPLEXITY_EXCERPT_CHARS} characters:\n{excerpt}"
    )
    return {
        "input": description,
        "labels": [{"name": name, "description": text} for name, text in COMPLEXITY_LABELS.items()],
        "instructions": "Judge how hard the described task is for a language model, not the material itself.",
        "tier": "nano",
        "max_tier": "nano",
    }


async def start_tier(
    caller: TierCaller,
    run: RunBudget,
    ladder: Ladder,
    task: Task,
    requested: TierChoice | None,
    default: TierName,
    ceiling: TierName,
    instructions: str | None,
) -> Decision:
    """The tier a run starts on, asking the nano tier (as an attempt of ``run``) only when ``auto`` is unsure."""
    decision = choose_start(task, requested, default, ceiling, instructions)
    if decision is not None:
        return decision
    classify = NODES["classify"]
    check = classify.task(classify.parse(complexity_request(task, instructions)))
    result = await caller.attempt(run, ladder.tiers["nano"], check, purpose="routing")
    label = result.verdict.value.get("label") if isinstance(result.verdict, Accepted) else None
    if label in COMPLEXITY_TIERS:
        tier = COMPLEXITY_TIERS[label]
        decision = Decision(tier, f"auto: nano rated the task {label} → {tier}")
    else:
        why = "; ".join(result.verdict.errors) or "no usable label"
        decision = Decision("mini", f"auto: the nano complexity check failed ({why}); starting on mini")
    return bounded(decision, task.node, ceiling)
