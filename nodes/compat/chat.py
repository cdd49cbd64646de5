"""Chat Completions: OpenAI's request in, as a ``chat`` node request; the run's answer out, whole or streamed.

What is taken: ``model`` (the starting tier), ``messages`` (every role, text and image parts, tool calls
and tool results), function ``tools`` and ``tool_choice``, ``response_format`` (``text``,
``json_object``, ``json_schema``), ``max_completion_tokens``/``max_tokens``, the sampling parameters
(passed to the model as they are), ``metadata`` (kept with the run; ``tierwise_max_tier`` and
``tierwise_step`` are read), ``service_tier`` (``flex`` is the flex lane; ``auto``/``default`` the
service's default), ``stream`` and ``stream_options.include_usage``. What cannot be honoured is refused
with a 400 that says so (``n`` above 1, audio output, non-function tools); other unknown fields are
ignored, as OpenAI's SDKs expect.

A stream is sent once the run has finished and its answer passed every check: the validated answer,
cut into OpenAI's chunks, ending with ``data: [DONE]``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from nodes.compat.models import tier_of_model
from nodes.compat.sse import DONE, data_frame, pieces
from nodes.errors import FieldIssue, InvalidRequest
from nodes.record import RunRecord
from nodes.strict_schema import resolve_pointer
from nodes.tiers import LADDER

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
PASSED_OPTIONS = (
    "temperature",
    "top_p",
    "stop",
    "seed",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "parallel_tool_calls",
)
"""Sampling parameters sent to the model as the client gave them."""
MAX_TIER_KEY = "tierwise_max_tier"
STEP_KEY = "tierwise_step"


def invalid(param: str, message: str) -> InvalidRequest:
    """OpenAI's 400 for one parameter (``param`` dotted, as OpenAI names it)."""
    return InvalidRequest(message, errors=[FieldIssue(tuple(param.split(".")), message)])


@dataclass(frozen=True)
class Translated:
    """An OpenAI request as a ``chat`` node request, and how to answer it."""

    request: dict[str, Any]
    stream: bool = False
    include_usage: bool = False


def positive_int(body: Mapping[str, Any], *names: str) -> int | None:
    """The first of ``names`` present, as a positive integer (400 otherwise)."""
    for name in names:
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise invalid(name, f"Invalid '{name}': expected a positive integer, got {value!r}.")
        return value
    return None


def refs(value: Any) -> Iterator[str]:
    """Every ``$ref`` in a schema."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from refs(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs(item)


@lru_cache(maxsize=1024)
def schema_fault(canonical: str) -> str | None:
    """What is wrong with a schema (as canonical JSON), or None; cached: a step sends the same one every time."""
    schema = json.loads(canonical)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return f"not a valid JSON Schema ({exc.message})"
    broken = next((ref for ref in refs(schema) if resolve_pointer(schema, ref) is None), None)
    return None if broken is None else f"the reference {broken!r} does not resolve within the schema"


def check_schema(param: str, schema: Any) -> dict[str, Any]:
    """A JSON Schema given as a parameter: valid against the meta-schema, every ``$ref`` local and resolvable."""
    if not isinstance(schema, dict):
        raise invalid(param, f"Invalid '{param}': expected a JSON Schema object.")
    fault = schema_fault(json.dumps(schema, sort_keys=True, separators=(",", ":")))
    if fault is not None:
        raise invalid(param, f"Invalid '{param}': {fault}.")
    return schema


def function_tools(tools: Any, *, param: str = "tools") -> list[dict[str, Any]]:
    """Chat-completions function tools, checked: a name each, parameters that are a JSON Schema."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid(param, f"Invalid type for '{param}': expected an array of tools.")
    checked = []
    for index, tool in enumerate(tools):
        place = f"{param}.{index}"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
            raise invalid(f"{place}.type", f"Tool type {kind!r} is not supported: Tierwise passes function tools only.")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise invalid(f"{place}.function", f"Missing required parameter: '{place}.function'.")
        name = function.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise invalid(
                f"{place}.function.name",
                f"Invalid '{place}.function.name': expected 1-64 letters, digits, underscores or dashes.",
            )
        if function.get("parameters") is not None:
            check_schema(f"{place}.function.parameters", function["parameters"])
        checked.append({"type": "function", "function": function})
    return checked


def checked_tool_choice(tool_choice: Any, tools: list[dict[str, Any]], *, param: str = "tool_choice") -> Any:
    """A ``tool_choice`` in chat form, naming a tool that exists (400 otherwise)."""
    if tool_choice is None or tool_choice in ("none", "auto", "required"):
        if tool_choice == "required" and not tools:
            raise invalid(param, "Invalid 'tool_choice': 'required' needs at least one tool in 'tools'.")
        return tool_choice
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        names = [tool["function"]["name"] for tool in tools]
        if name not in names:
            raise invalid(f"{param}.function.name", f"Invalid 'tool_choice': there is no tool named {name!r}.")
        return {"type": "function", "function": {"name": name}}
    raise invalid(param, "Invalid 'tool_choice': expected 'none', 'auto', 'required' or a function to call.")


def output_format(response_format: Any, *, param: str = "response_format") -> dict[str, Any]:
    """The ``output_kind``, ``schema`` and ``schema_name`` of a chat node request."""
    if response_format is None:
        return {"output_kind": "text"}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return {"output_kind": "text"}
    if kind == "json_object":
        return {"output_kind": "json_object"}
    if kind == "json_schema":
        assert isinstance(response_format, dict)
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise invalid(f"{param}.json_schema.name", f"Missing required parameter: '{param}.json_schema.name'.")
        schema = check_schema(f"{param}.json_schema.schema", spec.get("schema", {"type": "object"}))
        return {"output_kind": "schema", "schema": schema, "schema_name": spec["name"]}
    raise invalid(f"{param}.type", f"Invalid '{param}.type': expected 'text', 'json_object' or 'json_schema'.")


def checked_messages(messages: Any) -> list[dict[str, Any]]:
    """The conversation, each message an object with a known role."""
    if not isinstance(messages, list) or not messages:
        raise invalid("messages", "Invalid 'messages': expected a non-empty array of messages.")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ROLES:
            raise invalid(
                f"messages.{index}.role",
                f"Invalid 'messages[{index}].role': expected one of {', '.join(sorted(ROLES))}.",
            )
    return messages


def routing(body: Mapping[str, Any], headers: Mapping[str, str], *, lane: Any) -> dict[str, Any]:
    """The run's tier, ceiling, step, processing lane and metadata, from the body and ``X-Tierwise-*`` headers."""
    metadata = body.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise invalid("metadata", "Invalid type for 'metadata': expected an object of strings.")
    fields: dict[str, Any] = {"tier": tier_of_model(body.get("model")), "metadata": metadata}
    max_tier = headers.get("x-tierwise-max-tier") or metadata.get(MAX_TIER_KEY)
    if max_tier is not None:
        if max_tier not in LADDER:
            raise invalid("metadata.tierwise_max_tier", f"Invalid max tier {max_tier!r}: expected nano, mini or full.")
        fields["max_tier"] = max_tier
    step = headers.get("x-tierwise-step") or metadata.get(STEP_KEY)
    if step is not None:
        fields["step"] = str(step)
    if lane in ("flex", "batch"):
        if lane == "batch":
            raise invalid("service_tier", "Invalid 'service_tier': the batch lane needs the nodes' callback_url.")
        fields["processing"] = lane
    elif lane not in (None, "auto", "default", "standard"):
        raise invalid("service_tier", f"Invalid 'service_tier' {lane!r}: Tierwise offers 'auto', 'default' and 'flex'.")
    return fields


def translate(body: dict[str, Any], headers: Mapping[str, str]) -> Translated:
    """A Chat Completions request as a ``chat`` node request (400s for what cannot be honoured)."""
    n = body.get("n")
    if n not in (None, 1):
        raise invalid("n", "Invalid 'n': Tierwise returns one choice; send n 1 or leave it out.")
    modalities = body.get("modalities")
    if body.get("audio") is not None or (isinstance(modalities, list) and "audio" in modalities):
        raise invalid("modalities", "Audio output is not supported by Tierwise.")
    tools = function_tools(body.get("tools"))
    request: dict[str, Any] = {
        "input": checked_messages(body.get("messages")),
        **output_format(body.get("response_format")),
        **routing(body, headers, lane=body.get("service_tier")),
    }
    if tools:
        request["tools"] = tools
    tool_choice = checked_tool_choice(body.get("tool_choice"), tools)
    if tool_choice is not None and tools:
        request["tool_choice"] = tool_choice
    max_tokens = positive_int(body, "max_completion_tokens", "max_tokens")
    if max_tokens is not None:
        request["max_output_tokens"] = max_tokens
    options = {name: body[name] for name in PASSED_OPTIONS if body.get(name) is not None}
    if "parallel_tool_calls" in options and not tools:
        del options["parallel_tool_calls"]  # OpenAI refuses it without tools
    if options:
        request["options"] = options
    stream = body.get("stream") is True
    stream_options = body.get("stream_options")
    include_usage = stream and isinstance(stream_options, dict) and stream_options.get("include_usage") is True
    return Translated(request, stream=stream, include_usage=include_usage)


# -- answers ----------------------------------------------------------------------------------------------


def finish_reason(message: Mapping[str, Any]) -> str:
    """Why the answer ended, as Chat Completions says it."""
    if message.get("tool_calls"):
        return "tool_calls"
    reason = message.get("finish_reason")
    return reason if reason in ("stop", "length", "content_filter") else "stop"


def usage_of(record: RunRecord) -> dict[str, Any]:
    """Every attempt's tokens (what the run was billed for), in Chat Completions' usage shape."""
    usage = record.usage
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": usage.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def service_tier_of(record: RunRecord) -> str:
    """The lane the answer was processed on, as OpenAI's ``service_tier`` names it."""
    answering = [attempt for attempt in record.attempts if attempt.purpose == "answer"]
    return "flex" if answering and answering[-1].processing == "flex" else "default"


def created_of(record: RunRecord) -> int:
    """The run's creation time in Unix seconds."""
    return int(datetime.fromisoformat(record.created_at.replace("Z", "+00:00")).timestamp())


def completion_id(record: RunRecord) -> str:
    """The ``chat.completion`` id of a run."""
    return f"chatcmpl-{record.run_id}"


def completion(record: RunRecord) -> dict[str, Any]:
    """The ``chat.completion`` object of a succeeded run."""
    message = record.output
    said: dict[str, Any] = {
        "role": "assistant",
        "content": message.get("content"),
        "refusal": message.get("refusal"),
        "annotations": [],
    }
    if message.get("tool_calls"):
        said["tool_calls"] = message["tool_calls"]
    return {
        "id": completion_id(record),
        "object": "chat.completion",
        "created": created_of(record),
        "model": record.model,
        "choices": [{"index": 0, "message": said, "logprobs": None, "finish_reason": finish_reason(message)}],
        "usage": usage_of(record),
        "service_tier": service_tier_of(record),
        "system_fingerprint": None,
    }


def chunks(record: RunRecord, *, include_usage: bool) -> Iterator[bytes]:
    """A succeeded run's answer as a Chat Completions stream: role, deltas, finish, usage, ``[DONE]``."""
    message = record.output
    base: dict[str, Any] = {
        "id": completion_id(record),
        "object": "chat.completion.chunk",
        "created": created_of(record),
        "model": record.model,
        "service_tier": service_tier_of(record),
        "system_fingerprint": None,
    }

    def chunk(delta: dict[str, Any], reason: str | None = None) -> bytes:
        body = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": reason}]}
        if include_usage:
            body["usage"] = None
        return data_frame(body)

    calls = list(message.get("tool_calls") or ())
    content = message.get("content") or ""
    refusal = message.get("refusal") or ""
    openings = [
        {
            "index": index,
            "id": call.get("id"),
            "type": "function",
            "function": {**call.get("function", {}), "arguments": ""},
        }
        for index, call in enumerate(calls)
    ]
    if calls and not content and not refusal:  # a tool call's first chunk opens the call, as OpenAI's do
        yield chunk({"role": "assistant", "content": None, "tool_calls": [openings[0]], "refusal": None})
    else:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
    for piece in pieces(refusal):
        yield chunk({"refusal": piece})
    for piece in pieces(content):
        yield chunk({"content": piece})
    for index, call in enumerate(calls):
        if index > 0 or content or refusal:
            yield chunk({"tool_calls": [openings[index]]})
        for piece in pieces(call.get("function", {}).get("arguments") or ""):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, finish_reason(message))
    if include_usage:
        yield data_frame({**base, "choices": [], "usage": usage_of(record)})
    yield DONE
