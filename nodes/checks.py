"""The checks a model's reply must pass, in order; the first that fails names the attempt's outcome.

A failed check is a value, ``Rejection``: its ``outcome`` is what the attempt is recorded as, its
``errors`` are sentences the model can act on, ``repairable`` says whether a repair turn (the same
tier, told the errors) may fix it, and ``fallback`` keeps an answer worth returning if no tier does
better (a label given with too little confidence). What a rejection does next — repair, retry,
climb — is the ladder's business (``nodes.ladder``), not the checks'.

    refused       refusal or content filter             → climb
    truncated     finish_reason = length                → climb
    valid         JSON that satisfies the node's schema → repair turn, then climb
    confident     confidence ≥ the request's floor      → climb, keeping the answer as a fallback

Before the confidence floor is checked, a reply with token log-probabilities has its confidence
assessed (``nodes.confidence``): the label's probability, calibrated by the step's audits where
they are enough, replaces the model's own word in the output, and the verdict carries all three.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from nodes.catalog import Task
from nodes.confidence import Calibration, Confidence, assess, with_confidence
from nodes.provider import ModelReply
from nodes.validate import check_reply, schema_errors

Outcome = Literal[
    "ok",
    "invalid_output",
    "low_confidence",
    "refusal",
    "truncated",
    "rate_limited",
    "unavailable",
    "upstream_error",
    "timeout",
]


@dataclass(frozen=True)
class Rejection:
    """Why a reply was not accepted."""

    outcome: Outcome
    errors: list[str]
    repairable: bool = False
    fallback: Any = None
    confidence: Confidence | None = None
    note: str | None = None
    """What to tell the caller if the fallback is what they get (the ladder's default speaks of confidence)."""


@dataclass(frozen=True)
class Accepted:
    """A reply that passed every check: the output, in the user's shape."""

    value: Any
    confidence: Confidence | None = None
    outcome: Outcome = field(default="ok", init=False)
    errors: list[str] = field(default_factory=list, init=False)


Verdict = Accepted | Rejection
ReplyCheck = Callable[[Task, ModelReply], Rejection | None]
ValueCheck = Callable[[Task, Any], Rejection | None]


def refused(task: Task, reply: ModelReply) -> Rejection | None:
    """The model (or its content filter) declined to answer.

    A conversation keeps the refusal as its fallback: if every tier refuses, the caller gets it, as the
    model's own answer, the way OpenAI's API returns one.
    """
    if reply.refusal or reply.finish_reason == "content_filter":
        why = reply.refusal or "the content filter stopped the reply"
        if task.reader is None:
            return Rejection("refusal", [why])
        return Rejection("refusal", [why], fallback=task.reader(task, reply)[0], note="every allowed tier refused")
    return None


def truncated(task: Task, reply: ModelReply) -> Rejection | None:
    """The reply was cut off at the output token limit.

    Free text cut short is still text: a conversation keeps it as its fallback, returned (with
    ``finish_reason: length``) if no tier finishes within the caller's ``max_tokens``.
    """
    if reply.finish_reason == "length":
        why = ["the reply was cut off at the output token limit"]
        if task.reader is None or task.output_kind != "text" or reply.tool_calls:
            return Rejection("truncated", why)
        note = "every allowed tier was cut off at the output token limit"
        return Rejection("truncated", why, fallback=task.reader(task, reply)[0], note=note)
    return None


def confident(task: Task, value: Any) -> Rejection | None:
    """A classify answer at or above the request's ``min_confidence``."""
    if task.min_confidence is None or not isinstance(value, dict):
        return None
    confidence = value.get("confidence", 0)
    if float(confidence) < task.min_confidence:
        return Rejection(
            "low_confidence",
            [f"confidence {confidence} is below min_confidence {task.min_confidence}"],
            fallback=value,
        )
    return None


REPLY_CHECKS: tuple[ReplyCheck, ...] = (refused, truncated)
VALUE_CHECKS: tuple[ValueCheck, ...] = (confident,)


def judge_reply(
    task: Task,
    reply: ModelReply,
    *,
    reply_checks: Sequence[ReplyCheck] = REPLY_CHECKS,
    value_checks: Sequence[ValueCheck] = VALUE_CHECKS,
    calibration: Calibration | None = None,
) -> Verdict:
    """Run the checks on one reply: the accepted output, or the first rejection.

    ``calibration`` is the step's map for this tier, from its audits (None while they are too few).
    """
    for check in reply_checks:
        rejection = check(task, reply)
        if rejection is not None:
            return rejection
    if task.reader is not None:
        value, problems = task.reader(task, reply)
        return Rejection("invalid_output", problems, repairable=True) if problems else Accepted(value)
    strict, output = task.validators
    checked = check_reply(reply.content, strict)
    if not checked.ok:
        return Rejection("invalid_output", checked.errors, repairable=True)
    value = task.finalize(checked.value)
    # The output is checked again against the user's own schema when it differs from the strict copy sent to
    # the model (constraints the strict subset cannot carry); a node whose schema is its own skips that.
    problems = (schema_errors(value, output) if output is not None else []) + task.extra_checks(value)
    if problems:
        return Rejection("invalid_output", problems, repairable=True)
    confidence = None
    if task.confidence_key is not None:
        confidence = assess(task.confidence_key, value, reply.content, reply.token_logprobs, calibration)
        value = with_confidence(value, confidence)
    for value_check in value_checks:
        rejection = value_check(task, value)
        if rejection is not None:
            return replace(rejection, confidence=confidence) if rejection.fallback is not None else rejection
    return Accepted(value, confidence)
