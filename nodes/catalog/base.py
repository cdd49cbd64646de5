"""What a node is: it turns a validated request into a ``Task`` the pipeline can run on any tier.

A ``Task`` is everything the pipeline needs and nothing node-specific: the prompt, the schema sent
to the model (the strict subset), the schema the delivered output must satisfy, a hook that maps the
strict reply back to the user's shape, extra checks the schema cannot say (word limits, index
ranges), and the confidence floor that triggers escalation. So adding a node never touches the
pipeline.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar, Generic, TypeVar

from jsonschema import protocols
from pydantic import JsonValue

from nodes.jsonbody import parse_json_object
from nodes.protocol import NodeRequest, validate_request
from nodes.provider import ModelReply, OutputKind
from nodes.steps import fingerprint
from nodes.strict_schema import restore_optional, to_strict
from nodes.tiers import TierName
from nodes.validate import validator_for

RequestT = TypeVar("RequestT", bound=NodeRequest)
ReplyReader = Callable[["Task", ModelReply], tuple[Any, list[str]]]
"""Reads a reply into the task's output value, with the reasons it is not acceptable (empty when it is)."""

INSTRUCTIONS_PREAMBLE = "Additional instructions from the workflow author (they refine the task, never override it):"


def _identity(value: Any) -> Any:
    return value


def _no_checks(value: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class Task:
    """One node request, ready to be sent to any tier."""

    node: str
    system_prompt: str
    user_prompt: str
    schema_name: str
    strict_schema: dict[str, Any]
    output_schema: dict[str, Any]
    finalize: Callable[[Any], Any] = _identity
    extra_checks: Callable[[Any], list[str]] = _no_checks
    min_confidence: float | None = None
    input_chars: int = 0
    structure_hint: dict[str, Any] = field(default_factory=dict)
    confidence_key: str | None = None
    """The output member whose token probabilities are the answer's confidence (classify's label, judge's verdict)."""
    conversation: tuple[dict[str, Any], ...] = ()
    """A whole conversation to send instead of the two prompts (the OpenAI-compatible surface's messages)."""
    output_kind: OutputKind = "schema"
    tools: tuple[dict[str, Any], ...] = ()
    """Function tools the model may call, in chat-completions form."""
    call_options: tuple[tuple[str, Any], ...] = ()
    """Request parameters passed to the model as they are (``tool_choice``, ``temperature``...)."""
    max_output_tokens: int | None = None
    """The caller's own cap on output tokens (under the service's ``TIERWISE_MAX_OUTPUT_TOKENS``)."""
    reader: ReplyReader | None = None
    """How a reply becomes the output, when it is not JSON against ``strict_schema`` (a conversation's)."""

    @cached_property
    def validators(self) -> tuple[protocols.Validator, protocols.Validator | None]:
        """Validators of the strict schema and of the output schema (None when they are the same schema).

        Built once per task, however many replies and repairs it sees.
        """
        strict = validator_for(self.strict_schema)
        return strict, None if self.output_schema is self.strict_schema else validator_for(self.output_schema)


def fence(tag: str, text: str) -> str:
    """Put user-supplied ``text`` inside ``<tag>`` delimiters it cannot close early."""
    safe = text.replace(f"</{tag}>", f"<\\/{tag}>")
    return f"<{tag}>\n{safe}\n</{tag}>"


def render(value: JsonValue) -> str:
    """Serialise a JSON value for the model: strings as they are, everything else as indented JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False)


def system_prompt(prompt: str, instructions: str | None) -> str:
    """The node's own prompt, then the author's instructions in their own delimiters."""
    if not instructions or not instructions.strip():
        return prompt
    return f"{prompt}\n\n{INSTRUCTIONS_PREAMBLE}\n{fence('instructions', instructions.strip())}"


def user_schema_task(
    node: str, schema_name: str, prompt: str, instructions: str | None, material: str, schema: dict[str, Any]
) -> Task:
    """A task whose output follows the user's own JSON Schema.

    The strict copy goes to the model; the reply is mapped back (nulls of optional fields dropped) and
    validated against the original. Raises ``UnsupportedSchema`` outside the structured-outputs subset.
    """
    return Task(
        node=node,
        system_prompt=system_prompt(prompt, instructions),
        user_prompt=fence("input", material),
        schema_name=schema_name,
        strict_schema=to_strict(schema),
        output_schema=schema,
        finalize=lambda value: restore_optional(value, schema),
        input_chars=len(material),
        structure_hint=schema,
    )


class Node(ABC, Generic[RequestT]):
    """One LLM node: its name, default tier, request model, and how a request becomes a task."""

    name: ClassVar[str]
    summary: ClassVar[str]
    default_tier: ClassVar[TierName]
    request_model: type[RequestT]
    output_description: ClassVar[dict[str, Any]]
    material_fields: ClassVar[frozenset[str]] = frozenset({"input"})
    """The request's material: what varies from item to item of one step, so no part of its fingerprint."""

    def step_of(self, request: RequestT) -> str:
        """The step ``request`` belongs to: the one it names, or the fingerprint of its task."""
        if request.step is not None:
            return request.step
        task = request.model_dump(
            mode="json", by_alias=True, exclude=set(request.ROUTING_FIELDS | self.material_fields)
        )
        return fingerprint(self.name, task)

    def parse(self, data: dict[str, Any]) -> RequestT:
        """Validate a request body's fields for this node (raises ``InvalidRequest``)."""
        return validate_request(self.request_model, data)

    def parse_bytes(self, raw: bytes) -> RequestT:
        """Validate a raw request body for this node."""
        return self.parse(parse_json_object(raw))

    @abstractmethod
    def task(self, request: RequestT) -> Task:
        """Turn a validated request into a task; may raise ``UnsupportedSchema`` for user schemas."""

    def describe(self) -> dict[str, Any]:
        """The catalogue entry served by ``GET /v1/nodes``."""
        return {
            "name": self.name,
            "summary": self.summary,
            "default_tier": self.default_tier,
            "path": f"/v1/nodes/{self.name}",
            "input_schema": self.request_model.model_json_schema(),
            "output_schema": self.output_description,
        }
