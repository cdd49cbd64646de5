"""The simulator: profiles plugged into the sandbox, over HTTP, with its counts, log, latency and config file.

The HTTP tests share one simulator on loopback, reconfigured before each. Its client opens a connection
per request, for the reason given in ``tests/sandbox/conftest.py``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import uvicorn
from profiles import ModelBehaviour
from pydantic import ValidationError
from simulator import ProfileShaper, SimulatorConfig, create_simulator_app, load_simulator_config, main
from support import TLS
from test_profiles import CLASSIFY, FLAT, INVOICE, LABELS, NANO, marker

from nodes.loopback import LoopbackServer
from nodes.sandbox import SandboxConfig
from nodes.sandbox.wire import NON_JSON_TEXT


class Simulator:
    """The simulator app on loopback, an HTTP client on it, and its shaper, reconfigured in place by the tests."""

    def __init__(self) -> None:
        self.app = create_simulator_app()
        self.shaper: ProfileShaper = self.app.state.sandbox.shaper
        self._server = LoopbackServer(self.app)
        self.client = httpx.Client(verify=TLS)

    def __enter__(self) -> Simulator:
        url = self._server.start_in_thread()
        self.client = httpx.Client(base_url=url, timeout=10, verify=TLS)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.client.close()
        self._server.stop_thread()

    def configure(self, behaviour: dict[str, dict[str, Any]], **config: Any) -> None:
        """Replace the sandbox configuration and the profiles, and forget every request so far."""
        response = self.client.put("/_sandbox/config", json=config)
        assert response.status_code == 200, response.text
        self.shaper.profiles = {name: ModelBehaviour.model_validate(fields) for name, fields in behaviour.items()}
        assert self.client.delete("/_sandbox/requests").status_code == 204


@pytest.fixture(scope="module")
def simulator_server() -> Iterator[Simulator]:
    with Simulator() as simulator:
        yield simulator


@pytest.fixture()
def simulator(simulator_server: Simulator) -> Simulator:
    """The simulator with no profiles, the default sandbox configuration and empty logs and counts."""
    simulator_server.configure({})
    return simulator_server


def chat(client: httpx.Client, model: str, text: str, schema: dict[str, Any] = CLASSIFY) -> httpx.Response:
    body = {
        "model": model,
        "messages": [
            {"role": "system", "content": "Classify."},
            {"role": "user", "content": f"<input>\n{text}\n</input>"},
        ],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": schema, "strict": True}},
    }
    return client.post("/v1/chat/completions", json=body)


def content_of(response: httpx.Response) -> Any:
    return response.json()["choices"][0]["message"]["content"]


# -- configuration ---------------------------------------------------------------------------------


def test_profile_lookup_exact_name_then_first_glob() -> None:
    shaper = ProfileShaper(
        {
            "gpt-*": ModelBehaviour(latency_ms=1),
            "*nano*": ModelBehaviour(latency_ms=2),
            "gpt-5.4-nano": ModelBehaviour(latency_ms=3),
        }
    )
    assert shaper.profile_for("gpt-5.4-nano") is shaper.profiles["gpt-5.4-nano"]
    assert shaper.profile_for("gpt-4.1-nano") is shaper.profiles["gpt-*"]
    assert shaper.profile_for("my-nano") is shaper.profiles["*nano*"]
    assert shaper.profile_for("claude") is None


def test_load_a_config_file_with_profiles(tmp_path: Path) -> None:
    path = tmp_path / "simulator.json"
    profiles = {"*mini*": {"correct_rate_multi": 0.94}}
    path.write_text(json.dumps({"seed": 3, "log_requests": False, "behaviour": profiles}))
    config = load_simulator_config(str(path))
    assert config.behaviour == {"*mini*": ModelBehaviour(correct_rate_multi=0.94)}
    assert config.sandbox() == SandboxConfig(seed=3, log_requests=False)
    assert SimulatorConfig().behaviour == {}
    path.write_text(json.dumps({"behaviour": {"*mini*": {"invalid_json_rate": 2}}}))
    with pytest.raises(ValidationError, match=r"behaviour\.\*mini\*\.invalid_json_rate"):
        load_simulator_config(str(path))
    path.write_text(json.dumps({"behavior": {}}))
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        load_simulator_config(str(path))


# -- over HTTP -------------------------------------------------------------------------------------


def test_profiles_over_http_counts_log_and_reset(simulator: Simulator) -> None:
    behaviour = {"*nano*": NANO.model_dump(), "gpt-5.4": {"latency_ms": 1}}
    simulator.configure(behaviour, seed=11)
    client = simulator.client
    answers = []
    for i in range(40):
        response = chat(client, "gpt-5.4-nano", f"{marker({'label': LABELS[i % 5]})}\nticket {i}")
        assert response.status_code == 200
        answers.append(content_of(response))
    chat(client, "gpt-5.4", "no truth here")
    chat(client, "gpt-4.1-mini", marker({"label": "bug"}))
    counts = client.get("/_sandbox/behaviour").json()["by_model"]
    assert set(counts) == {"gpt-5.4-nano", "gpt-5.4"}
    nano = counts["gpt-5.4-nano"]
    assert nano["served"] == 40 == nano["valid"] + nano["invalid_json"] + nano["schema_violation"]
    assert nano["correct"] + nano["wrong"] == 40 and nano["no_truth"] == nano["fault"] == 0
    assert sum(content == NON_JSON_TEXT for content in answers) == nano["invalid_json"]
    assert counts["gpt-5.4"] == {
        "served": 1, "valid": 1, "invalid_json": 0, "schema_violation": 0,
        "correct": 0, "wrong": 0, "no_truth": 1, "fault": 0,
    }  # fmt: skip
    log = client.get("/_sandbox/requests").json()["requests"]
    assert set(log[0]["shaped"]) == {"validity", "answer", "multi", "confidence", "latency_ms"}
    assert "shaped" not in log[-1]
    assert client.get("/_sandbox/stats").json()["served"] == 42
    # The same configuration and requests, in another order, give the same answers.
    simulator.configure(behaviour, seed=11)
    for i in reversed(range(40)):
        response = chat(client, "gpt-5.4-nano", f"{marker({'label': LABELS[i % 5]})}\nticket {i}")
        assert content_of(response) == answers[i]
    assert client.delete("/_sandbox/requests").status_code == 204
    assert client.get("/_sandbox/behaviour").json() == {"by_model": {}}


def test_profile_latency_replaces_the_configured_latency(simulator: Simulator) -> None:
    simulator.configure({"fast-*": {"latency_ms": 20}}, latency_ms=3000)
    response = chat(simulator.client, "fast-model", "hello")
    assert response.elapsed.total_seconds() < 1.5
    assert response.headers["openai-processing-ms"] == "20"
    assert simulator.client.get("/_sandbox/requests").json()["requests"][-1]["shaped"]["latency_ms"] == 20


def test_fault_rules_still_come_first(simulator: Simulator) -> None:
    simulator.configure({"*": {}}, faults=[{"kind": "non_json", "times": 1}])
    first = chat(simulator.client, "m", marker({"label": "bug"}))
    second = chat(simulator.client, "m", marker({"label": "bug"}))
    assert content_of(first) == NON_JSON_TEXT
    assert json.loads(content_of(second))["label"] == "bug"
    assert simulator.client.get("/_sandbox/behaviour").json()["by_model"]["m"]["fault"] == 1
    log = simulator.client.get("/_sandbox/requests").json()["requests"]
    assert [(entry["fault"], entry["shaped"]["validity"]) for entry in log] == [("non_json", "fault"), (None, "valid")]


def test_nested_schemas_use_the_nested_rate(simulator: Simulator) -> None:
    simulator.configure({"*": {"schema_violation_rate": 0.0, "schema_violation_rate_nested": 1.0}})
    flat = json.loads(content_of(chat(simulator.client, "m", "x", FLAT)))
    nested = json.loads(content_of(chat(simulator.client, "m", "x", INVOICE)))
    jsonschema.validate(flat, FLAT)
    assert "unexpected_field" in nested and "vendor" not in nested


def test_the_entry_point_serves_a_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "simulator.json"
    path.write_text(json.dumps({"seed": 5, "log_requests": False, "behaviour": {"*nano*": {"correct_rate_simple": 0}}}))
    served: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    argv = ["simulator.py", "--config", str(path), "--port", "8123", "--log-level", "warning"]
    monkeypatch.setattr(sys, "argv", argv)
    main()
    state = served.pop("app").state.sandbox
    assert served == {"host": "127.0.0.1", "port": 8123, "log_level": "warning"}
    assert state.config == SandboxConfig(seed=5, log_requests=False)
    assert state.shaper.profiles == {"*nano*": ModelBehaviour(correct_rate_simple=0.0)}
    path.write_text("{not json")
    with pytest.raises(SystemExit):
        main()
    assert f"error: {path}: Expecting property name" in capsys.readouterr().err
