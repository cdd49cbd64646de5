"""The routing audit: a sample of runs done again on the neighbouring tier, to tell where a step belongs.

After a run succeeds on the tier it started on (escalated runs have already moved, so they say nothing
about the starting tier), a sample is run again in the background one tier up or down (see
``Auditor``), and the cheaper tier's answer is compared with the dearer one's: the same label(s) for
classify, the same verdict for judge, the same fields for extract and JSON drafts; free text is
compared by the full tier acting as judge. The result — agreed or not, what differed, what the audit
cost — goes to the ``audits`` table with the run's step and key; ``nodes.steps`` turns it into the
tier each ``tier: auto`` step starts on, ``GET /v1/stats`` and ``GET /v1/steps`` into agreement rates
and advice. The audit's cost is reported on its own, never charged to the audited run. Audits are
samples: one lost to a restart is simply not counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Coroutine
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from nodes.catalog import NODES, Task
from nodes.cost import usd_text
from nodes.errors import RunFailed
from nodes.record import RunRecord
from nodes.runner import Finished, Runner
from nodes.steps import StepBook
from nodes.store import Store, utc_stamp
from nodes.tiers import LADDER, TierName

logger = logging.getLogger("tierwise.audit")


def normalise(value: Any) -> Any:
    """A comparable form of an answer: strings trimmed and lower-cased, lists of scalars sorted."""
    if isinstance(value, str):
        return " ".join(value.split()).lower()
    if isinstance(value, dict):
        return {key: normalise(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        items = [normalise(item) for item in value]
        return sorted(items, key=json.dumps) if all(not isinstance(i, dict | list) for i in items) else items
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def above_or_below(tier: TierName | None, direction: int) -> TierName | None:
    """The tier one rung up (``+1``) or down (``-1``) from ``tier``, or None past either end."""
    if tier is None:
        return None
    index = LADDER.index(tier) + direction
    return LADDER[index] if 0 <= index < len(LADDER) else None


def _cheaper(tier: TierName, other: TierName) -> bool:
    return LADDER.index(tier) < LADDER.index(other)


def compare(node: str, answer: Any, reference: Any) -> tuple[bool | None, str]:
    """Whether two answers agree, for nodes whose answers can be compared directly; None means ask a judge."""
    if node == "classify":
        key = "labels" if isinstance(answer, dict) and "labels" in answer else "label"
        mine, theirs = normalise(answer.get(key)), normalise(reference.get(key))
        return mine == theirs, f"{key}: {mine!r} vs {theirs!r}"
    if node == "judge":
        return answer.get("verdict") == reference.get(
            "verdict"
        ), f"verdict: {answer.get('verdict')} vs {reference.get('verdict')}"
    if node == "draft":
        return None, "a draft (free text, or JSON with free text in it)"
    if node == "chat":
        return compare_messages(answer, reference)
    a, b = normalise(answer), normalise(reference)
    differing = (
        sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if isinstance(a, dict) and isinstance(b, dict)
        else []
    )
    return a == b, ("same fields" if a == b else f"differs in: {', '.join(differing) or 'shape'}")


def _calls(message: dict[str, Any]) -> list[tuple[Any, Any]]:
    """A message's tool calls as (name, normalised arguments), in order."""
    calls = []
    for call in message.get("tool_calls") or ():
        function = call.get("function", {}) if isinstance(call, dict) else {}
        try:
            arguments = json.loads(function.get("arguments") or "{}")
        except (TypeError, ValueError):
            arguments = function.get("arguments")
        calls.append((function.get("name"), normalise(arguments)))
    return calls


def _json_content(message: dict[str, Any]) -> Any:
    try:
        return json.loads(message.get("content") or "")
    except (TypeError, ValueError):
        return None


def compare_messages(answer: dict[str, Any], reference: dict[str, Any]) -> tuple[bool | None, str]:
    """Whether two assistant messages agree: the same tool calls, or equal JSON; free text needs a judge."""
    if answer.get("tool_calls") or reference.get("tool_calls"):
        mine, theirs = _calls(answer), _calls(reference)
        return mine == theirs, "same tool calls" if mine == theirs else f"tool calls {mine!r} vs {theirs!r}"[:500]
    mine, theirs = _json_content(answer), _json_content(reference)
    if isinstance(mine, dict | list) and isinstance(theirs, dict | list):
        agreed = normalise(mine) == normalise(theirs)
        return agreed, "same JSON" if agreed else "the JSON differs"
    return None, "free text"


def _draft_text(answer: Any) -> str:
    """A draft as the judge reads it: a text draft's text, a JSON draft as JSON, an assistant message's content."""
    if isinstance(answer, dict) and set(answer) == {"text"}:
        return str(answer["text"])
    if isinstance(answer, dict) and "tool_calls" in answer and isinstance(answer.get("content"), str):
        return str(answer["content"])
    return json.dumps(answer, ensure_ascii=False, indent=1)


@dataclass(frozen=True)
class AuditRates:
    """How often runs are audited: a fixed share for requested tiers, and per step under ``tier: auto``."""

    fixed: float = 0.0
    learning: float = 0.3
    settled: float = 0.05
    spend_share: float = 0.2


class Auditor:
    """Samples finished runs and audits them in background tasks.

    A run started on a tier the caller chose is audited one tier up with the fixed rate
    (``TIERWISE_AUDIT_RATE``). A run of a ``tier: auto`` step is audited with the step's own rate: the
    learning rate while the evidence is thin, the settled rate after; one tier down (would the cheaper
    tier do?) or, when that is not drawn, one tier up (is the tier it ran on good enough?), so a step the
    rules put on mini can earn nano, and a settled step keeps being sampled for drift. A step's audits
    stop while they cost more than ``spend_share`` of what its runs cost.
    """

    def __init__(
        self,
        runner: Runner,
        store: Store,
        *,
        rates: AuditRates,
        steps: StepBook | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.runner = runner
        self.store = store
        self.rates = rates
        self.steps = steps
        self.rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    def consider(self, finished: Finished) -> None:
        """Maybe start an audit of a finished run (a runner observer)."""
        record = finished.record
        if record.answer is None or record.escalated:
            return
        if record.requested_tier == "auto" and self.steps is not None and record.step and record.key_id:
            self._start(self._consider_step(finished.task, record))
            return
        if self.rates.fixed <= 0 or record.tier == "full" or self.rng.random() >= self.rates.fixed:
            return
        self._start(self.audit(finished.task, record, above_or_below(record.tier, +1)))

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consider_step(self, task: Task, record: RunRecord) -> None:
        assert self.steps is not None and record.tier is not None and record.key_id and record.step
        try:
            evidence = await self.steps.evidence(record.key_id, record.step)
            tier = record.tier
            target: TierName | None = None
            # Down first: whether the cheaper tier would do is the question that saves money; then up.
            for direction, measured in ((-1, above_or_below(tier, -1)), (+1, tier)):
                if measured is None or measured == "full" or above_or_below(tier, direction) is None:
                    continue
                seen = evidence.get(measured)
                settled = seen is not None and self.steps.policy.settled(seen)
                if self.rng.random() < (self.rates.settled if settled else self.rates.learning):
                    target = above_or_below(tier, direction)
                    break
            if target is None or not await self._within_spend(record.key_id, record.step):
                return
        except Exception:
            logger.exception("deciding whether to audit run %s failed", record.run_id)
            return
        await self.audit(task, record, target)
        self.steps.forget(record.key_id, record.step)

    async def _within_spend(self, key_id: str, step: str) -> bool:
        """True while the step's audits cost at most ``spend_share`` of what its runs cost."""
        spent = await self.store.fetchone(
            "SELECT (SELECT COALESCE(SUM(CAST(cost_usd AS DOUBLE PRECISION)), 0) FROM audits "
            "WHERE key_id = ? AND step = ?) AS audits, (SELECT COALESCE(SUM(CAST(cost_usd AS DOUBLE PRECISION)), 0) "
            "FROM runs WHERE key_id = ? AND step = ?) AS runs",
            (key_id, step, key_id, step),
        )
        assert spent is not None
        return float(spent["audits"]) <= self.rates.spend_share * float(spent["runs"])

    async def _redo(self, run_id: str, task: Task, tier: TierName) -> tuple[Any, Decimal, str, float | None]:
        """Run ``task`` on ``tier`` alone: its output (None if it failed), its cost, why it failed, its probability.

        The probability is the one the tier's tokens gave the answer (None without logprobs).
        """
        budget = self.runner.caller.budget(run_id, processing="flex")  # audits can wait: flex where the tier has it
        try:
            answer = await self.runner.ladder.climb(self.runner.caller, budget, task, tier, tier)
        except RunFailed as exc:
            return None, exc.cost_usd, exc.detail, None
        probability = answer.confidence.logprob if answer.confidence is not None else None
        return answer.output, sum((a.cost_usd for a in budget.attempts), Decimal(0)), "", probability

    async def audit(self, task: Task, record: RunRecord, other: TierName | None) -> None:
        """Run ``task`` on the ``other`` tier, compare the cheaper answer with the dearer one, store the verdict."""
        assert record.tier is not None and other is not None
        try:
            output, cost, failed, probability = await self._redo(f"{record.run_id}.audit", task, other)
            if _cheaper(record.tier, other):
                answered = record.answer.confidence if record.answer is not None else None
                cheaper_probability = answered.logprob if answered is not None else None
            else:
                cheaper_probability = probability
            if output is None:
                agreed, detail = None, f"the {other} tier did not answer ({failed})"
            else:
                cheaper, dearer = (record.output, output) if _cheaper(record.tier, other) else (output, record.output)
                agreed, detail = compare(record.node, cheaper, dearer)
                if agreed is None:
                    agreed, detail, judge_cost = await self._judge(record.run_id, task, cheaper, dearer)
                    cost += judge_cost
            async with self.store.transaction() as tx:
                await tx.execute(
                    "INSERT INTO audits (run_id, node, tier, audit_tier, agreed, detail, cost_usd, created_at, step, "
                    "key_id, cheaper_probability) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO "
                    "UPDATE SET agreed = excluded.agreed, detail = excluded.detail, cost_usd = excluded.cost_usd, "
                    "created_at = excluded.created_at, cheaper_probability = excluded.cheaper_probability",
                    (record.run_id, record.node, record.tier, other, None if agreed is None else int(agreed), detail,
                     usd_text(cost), utc_stamp(), record.step, record.key_id, cheaper_probability),
                )  # fmt: skip
        except Exception:
            logger.exception("the audit of run %s failed", record.run_id)

    async def _judge(self, run_id: str, task: Task, answer: Any, reference: Any) -> tuple[bool | None, str, Decimal]:
        judge = NODES["judge"]
        request = judge.parse(
            {
                "input": task.user_prompt,
                "candidate": _draft_text(answer),
                "criteria": [
                    "serves the task in the input at least as well as this reference answer: " + _draft_text(reference)
                ],
                "tier": "full",
                "max_tier": "full",
            }
        )
        verdict, cost, _, _ = await self._redo(f"{run_id}.audit-judge", judge.task(request), "full")
        if verdict is None:
            return None, "the full tier could not judge the texts", cost
        passed = verdict.get("verdict") == "pass"
        return passed, "judged by full: " + "; ".join(verdict.get("reasons") or [])[:500], cost

    @property
    def in_flight(self) -> int:
        """How many audits this process is running now."""
        return len(self._tasks)

    async def drain(self) -> None:
        """Wait for audits in flight (used by tests and on shutdown, bounded by the caller)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def cancel(self) -> None:
        """Drop audits in flight."""
        for task in list(self._tasks):
            task.cancel()
