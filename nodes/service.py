"""The service: one object that ties a node request to routing, the pipeline, the run log and the response.

Routes hand it a parsed request; it picks the starting tier, runs the pipeline, prices the run,
writes the run log, and returns the body and headers to send — or raises the problem to answer.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodes.catalog import NODES, Node, Task
from nodes.cost import usd_text
from nodes.errors import NotFound, RunDeadlineExceeded, RunFailed
from nodes.keys import KeyRing
from nodes.pipeline import Pipeline, RunReport
from nodes.protocol import NodeRequest
from nodes.routing import Router
from nodes.runlog import RunLog, new_run_id
from nodes.settings import Settings

logger = logging.getLogger(__name__)

SANDBOX_WARNING = (
    "sandbox upstream: these outputs are synthetic; set OPENAI_API_KEY (or TIERWISE_<TIER>_API_KEY / "
    "TIERWISE_<TIER>_BASE_URL) to use real models"
)


@dataclass(frozen=True)
class NodeResponse:
    """What to answer for one run: 200 with the result, or a 502/504 problem with every attempt."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]

    @property
    def is_problem(self) -> bool:
        """True for the 502/504 problem answers."""
        return self.status >= 400


OnRecord = Callable[[sqlite3.Connection, NodeResponse], None]


@dataclass(frozen=True)
class RunDone:
    """A finished, recorded run, as handed to the observers (metrics, routing audit)."""

    node: Node[Any]
    request: NodeRequest
    task: Task
    report: RunReport
    response: NodeResponse
    api_key_name: str | None


Observer = Callable[[RunDone], None]


class Service:
    """Runs node requests and keeps their records."""

    def __init__(self, settings: Settings, pipeline: Pipeline, runlog: RunLog, keys: KeyRing, *, sandbox: bool) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.runlog = runlog
        self.keys = keys
        self.sandbox = sandbox
        self.router = Router(pipeline)
        self.observers: list[Observer] = []

    @staticmethod
    def node(name: str) -> Node[Any]:
        """The node called ``name``, or a 404 problem listing the ones that exist."""
        node = NODES.get(name)
        if node is None:
            raise NotFound(f"there is no node {name!r}; the nodes are: {', '.join(NODES)}")
        return node

    def catalogue(self) -> list[dict[str, Any]]:
        """Every node's description, for ``GET /v1/nodes``."""
        return [node.describe() for node in NODES.values()]

    async def execute(
        self,
        node: Node[Any],
        request: NodeRequest,
        raw: dict[str, Any],
        *,
        api_key_name: str | None,
        received_at: float,
        run_id: str | None = None,
        on_record: OnRecord | None = None,
    ) -> NodeResponse:
        """Run one node request to completion and record it; never raises for model failures.

        ``on_record`` is called inside the transaction that stores the run, with the answer, so that
        anything that must not outlive or predate the run record is written atomically with it.
        """
        task = node.task(request)
        run_id = run_id or new_run_id()
        routing, routing_attempts = await self.router.decide(
            run_id, task, request.tier, node.default_tier, request.max_tier, request.instructions
        )
        report = await self.pipeline.run(run_id, task, routing, request.max_tier)
        if routing_attempts:
            report.attempts[:0] = routing_attempts
            report.latency_ms += round(sum(attempt.elapsed_s for attempt in routing_attempts) * 1000)
        body = self._body(report, request)
        model_s = sum(attempt.elapsed_s + attempt.waited_s for attempt in report.attempts)
        overhead_ms = max(0.0, (time.monotonic() - received_at - model_s) * 1000)
        body["overhead_ms"] = round(overhead_ms, 3)
        headers = {
            "X-Tierwise-Run-Id": report.run_id,
            "X-Tierwise-Tier": report.tier or (report.attempts[-1].tier if report.attempts else routing.tier),
            "X-Tierwise-Cost-Usd": usd_text(report.cost_usd),
            "X-Tierwise-Overhead-Ms": f"{overhead_ms:.3f}",
        }
        if self.sandbox:
            headers["X-Tierwise-Sandbox"] = "true"
        problem: RunFailed | None = None
        if report.status == "deadline_exceeded":
            problem = RunDeadlineExceeded(report.detail, run_id=report.run_id, record=body)
        elif report.status == "failed":
            problem = RunFailed(self._failure_detail(report), run_id=report.run_id, record=body)
        response = (
            NodeResponse(problem.status, problem.to_problem(), headers) if problem else NodeResponse(200, body, headers)
        )
        self.runlog.record(
            report,
            baseline_cost=usd_text(self.pipeline.baseline_cost(report.usage)),
            request=raw,
            response=response.body,
            metadata=request.metadata,
            sandbox=self.sandbox,
            api_key_name=api_key_name,
            also=(lambda conn: on_record(conn, response)) if on_record else None,
        )
        done = RunDone(node, request, task, report, response, api_key_name)
        for observe in self.observers:
            try:
                observe(done)
            except Exception:
                logger.exception("an observer failed on run %s", report.run_id)
        return response

    def _body(self, report: RunReport, request: NodeRequest) -> dict[str, Any]:
        usage = report.usage
        baseline = self.pipeline.baseline_cost(usage)
        body: dict[str, Any] = {
            "run_id": report.run_id,
            "node": report.node,
        }
        if report.status == "succeeded":
            body.update(output=report.output, tier=report.tier, model=report.model, escalated=report.escalated)
        body.update(
            attempts=[attempt.as_dict() for attempt in report.attempts],
            usage={
                "input_tokens": usage.input_tokens,
                "cached_input_tokens": usage.cached_input_tokens,
                "output_tokens": usage.output_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "cost_usd": float(report.cost_usd),
                "baseline_cost_usd": float(baseline),
                "savings_usd": float(baseline - report.cost_usd),
            },
            routing={"start_tier": report.routing.tier, "reason": report.routing.reason},
            latency_ms=report.latency_ms,
            metadata=request.metadata,
            sandbox=self.sandbox,
            warnings=[*report.warnings, *([SANDBOX_WARNING] if self.sandbox else [])],
        )
        return body

    @staticmethod
    def _failure_detail(report: RunReport) -> str:
        tried = ", ".join(f"{a.tier}:{a.outcome}" for a in report.attempts) or "no attempt"
        return f"{report.detail} ({tried})"
