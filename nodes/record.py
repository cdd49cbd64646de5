"""The run record: one typed value per finished run, built once and used everywhere.

The same ``RunRecord`` is the HTTP answer (``body()``, ``headers()``, ``status``), the rows stored in
``runs`` and ``attempts`` (``nodes.runlog``), the body POSTed to a callback, the answer replayed for an
``Idempotency-Key``, and what stats, metrics and the routing audit read. Money stays ``Decimal`` here;
it becomes a JSON number only in ``body()``, and exact decimal text in headers and rows.

A succeeded run's body::

    {run_id, node, output, tier, model, escalated, attempts, usage, routing, latency_ms, metadata,
     sandbox, warnings, overhead_ms}

A failed one is the ``RunFailed`` problem (502, or 504 past the deadline) with the same members
except ``output``, ``tier``, ``model`` and ``escalated``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal

from nodes.attempts import Attempt
from nodes.cost import Usage, total_usage, usd_text
from nodes.errors import RunDeadlineExceeded, RunFailed
from nodes.ladder import Answer
from nodes.tiers import Decision, TierName

RunStatus = Literal["succeeded", "failed", "deadline_exceeded"]

SANDBOX_WARNING = (
    "sandbox upstream: these outputs are synthetic; set OPENAI_API_KEY (or TIERWISE_<TIER>_API_KEY / "
    "TIERWISE_<TIER>_BASE_URL) to use real models"
)


@dataclass(frozen=True)
class RunRecord:
    """Everything known about one finished run."""

    run_id: str
    node: str
    key_id: str | None
    routing: Decision
    attempts: tuple[Attempt, ...]
    request: dict[str, Any]
    metadata: dict[str, Any]
    baseline_cost_usd: Decimal
    latency_ms: int
    overhead_ms: float
    created_at: str
    sandbox: bool = False
    answer: Answer | None = None
    failure: RunFailed | None = None
    warnings: tuple[str, ...] = field(default=())
    step: str | None = None
    requested_tier: str | None = None
    """The ``tier`` the request asked for (``auto``, a tier, or None for the node's default)."""

    def __post_init__(self) -> None:
        if (self.answer is None) == (self.failure is None):
            raise ValueError("a run record has either an answer or a failure")

    @property
    def status(self) -> RunStatus:
        """How the run ended."""
        if self.answer is not None:
            return "succeeded"
        return "deadline_exceeded" if isinstance(self.failure, RunDeadlineExceeded) else "failed"

    @property
    def http_status(self) -> int:
        """200, or the failure's 502/504."""
        return 200 if self.failure is None else self.failure.status

    @property
    def tier(self) -> TierName | None:
        """The tier that gave the answer (None for a failed run)."""
        return self.answer.tier if self.answer else None

    @property
    def model(self) -> str | None:
        """The model that gave the answer."""
        return self.answer.model if self.answer else None

    @property
    def output(self) -> Any:
        """The answer's output (None for a failed run)."""
        return self.answer.output if self.answer else None

    @property
    def escalated(self) -> bool:
        """True when the answer came from a tier above the starting one."""
        return self.answer is not None and self.answer.tier != self.routing.tier

    @property
    def usage(self) -> Usage:
        """Tokens of every attempt."""
        return total_usage(attempt.usage for attempt in self.attempts)

    @property
    def cost_usd(self) -> Decimal:
        """What the run cost, failed attempts and routing checks included."""
        return sum((attempt.cost_usd for attempt in self.attempts), Decimal(0))

    @property
    def model_seconds(self) -> float:
        """Time spent calling models and waiting to call them (backoff, pacing)."""
        return sum(attempt.elapsed_s + attempt.waited_s for attempt in self.attempts)

    @property
    def all_warnings(self) -> list[str]:
        """The answer's warnings, the record's own, and the sandbox's."""
        found = [*(self.answer.warnings if self.answer else ()), *self.warnings]
        return [*found, SANDBOX_WARNING] if self.sandbox else found

    def body(self) -> dict[str, Any]:
        """The JSON body answered, delivered and replayed for this run (built once; treat it as read-only)."""
        return self._body

    @cached_property
    def _body(self) -> dict[str, Any]:
        members: dict[str, Any] = {"run_id": self.run_id, "node": self.node}
        if self.answer is not None:
            members.update(
                output=self.answer.output, tier=self.answer.tier, model=self.answer.model, escalated=self.escalated
            )
            if self.answer.confidence is not None:
                members["confidence"] = self.answer.confidence.as_dict()
        usage = self.usage
        members.update(
            attempts=[attempt.as_dict() for attempt in self.attempts],
            usage={
                "input_tokens": usage.input_tokens,
                "cached_input_tokens": usage.cached_input_tokens,
                "output_tokens": usage.output_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
                "cost_usd": float(self.cost_usd),
                "baseline_cost_usd": float(self.baseline_cost_usd),
                "savings_usd": float(self.baseline_cost_usd - self.cost_usd),
            },
            routing={"start_tier": self.routing.tier, "reason": self.routing.reason, "step": self.step},
            latency_ms=self.latency_ms,
            metadata=self.metadata,
            sandbox=self.sandbox,
            warnings=self.all_warnings,
            overhead_ms=round(self.overhead_ms, 3),
        )
        if self.failure is None:
            return members
        problem = self.failure.to_problem()
        problem.update(members)
        problem["run_id"] = self.run_id
        return problem

    def headers(self) -> dict[str, str]:
        """The ``X-Tierwise-*`` headers of the answer."""
        last_tier = self.attempts[-1].tier if self.attempts else self.routing.tier
        headers = {
            "X-Tierwise-Run-Id": self.run_id,
            "X-Tierwise-Tier": self.tier or last_tier,
            "X-Tierwise-Cost-Usd": usd_text(self.cost_usd),
            "X-Tierwise-Overhead-Ms": f"{self.overhead_ms:.3f}",
        }
        if self.sandbox:
            headers["X-Tierwise-Sandbox"] = "true"
        if self.failure is not None:
            headers.update(self.failure.headers)  # a run stopped by its budget says when to come back
        return headers
