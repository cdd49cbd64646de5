"""The webhook protocol: the fields every node request shares, batches, and the shape of a reply.

Field names are fixed by PROTOCOL.md. Unknown fields are refused (a misspelt ``max_teir`` must not be
silently ignored), and every refusal names the field and says what to send instead. A ``Reply`` is
what the service answers to a POST — a status, a JSON body and headers — whether it comes from a
run, a queued job, a batch, or is replayed for an ``Idempotency-Key``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from nodes.errors import FieldIssue, InvalidRequest
from nodes.lanes import Lane
from nodes.tiers import TierName

TierChoice = Literal["auto", "nano", "mini", "full"]


NON_BLANK = r"\S"
"""The JSON Schema ``pattern`` of a string that is not empty or whitespace only (Python's ``str.strip``)."""

PRESENT_JSON: dict[str, Any] = {
    "anyOf": [{"type": "string", "pattern": NON_BLANK}, {"type": ["object", "array", "number", "boolean"]}]
}
"""Any JSON value but ``null`` and blank strings: what ``input`` may be."""

USER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"type": {"const": "object"}, "properties": {"type": "object"}},
    "required": ["type", "properties"],
}
"""The outline of a user's JSON Schema: an object root with its properties (the rest is checked on arrival)."""


def not_a_boolean(value: Any) -> Any:
    """Refuse ``true`` and ``false`` where a number is meant (pydantic would read them as 1 and 0).

    Used as a ``mode="before"`` field validator, so the field's JSON Schema stays a plain number.
    """
    if isinstance(value, bool):
        raise ValueError("must be a number, not true or false")
    return value


@dataclass(frozen=True)
class Reply:
    """An answer to send: status, JSON body, headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_problem(self) -> bool:
        """True for 4xx/5xx answers (their body is a problem)."""
        return self.status >= 400


class NodeRequest(BaseModel):
    """Fields common to every node (PROTOCOL.md "Common request fields")."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)

    input: Annotated[JsonValue, WithJsonSchema(PRESENT_JSON)] = Field(
        description="The material to work on; objects are serialised for the model. Not null, not blank."
    )
    instructions: str | None = Field(
        default=None, max_length=20_000, description="Extra guidance, appended after the node's own prompt."
    )
    tier: TierChoice | None = Field(default=None, description="Where to start; default is the node's tier.")
    max_tier: TierName = Field(default="full", description="Escalation ceiling.")
    metadata: dict[str, JsonValue] = Field(default_factory=dict, description="Echoed back and stored with the run.")
    callback_url: str | None = Field(
        default=None, description="Asynchronous mode: answer 202 at once and POST the result to this URL."
    )
    processing: Lane | None = Field(
        default=None,
        description="The price lane: standard, or flex (half price, slower; falls back to standard when out of "
        "capacity). Default: TIERWISE_PROCESSING (standard unless set).",
    )
    step: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The pipeline step this request belongs to (e.g. support-triage/intent); tier auto learns a "
        "tier per step. Default: a fingerprint of the node and its instructions, labels, schema or format.",
    )

    ROUTING_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"tier", "max_tier", "metadata", "callback_url", "step", "processing"}
    )
    """Fields that say how to run or deliver a request, not what the task is: no part of a step's fingerprint."""

    @field_validator("input")
    @classmethod
    def _input_present(cls, value: JsonValue) -> JsonValue:
        if value is None:
            raise ValueError("input must not be null; send the text or JSON to work on")
        if isinstance(value, str) and not value.strip():
            raise ValueError("input must not be empty; send the text or JSON to work on")
        return value


RequestT = TypeVar("RequestT", bound=BaseModel)


class BatchRequest(BaseModel):
    """``POST /v1/nodes/{node}/batch``: items, each a node request, and fields applied to every item."""

    model_config = ConfigDict(extra="forbid")

    items: list[JsonValue] = Field(min_length=1, description="The node requests, answered in this order.")
    defaults: dict[str, JsonValue] = Field(
        default_factory=dict, description="Fields applied to every item; an item's own fields win."
    )


def issues_from(exc: ValidationError) -> list[FieldIssue]:
    """Translate pydantic's errors into the problem body's ``errors`` list, in plain words."""
    issues = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown field; check the spelling against GET /v1/nodes"
        elif error["type"] == "missing":
            message = "field required"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        issues.append(FieldIssue(loc, message))
    return issues


def summarise(issues: list[FieldIssue]) -> str:
    """A one-line ``detail`` for a list of issues: the first one, and how many more."""
    if not issues:
        return "the request is invalid"
    first = issues[0]
    place = ".".join(str(part) for part in first.loc) or "body"
    more = f" (and {len(issues) - 1} more)" if len(issues) > 1 else ""
    return f"{place}: {first.msg}{more}"


def validate_request(model: type[RequestT], data: dict[str, Any]) -> RequestT:
    """Build ``model`` from ``data`` or raise ``InvalidRequest`` listing every problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        issues = issues_from(exc)
        raise InvalidRequest(summarise(issues), errors=issues) from exc
