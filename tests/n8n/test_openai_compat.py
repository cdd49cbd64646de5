"""n8n's own AI nodes on Tierwise: a real n8n (the newest release) whose OpenAI credential's Base URL is the service.

The workflows are in ``tests/n8n/ai/`` (built by ``build_workflows.py``; what n8n sends is in its README):
Basic LLM Chain, Text Classifier, Information Extractor and an AI Agent with a Code tool and a Structured
Output Parser, each with "Use Responses API" on (``/v1/responses``) and off (``/v1/chat/completions``), run
headless with ``n8n execute``; the streaming agent through a Webhook in streaming mode under ``n8n start``.
The service's tiers are the loopback sandbox; where n8n parses the model's words (the classifier's and the
extractor's JSON in prose), the sandbox is told what the model says. Each test checks n8n's run record and
the service's run log: one run per model call, its tier, attempts and cost.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from decimal import Decimal
from typing import Any

import pytest
from n8n.ai.workflows import credential, execute, load, run_streaming
from n8n.harness import LATEST_VERSION, N8n, n8n_latest_binary
from support import CLIENT_KEY, Sandbox, Service

from nodes.settings import Settings

BINARY = n8n_latest_binary()
pytestmark = [
    pytest.mark.n8n,
    pytest.mark.skipif(
        BINARY is None,
        reason=f"n8n {LATEST_VERSION} is not installed: run .ci/install-n8n-latest.sh "
        "(or set TIERWISE_N8N_LATEST_BIN to an n8n binary)",
    ),
]
NANO, MINI = "gpt-5.4-nano", "gpt-5.4-mini"
APIS = pytest.mark.parametrize("api", ["responses", "chat"])


@pytest.fixture(scope="module")
def n8n(tmp_path_factory: pytest.TempPathFactory) -> Iterator[N8n]:
    assert BINARY is not None
    instance = N8n(BINARY, tmp_path_factory.mktemp("n8n-ai"))
    yield instance
    instance.remove()


@pytest.fixture
def service(start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], n8n: N8n) -> Service:
    """A service of the test's own, and n8n's OpenAI credential pointing at it."""
    running = start_service(make_settings())
    n8n.import_credentials([credential(f"{running.url}/v1", CLIENT_KEY)])
    return running


def workflow_name(name: str, api: str) -> str:
    return name if api == "responses" else f"{name}_chat"


def run_log(service: Service) -> list[dict[str, Any]]:
    """The service's runs in the order they were written, with their attempts."""
    with closing(sqlite3.connect(service.settings.db)) as conn:
        conn.row_factory = sqlite3.Row
        runs = [dict(row) for row in conn.execute("SELECT * FROM runs ORDER BY rowid")]
        for run in runs:
            run["request"] = json.loads(run["request"])
            run["attempts"] = [
                (row["tier"], row["outcome"])
                for row in conn.execute(
                    "SELECT tier, outcome FROM attempts WHERE run_id = ? ORDER BY seq", (run["run_id"],)
                )
            ]
    return runs


def assert_logged(runs: list[dict[str, Any]], api: str, start_tier: str) -> None:
    """Every run came through the endpoint of ``api``, as a chat run that started on ``start_tier`` and cost money."""
    assert runs
    for run in runs:
        assert run["node"] == "chat" and run["status"] == "succeeded"
        assert run["start_tier"] == start_tier
        assert Decimal(run["cost_usd"]) > 0
        assert ("input" in run["request"]) == (api == "responses")
        assert ("messages" in run["request"]) == (api == "chat")


def content(output: Any, model: str, times: int = 1) -> dict[str, Any]:
    """A sandbox rule: ``model``'s next ``times`` replies say ``output`` (as JSON)."""
    return {"kind": "content", "model": model, "times": times, "content": json.dumps(output)}


@APIS
def test_basic_llm_chain(n8n: N8n, service: Service, sandbox: Sandbox, api: str) -> None:
    run = execute(n8n, workflow_name("basic_llm_chain", api), model="tierwise/nano")
    assert run.status == "success", run.stdout[-3000:]
    (item,) = run.output("Basic LLM Chain")
    (logged,) = run_log(service)
    assert_logged([logged], api, "nano")
    assert logged["attempts"] == [("nano", "ok")]
    answer = json.loads(logged["response"])["output"]["content"]
    assert item["text"] == answer and answer


@APIS
def test_text_classifier(n8n: N8n, service: Service, sandbox: Sandbox, api: str) -> None:
    sandbox.configure(faults=[content({"billing": True, "bug": False, "how_to": False}, NANO)])
    run = execute(n8n, workflow_name("text_classifier", api), model="tierwise/nano")
    assert run.status == "success", run.stdout[-3000:]
    assert run.ran("Billing") == 1 and run.ran("Bug") == 0
    (logged,) = run_log(service)
    assert_logged([logged], api, "nano")
    assert logged["attempts"] == [("nano", "ok")]


@APIS
def test_information_extractor(n8n: N8n, service: Service, sandbox: Sandbox, api: str) -> None:
    extracted = {"name": "Ada Lovelace", "email": "ada@example.com", "city": "London", "order_count": 84}
    sandbox.configure(faults=[content(extracted, MINI, times=2)])
    run = execute(n8n, workflow_name("information_extractor", api), model="tierwise/mini")
    assert run.status == "success", run.stdout[-3000:]
    (item,) = run.output("Information Extractor")
    assert {key: item["output"].get(key) for key in extracted} == extracted
    assert_logged(run_log(service), api, "mini")


@APIS
def test_ai_agent_with_a_tool_and_a_structured_output_parser(
    n8n: N8n, service: Service, sandbox: Sandbox, api: str
) -> None:
    sandbox.configure(faults=[{"kind": "schema_drift", "model": NANO, "times": 2}])
    run = execute(n8n, workflow_name("ai_agent", api), model="tierwise/nano")
    assert run.status == "success", run.stdout[-3000:]
    assert run.ran("Calculator") >= 1
    (item,) = run.output("AI Agent")
    assert isinstance(item["output"]["answer"], int | float) and isinstance(item["output"]["explanation"], str)
    runs = run_log(service)
    assert_logged(runs, api, "nano")
    # The first call's tool arguments broke the tool's schema twice on nano: repaired, then answered by mini.
    assert runs[0]["attempts"] == [("nano", "invalid_output"), ("nano", "invalid_output"), ("mini", "ok")]
    assert runs[0]["final_tier"] == "mini"
    assert [run["request"].get("tools") is not None for run in runs] == [True] * len(runs)


@APIS
def test_streaming_ai_agent(n8n: N8n, service: Service, sandbox: Sandbox, api: str) -> None:
    name = workflow_name("ai_agent_streaming_plain", api)
    streamed = run_streaming(n8n, [name], model="tierwise/mini")[name]
    assert streamed["status"] == 200, streamed["raw"][-2000:]
    assert not [line for line in streamed["lines"] if line.get("type") == "error"], streamed["raw"][-2000:]
    runs = run_log(service)
    assert_logged(runs, api, "mini")
    assert all(run["request"].get("stream") is True for run in runs)
    final = json.loads(runs[-1]["response"])["output"]["content"]
    assert final and streamed["text"].endswith(final)
    n8n.cli("unpublish:workflow", f"--id={load(name)['id']}")


@APIS
def test_information_extractor_with_the_models_format_gets_a_valid_answer_when_nano_drifts(
    n8n: N8n, service: Service, sandbox: Sandbox, api: str
) -> None:
    """With the model's Response Format set, the schema (or JSON mode) reaches Tierwise, which enforces it."""
    extracted = {"name": "Ada Lovelace", "email": "ada@example.com"}
    if api == "responses":  # nano's JSON breaks the schema; mini's, drawn from the schema, fits it
        sandbox.configure(faults=[{"kind": "schema_drift", "model": NANO}])
    else:  # JSON mode carries no schema: nano answers prose, mini the JSON n8n's prompt asked for
        sandbox.configure(faults=[{"kind": "non_json", "model": NANO}, content(extracted, MINI)])
    run = execute(n8n, workflow_name("information_extractor_enforced", api), model="tierwise/nano")
    assert run.status == "success", run.stdout[-3000:]
    (item,) = run.output("Information Extractor")
    runs = run_log(service)
    assert_logged(runs, api, "nano")
    assert runs[0]["attempts"] == [("nano", "invalid_output"), ("nano", "invalid_output"), ("mini", "ok")]
    sent = runs[0]["request"]
    if api == "responses":
        assert sent["text"]["format"]["type"] == "json_schema"
        assert isinstance(item["output"]["name"], str) and isinstance(item["output"]["email"], str)
    else:
        assert sent["response_format"] == {"type": "json_object"}
        assert item["output"] == extracted
