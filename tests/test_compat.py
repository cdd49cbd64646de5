"""The OpenAI-compatible surface, driven by the official ``openai`` SDK against the running service and the sandbox.

Each test is a client of the kind n8n's AI nodes and LangChain are: the SDK's sync and async clients, its
streams, ``parse`` with a pydantic model, tool calls and tool results. The sandbox plays the models
(``gpt-5.4-nano``, ``gpt-5.4-mini``, ``gpt-5.4`` are the three tiers), with faults where a test needs a
model to fail.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from pydantic import BaseModel
from support import TLS, Sandbox, Service

from nodes.compat.chat import translate as translate_chat
from nodes.compat.responses import translate as translate_responses
from nodes.errors import InvalidRequest

STREAMS = Path(__file__).parent / "fixtures" / "openai-streams"
NANO, MINI, FULL = "gpt-5.4-nano", "gpt-5.4-mini", "gpt-5.4"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}
CONTACT_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


class Contact(BaseModel):
    name: str
    age: int


OPENED: list[openai.OpenAI] = []


def client(service: Service, key: str | None = None, **options: Any) -> openai.OpenAI:
    """The official SDK's client on the service (closed when the test ends)."""
    opened = openai.OpenAI(
        base_url=f"{service.url}/v1", api_key=key or service.key, http_client=httpx.Client(verify=TLS), **options
    )
    OPENED.append(opened)
    return opened


@pytest.fixture(autouse=True)
def close_clients() -> Iterator[None]:
    yield
    while OPENED:
        OPENED.pop().close()


def tiers_called(sandbox: Sandbox) -> list[str]:
    return [entry["model"] for entry in sandbox.requests()]


@pytest.fixture
def service(pooled_service: Callable[..., Service]) -> Service:
    return pooled_service()


def test_models_lists_the_four_tier_ids(service: Service) -> None:
    models = client(service).models.list()
    assert [model.id for model in models] == ["tierwise/auto", "tierwise/nano", "tierwise/mini", "tierwise/full"]


def test_a_chat_completion_starts_on_the_named_tier_and_says_so_in_headers(service: Service, sandbox: Sandbox) -> None:
    raw = client(service).chat.completions.with_raw_response.create(
        model="tierwise/nano", messages=[{"role": "user", "content": "Say hello."}], temperature=0.2
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == NANO
    assert completion.choices[0].finish_reason == "stop"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert raw.headers["x-tierwise-tier"] == "nano"
    assert completion.id == f"chatcmpl-{raw.headers['x-tierwise-run-id']}"
    assert float(raw.headers["x-tierwise-cost-usd"]) > 0
    (sent,) = sandbox.requests()
    assert sent["model"] == NANO
    assert sent["body"]["messages"] == [{"role": "user", "content": "Say hello."}]
    assert sent["body"]["temperature"] == 0.2
    assert "response_format" not in sent["body"]  # free text goes as free text
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_schema_drift_on_nano_is_repaired_then_escalated_and_only_a_valid_answer_reaches_the_client(
    service: Service, sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "schema_drift", "model": NANO}])
    raw = client(service).chat.completions.with_raw_response.create(
        model="tierwise/nano",
        messages=[{"role": "user", "content": "Bob is 34."}],
        response_format={"type": "json_schema", "json_schema": {"name": "contact", "schema": CONTACT_SCHEMA}},
    )
    completion = raw.parse()
    assert tiers_called(sandbox) == [NANO, NANO, MINI]  # the answer, the repair turn, then mini
    repair = sandbox.requests()[1]["body"]["messages"]
    assert "not acceptable" in repair[-1]["content"] and "'name' is a required property" in repair[-1]["content"]
    assert raw.headers["x-tierwise-tier"] == "mini"
    assert completion.model == MINI
    assert set(json.loads(completion.choices[0].message.content or "")) == {"name", "age"}
    run_id = raw.headers["x-tierwise-run-id"]
    (row,) = service.rows("SELECT node, start_tier, final_tier, status, step FROM runs WHERE run_id = ?", (run_id,))
    assert (row["node"], row["start_tier"], row["final_tier"], row["status"]) == ("chat", "nano", "mini", "succeeded")
    assert row["step"].startswith("chat/")
    attempts = service.rows("SELECT tier, outcome FROM attempts WHERE run_id = ? ORDER BY seq", (run_id,))
    assert [(a["tier"], a["outcome"]) for a in attempts] == [
        ("nano", "invalid_output"),
        ("nano", "invalid_output"),
        ("mini", "ok"),
    ]


def test_parse_with_a_pydantic_model(service: Service, sandbox: Sandbox) -> None:
    parsed = client(service).chat.completions.parse(
        model="tierwise/nano", messages=[{"role": "user", "content": "Bob is 34."}], response_format=Contact
    )
    contact = parsed.choices[0].message.parsed
    assert isinstance(contact, Contact)
    (sent,) = sandbox.requests()
    assert sent["body"]["response_format"]["type"] == "json_schema"
    assert sent["body"]["response_format"]["json_schema"]["strict"] is True


def test_json_object_must_be_a_json_object(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "non_json", "model": NANO}])
    raw = client(service).chat.completions.with_raw_response.create(
        model="tierwise/nano",
        messages=[{"role": "user", "content": "Reply in JSON."}],
        response_format={"type": "json_object"},
    )
    assert tiers_called(sandbox) == [NANO, NANO, MINI]
    assert raw.headers["x-tierwise-tier"] == "mini"
    assert isinstance(json.loads(raw.parse().choices[0].message.content or ""), dict)
    assert sandbox.requests()[2]["body"]["response_format"] == {"type": "json_object"}


def test_a_tool_call_round_trip(service: Service, sandbox: Sandbox) -> None:
    chat = client(service).chat.completions
    messages: list[Any] = [{"role": "user", "content": "Weather in Lisbon for two days?"}]
    first = chat.create(model="tierwise/mini", messages=messages, tools=[WEATHER], tool_choice="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city", "days"}
    messages += [
        choice.message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"forecast": "sunny"}'},
    ]
    second = chat.create(model="tierwise/mini", messages=messages, tools=[WEATHER])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content
    sent = sandbox.requests()[1]["body"]
    assert sent["tools"] == [WEATHER]
    assert [message["role"] for message in sent["messages"]] == ["user", "assistant", "tool"]
    assert sent["messages"][1]["tool_calls"][0]["id"] == call.id


def test_tool_arguments_that_break_the_parameters_schema_are_repaired_then_escalated(
    service: Service, sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "schema_drift", "model": NANO}])
    completion = client(service).chat.completions.create(
        model="tierwise/nano",
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER],
        tool_choice="required",
    )
    assert tiers_called(sandbox) == [NANO, NANO, MINI]
    repair = sandbox.requests()[1]["body"]["messages"]
    assert repair[-2]["role"] == "assistant" and repair[-2]["tool_calls"]
    assert repair[-1]["role"] == "tool" and repair[-1]["tool_call_id"] == repair[-2]["tool_calls"][0]["id"]
    assert "arguments were not acceptable" in repair[-1]["content"]
    (call,) = completion.choices[0].message.tool_calls or []
    assert set(json.loads(call.function.arguments)) == {"city", "days"}


def test_a_refusal_climbs_and_the_top_tiers_refusal_is_the_answer(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "refusal"}])
    raw = client(service).chat.completions.with_raw_response.create(
        model="tierwise/mini", messages=[{"role": "user", "content": "Something it will not do."}]
    )
    assert tiers_called(sandbox) == [MINI, FULL]
    message = raw.parse().choices[0].message
    assert message.refusal and message.content is None
    assert raw.headers["x-tierwise-tier"] == "full"


def test_max_tier_in_metadata_or_a_header_caps_the_climb(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "non_json"}])
    chat = client(service).chat.completions
    request: dict[str, Any] = {
        "model": "tierwise/nano",
        "messages": [{"role": "user", "content": "JSON please"}],
        "response_format": {"type": "json_object"},
    }
    with pytest.raises(openai.APIStatusError) as failed:
        chat.create(**request, metadata={"tierwise_max_tier": "mini"})
    assert failed.value.status_code == 502
    assert failed.value.body["code"] == "all_tiers_failed"  # type: ignore[index]
    assert failed.value.response.headers["x-should-retry"] == "false"
    assert set(tiers_called(sandbox)) == {NANO, MINI}  # the SDK did not repeat it: four calls, two per tier
    assert len(sandbox.requests()) == 4
    sandbox.reset()
    sandbox.configure(faults=[{"kind": "non_json"}])
    with pytest.raises(openai.APIStatusError):
        chat.create(**request, extra_headers={"X-Tierwise-Max-Tier": "nano"})
    assert tiers_called(sandbox) == [NANO, NANO]


def test_a_chat_stream_is_released_after_validation_and_carries_the_validated_answer(
    service: Service, sandbox: Sandbox
) -> None:
    sandbox.configure(faults=[{"kind": "schema_drift", "model": NANO}])
    with client(service).chat.completions.with_streaming_response.create(
        model="tierwise/nano",
        messages=[{"role": "user", "content": "Bob is 34."}],
        response_format={"type": "json_schema", "json_schema": {"name": "contact", "schema": CONTACT_SCHEMA}},
        stream=True,
        stream_options={"include_usage": True},
    ) as raw:
        assert raw.headers["content-type"].startswith("text/event-stream")
        assert raw.headers["x-tierwise-tier"] == "mini"
        chunks = list(raw.parse())
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert set(json.loads(text)) == {"name", "age"}
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0
    assert {chunk.id for chunk in chunks} == {chunks[0].id}


def test_a_streamed_tool_call_reassembles(service: Service) -> None:
    stream = client(service).chat.completions.create(
        model="tierwise/mini",
        messages=[{"role": "user", "content": "Weather in Rome?"}],
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        stream=True,
    )
    arguments, names, finish = "", [], None
    for chunk in stream:
        delta = chunk.choices[0].delta
        for call in delta.tool_calls or []:
            if call.function and call.function.name:
                names.append(call.function.name)
            arguments += (call.function.arguments or "") if call.function else ""
        finish = chunk.choices[0].finish_reason or finish
    assert names == ["get_weather"] and finish == "tool_calls"
    assert set(json.loads(arguments)) == {"city", "days"}


def sse_events(body: bytes) -> list[bytes]:
    assert body.endswith(b"\n\n") and not body.endswith(b"\n\n\n") and b"\r" not in body
    return body[:-2].split(b"\n\n")


def shape(value: Any) -> Any:
    """The keys of a JSON value, in order, all the way down (values dropped): what framing comparisons compare."""
    if isinstance(value, dict):
        return [(key, shape(item)) for key, item in value.items() if key != "obfuscation"]
    if isinstance(value, list):
        return [shape(item) for item in value[:1]]
    return None


def test_chat_stream_framing_matches_a_recorded_openai_stream(service: Service) -> None:
    recorded = sse_events((STREAMS / "chat-tool-call-usage.sse").read_bytes())
    request = json.loads((STREAMS / "chat-tool-call-usage.request.json").read_text())
    request["model"] = "tierwise/mini"
    response = service.http.post("/v1/chat/completions", json=request)
    assert response.status_code == 200
    ours = sse_events(response.content)
    assert ours[-1] == recorded[-1] == b"data: [DONE]"
    for events in (recorded, ours):
        assert all(event.startswith(b"data: {") and b"\n" not in event for event in events[:-1])
        assert all(b'": ' not in event and b'", "' not in event for event in events[:-1])  # compact JSON
    theirs_json = [json.loads(event[6:]) for event in recorded[:-1]]
    ours_json = [json.loads(event[6:]) for event in ours[:-1]]
    # The first chunk opens the tool call, middle chunks carry arguments, then the finish chunk, then usage.
    assert [shape(chunk) for chunk in (ours_json[0], ours_json[1], ours_json[-2], ours_json[-1])] == [
        shape(chunk) for chunk in (theirs_json[0], theirs_json[1], theirs_json[-2], theirs_json[-1])
    ]
    assert ours_json[-2]["choices"][0]["finish_reason"] == theirs_json[-2]["choices"][0]["finish_reason"]


def test_responses_stream_framing_matches_a_recorded_openai_stream(service: Service) -> None:
    recorded = sse_events((STREAMS / "responses-text.sse").read_bytes())
    response = service.http.post(
        "/v1/responses", json={"model": "tierwise/nano", "input": "Tell me a fact.", "stream": True}
    )
    assert response.status_code == 200
    ours = sse_events(response.content)

    def parsed(events: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
        found = []
        for event in events:
            name, data = event.split(b"\n")
            assert name.startswith(b"event: ") and data.startswith(b"data: {")
            body = json.loads(data[6:])
            assert body["type"] == name[7:].decode()
            found.append((body["type"], body))
        return found

    theirs, mine = parsed(recorded), parsed(ours)
    collapse = lambda names: [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]  # noqa: E731
    assert collapse([name for name, _ in mine]) == collapse([name for name, _ in theirs])
    assert [body["sequence_number"] for _, body in mine] == list(range(len(mine)))
    for (name, body), (_, reference) in zip(mine, theirs, strict=False):
        if name != "response.output_text.delta":
            assert set(body) == set(reference), name
    completed = mine[-1][1]["response"]
    text = "".join(body["delta"] for name, body in mine if name == "response.output_text.delta")
    assert completed["output"][0]["content"][0]["text"] == text


def test_responses_with_a_schema_tools_and_a_tool_result(service: Service, sandbox: Sandbox) -> None:
    responses = client(service).responses
    tool = {"type": "function", "name": "get_weather", "parameters": WEATHER["function"]["parameters"]}
    first = responses.create(model="tierwise/mini", input="Weather in Paris?", tools=[tool], instructions="Be brief.")
    (call,) = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and set(json.loads(call.arguments)) == {"city", "days"}
    second = responses.create(
        model="tierwise/mini",
        instructions="Be brief.",
        tools=[tool],
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "rain"},
        ],
        text={"format": {"type": "json_schema", "name": "contact", "schema": CONTACT_SCHEMA}},
    )
    assert set(json.loads(second.output_text)) == {"name", "age"}
    sent = sandbox.requests()[1]["body"]
    assert [message["role"] for message in sent["messages"]] == ["system", "user", "assistant", "tool"]
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": call.call_id, "content": "rain"}
    assert sent["response_format"]["json_schema"]["name"] == "contact"


def test_responses_parse_with_a_pydantic_model(service: Service) -> None:
    parsed = client(service).responses.parse(model="tierwise/nano", input="Bob is 34.", text_format=Contact)
    assert isinstance(parsed.output_parsed, Contact)


def test_the_async_client_and_its_stream(service: Service) -> None:
    async def go() -> tuple[str, list[str]]:
        async with openai.AsyncOpenAI(
            base_url=f"{service.url}/v1", api_key=service.key, http_client=httpx.AsyncClient(verify=TLS)
        ) as aclient:
            whole = await aclient.chat.completions.create(
                model="tierwise/auto", messages=[{"role": "user", "content": "hi"}]
            )
            stream = await aclient.responses.create(model="tierwise/auto", input="hi", stream=True)
            kinds = [event.type async for event in stream]
        return whole.choices[0].message.content or "", kinds

    content, kinds = asyncio.run(go())
    assert content
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"


def test_errors_use_openais_body_and_statuses(service: Service) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client(service).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    body = missing.value.body
    assert isinstance(body, dict)
    assert (body["type"], body["param"], body["code"]) == ("invalid_request_error", None, "model_not_found")
    assert body["message"].startswith("The model `gpt-4o` does not exist; Tierwise serves tierwise/auto")
    with pytest.raises(openai.AuthenticationError) as unauthorised:
        client(service, "not-a-key-at-all").models.list()
    assert unauthorised.value.body["code"] == "invalid_api_key"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as bad:
        client(service).chat.completions.create(model="tierwise/nano", messages=[{"role": "user", "content": "x"}], n=2)
    assert bad.value.body["param"] == "n"  # type: ignore[index]
    response = service.http.post("/v1/chat/completions", content=b"{not json")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_a_keys_request_limit_is_a_429_with_retry_after(pooled_service: Callable[..., Service]) -> None:
    service = pooled_service(key_rpm=1)
    chat = client(service, max_retries=0).chat.completions
    chat.create(model="tierwise/nano", messages=[{"role": "user", "content": "one"}])
    with pytest.raises(openai.RateLimitError) as limited:
        chat.create(model="tierwise/nano", messages=[{"role": "user", "content": "two"}])
    assert int(limited.value.response.headers["retry-after"]) >= 1
    assert limited.value.body["code"] == "rate_limit_exceeded"  # type: ignore[index]


def test_an_upstream_429_is_absorbed_not_returned(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "rate_limit", "model": NANO, "times": 2, "retry_after_ms": 20}])
    completion = client(service, max_retries=0).chat.completions.create(
        model="tierwise/nano", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content
    assert tiers_called(sandbox) == [NANO, NANO, NANO]


def test_flex_service_tier_goes_on_the_flex_lane(service: Service, sandbox: Sandbox) -> None:
    completion = client(service).chat.completions.create(
        model="tierwise/nano", messages=[{"role": "user", "content": "hi"}], service_tier="flex"
    )
    assert completion.service_tier == "flex"
    assert sandbox.requests()[0]["body"]["service_tier"] == "flex"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}, "max_tokens"),
        ({"messages": [{"role": "user", "content": "x"}], "service_tier": "priority"}, "service_tier"),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {}},
            },
            "response_format.json_schema.name",
        ),
        (
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "nope"}},
            },
            "tool_choice.function.name",
        ),
    ],
)
def test_what_chat_cannot_honour_is_a_400_naming_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        translate_chat({"model": "tierwise/nano", **body}, {})
    assert ".".join(map(str, refused.value.errors[0].loc)) == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": "x", "previous_response_id": "resp_1"}, "previous_response_id"),
        ({"input": "x", "tools": [{"type": "file_search"}]}, "tools.0.type"),
        ({"input": [{"type": "item_reference", "id": "x"}]}, "input.0.type"),
        ({"input": []}, "input"),
    ],
)
def test_what_responses_does_not_translate_is_a_400_naming_the_parameter(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        translate_responses({"model": "tierwise/nano", **body}, {})
    assert ".".join(map(str, refused.value.errors[0].loc)) == param


def test_responses_input_items_become_chat_messages() -> None:
    translated = translate_responses(
        {
            "model": "tierwise/auto",
            "instructions": "Be brief.",
            "input": [
                {
                    "role": "user",
                    "content": [{"type": "input_text", "text": "What is "}, {"type": "input_text", "text": "2+2?"}],
                },
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "function_call", "call_id": "call_a", "name": "add", "arguments": '{"a":2,"b":2}'},
                {"type": "function_call", "call_id": "call_b", "name": "log", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_a", "output": "4"},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "4"}]},
            ],
            "max_output_tokens": 50,
            "metadata": {"tierwise_step": "calc/answer", "flow": "demo"},
        },
        {},
    )
    request = translated.request
    assert request["input"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "What is "}, {"type": "text", "text": "2+2?"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "add", "arguments": '{"a":2,"b":2}'}},
                {"id": "call_b", "type": "function", "function": {"name": "log", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "4"},
        {"role": "assistant", "content": "4"},
    ]
    assert (request["tier"], request["step"], request["max_output_tokens"]) == ("auto", "calc/answer", 50)


def test_runs_on_the_surface_are_in_the_stats_and_steps(
    start_service: Callable[..., Service], make_settings: Callable[..., Any]
) -> None:
    service = start_service(make_settings())
    chat = client(service).chat.completions
    for _ in range(2):
        chat.create(
            model="tierwise/nano",
            messages=[{"role": "system", "content": "Sort tickets."}, {"role": "user", "content": "refund please"}],
            extra_headers={"X-Tierwise-Step": "triage/intent"},
        )
    stats = service.http.get("/v1/stats").json()
    rows = [row for row in stats["rows"] if row["node"] == "chat"]
    assert sum(row["runs"] for row in rows) == 2
    steps = service.http.get("/v1/steps").json()
    (step,) = [step for step in steps["steps"] if step["step"] == "triage/intent"]
    assert step["node"] == "chat" and step["runs"] == 2


def test_an_idempotency_key_replays_the_first_completion_without_a_model_call(
    service: Service, sandbox: Sandbox
) -> None:
    body = {"model": "tierwise/nano", "messages": [{"role": "user", "content": "once"}]}
    headers = {"Idempotency-Key": "compat-once-1"}
    first = service.http.post("/v1/chat/completions", json=body, headers=headers)
    again = service.http.post("/v1/chat/completions", json=body, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again.headers["idempotent-replayed"] == "true"
    assert len(sandbox.requests()) == 1
    run = service.http.get(f"/v1/runs/{first.headers['x-tierwise-run-id']}").json()
    assert run["status"] == "succeeded" and run["result"]["node"] == "chat"


def test_a_schema_structured_outputs_cannot_express_is_a_400(service: Service) -> None:
    response = service.http.post(
        "/v1/chat/completions",
        json={
            "model": "tierwise/nano",
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "s", "schema": {"type": "object", "allOf": [{"required": ["a"]}]}},
            },
        },
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "response_format.json_schema.schema" and "not supported" in error["message"]


def test_a_tool_schema_whose_reference_leads_nowhere_is_a_400() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"properties": {"a": {"$ref": "#/$defs/x"}}}}}
    with pytest.raises(InvalidRequest) as refused:
        translate_chat({"model": "tierwise/nano", "messages": [{"role": "user", "content": "x"}], "tools": [tool]}, {})
    assert refused.value.errors[0].loc == ("tools", "0", "function", "parameters")
    assert "does not resolve" in refused.value.detail
