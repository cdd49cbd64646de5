"""A scripted provider: the provider seam answered from a list, for fast tests of everything above it.

Each call takes the next step of its tier's script (or of the shared script): a ``ModelReply`` to
return, or an ``UpstreamError`` to raise. Every call is recorded with its tier and request, so a test
asserts exactly what was sent. A fake clock moves only when a step says so (``elapsed_s``) or when
the tier caller sleeps, so latencies, deadlines and backoff are exact.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from nodes.cost import Usage
from nodes.errors import UpstreamError
from nodes.provider import ModelReply, ModelRequest
from nodes.tiers import Tier, TierName


class FakeClock:
    """Monotonic time that moves only when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass(frozen=True)
class Step:
    """One scripted call: the reply (or error) and how long the call takes on the fake clock."""

    reply: ModelReply | None = None
    error: UpstreamError | None = None
    elapsed_s: float = 0.0


def reply(
    content: Any = None,
    *,
    refusal: str | None = None,
    finish_reason: str = "stop",
    usage: Usage | None = None,
    model: str = "scripted-model",
    elapsed_s: float = 0.0,
    service_tier: str | None = None,
) -> Step:
    """A reply step; ``content`` that is not a string is sent as its JSON text."""
    text = content if isinstance(content, str) or content is None else json.dumps(content)
    return Step(
        reply=ModelReply(
            content=text,
            refusal=refusal,
            finish_reason=finish_reason,
            usage=usage or Usage(input_tokens=100, output_tokens=10),
            model=model,
            structured_outputs="json_schema",
            service_tier=service_tier,
        ),
        elapsed_s=elapsed_s,
    )


def fail(error: UpstreamError, *, elapsed_s: float = 0.0) -> Step:
    """A step whose call raises ``error``."""
    return Step(error=error, elapsed_s=elapsed_s)


@dataclass
class ScriptedProvider:
    """Answers calls from per-tier scripts (``by_tier``), else from the shared ``script``."""

    script: list[Step] = field(default_factory=list)
    by_tier: dict[TierName, list[Step]] = field(default_factory=dict)
    clock: FakeClock | None = None
    calls: list[tuple[TierName, ModelRequest]] = field(default_factory=list)
    closed: bool = False

    @classmethod
    def of(cls, *steps: Step, clock: FakeClock | None = None, **by_tier: Sequence[Step]) -> ScriptedProvider:
        return cls(list(steps), {name: list(tier_steps) for name, tier_steps in by_tier.items()}, clock)  # type: ignore[misc]

    async def complete(self, tier: Tier, request: ModelRequest) -> ModelReply:
        self.calls.append((tier.name, request))
        queue = self.by_tier.get(tier.name) or self.script
        assert queue, f"no scripted step left for a call on {tier.name}"
        step = queue.pop(0)
        if self.clock is not None:
            self.clock.now += step.elapsed_s
        if step.error is not None:
            raise step.error
        assert step.reply is not None
        return step.reply

    async def aclose(self) -> None:
        self.closed = True

    def tiers_called(self) -> list[TierName]:
        return [tier for tier, _ in self.calls]


def scripted_tiers() -> dict[TierName, Tier]:
    """The three default tiers (models, prices, lanes), bound to an endpoint no scripted test ever calls."""
    from nodes.settings import Settings
    from nodes.tiers import resolve_tiers

    unused = {"base_url": "http://127.0.0.1:9/v1", "api_key": "scripted-key", "lanes": ["standard", "flex", "batch"]}
    return resolve_tiers(Settings(nano=unused, mini=unused, full=unused))


def model_reply(content: Any = None, **options: Any) -> ModelReply:
    """The ``ModelReply`` of ``reply(content, **options)``."""
    found = reply(content, **options).reply
    assert found is not None
    return found
