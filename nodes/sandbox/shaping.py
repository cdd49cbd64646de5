"""The sandbox's extension seam: a ``ReplyShaper`` decides the successful replies of the models it knows.

``create_sandbox_app(config, shaper=...)`` plugs one in. For every valid chat completion that no error
fault answers, the sandbox works out its own answer and offers it to ``shape`` with the parsed
``ChatRequest``, which also carries the request's seeded random sources; the shaper returns the
reply's content, or ``None`` to let the sandbox answer as usual. Fault rules still apply on top (a
``non_json`` rule still replaces the content), the rate-limit buckets still admit or refuse the reply,
and usage is counted from what is sent. Once a shaped reply is admitted, ``deliver`` is told what
became of it and returns the reply's latency and what the request log keeps about it;
``DELETE /_sandbox/requests`` calls ``clear``.

Everything else stays with the sandbox: faults, rate limits, synthesis, the request log and the stats.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, Protocol

from nodes.sandbox import wire

__all__ = ["ChatRequest", "Delivery", "FormatKind", "ReplyShaper", "ShapedReply"]

FormatKind = Literal["json_schema", "json_object", "text"]


@dataclass
class ChatRequest:
    """The parts of a valid chat-completion request that decide its answer, and its random sources.

    ``schema`` is the requested ``json_schema``, or the schema attached to ``json_object`` (llama.cpp's
    form), else ``None``; ``seed`` is the
    sandbox configuration's, which with the request fixes every draw, so equal requests get equal
    answers whatever the arrival order.
    """

    model: str
    messages: list[Any]
    kind: FormatKind
    schema: dict[str, Any] | None
    max_tokens: int | None
    seed: int | None = None
    service_tier: str = "default"
    logprobs: bool = False
    tools: list[Any] = field(default_factory=list)
    tool_choice: Any = None

    @cached_property
    def tool_to_call(self) -> dict[str, Any] | None:
        """The function tool this request's answer calls, or None for an answer in words.

        A named ``tool_choice`` is called every time; otherwise (``auto``, ``required``) the first tool the
        conversation has not called yet, so an agent calls each of its tools once, in order, and then
        answers (``required`` calls the first tool again). ``none`` calls nothing.
        """
        functions: list[dict[str, Any]] = [
            tool["function"] for tool in self.tools if isinstance(tool, dict) and isinstance(tool.get("function"), dict)
        ]
        if not functions or self.tool_choice == "none":
            return None
        if isinstance(self.tool_choice, dict):
            wanted = (self.tool_choice.get("function") or {}).get("name")
            return next((dict(function) for function in functions if function.get("name") == wanted), None)
        called = {
            (call.get("function") or {}).get("name")
            for message in self.messages
            if isinstance(message, dict)
            for call in message.get("tool_calls") or ()
            if isinstance(call, dict)
        }
        pending = next((function for function in functions if function.get("name") not in called), None)
        if pending is None and self.tool_choice == "required":
            return dict(functions[0])
        return pending if pending is None else dict(pending)

    @cached_property
    def digest(self) -> str:
        """A hash of what decides the answer: model, messages, format and schema."""
        payload = json.dumps([self.model, self.messages, self.kind, self.schema], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def draw(self, aspect: str) -> random.Random:
        """A random source for one aspect of the answer (``"latency"``, ``"correct"``...), independent of the others."""
        return random.Random(f"{self.seed}|{self.digest}|{aspect}")

    @cached_property
    def answer_schema(self) -> dict[str, Any]:
        """The schema a JSON answer must satisfy: the requested (or attached) one, or the last ``<json_schema>`` block.

        For ``json_object`` without either this is ``{"const": {}}``, i.e. the answer ``{}``.
        """
        if self.schema is not None:
            return self.schema
        block = wire.last_json_schema_block(self.messages)
        try:
            schema = json.loads(block) if block is not None else None
        except ValueError:
            schema = None
        return schema if isinstance(schema, dict) else {"const": {}}


@dataclass(frozen=True)
class ShapedReply:
    """What a shaper decided a reply says; a shaper may subclass it to remember why."""

    content: str

    @property
    def answer_probability(self) -> float | None:
        """What the reply's tokens give its answer when logprobs are asked for.

        None (here) means the answer's own stated confidence, as for unshaped replies; a subclass that
        knows better (whether its answer is right) says so.
        """
        return None


@dataclass(frozen=True)
class Delivery:
    """What the shaper says about a shaped reply the sandbox sends.

    ``latency_s`` replaces the configured ``latency_ms``/``latency_jitter_ms`` (``None`` keeps them);
    ``log`` is kept as the request log entry's ``shaped`` member (``None``: no member).
    """

    latency_s: float | None = None
    log: dict[str, Any] | None = None


class ReplyShaper(Protocol):
    """Shapes the 200 replies of some models: what they say, how long they take, what is noted about them."""

    def shape(self, request: ChatRequest, answer: Any) -> ShapedReply | None:
        """The reply to ``request``, or ``None`` to leave it to the sandbox.

        ``answer`` is the sandbox's own answer: an instance of ``request.answer_schema`` for the JSON
        formats, a paragraph for text. It is called before the rate-limit check, so a shaped reply may
        still be refused with a 429 (and ``deliver`` is then not called).
        """
        ...

    def deliver(self, request: ChatRequest, reply: ShapedReply, fault: str | None, completion_tokens: int) -> Delivery:
        """Note that ``reply`` is being sent, changed by the non-error ``fault`` rule if one fired.

        ``completion_tokens`` is the usage reported for it (after the fault, reasoning tokens included).
        """
        ...

    def clear(self) -> None:
        """Forget what was noted so far (``DELETE /_sandbox/requests``)."""
        ...
