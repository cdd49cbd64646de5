"""The sandbox's configuration: which faults to inject, how slow to be, what limits and usage to apply.

``SandboxConfig`` is what ``PUT /_sandbox/config`` accepts and what ``load_sandbox_config`` reads
from a JSON file. ``pick_fault`` decides, for one request, which ``FaultRule`` (if any) fires.
"""

from __future__ import annotations

import fnmatch
import json
import random
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from nodes.errors import ConfigError

__all__ = ["FaultKind", "FaultRule", "SandboxConfig", "load_sandbox_config", "pick_fault"]

FaultKind = Literal[
    "rate_limit",
    "insufficient_quota",
    "server_error",
    "slow",
    "non_json",
    "schema_drift",
    "refusal",
    "truncated",
    "content",
    "resource_unavailable",
]

SERVER_ERROR_STATUSES = frozenset({500, 502, 503, 504})


class FaultRule(BaseModel):
    """One fault to inject into chat completions whose ``model`` matches a glob.

    ``times`` counts down each time the rule fires (``None`` means no limit); a rule at 0 no longer
    fires. ``probability`` is drawn from the sandbox's random source, seeded by ``SandboxConfig.seed``.
    """

    model_config = ConfigDict(extra="forbid")

    kind: FaultKind
    model: str = "*"
    times: int | None = Field(default=None, ge=0)
    probability: float = Field(default=1.0, ge=0.0, le=1.0)
    retry_after_s: float | None = Field(default=None, ge=0.0)
    retry_after_ms: int | None = Field(default=None, ge=0)
    status: int = 500
    delay_ms: int = Field(default=0, ge=0)
    content: str | None = None

    @field_validator("status")
    @classmethod
    def _known_server_error(cls, status: int) -> int:
        if status not in SERVER_ERROR_STATUSES:
            raise ValueError(f"status must be one of 500, 502, 503 or 504, not {status}")
        return status

    def matches(self, model: str, service_tier: str = "default") -> bool:
        """Whether the rule applies to ``model`` (case-sensitive ``fnmatch`` glob) on ``service_tier``.

        ``resource_unavailable`` is flex's own failure: it applies to flex requests only.
        """
        if self.kind == "resource_unavailable" and service_tier != "flex":
            return False
        return fnmatch.fnmatchcase(model, self.model)


class SandboxConfig(BaseModel):
    """Everything that shapes the sandbox's replies; replaced as a whole by ``PUT /_sandbox/config``.

    Rate limits, enforced like OpenAI's for every model name separately (see ``nodes.sandbox.limits``):

    * ``rate_limit_rpm``: requests per minute per model; ``None`` means no limit.
    * ``rate_limit_tpm``: tokens per minute per model, a request costing its prompt tokens plus its
      ``max_completion_tokens``/``max_tokens`` if given, else the completion tokens it is answered
      with; ``None`` means no limit.
    * ``rate_limit_burst_s``: each bucket holds this many seconds of refill (at least one unit).

    A request refused by a bucket gets OpenAI's 429 ``rate_limit_exceeded`` with exact ``retry-after-ms``
    and ``retry-after``. Replacing the configuration starts every bucket full again.

    ``log_requests=False`` stops ``GET /_sandbox/requests`` from recording (it grows without bound
    otherwise); ``GET /_sandbox/stats`` counts either way.
    """

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(default=0, ge=0)
    latency_jitter_ms: float = Field(default=0, ge=0)
    flex_latency_ms: float = Field(default=0, ge=0)
    batch_delay_ms: float = Field(default=0, ge=0)
    faults: list[FaultRule] = Field(default_factory=list)
    supports_json_schema: bool = True
    seed: int | None = None
    cached_prompt_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)
    rate_limit_rpm: int | None = Field(default=None, ge=1, strict=True)
    rate_limit_tpm: int | None = Field(default=None, ge=1, strict=True)
    rate_limit_burst_s: float = Field(default=1.0, gt=0, allow_inf_nan=False, strict=True)
    log_requests: bool = True


def load_sandbox_config(path: str | None) -> SandboxConfig:
    """Read a ``SandboxConfig`` from a JSON file; ``None`` gives the defaults.

    Raises ``ConfigError`` with a message naming the file and what is wrong with it.
    """
    if path is None:
        return SandboxConfig()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"sandbox config {path!r} cannot be read: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"sandbox config {path!r} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    try:
        return SandboxConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or '(top level)'}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"sandbox config {path!r} is invalid: {problems}") from exc


def pick_fault(
    rules: list[FaultRule], model: str, rng: random.Random, service_tier: str = "default"
) -> FaultRule | None:
    """Return the first rule that matches ``model``, has times left and wins its probability draw.

    The chosen rule's ``times`` is decremented in place. There is no ``await`` in here, so on a
    single event loop the check and the decrement cannot interleave with another request. A draw is
    made only for rules with ``0 < probability < 1``.
    """
    for rule in rules:
        if not rule.matches(model, service_tier) or rule.times == 0:
            continue
        if rule.probability <= 0.0:
            continue
        if rule.probability < 1.0 and rng.random() >= rule.probability:
            continue
        if rule.times is not None:
            rule.times -= 1
        return rule
    return None
