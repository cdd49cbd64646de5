"""The Responses API, served through chat form.

The request is translated to a ``chat`` node request, the run's answer rendered as a ``response``
object or its stream of events.

Every tier is called with Chat Completions, so the translation is the whole of it:

    instructions                        a system message, first
    input (a string)                    one user message
    message items (input_text, output_text, input_image parts)    messages of their role
    function_call / function_call_output items                    assistant tool calls / tool results
    reasoning items                     dropped (a tier cannot take another model's reasoning)
    tools (function), tool_choice       chat-form function tools and tool choice
    text.format                         response_format (text, json_object, json_schema)
    max_output_tokens                   max_completion_tokens

Not translated, and refused with a 400 that says so: ``previous_response_id`` and ``conversation``
(Tierwise stores no conversations: send the whole one in ``input``), ``item_reference`` and file
inputs, built-in tools (web search, file search, computer use, code interpreter, MCP) and
``background``. ``reasoning``, ``include``, ``store``, ``truncation`` and ``prompt_cache_key`` are
accepted and ignored (Tierwise sets its own cache key per step).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

from nodes.compat.chat import (
    PASSED_OPTIONS,
    Translated,
    checked_tool_choice,
    created_of,
    function_tools,
    invalid,
    output_format,
    positive_int,
    routing,
    service_tier_of,
)
from nodes.compat.sse import event_frame, pieces
from nodes.record import RunRecord

UNSUPPORTED = {
    "previous_response_id": "Tierwise stores no responses: send the whole conversation in 'input'.",
    "conversation": "Tierwise stores no conversations: send the whole conversation in 'input'.",
    "background": "Background responses are not supported: use the nodes' callback_url for work that can wait.",
}
ROLES = frozenset({"system", "developer", "user", "assistant"})


def message_content(content: Any, role: str, place: str) -> Any:
    """A Responses message's content in chat form: text for assistants, parts (text, image) for the others."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise invalid(f"{place}.content", f"Invalid '{place}.content': expected a string or an array of parts.")
    parts: list[dict[str, Any]] = []
    for index, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            assert isinstance(part, dict)
            parts.append({"type": "text", "text": str(part.get("text", ""))})
        elif kind == "refusal":
            assert isinstance(part, dict)
            parts.append({"type": "text", "text": str(part.get("refusal", ""))})
        elif kind == "input_image" and role != "assistant":
            assert isinstance(part, dict)
            url = part.get("image_url")
            if not isinstance(url, str):
                raise invalid(
                    f"{place}.content.{index}.image_url", "Only input_image parts with an image_url are supported."
                )
            parts.append({"type": "image_url", "image_url": {"url": url, "detail": part.get("detail", "auto")}})
        else:
            raise invalid(f"{place}.content.{index}.type", f"Content part type {kind!r} is not supported by Tierwise.")
    if role == "assistant" or all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts) if role == "assistant" else parts
    return parts


def input_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` as chat messages."""
    messages: list[dict[str, Any]] = []
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    given = body.get("input")
    if isinstance(given, str):
        messages.append({"role": "user", "content": given})
        return messages
    if not isinstance(given, list) or not given:
        raise invalid("input", "Invalid 'input': expected a string or a non-empty array of input items.")
    for index, item in enumerate(given):
        place = f"input.{index}"
        if not isinstance(item, dict):
            raise invalid(place, f"Invalid '{place}': expected an input item object.")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ROLES:
                raise invalid(f"{place}.role", f"Invalid '{place}.role': expected one of {', '.join(sorted(ROLES))}.")
            messages.append({"role": role, "content": message_content(item.get("content"), str(role), place)})
        elif kind == "function_call":
            call = {
                "id": str(item.get("call_id") or item.get("id")),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
            messages.append({"role": "tool", "tool_call_id": str(item.get("call_id")), "content": text})
        elif kind == "reasoning":
            continue
        else:
            raise invalid(f"{place}.type", f"Input item type {kind!r} is not supported by Tierwise.")
    return messages


def chat_tools(tools: Any) -> list[dict[str, Any]]:
    """Responses function tools (flat) in chat form; built-in tools are refused."""
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise invalid("tools", "Invalid type for 'tools': expected an array of tools.")
    converted = []
    for index, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
            raise invalid(
                f"tools.{index}.type", f"Tool type {kind!r} is not supported: Tierwise passes function tools only."
            )
        function = {key: tool[key] for key in ("name", "description", "parameters", "strict") if key in tool}
        converted.append({"type": "function", "function": function})
    return function_tools(converted)


def chat_tool_choice(tool_choice: Any) -> Any:
    """A Responses ``tool_choice`` in chat form."""
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        return {"type": "function", "function": {"name": tool_choice.get("name")}}
    return tool_choice


def chat_format(text: Any) -> Any:
    """``text.format`` as a chat ``response_format``."""
    spec = text.get("format") if isinstance(text, dict) else None
    if not isinstance(spec, dict) or spec.get("type") != "json_schema":
        return spec
    json_schema = {key: spec[key] for key in ("name", "schema", "strict", "description") if key in spec}
    return {"type": "json_schema", "json_schema": json_schema}


def translate(body: dict[str, Any], headers: Mapping[str, str]) -> Translated:
    """A Responses request as a ``chat`` node request (400s for what is not translated)."""
    for name, why in UNSUPPORTED.items():
        if body.get(name):
            raise invalid(name, f"'{name}' is not supported: {why}")
    tools = chat_tools(body.get("tools"))
    request: dict[str, Any] = {
        "input": input_messages(body),
        **routing(body, headers, lane=body.get("service_tier")),
    }
    try:
        request.update(output_format(chat_format(body.get("text"))))
    except Exception as exc:  # name the Responses parameter, not the chat one
        detail = (
            str(exc).replace("response_format.json_schema", "text.format").replace("response_format", "text.format")
        )
        raise invalid("text.format", detail) from None
    if tools:
        request["tools"] = tools
        tool_choice = checked_tool_choice(chat_tool_choice(body.get("tool_choice")), tools)
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
    max_tokens = positive_int(body, "max_output_tokens")
    if max_tokens is not None:
        request["max_output_tokens"] = max_tokens
    options = {name: body[name] for name in PASSED_OPTIONS if body.get(name) is not None and name in body}
    if "parallel_tool_calls" in options and not tools:
        del options["parallel_tool_calls"]
    if options:
        request["options"] = options
    return Translated(request, stream=body.get("stream") is True)


# -- answers ----------------------------------------------------------------------------------------------


def response_id(record: RunRecord) -> str:
    """The ``response`` id of a run."""
    return f"resp_{record.run_id}"


def output_items(record: RunRecord) -> list[dict[str, Any]]:
    """The answer as Responses output items: a message (text or refusal), then the function calls."""
    message = record.output
    items: list[dict[str, Any]] = []
    text, refusal = message.get("content"), message.get("refusal")
    if refusal:
        part: dict[str, Any] = {"type": "refusal", "refusal": refusal}
        items.append(_message_item(record, [part]))
    elif text or not message.get("tool_calls"):
        part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text or ""}
        items.append(_message_item(record, [part]))
    for index, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function", {})
        items.append(
            {
                "id": f"fc_{record.run_id}_{index}",
                "type": "function_call",
                "status": "completed",
                "arguments": function.get("arguments") or "",
                "call_id": call.get("id"),
                "name": function.get("name"),
            }
        )
    return items


def _message_item(record: RunRecord, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": f"msg_{record.run_id}",
        "type": "message",
        "status": "completed",
        "content": content,
        "role": "assistant",
    }


def usage_of(record: RunRecord) -> dict[str, Any]:
    """Every attempt's tokens, in the Responses usage shape."""
    usage = record.usage
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_input_tokens},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.input_tokens + usage.output_tokens,
    }


def response(record: RunRecord, body: Mapping[str, Any], *, done: bool = True) -> dict[str, Any]:
    """The ``response`` object of a succeeded run (``done=False``: as it stands before its output)."""
    truncated = record.output.get("finish_reason") == "length" and not record.output.get("tool_calls")
    status = ("incomplete" if truncated else "completed") if done else "in_progress"
    text = body.get("text") if isinstance(body.get("text"), dict) else {"format": {"type": "text"}}
    return {
        "id": response_id(record),
        "object": "response",
        "created_at": created_of(record),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if truncated and done else None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": record.model,
        "output": output_items(record) if done else [],
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": service_tier_of(record),
        "store": False,
        "temperature": body.get("temperature", 1.0),
        "text": text,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": usage_of(record) if done else None,
        "user": None,
        "metadata": body.get("metadata") or {},
    }


def events(record: RunRecord, body: Mapping[str, Any]) -> Iterator[bytes]:
    """A succeeded run's answer as a Responses event stream, from ``response.created`` to ``response.completed``."""
    number = 0

    def event(kind: str, **members: Any) -> bytes:
        nonlocal number
        # ``type`` first, then the other members in alphabetical order, as OpenAI's current streams have them.
        ordered = dict(sorted({**members, "sequence_number": number}.items()))
        frame = event_frame({"type": kind, **ordered})
        number += 1
        return frame

    opening = response(record, body, done=False)
    yield event("response.created", response=opening)
    yield event("response.in_progress", response=opening)
    for index, item in enumerate(output_items(record)):
        if item["type"] == "function_call":
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            for piece in pieces(item["arguments"]):
                yield event(
                    "response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=piece
                )
            yield event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=item["arguments"],
            )
            yield event("response.output_item.done", output_index=index, item=item)
            continue
        yield event(
            "response.output_item.added", output_index=index, item={**item, "status": "in_progress", "content": []}
        )
        for part_index, part in enumerate(item["content"]):
            where = {"item_id": item["id"], "output_index": index, "content_index": part_index}
            if part["type"] == "refusal":
                yield event("response.content_part.added", **where, part={"type": "refusal", "refusal": ""})
                for piece in pieces(part["refusal"]):
                    yield event("response.refusal.delta", **where, delta=piece)
                yield event("response.refusal.done", **where, refusal=part["refusal"])
            else:
                empty = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
                yield event("response.content_part.added", **where, part=empty)
                for piece in pieces(part["text"]):
                    yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
                yield event("response.output_text.done", **where, text=part["text"], logprobs=[])
            yield event("response.content_part.done", **where, part=part)
        yield event("response.output_item.done", output_index=index, item=item)
    final = response(record, body)
    yield event("response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final)
