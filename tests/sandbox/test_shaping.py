"""The reply-shaper seam: what a shaper is offered, what it decides, and what the sandbox keeps doing around it."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from nodes.sandbox import ChatRequest, Delivery, ReplyShaper, SandboxConfig, ShapedReply, create_sandbox_app
from nodes.sandbox.wire import NON_JSON_TEXT

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["a", "b"]}, "n": {"type": "integer"}},
    "required": ["label", "n"],
    "additionalProperties": False,
}
JSON_SCHEMA = {"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA, "strict": True}}


@dataclass
class Recorder:
    """Shapes the replies of models starting with ``shaped``: their content names the model; records every call."""

    latency_s: float | None = None
    offered: list[tuple[str, Any]] = field(default_factory=list)
    delivered: list[tuple[str, str, str | None, int]] = field(default_factory=list)
    cleared: int = 0

    def shape(self, request: ChatRequest, answer: Any) -> ShapedReply | None:
        self.offered.append((request.model, answer))
        return ShapedReply(f"shaped by {request.model}") if request.model.startswith("shaped") else None

    def deliver(self, request: ChatRequest, reply: ShapedReply, fault: str | None, completion_tokens: int) -> Delivery:
        self.delivered.append((request.model, reply.content, fault, completion_tokens))
        return Delivery(latency_s=self.latency_s, log={"note": len(self.delivered)})

    def clear(self) -> None:
        self.cleared += 1


class Shaped:
    """An in-process sandbox app with a ``Recorder`` plugged in, called through httpx's ASGI transport."""

    def __init__(self, shaper: ReplyShaper, **config: Any) -> None:
        self.app = create_sandbox_app(SandboxConfig(**config), shaper=shaper, clock=lambda: 1000.0)
        self.loop = asyncio.new_event_loop()
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url="http://sandbox")

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.request(method, url, **kwargs))

    def chat(self, model: str, **extra: Any) -> httpx.Response:
        payload = {"model": model, "messages": [{"role": "user", "content": "Label this."}], **extra}
        return self.request("POST", "/v1/chat/completions", json=payload)

    def log(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/_sandbox/requests").json()["requests"])

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make(recorder: Recorder) -> Iterator[Any]:
    made: list[Shaped] = []

    def build(**config: Any) -> Shaped:
        made.append(Shaped(recorder, **config))
        return made[-1]

    yield build
    for sandbox in made:
        sandbox.close()


def content_of(response: httpx.Response) -> Any:
    return response.json()["choices"][0]["message"]["content"]


def test_a_shaper_decides_its_models_replies_and_is_offered_the_sandboxs_own(make: Any, recorder: Recorder) -> None:
    sandbox = make(seed=3)
    plain = sandbox.chat("plain", response_format=JSON_SCHEMA)
    text = sandbox.chat("plain")
    shaped = sandbox.chat("shaped-1", response_format=JSON_SCHEMA)
    # The offered answer is what the sandbox sends when the shaper declines: an instance for JSON, text as is.
    assert [model for model, _ in recorder.offered] == ["plain", "plain", "shaped-1"]
    assert json.loads(content_of(plain)) == recorder.offered[0][1] and recorder.offered[0][1]["label"] in ("a", "b")
    assert content_of(text) == recorder.offered[1][1]
    assert content_of(shaped) == "shaped by shaped-1"
    assert shaped.json()["usage"]["completion_tokens"] == math.ceil(len("shaped by shaped-1") / 4)
    assert recorder.delivered == [("shaped-1", "shaped by shaped-1", None, 5)]
    assert [entry.get("shaped") for entry in sandbox.log()] == [None, None, {"note": 1}]
    assert sandbox.request("GET", "/_sandbox/stats").json()["served"] == 3


def test_the_shapers_latency_replaces_the_configured_one(make: Any, recorder: Recorder) -> None:
    recorder.latency_s = 0.012
    sandbox = make(latency_ms=2000)
    response = sandbox.chat("shaped")
    assert response.headers["openai-processing-ms"] == "12"
    recorder.latency_s = None
    slow = make(latency_ms=30)
    assert slow.chat("shaped").headers["openai-processing-ms"] == "30"


def test_faults_apply_on_top_and_the_shaper_hears_which(make: Any, recorder: Recorder) -> None:
    sandbox = make(
        faults=[
            {"kind": "server_error", "times": 1},
            {"kind": "non_json", "times": 1},
            {"kind": "slow", "delay_ms": 5, "times": 1},
        ]
    )
    assert sandbox.chat("shaped").status_code == 500
    assert recorder.offered == []  # an error fault answers before anything is drafted
    assert content_of(sandbox.chat("shaped")) == NON_JSON_TEXT
    assert content_of(sandbox.chat("shaped")) == "shaped by shaped"
    assert recorder.delivered == [
        ("shaped", "shaped by shaped", "non_json", math.ceil(len(NON_JSON_TEXT) / 4)),
        ("shaped", "shaped by shaped", "slow", 4),
    ]


def test_a_reply_the_bucket_refuses_is_not_delivered(make: Any, recorder: Recorder) -> None:
    sandbox = make(rate_limit_rpm=1)
    assert sandbox.chat("shaped").status_code == 200
    assert sandbox.chat("shaped").status_code == 429
    assert len(recorder.offered) == 2 and len(recorder.delivered) == 1
    assert [entry.get("shaped") for entry in sandbox.log()] == [{"note": 1}, None]


def test_reset_clears_the_shaper_and_a_new_config_keeps_it(make: Any, recorder: Recorder) -> None:
    sandbox = make()
    assert sandbox.request("DELETE", "/_sandbox/requests").status_code == 204
    assert recorder.cleared == 1
    assert sandbox.request("PUT", "/_sandbox/config", json={"seed": 9}).status_code == 200
    assert content_of(sandbox.chat("shaped")) == "shaped by shaped"
    assert sandbox.request("PUT", "/_sandbox/config", json={"behaviour": {}}).status_code == 422


def request(**fields: Any) -> ChatRequest:
    defaults: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "kind": "text"}
    return ChatRequest(**{**defaults, "schema": None, "max_tokens": None, **fields})


def test_draws_are_fixed_by_seed_and_request_and_independent_by_aspect() -> None:
    first = request(seed=1)
    assert first.draw("latency").random() == request(seed=1).draw("latency").random()
    values = {
        first.draw("latency").random(),
        first.draw("correct").random(),
        request(seed=2).draw("latency").random(),
        request(seed=1, model="other").draw("latency").random(),
        request(seed=1, kind="json_object").draw("latency").random(),
    }
    assert len(values) == 5


def test_the_answer_schema() -> None:
    assert request(kind="json_schema", schema=SCHEMA).answer_schema == SCHEMA
    block = [{"role": "user", "content": f"<json_schema>{json.dumps(SCHEMA)}</json_schema>"}]
    assert request(kind="json_object", messages=block).answer_schema == SCHEMA
    assert request(kind="json_object").answer_schema == {"const": {}}
