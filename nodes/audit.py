"""The routing audit: a sample of runs done again one tier up, to tell whether a node sits on the right tier.

After a run succeeds on the nano or mini tier it started on (escalated runs have already moved, so they
say nothing about the starting tier), with probability ``TIERWISE_AUDIT_RATE`` the same task is run
again in the background on the next tier up, and the two answers are compared: the same label(s) for
classify, the same verdict for judge, the same fields for extract and JSON drafts; free text is
compared by the full tier acting as judge. The result — agreed or not, what differed, what the audit
cost — goes to the ``audits`` table, and ``GET /v1/stats`` turns it into per-node agreement rates and
advice. The audit's cost is reported on its own, never charged to the audited run. Audits are samples:
one lost to a restart is simply not counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from decimal import Decimal
from typing import Any

from nodes.catalog import NODES, Task
from nodes.cost import usd_text
from nodes.errors import RunFailed
from nodes.record import RunRecord
from nodes.runner import Finished, Runner
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
    if isinstance(answer, dict) and set(answer) == {"text"} and set(reference) == {"text"}:
        return None, "free text"
    a, b = normalise(answer), normalise(reference)
    differing = (
        sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        if isinstance(a, dict) and isinstance(b, dict)
        else []
    )
    return a == b, ("same fields" if a == b else f"differs in: {', '.join(differing) or 'shape'}")


class Auditor:
    """Samples finished runs and audits them in background tasks."""

    def __init__(self, runner: Runner, store: Store, *, rate: float, rng: random.Random | None = None) -> None:
        self.runner = runner
        self.store = store
        self.rate = rate
        self.rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    def consider(self, finished: Finished) -> None:
        """Maybe start an audit of a finished run (a runner observer)."""
        record = finished.record
        if self.rate <= 0 or record.answer is None or record.tier == "full" or record.escalated:
            return
        if self.rng.random() >= self.rate:
            return
        task = asyncio.get_running_loop().create_task(self.audit(finished.task, record))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _redo(self, run_id: str, task: Task, tier: TierName) -> tuple[Any, Decimal, str]:
        """Run ``task`` on ``tier`` alone: its output (None if it failed), the cost, and why it failed."""
        budget = self.runner.caller.budget(run_id)
        try:
            answer = await self.runner.ladder.climb(self.runner.caller, budget, task, tier, tier)
        except RunFailed as exc:
            return None, exc.cost_usd, exc.detail
        return answer.output, sum((a.cost_usd for a in budget.attempts), Decimal(0)), ""

    async def audit(self, task: Task, record: RunRecord) -> None:
        """Run ``task`` one tier above the one that answered, compare, and store the verdict."""
        assert record.tier is not None
        above: TierName = LADDER[LADDER.index(record.tier) + 1]
        try:
            output, cost, failed = await self._redo(f"{record.run_id}.audit", task, above)
            if output is None:
                agreed, detail = None, f"the {above} tier did not answer ({failed})"
            else:
                agreed, detail = compare(record.node, record.output, output)
                if agreed is None:
                    agreed, detail, judge_cost = await self._judge(record.run_id, task, record.output, output)
                    cost += judge_cost
            async with self.store.transaction() as tx:
                await tx.execute(
                    "INSERT INTO audits (run_id, node, tier, audit_tier, agreed, detail, cost_usd, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id) DO UPDATE SET agreed = excluded.agreed, "
                    "detail = excluded.detail, cost_usd = excluded.cost_usd, created_at = excluded.created_at",
                    (record.run_id, record.node, record.tier, above, None if agreed is None else int(agreed), detail,
                     usd_text(cost), utc_stamp()),
                )  # fmt: skip
        except Exception:
            logger.exception("the audit of run %s failed", record.run_id)

    async def _judge(self, run_id: str, task: Task, answer: Any, reference: Any) -> tuple[bool | None, str, Decimal]:
        judge = NODES["judge"]
        request = judge.parse(
            {
                "input": task.user_prompt,
                "candidate": answer["text"],
                "criteria": [
                    "serves the task in the input at least as well as this reference answer: " + reference["text"]
                ],
                "tier": "full",
                "max_tier": "full",
            }
        )
        verdict, cost, _ = await self._redo(f"{run_id}.audit-judge", judge.task(request), "full")
        if verdict is None:
            return None, "the full tier could not judge the texts", cost
        passed = verdict.get("verdict") == "pass"
        return passed, "judged by full: " + "; ".join(verdict.get("reasons") or [])[:500], cost

    async def drain(self) -> None:
        """Wait for audits in flight (used by tests and on shutdown, bounded by the caller)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def cancel(self) -> None:
        """Drop audits in flight."""
        for task in list(self._tasks):
            task.cancel()
