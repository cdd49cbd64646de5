"""chat: a whole conversation as a run, for the OpenAI-compatible surface (``nodes.compat``); mini by default.

Not served under ``/v1/nodes``: ``/v1/chat/completions`` and ``/v1/responses`` translate their
requests into a ``ChatRequest`` (the messages are its ``input``) and run it like any node's, on the
same ladder. Its output is the assistant's message, ``{"content", "tool_calls", "refusal",
"finish_reason"}``, read from the reply by ``read_message``:

    tool calls         each names a tool the request offers, with JSON arguments valid against its
                       parameters schema; a tool choice that demands a call gets one
    a JSON Schema      the content satisfies it (sent to the model as the strict subset; the nulls of
                       optional fields dropped, as for the nodes) and is returned re-serialised
    json_object        the content is one JSON object
    text               anything, as it is

A reply that fails is repaired once and then escalated, exactly as a node's. A step is named by the
request (``X-Tierwise-Step``, metadata ``tierwise_step``) or fingerprinted from the system messages,
tools and output format — never the conversation's other turns.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, JsonValue

from nodes.catalog.base import Node, Task
from nodes.protocol import NodeRequest
from nodes.provider import ModelReply, OutputKind
from nodes.steps import fingerprint
from nodes.strict_schema import restore_optional, to_strict
from nodes.validate import check_reply, parse_json, schema_errors, validator_for

TRANSCRIPT_CHARS = 8_000
"""How much of a conversation the routing audit's judge and ``auto``'s complexity check read (its end)."""
SYSTEM_ROLES = frozenset({"system", "developer"})


class ChatRequest(NodeRequest):
    """A conversation to run: the messages (``input``), tools and output format, in chat-completions form."""

    tools: list[dict[str, JsonValue]] = Field(default_factory=list)
    tool_choice: JsonValue = None
    output_kind: Literal["schema", "json_object", "text"] = "text"
    schema_name: str = "response"
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    max_output_tokens: int | None = Field(default=None, ge=1)
    options: dict[str, JsonValue] = Field(default_factory=dict)
    """Parameters passed to the model as they are (``temperature``, ``top_p``, ``stop``, ``seed``...)."""


def text_of(content: Any) -> str:
    """A message content's text: the string, or its text parts joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def transcript(messages: list[Any]) -> str:
    """The conversation as plain text, ``role: text`` per turn, its last ``TRANSCRIPT_CHARS`` characters."""
    lines = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        text = text_of(message.get("content"))
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            text += f"\n[calls {function.get('name')}({function.get('arguments')})]"
        lines.append(f"{message.get('role')}: {text}")
    return "\n".join(lines)[-TRANSCRIPT_CHARS:]


def tool_names(task: Task) -> list[str]:
    """The names of the function tools a task offers."""
    return [str(tool.get("function", {}).get("name")) for tool in task.tools]


def demanded_tool(tool_choice: Any) -> str | None:
    """The tool a ``tool_choice`` demands by name, ``"*"`` for any (``required``), None when a call is optional."""
    if tool_choice == "required":
        return "*"
    if isinstance(tool_choice, dict):
        function = tool_choice.get("function")
        name = function.get("name") if isinstance(function, dict) else tool_choice.get("name")
        return str(name) if name else "*"
    return None


def call_problems(task: Task, call: dict[str, Any]) -> list[str]:
    """What is wrong with one tool call: an unknown tool, arguments that are not JSON or break its schema."""
    function = call.get("function") if isinstance(call.get("function"), dict) else {}
    assert isinstance(function, dict)
    name = function.get("name")
    tool = next((tool for tool in task.tools if tool.get("function", {}).get("name") == name), None)
    if tool is None:
        return [f"there is no tool named {name!r}; the tools are: {', '.join(tool_names(task))}"]
    arguments = function.get("arguments")
    try:
        value = parse_json(arguments) if isinstance(arguments, str) and arguments.strip() else {}
    except (ValueError, RecursionError) as exc:
        return [f"{name}: the arguments are not valid JSON ({exc})"]
    schema = tool["function"].get("parameters") or {"type": "object"}
    try:
        problems = schema_errors(value, validator_for(schema))
    except Exception as exc:  # a $ref that resolves nowhere: the client's schema, not the model, is at fault
        return [f"{name}: the tool's parameters schema cannot be checked ({type(exc).__name__}: {exc})"[:500]]
    return [f"{name}: {problem}" for problem in problems]


def read_message(task: Task, reply: ModelReply) -> tuple[dict[str, Any], list[str]]:
    """The assistant message a reply gives, and why it is not acceptable (nothing when it is)."""
    message: dict[str, Any] = {
        "content": reply.content,
        "tool_calls": [dict(call) for call in reply.tool_calls],
        "refusal": reply.refusal,
        "finish_reason": reply.finish_reason,
    }
    if reply.refusal:
        return message, []
    demanded = dict(task.call_options).get("tool_choice")
    wanted = demanded_tool(demanded)
    if reply.tool_calls:
        problems = [problem for call in reply.tool_calls for problem in call_problems(task, call)]
        names = {call.get("function", {}).get("name") for call in reply.tool_calls}
        if wanted not in (None, "*") and wanted not in names:
            problems.append(f"the tool {wanted!r} must be called")
        return message, problems
    if wanted is not None:
        return message, ["a tool must be called" if wanted == "*" else f"the tool {wanted!r} must be called"]
    if task.output_kind == "text":
        return message, [] if reply.content is not None else ["the reply was empty"]
    if task.output_kind == "json_object":
        checked = check_reply(reply.content, {"type": "object"})
        return message, checked.errors
    strict, output = task.validators
    checked = check_reply(reply.content, strict)
    if not checked.ok:
        return message, checked.errors
    value = task.finalize(checked.value)
    problems = schema_errors(value, output) if output is not None else []
    message["content"] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return message, problems


class Chat(Node[ChatRequest]):
    """The conversation node of the OpenAI-compatible surface."""

    name = "chat"
    summary = "A conversation in OpenAI's chat form (served by /v1/chat/completions and /v1/responses)."
    default_tier = "mini"
    request_model = ChatRequest
    output_description = {"type": "object", "description": "the assistant message: content, tool_calls, refusal"}

    def step_of(self, request: ChatRequest) -> str:
        """The step named by the request, or a fingerprint of its system messages, tools and output format."""
        if request.step is not None:
            return request.step
        messages = request.input if isinstance(request.input, list) else []
        system = [
            text_of(message.get("content"))
            for message in messages
            if isinstance(message, dict) and message.get("role") in SYSTEM_ROLES
        ]
        return fingerprint(
            self.name,
            {"system": system, "tools": request.tools, "kind": request.output_kind, "schema": request.schema_},
        )

    def task(self, request: ChatRequest) -> Task:
        """The conversation as a task: its messages sent as they are, its output read by ``read_message``."""
        messages = (
            [message for message in request.input if isinstance(message, dict)]
            if isinstance(request.input, list)
            else []
        )
        schema = request.schema_ if request.output_kind == "schema" else None
        system = "\n\n".join(
            text_of(message.get("content")) for message in messages if message.get("role") in SYSTEM_ROLES
        )
        options = dict(request.options)
        if request.tool_choice is not None:
            options["tool_choice"] = request.tool_choice
        kind: OutputKind = request.output_kind
        return Task(
            node=self.name,
            system_prompt=system,
            user_prompt=transcript(messages),
            schema_name=request.schema_name,
            strict_schema=to_strict(schema) if schema is not None else {},
            output_schema=schema if schema is not None else {},
            finalize=(lambda value: restore_optional(value, schema)) if schema is not None else (lambda value: value),
            input_chars=sum(len(text_of(message.get("content"))) for message in messages),
            structure_hint=schema or {},
            conversation=tuple(messages),
            output_kind=kind,
            tools=tuple(request.tools),
            call_options=tuple(options.items()),
            max_output_tokens=request.max_output_tokens,
            reader=read_message,
        )
