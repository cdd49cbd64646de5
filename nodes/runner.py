"""One run, end to end: choose the starting tier, climb the ladder, and build the run's record.

    task ─▶ start_tier (rules; maybe a nano check) ─▶ ladder.climb (attempts on each tier) ─▶ RunRecord

The runner touches no storage: whoever asked for the run stores its record together with whatever
must be committed with it (an idempotent answer, a finished job and its callback), then tells the
observers (metrics, the routing audit) through ``observe``. Model failures never escape as
exceptions: a run that every tier failed is a record with a ``RunFailed`` inside.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nodes.attempts import SpendCheck, TierCaller
from nodes.catalog import Node, Task
from nodes.cost import cost_usd
from nodes.errors import FieldIssue, InvalidRequest, RunBroken, RunFailed
from nodes.ladder import Answer, Ladder
from nodes.lanes import Lane
from nodes.protocol import NodeRequest
from nodes.record import RunRecord
from nodes.start_tier import bounded, start_tier
from nodes.steps import StepBook
from nodes.store import utc_stamp
from nodes.tiers import LADDER, Decision, TierName

logger = logging.getLogger("tierwise.runner")


@dataclass(frozen=True)
class Finished:
    """A stored run, as the observers see it: its record and the task it ran."""

    record: RunRecord
    task: Task


Observer = Callable[[Finished], None]


def cache_key_of(key_id: str | None, step: str) -> str:
    """The ``prompt_cache_key`` of a step's calls: its identity, hashed so no name leaves the service."""
    return "tw-" + hashlib.sha256(f"{key_id}\n{step}".encode()).hexdigest()[:32]


class Runner:
    """Runs node requests over one ladder."""

    def __init__(
        self,
        caller: TierCaller,
        ladder: Ladder,
        *,
        sandbox: bool,
        steps: StepBook | None = None,
        processing: Lane = "standard",
    ) -> None:
        self.caller = caller
        self.ladder = ladder
        self.sandbox = sandbox
        self.steps = steps
        self.processing = processing
        self.observers: list[Observer] = []

    def lane_of(self, request: NodeRequest) -> Lane:
        """The lane a request's calls go on: its own ``processing``, else the service's default.

        The batch lane is for work that can wait: a synchronous request falls back from a default of batch
        to standard (one that asks for batch itself is refused by ``check_lane``).
        """
        lane = request.processing or self.processing
        if lane == "batch" and request.processing is None and request.callback_url is None:
            return "standard"
        return lane

    def check_lane(self, node: Node[Any], request: NodeRequest) -> None:
        """Refuse (422) a request whose lane some tier it may use does not offer, before it runs or queues."""
        lane = self.lane_of(request)
        if lane == "standard":
            return
        if lane == "batch" and request.callback_url is None:
            raise InvalidRequest(
                "processing: batch is for work that can wait (answers take minutes to hours): add callback_url "
                "and the result is POSTed there, or send processing standard or flex",
                errors=[FieldIssue(("processing",), "batch needs callback_url")],
            )
        start: TierName
        if request.tier == "auto":
            start = "nano"  # auto may start anywhere, and its nano check runs on nano
        elif request.tier is None:
            start = node.default_tier
        else:
            start = request.tier
        self.ladder.refuse_missing_lane(lane, min(start, request.max_tier, key=LADDER.index), request.max_tier)

    async def run(
        self,
        node: Node[Any],
        request: NodeRequest,
        task: Task,
        *,
        run_id: str,
        raw: dict[str, Any],
        key_id: str | None,
        received_at: float,
        spend_check: SpendCheck | None = None,
        timeout_s: float | None = None,
    ) -> RunRecord:
        """Run one validated request to completion; ``received_at`` (monotonic) dates the service's overhead.

        ``timeout_s`` shortens the run's time cap (``TIERWISE_RUN_TIMEOUT_S``) for callers that give up sooner.

        Every outcome is a record, so whatever the run spent is stored: a run that every tier failed, that
        ran out of time or budget, or that a fault of the service itself broke off.
        """
        step = node.step_of(request)
        budget = self.caller.budget(
            run_id,
            spend_check=spend_check,
            processing=self.lane_of(request),
            cache_key=cache_key_of(key_id, step),
            timeout_s=timeout_s,
        )
        routing = Decision(node.default_tier, "the run ended before its starting tier was chosen")
        answer: Answer | None = None
        failure: RunFailed | None = None
        try:
            if task.confidence_key is not None and self.steps is not None and key_id is not None:
                budget.calibrations = await self.steps.calibrations(key_id, step)
            routing = await self._learned(key_id, step, task, request) or await start_tier(
                self.caller,
                budget,
                self.ladder,
                task,
                request.tier,
                node.default_tier,
                request.max_tier,
                request.instructions,
            )
            answer = await self.ladder.climb(self.caller, budget, task, routing.tier, request.max_tier)
        except RunFailed as exc:
            failure = exc
        except Exception:
            logger.exception("run %s was broken off by an unexpected error", run_id)
            failure = RunBroken(
                "the service hit an unexpected error during the run; it has been logged", attempts=budget.attempts
            )
        finished = time.monotonic()
        attempts = tuple(budget.attempts)
        model_s = sum(attempt.elapsed_s + attempt.waited_s for attempt in attempts)
        return RunRecord(
            run_id=run_id,
            node=node.name,
            key_id=key_id,
            routing=routing,
            attempts=attempts,
            request=raw,
            metadata=request.metadata,
            baseline_cost_usd=cost_usd(budget.usage, self.ladder.tiers["full"].price),
            latency_ms=round((self.caller.clock() - budget.started) * 1000),
            overhead_ms=max(0.0, (finished - received_at - model_s) * 1000),
            created_at=utc_stamp(),
            sandbox=self.sandbox,
            answer=answer,
            failure=failure,
            step=step,
            requested_tier=request.tier,
        )

    async def _learned(self, key_id: str | None, step: str, task: Task, request: NodeRequest) -> Decision | None:
        """Under ``tier: auto``, the tier the step has earned from its audits; None until its evidence decides."""
        if request.tier != "auto" or self.steps is None or key_id is None:
            return None
        learned = await self.steps.decide(key_id, step)
        if learned is None:
            return None
        return bounded(Decision(*learned), task.node, request.max_tier)

    def observe(self, record: RunRecord, task: Task) -> None:
        """Tell every observer about a stored run; an observer's failure is logged, never raised."""
        finished = Finished(record, task)
        for observer in self.observers:
            try:
                observer(finished)
            except Exception:
                logger.exception("an observer failed on run %s", record.run_id)
