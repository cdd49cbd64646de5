"""OpenAI's wire format as the sandbox speaks it: completion bodies, usage arithmetic, errors, headers.

Shapes follow recorded ``api.openai.com`` traffic (chat completion bodies and ``x-ratelimit-*``
headers) so clients parse sandbox replies exactly as they parse real ones.
"""

from __future__ import annotations

import hashlib
import math
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "RATE_LIMIT_MESSAGE",
    "RATE_LIMIT_REACHED",
    "QUOTA_MESSAGE",
    "SERVER_ERROR_MESSAGE",
    "REFUSAL_TEXT",
    "NON_JSON_TEXT",
    "error_body",
    "message_text",
    "prompt_tokens",
    "completion_tokens",
    "usage",
    "completion_body",
    "last_json_schema_block",
    "request_id",
    "ratelimit_headers",
    "ratelimit_trio",
    "ceil_ms",
    "format_reset",
]

RATE_LIMIT_MESSAGE = (
    "Rate limit reached for {model} in organization org-sandbox on requests per min (RPM): "
    "Limit 500, Used 500, Requested 1. Please try again in 20ms."
)
RATE_LIMIT_REACHED = (
    "Rate limit reached for {model} in organization org-sandbox on {kind} per min ({unit}): "
    "Limit {limit}, Used {used}, Requested {requested}. Please try again in {wait}."
)
QUOTA_MESSAGE = "You exceeded your current quota, please check your plan and billing details."
SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
REFUSAL_TEXT = "I'm sorry, but I can't help with that request."
NON_JSON_TEXT = "Sure! Here is the result: {label: billing"

REQUEST_LIMIT = 10_000
TOKEN_LIMIT = 30_000_000

_JSON_SCHEMA_BLOCK = re.compile(r"<json_schema>(.*?)</json_schema>", re.DOTALL)


def error_body(message: str, type_: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def message_text(content: Any) -> str:
    """Return the text of one message's ``content``: a string, or the ``text`` of each content part."""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "".join(
            part["text"] for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def prompt_tokens(messages: Sequence[Any]) -> int:
    """``ceil(characters of all message contents / 4) + 3`` per message."""
    characters = sum(len(message_text(message.get("content"))) for message in messages if isinstance(message, Mapping))
    return math.ceil(characters / 4) + 3 * len(messages)


def completion_tokens(text: str | None) -> int:
    """``max(1, ceil(len(text) / 4))`` for the visible output (reasoning tokens are added separately)."""
    return max(1, math.ceil(len(text or "") / 4))


def usage(*, prompt: int, completion: int, cached: int, reasoning: int) -> dict[str, Any]:
    """Build the ``usage`` object; ``completion`` must already include ``reasoning``."""
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion_body(
    *,
    number: int,
    created: int,
    model: str,
    content: str | None,
    refusal: str | None,
    finish_reason: str,
    usage: dict[str, Any],
    service_tier: str = "default",
    logprobs: list[dict[str, Any]] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Build a ``chat.completion`` object with one choice, field for field like OpenAI's."""
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": f"chatcmpl-sandbox-{number}",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None},
                "finish_reason": finish_reason,
            }
        ],
        "usage": usage,
        "service_tier": service_tier,
        "system_fingerprint": "fp_sandbox",
    }


def tool_call(digest: str, turn: int, name: str, arguments: str) -> dict[str, Any]:
    """One function call of a reply, with an id fixed by the request (``call_`` and 24 characters, as OpenAI's)."""
    return {
        "id": "call_" + hashlib.sha256(f"{digest}|{turn}|{name}".encode()).hexdigest()[:24],
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def last_json_schema_block(messages: Sequence[Any]) -> str | None:
    """Return the text inside the last ``<json_schema>...</json_schema>`` across all messages, if any."""
    found: str | None = None
    for message in messages:
        if isinstance(message, Mapping):
            for match in _JSON_SCHEMA_BLOCK.finditer(message_text(message.get("content"))):
                found = match.group(1)
    return found


_TOKEN = re.compile(r"\s+|\w+|[^\w\s]")
_SURE_LOGPROB = -1e-4
_VALUE_MEMBER = re.compile(r'"(?:label|verdict)"\s*:\s*("(?:[^"\\]|\\.)*")')
_CONFIDENCE_MEMBER = re.compile(r'"confidence"\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)')
DEFAULT_ANSWER_PROBABILITY = 0.9


def answer_probability(content: str) -> float:
    """The probability a sandbox model gives its answer: its own stated confidence, else 0.9."""
    stated = _CONFIDENCE_MEMBER.search(content)
    if stated is None:
        return DEFAULT_ANSWER_PROBABILITY
    return min(max(float(stated.group(1)), 1e-6), 1.0)


def token_logprobs(content: str, probability: float | None = None) -> list[dict[str, Any]]:
    """``logprobs.content`` for a reply: its tokens, near-certain, except the answer's.

    The words of the first ``label`` or ``verdict`` string value carry ``probability`` (default: what
    ``answer_probability`` reads), so a client that multiplies that value's token probabilities gets it back.
    """
    chance = answer_probability(content) if probability is None else probability
    value = _VALUE_MEMBER.search(content)
    start, end = value.span(1) if value is not None else (-1, -1)
    matches = list(_TOKEN.finditer(content))
    words = {m.start() for m in matches if start <= m.start() < end and m.group().strip('"').strip()}
    share = math.log(chance) / len(words) if words else 0.0
    tokens = []
    for match in matches:
        token = match.group()
        if match.start() in words:
            logprob = share
        elif match.end() > start and match.start() < end:
            logprob = 0.0  # the value's quotes: certain, so the value's tokens multiply to ``chance``
        else:
            logprob = _SURE_LOGPROB
        tokens.append({"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": []})
    return tokens


RESOURCE_UNAVAILABLE_MESSAGE = (
    "Resource unavailable: flex processing has no capacity for {model} right now. "
    "Retry later, or send the request without service_tier flex."
)


def request_id() -> str:
    """Return a fresh ``x-request-id`` in OpenAI's ``req_<32 hex>`` form."""
    return f"req_{uuid.uuid4().hex}"


def ratelimit_headers(
    *,
    remaining_requests: int,
    remaining_tokens: int,
    reset_requests: str,
    limit_requests: int = REQUEST_LIMIT,
) -> dict[str, str]:
    """Build the ``x-ratelimit-*`` request and token trios with the fixed limits of an unlimited sandbox."""
    return {
        **ratelimit_trio("requests", limit=limit_requests, remaining=remaining_requests, reset=reset_requests),
        **ratelimit_trio("tokens", limit=TOKEN_LIMIT, remaining=remaining_tokens, reset="0s"),
    }


def ratelimit_trio(kind: str, *, limit: int, remaining: int, reset: str) -> dict[str, str]:
    """Build one ``x-ratelimit-{limit,remaining,reset}-<kind>`` trio (``kind`` is requests or tokens)."""
    return {
        f"x-ratelimit-limit-{kind}": str(limit),
        f"x-ratelimit-remaining-{kind}": str(remaining),
        f"x-ratelimit-reset-{kind}": reset,
    }


def ceil_ms(seconds: float) -> int:
    """``seconds`` in whole milliseconds, rounded up; float noise of under a nanosecond is ignored."""
    return max(0, math.ceil(seconds * 1000 - 1e-6))


def format_reset(milliseconds: int) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers write it (Go's ``Duration.String``).

    ``0s``, ``6ms``, ``999ms``, ``1s``, ``1.2s``, ``59.997s``, ``1m0s``, ``1m26.4s``, ``1h0m0s``.
    """
    if milliseconds <= 0:
        return "0s"
    if milliseconds < 1000:
        return f"{milliseconds}ms"
    hours, rest = divmod(milliseconds, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, fraction = divmod(rest, 1000)
    seconds = f"{whole}.{fraction:03d}".rstrip("0") if fraction else str(whole)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    if minutes:
        return f"{minutes}m{seconds}s"
    return f"{seconds}s"


def input_text(messages: Sequence[Any]) -> str:
    """The material a request works on: the last ``<input>`` block of the user messages, else their text."""
    texts = [
        message["content"]
        for message in messages
        if isinstance(message, Mapping) and message.get("role") == "user" and isinstance(message.get("content"), str)
    ]
    joined = "\n".join(texts)
    start, end = joined.rfind("<input>"), joined.rfind("</input>")
    if start != -1 and end > start:
        return joined[start + len("<input>") : end]
    return joined
