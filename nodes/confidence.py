"""Confidence: what a model says of its answer, what its token probabilities say, and what its audits say.

A model's self-reported confidence is poorly calibrated. Where a tier returns token log-probabilities
(``TIERWISE_<TIER>_LOGPROBS``), the confidence of a classify label (and of a judge's verdict) is the
probability the model gave the tokens of that value. Per step and tier that probability is then
calibrated against the step's audit outcomes — did the cheaper tier's answer agree with the dearer
one? — by isotonic regression (pool adjacent violators): a monotone map from probability to the share
of answers that held up. With fewer outcomes than a step's evidence needs (``TIERWISE_STEP_MIN_AUDITS``)
the probability is used as it is, and the response says so.

    self-reported (in the output)   logprob (from the tokens)   calibrated (from the step's audits)
                                 └──────────── the first of these that exists, read right to left ──▶ value

``min_confidence`` compares ``value``; a classify output's ``confidence`` is ``value``, and the response's
``confidence`` member carries all three.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_OUTCOMES = 30
"""Audit outcomes a step's tier needs before its probabilities are calibrated."""

_STRING_MEMBER = r'"{key}"\s*:\s*("(?:[^"\\]|\\.)*")'


@dataclass(frozen=True)
class TokenLogprob:
    """One output token and the natural log of the probability the model gave it."""

    token: str
    logprob: float


def value_probability(content: str, tokens: Sequence[TokenLogprob], key: str) -> float | None:
    """The probability the model gave the string value of the first ``key`` member of its JSON reply.

    That is the product of the probabilities of every token that overlaps the value's characters
    (quotes included). None when the tokens do not spell the content or the member is not there.
    """
    if "".join(token.token for token in tokens) != content:
        return None
    match = re.search(_STRING_MEMBER.format(key=re.escape(key)), content)
    if match is None:
        return None
    start, end = match.span(1)
    total, offset = 0.0, 0
    for token in tokens:
        token_end = offset + len(token.token)
        if token_end > start and offset < end:
            total += token.logprob
        offset = token_end
    return math.exp(total)


@dataclass(frozen=True)
class Calibration:
    """A monotone map from a step's raw probabilities to the share of its answers that held up in audits."""

    thresholds: tuple[float, ...]
    """The upper end of each block's probabilities, ascending."""
    values: tuple[float, ...]
    """Each block's share of agreed answers, non-decreasing."""
    outcomes: int

    @classmethod
    def fit(cls, pairs: Sequence[tuple[float, bool]], *, min_outcomes: int = MIN_OUTCOMES) -> Calibration | None:
        """Isotonic regression of outcome on probability, or None with fewer than ``min_outcomes`` pairs."""
        if len(pairs) < min_outcomes:
            return None
        grouped: dict[float, list[float]] = {}
        for probability, agreed in pairs:
            seen = grouped.setdefault(probability, [0.0, 0.0])
            seen[0] += float(agreed)
            seen[1] += 1.0
        blocks: list[list[float]] = []  # [sum of outcomes, count, highest probability]; equal ones pooled too
        for probability in sorted(grouped):
            blocks.append([*grouped[probability], probability])
            while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
                total, count, highest = blocks.pop()
                blocks[-1][0] += total
                blocks[-1][1] += count
                blocks[-1][2] = highest
        return cls(
            thresholds=tuple(block[2] for block in blocks),
            values=tuple(block[0] / block[1] for block in blocks),
            outcomes=len(pairs),
        )

    def __call__(self, probability: float) -> float:
        """The calibrated value of ``probability``: its block's share (the top block's above every threshold)."""
        for threshold, value in zip(self.thresholds, self.values, strict=True):
            if probability <= threshold:
                return value
        return self.values[-1]


@dataclass(frozen=True)
class Confidence:
    """An answer's confidence three ways, and the one that counts."""

    self_reported: float | None
    logprob: float | None
    calibrated: float | None
    note: str

    @property
    def value(self) -> float | None:
        """What ``min_confidence`` compares: calibrated, else the token probability, else what the model said."""
        for candidate in (self.calibrated, self.logprob, self.self_reported):
            if candidate is not None:
                return candidate
        return None

    @property
    def source(self) -> str:
        """Which of the three ``value`` is."""
        if self.calibrated is not None:
            return "calibrated"
        return "logprob" if self.logprob is not None else "self_reported"

    def as_dict(self) -> dict[str, Any]:
        """The response's ``confidence`` member."""
        return {
            "value": _rounded(self.value),
            "source": self.source,
            "self_reported": _rounded(self.self_reported),
            "logprob": _rounded(self.logprob),
            "calibrated": _rounded(self.calibrated),
            "calibration": self.note,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def assess(
    key: str, value: Any, content: str | None, tokens: Sequence[TokenLogprob] | None, calibration: Calibration | None
) -> Confidence | None:
    """The confidence of the ``key`` member of an accepted output, from its reply's tokens; None without tokens."""
    if tokens is None or content is None:
        return None
    probability = value_probability(content, tokens, key)
    if probability is None:
        return None
    reported = value.get("confidence") if isinstance(value, dict) else None
    self_reported = float(reported) if isinstance(reported, int | float) and not isinstance(reported, bool) else None
    if calibration is None:
        note = "uncalibrated: too few audit outcomes of this step on this tier yet"
        return Confidence(self_reported, probability, None, note)
    note = f"isotonic over {calibration.outcomes} audit outcomes of this step on this tier"
    return Confidence(self_reported, probability, calibration(probability), note)


def with_confidence(value: Any, confidence: Confidence | None) -> Any:
    """A classify output whose ``confidence`` is the confidence that counts (the output itself if none)."""
    if confidence is None or not isinstance(value, dict) or "confidence" not in value or confidence.value is None:
        return value
    return {**value, "confidence": round(confidence.value, 4)}


def parse_logprobs(choice: Any) -> tuple[TokenLogprob, ...] | None:
    """The token log-probabilities of a chat-completions choice (``choice.logprobs.content``), if it has them."""
    logprobs = choice.get("logprobs") if isinstance(choice, dict) else None
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if not isinstance(content, list):
        return None
    tokens = []
    for entry in content:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            return None
        logprob = entry.get("logprob")
        if not isinstance(logprob, int | float) or isinstance(logprob, bool) or not math.isfinite(logprob):
            return None
        tokens.append(TokenLogprob(entry["token"], float(logprob)))
    return tuple(tokens)
