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

from nodes.catalog import NODES
from nodes.catalog.base import Task
from nodes.cost import usd_text
from nodes.pipeline import Pipeline, RunReport
from nodes.service import RunDone
from nodes.storage import Database
from nodes.tiers import LADDER, Decision, TierName

logger = logging.getLogger(__name__)


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

    def __init__(self, pipeline: Pipeline, db: Database, *, rate: float, rng: random.Random | None = None) -> None:
        self.pipeline = pipeline
        self.db = db
        self.rate = rate
        self.rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    def consider(self, done: RunDone) -> None:
        """Maybe start an audit of a finished run (a service observer)."""
        report = done.report
        if self.rate <= 0 or report.status != "succeeded" or report.tier in (None, "full") or report.escalated:
            return
        if self.rng.random() >= self.rate:
            return
        task = asyncio.get_running_loop().create_task(self.audit(done.task, report))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def audit(self, task: Task, report: RunReport) -> None:
        """Run ``task`` one tier above the one that answered, compare, and store the verdict."""
        assert report.tier is not None
        above: TierName = LADDER[LADDER.index(report.tier) + 1]
        try:
            redo = await self.pipeline.run(f"{report.run_id}.audit", task, Decision(above, "audit"), above)
            cost = redo.cost_usd
            if redo.status != "succeeded":
                agreed, detail = None, f"the {above} tier did not answer ({redo.detail})"
            else:
                agreed, detail = compare(report.node, report.output, redo.output)
                if agreed is None:
                    agreed, detail, judge_cost = await self._judge(task, report.output, redo.output)
                    cost += judge_cost
        except Exception:
            logger.exception("the audit of run %s failed", report.run_id)
            return
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO audits (run_id, node, tier, audit_tier, agreed, detail, cost_usd) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (report.run_id, report.node, report.tier, above, None if agreed is None else int(agreed), detail,
                 usd_text(cost)),
            )  # fmt: skip

    async def _judge(self, task: Task, answer: Any, reference: Any) -> tuple[bool | None, str, Decimal]:
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
        verdict = await self.pipeline.run("audit.judge", judge.task(request), Decision("full", "audit"), "full")
        if verdict.status != "succeeded":
            return None, "the full tier could not judge the texts", verdict.cost_usd
        passed = verdict.output.get("verdict") == "pass"
        return passed, "judged by full: " + "; ".join(verdict.output.get("reasons") or [])[:500], verdict.cost_usd

    async def drain(self) -> None:
        """Wait for audits in flight (used by tests and on shutdown, bounded by the caller)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def cancel(self) -> None:
        """Drop audits in flight."""
        for task in list(self._tasks):
            task.cancel()
