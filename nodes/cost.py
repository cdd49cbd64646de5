"""Token usage and what it costs: the money arithmetic, in ``Decimal``, for one model call.

OpenAI bills cached input at its own rate, and ``cached_tokens`` is a subset of ``prompt_tokens``;
reasoning tokens are a subset of ``completion_tokens`` and are billed as output. So a call costs::

    (prompt - cached) * input + cached * cached_input + completion * output      (per million tokens)

Every attempt is priced, failed ones too (a call that returned invalid JSON was still billed), and the
run's ``baseline`` prices the same tokens at the ``full`` tier's rates.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

PER_MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class Price:
    """USD per million tokens for one tier."""

    input: Decimal
    cached_input: Decimal
    output: Decimal


@dataclass(frozen=True)
class Usage:
    """Tokens used by one call, in OpenAI's accounting (cached ⊂ input, reasoning ⊂ output)."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: Mapping[str, Any] | None) -> Usage:
        """Read a chat-completions ``usage`` object (as a dict); missing parts count as zero."""
        if not usage:
            return cls()
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        return cls(
            input_tokens=int(usage.get("prompt_tokens") or 0),
            cached_input_tokens=int(prompt_details.get("cached_tokens") or 0),
            output_tokens=int(usage.get("completion_tokens") or 0),
            reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
        )

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            cached_input_tokens=self.cached_input_tokens + other.cached_input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            reasoning_tokens=self.reasoning_tokens + other.reasoning_tokens,
        )


def cost_usd(usage: Usage, price: Price) -> Decimal:
    """Exact USD cost of ``usage`` at ``price``.

    Cached tokens are never counted twice and never exceed the prompt; reasoning tokens need no
    term of their own because they are already inside the output count.
    """
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    uncached = usage.input_tokens - cached
    total = uncached * price.input + cached * price.cached_input + usage.output_tokens * price.output
    return total / PER_MILLION


def total_usage(usages: Iterable[Usage]) -> Usage:
    """Sum several calls' usage."""
    result = Usage()
    for usage in usages:
        result = result + usage
    return result


def usd_text(amount: Decimal) -> str:
    """Render an amount as plain decimal text without exponent or trailing zeros (``0.0000937``)."""
    text = format(amount.normalize(), "f")
    return text if text != "-0" else "0"
