"""The Make blueprints in templates/make: shape, wiring of the mini fallback and Break, and the contract.

The contract tests run each blueprint with ``make_sim.Runner`` against the running service (sandbox tiers):
every HTTP module's body is rendered from sample webhook data through the blueprint's own Transform-to-JSON
modules, sent, and must be accepted; the fields the routers filter on must come back with values the filters
know; every step's tier and cost must reach the webhook response (or the callback, for asynchronous flows).
The services are pooled: each test calls them with an API key of its own (``pooled_service``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from make_sim import (
    FALLBACK_PLACEHOLDER,
    KEY_PLACEHOLDER,
    SERVICE_PLACEHOLDER,
    Endpoints,
    Outcome,
    Runner,
    condition_holds,
    resolve,
)
from support import Service

from nodes.tools import make_lint

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates" / "make"
SPECS_FIXTURE = ROOT / "tests" / "fixtures" / "make-blueprints" / "module-specs-from-real-exports.json"

SYNC = ("support-triage", "document-extraction", "pr-review")
ASYNC = ("research-synthesis", "content-pipeline")
DESIGNS = SYNC + ASYNC

SAMPLES: dict[str, dict[str, Any]] = {
    "support-triage": {
        "ticket_id": "T-1042",
        "subject": 'Charged twice for the "Pro" plan',
        "body": "Hi,\nI was charged twice this month: a billing problem. Please refund one charge.\n\\ Alex",
        "customer": {"email": "alex.morgan@example.com", "plan": "pro"},
    },
    "document-extraction": {
        "document_id": "INV-2025-0042",
        "text": (
            'ACME Software Ltd\nInvoice INV-2025-0042, 6 Jan 2025\n"Team plan" x 12 seats: EUR 1,440.00\n'
            "Total EUR 1,440.00"
        ),
    },
    "pr-review": {
        "repository": "acme/api",
        "number": 512,
        "title": 'Retry webhooks "safely"',
        "description": "Adds exponential backoff to webhook deliveries.",
        "diff": "diff --git a/hooks.py b/hooks.py\n+    delay = min(8, 0.5 * 2 ** attempt)\n+    time.sleep(delay)\n",
    },
    "research-synthesis": {
        "request_id": "rs-0007",
        "callback_url": "https://caller.example.com/hooks/research?token=abc",
        "research": {
            "question": "Does jittered backoff reduce retry storms?",
            "sources": [
                {"title": "AWS blog", "url": "https://example.com/a", "text": 'Full jitter "spreads" retries out.'},
                {"title": "Paper", "url": "https://example.com/b", "text": "Synchronised clients retry together.\n"},
            ],
        },
    },
    "content-pipeline": {
        "request_id": "cp-0031",
        "callback_url": "https://caller.example.com/hooks/content",
        "brief": {
            "topic": "Launch of usage-based billing",
            "audience": "finance leads at small SaaS companies",
            "channel": "newsletter",
            "key_points": ['Pay per "active seat"', "No annual commitment", "Starts 1 March"],
        },
    },
}

#: The first node each design calls, and the upstream calls that call makes with max_retries=0 before a 502.
FIRST_CALL = {
    "support-triage": ("classify", 3),
    "document-extraction": ("extract", 3),
    "pr-review": ("draft", 2),
    "research-synthesis": ("draft", 2),
    "content-pipeline": ("draft", 2),
}

NANO_MODEL, MINI_MODEL, FULL_MODEL = "gpt-5.4-nano", "gpt-5.4-mini", "gpt-5.4"

#: The service fields each design's main router filters on.
ROUTER_READS = {
    "support-triage": {"{{3.data.output.label}}"},
    "document-extraction": {"{{3.data.tier}}"},
    "pr-review": {"{{5.data.output.verdict}}"},
    "research-synthesis": {"{{7.data.output.verdict}}"},
    "content-pipeline": {"{{7.data.output.verdict}}"},
}

#: Where each synchronous design's answer names its route, and the step field its router filtered on.
ROUTED_ON = {
    "support-triage": ("ticket_route", "classify", ("output", "label")),
    "document-extraction": ("document_route", "extract", ("tier",)),
    "pr-review": ("review_route", "judge", ("output", "verdict")),
}


def load(name: str) -> dict[str, Any]:
    return json.loads((TEMPLATES / f"{name}.json").read_text(encoding="utf-8"))


def walk(flow: list[dict[str, Any]], in_error: bool = False) -> Iterator[tuple[dict[str, Any], bool]]:
    for module in flow:
        yield module, in_error
        for route in module.get("routes", []):
            yield from walk(route["flow"], in_error)
        yield from walk(module.get("onerror", []), True)


def modules(blueprint: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [module for module, _ in walk(blueprint["flow"])]


def by_id(blueprint: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    return {module["id"]: module for module in modules(blueprint)}


def service_calls(blueprint: Mapping[str, Any]) -> list[dict[str, Any]]:
    """HTTP modules on the main path (not in error routes) that call the service."""
    return [
        module
        for module, in_error in walk(blueprint["flow"])
        if module["module"] == "http:ActionSendData"
        and not in_error
        and module["mapper"]["url"].startswith(SERVICE_PLACEHOLDER)
    ]


def main_routers(blueprint: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Routers on the main path (the ones that route on the service's answers)."""
    return [m for m, in_error in walk(blueprint["flow"]) if m["module"] == "builtin:BasicRouter" and not in_error]


def node_of(module: Mapping[str, Any]) -> str:
    return module["mapper"]["url"].removeprefix(SERVICE_PLACEHOLDER + "/v1/nodes/")


def template_json(text: str) -> Any:
    """Parse a JSON body, each {{…}} mapping (unquoted) read as the string "<…>"."""
    return json.loads(re.sub(r"\{\{(.*?)\}\}", lambda match: json.dumps(f"<{match.group(1)}>"), text))


def run_ids(value: Any) -> set[str]:
    """The run_id of every step response embedded in an answer, each checked for its tier and cost."""
    found: set[str] = set()
    if isinstance(value, dict):
        if isinstance(value.get("run_id"), str) and "output" in value:
            assert value["tier"] in ("nano", "mini", "full"), value
            assert isinstance(value["usage"]["cost_usd"], int | float), value
            found.add(value["run_id"])
        for item in value.values():
            found |= run_ids(item)
    elif isinstance(value, list):
        for item in value:
            found |= run_ids(item)
    return found


@pytest.fixture
def fallback() -> dict[str, Any]:
    return load("mini-fallback")


@pytest.fixture
def service(pooled_service: Callable[..., Service]) -> Service:
    """The service with default limits."""
    return pooled_service()


def endpoints_for(service: Any, fallback: Mapping[str, Any]) -> Endpoints:
    return Endpoints(service.anonymous, service.key, fallback)


def answered_steps(outcome: Outcome, endpoints: Endpoints) -> set[str]:
    """run_ids of the service answers this run (and the fallback runs it triggered) got."""
    exchanges = list(outcome.exchanges) + [pair for run in endpoints.fallback_runs for pair in run.exchanges]
    ids: set[str] = set()
    for request, reply in exchanges:
        if request.url.startswith(SERVICE_PLACEHOLDER) and reply.status == 200:
            body = json.loads(reply.body)
            for item in body.get("results", [body]):
                if "run_id" in item and "output" in item:
                    ids.add(item["run_id"])
    return ids


# -- the set of files and their exported shape ------------------------------------------------------------


def test_one_blueprint_per_design_plus_the_mini_fallback() -> None:
    assert sorted(path.stem for path in TEMPLATES.glob("*.json")) == sorted([*DESIGNS, "mini-fallback"])


@pytest.mark.parametrize("name", [*DESIGNS, "mini-fallback"])
def test_template_is_lint_clean_and_publishable(name: str) -> None:
    assert make_lint.lint_file(TEMPLATES / f"{name}.json", publishable=True) == []


@pytest.mark.parametrize("name", [*DESIGNS, "mini-fallback"])
def test_template_has_the_shape_of_a_make_export(name: str) -> None:
    blueprint = load(name)
    specs = json.loads(SPECS_FIXTURE.read_text(encoding="utf-8"))
    assert set(blueprint) == {"name", "flow", "metadata"}
    metadata = blueprint["metadata"]
    assert metadata["instant"] is True and metadata["version"] == 1
    assert set(metadata["scenario"]) == {
        "roundtrips", "maxErrors", "autoCommit", "autoCommitTriggerLast", "sequential", "slots",
        "confidential", "dataloss", "dlq", "freshVariables",
    }  # fmt: skip
    assert metadata["designer"] == {"orphans": []}
    trigger = blueprint["flow"][0]
    assert trigger["module"] == "gateway:CustomWebHook" and trigger["parameters"] == {"maxResults": 1}
    assert trigger["metadata"]["restore"] == {} and trigger["metadata"]["interface"]
    for module in modules(blueprint):
        designer = module["metadata"]["designer"]
        assert set(designer) == {"x", "y", "name"} and designer["name"], module["id"]
        key = f"{module['module']}@{module['version']}"
        if key in specs and module["module"] != "builtin:Break":
            exported = module["metadata"]
            assert "restore" in exported, module["id"]
            for section in ("parameters", "expect"):
                if specs[key][section]:
                    assert exported[section] == specs[key][section], (module["id"], section)
        if module["module"] == "builtin:Break":
            assert module["metadata"]["expect"] == specs["builtin:Break@1"]["expect"]
    notes = {module_id for note in metadata["notes"] for module_id in note["moduleIds"]}
    assert notes <= set(by_id(blueprint))


@pytest.mark.parametrize("name", [*DESIGNS, "mini-fallback"])
def test_no_account_specific_ids_only_placeholders(name: str) -> None:
    blueprint = load(name)
    assert "zone" not in blueprint["metadata"]
    for module in modules(blueprint):
        for section in ("parameters", "mapper"):
            assert not set(module.get(section) or {}) & make_lint.ACCOUNT_KEYS, module["id"]
        restored = module["metadata"].get("restore", {}).get("parameters", {})
        assert not set(restored) & make_lint.ACCOUNT_KEYS, module["id"]
        if module["module"] != "http:ActionSendData":
            continue
        url = module["mapper"]["url"]
        assert url.startswith((SERVICE_PLACEHOLDER + "/v1/nodes/", "{{1.callback_url}}")) or url == FALLBACK_PLACEHOLDER
        keys = [h["value"] for h in module["mapper"]["headers"] if h["name"] == "X-Api-Key"]
        assert keys == ([KEY_PLACEHOLDER] if url.startswith(SERVICE_PLACEHOLDER) else [])


# -- what the designs do ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DESIGNS)
def test_webhook_then_serialised_payload_then_service_then_router_then_response(name: str) -> None:
    blueprint = load(name)
    ids = by_id(blueprint)
    calls = service_calls(blueprint)
    assert calls
    for call in calls:
        body = call["mapper"]["data"]
        mapped = re.findall(r"\{\{(.*?)\}\}", body)
        assert mapped, "the request carries the webhook's data"
        for expression in mapped:
            match = re.fullmatch(r"(\d+)\.json", expression)
            assert match, f"module {call['id']} maps {{{{{expression}}}}} directly; only Transform-to-JSON output"
            assert ids[int(match.group(1))]["module"] == "json:TransformToJSON"
        parsed = template_json(body)  # a mapping inside a JSON string would not parse here
        assert parsed["metadata"] == {"template": name, "step": parsed["metadata"]["step"]}
        assert call["parameters"] == {"handleErrors": True, "useNewZLibDeCompress": True}
    filtered = [route["flow"][0]["filter"] for router in main_routers(blueprint) for route in router["routes"]]
    read = {condition["a"] for f in filtered for group in f["conditions"] for condition in group}
    assert read == ROUTER_READS[name]
    assert any(m["module"] == "gateway:WebhookRespond" for m in modules(blueprint))


@pytest.mark.parametrize("name", DESIGNS)
def test_every_service_call_has_the_mini_fallback_route(name: str) -> None:
    blueprint = load(name)
    for call in service_calls(blueprint):
        onerror = call["onerror"]
        if name in SYNC:
            forward, resume = onerror
            assert [m["module"] for m in onerror] == ["http:ActionSendData", "builtin:Resume"]
        else:
            (router,) = onerror
            assert router["module"] == "builtin:BasicRouter"
            (brk,), (forward, resume) = (route["flow"] for route in router["routes"])
            assert brk["module"] == "builtin:Break"
            assert brk["mapper"] == {"retry": True, "count": "5", "interval": "2"}
            message = f"{{{{{call['id']}.error.message}}}}"
            assert brk["filter"]["conditions"] == [[{"a": message, "o": "text:contain", "b": "429"}]]
            assert forward["filter"]["conditions"] == [[{"a": message, "o": "text:notcontain", "b": "429"}]]
        assert forward["mapper"]["url"] == FALLBACK_PLACEHOLDER
        assert forward["parameters"]["handleErrors"] is True
        envelope = template_json(forward["mapper"]["data"])
        assert envelope == {"node": node_of(call), "request": template_json(call["mapper"]["data"])}
        assert resume["mapper"] == {
            "data": f"{{{{{forward['id']}.data}}}}",
            "headers": f"{{{{{forward['id']}.headers}}}}",
            "statusCode": f"{{{{{forward['id']}.statusCode}}}}",
        }


@pytest.mark.parametrize("name", DESIGNS)
def test_break_only_on_asynchronous_flows_with_incomplete_executions_on(name: str) -> None:
    blueprint = load(name)
    breaks = [m for m in modules(blueprint) if m["module"] == "builtin:Break"]
    assert blueprint["metadata"]["scenario"]["dlq"] is (name in ASYNC)
    assert bool(breaks) is (name in ASYNC)
    if name in ASYNC:
        flow = blueprint["flow"]
        assert flow[1]["module"] == "gateway:WebhookRespond" and flow[1]["mapper"]["status"] == "202"
        for call in service_calls(blueprint):
            keys = [h["value"] for h in call["mapper"]["headers"] if h["name"] == "Idempotency-Key"]
            assert keys == [f"{{{{1.request_id}}}}:{template_json(call['mapper']['data'])['metadata']['step']}"]


def test_mini_fallback_calls_the_same_node_capped_at_mini() -> None:
    blueprint = load("mini-fallback")
    ids = by_id(blueprint)
    call = ids[4]
    assert call["mapper"]["url"] == SERVICE_PLACEHOLDER + "/v1/nodes/{{1.node}}/batch"
    assert call["parameters"]["handleErrors"] is False and call["mapper"]["parseResponse"] is True
    assert template_json(call["mapper"]["data"]) == {
        "items": [{"tier": "mini", "max_tier": "mini"}],
        "defaults": "<3.json>",
    }
    assert ids[3]["mapper"] == {"object": "{{1.request}}"}


def test_mini_fallback_routes_are_exclusive_and_complete() -> None:
    router = by_id(load("mini-fallback"))[5]
    filters = [route["flow"][0]["filter"] for route in router["routes"]]
    for status in (200, 202, 400, 422, 429, 502, 504):
        for succeeded in (0, 1):
            for output in ({"label": "x"}, None):
                for tier in ("mini", "nano"):
                    item = {"tier": tier} | ({"output": output} if output else {})
                    bundle = {
                        4: {"statusCode": status, "data": {"summary": {"succeeded": succeeded}, "results": [item]}}
                    }
                    passing = [
                        index
                        for index, f in enumerate(filters)
                        if any(all(condition_holds(c, bundle) for c in group) for group in f["conditions"])
                    ]
                    expected = (
                        1
                        if status == 429
                        else 0
                        if (status, succeeded, bool(output), tier) == (200, 1, True, "mini")
                        else 2
                    )
                    assert passing == [expected], (status, succeeded, output, tier)


# -- the contract, against the running service ------------------------------------------------------------


@pytest.mark.parametrize("name", DESIGNS)
def test_every_http_module_is_accepted_and_answers_what_the_routers_read(
    name: str, service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    blueprint = load(name)
    endpoints = endpoints_for(service, fallback)
    outcome = Runner(blueprint, endpoints, all_routes=True).run(SAMPLES[name])
    assert outcome.error is None
    calls = service_calls(blueprint)
    for call in calls:
        ((request, reply),) = outcome.sent_by(call["id"])
        assert json.loads(request.body)["metadata"]["template"] == name, "the body is valid JSON"
        assert reply.status == 200, reply.body
        answer = json.loads(reply.body)
        assert answer["node"] == node_of(call)
        assert answer["tier"] in ("nano", "mini", "full") and answer["usage"]["cost_usd"] > 0
    assert len(outcome.exchanges) == len(calls) + (2 if name in ASYNC else 0)
    for router in main_routers(blueprint):
        filters = [route["flow"][0]["filter"] for route in router["routes"]]
        for f in filters:
            for condition in (c for group in f["conditions"] for c in group):
                value = resolve(condition["a"], outcome.outputs)
                assert isinstance(value, str) and value, (router["id"], condition, value)
        passing = [
            index
            for index, f in enumerate(filters)
            if any(all(condition_holds(c, outcome.outputs) for c in group) for group in f["conditions"])
        ]
        assert len(passing) == 1, (router["id"], passing)
    # every forwarder would carry the very request its service call sent
    for call in calls:
        forwarders = [m for m, _ in walk(call["onerror"]) if m["module"] == "http:ActionSendData"]
        ((request, _),) = outcome.sent_by(call["id"])
        for forward in forwarders:
            envelope = json.loads(resolve(forward["mapper"]["data"], outcome.outputs))
            assert envelope == {"node": node_of(call), "request": json.loads(request.body)}


@pytest.mark.parametrize("name", SYNC)
def test_synchronous_design_answers_with_every_steps_tier_and_cost(
    name: str, service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    endpoints = endpoints_for(service, fallback)
    outcome = Runner(load(name), endpoints).run(SAMPLES[name])
    assert outcome.error is None and outcome.breaks == []
    (answer,) = outcome.answers
    assert answer.status == 200 and answer.headers == {"Content-Type": "application/json"}
    steps = answered_steps(outcome, endpoints)
    assert steps and run_ids(answer.body) == steps


def reply_with(model: str, content: dict[str, Any]) -> dict[str, Any]:
    """A sandbox fault that makes the first call to ``model`` answer ``content``."""
    return {"kind": "content", "model": model, "times": 1, "content": json.dumps(content)}


def verdict(value: str) -> dict[str, Any]:
    return {"verdict": value, "score": 0.5, "reasons": ["checked"], "best_index": None}


@pytest.mark.parametrize(
    ("name", "faults", "route", "value"),
    [
        ("support-triage", [], "reply_drafted", "billing"),
        ("support-triage", [reply_with(NANO_MODEL, {"label": "other", "confidence": 0.9})], "product_queue", "other"),
        ("support-triage", [reply_with(NANO_MODEL, {"label": "spam", "confidence": 0.9})], "closed_as_spam", "spam"),
        ("document-extraction", [], "auto_accepted", "nano"),
        (
            "document-extraction",
            [{"kind": "non_json", "model": NANO_MODEL}, {"kind": "non_json", "model": MINI_MODEL}],
            "needs_review",
            "full",
        ),
        ("pr-review", [reply_with(FULL_MODEL, verdict("pass"))], "post_review", "pass"),
        ("pr-review", [reply_with(FULL_MODEL, verdict("fail"))], "needs_human", "fail"),
    ],
)
def test_synchronous_routes_follow_the_service_fields(
    name: str,
    faults: list[dict[str, Any]],
    route: str,
    value: str,
    service: Any,
    sandbox: Any,
    fallback: dict[str, Any],
) -> None:
    sandbox.configure(faults=faults)
    endpoints = endpoints_for(service, fallback)
    outcome = Runner(load(name), endpoints).run(SAMPLES[name])
    (answer,) = outcome.answers
    key, step, path = ROUTED_ON[name]
    assert answer.body[key] == route
    read = answer.body[step]
    for part in path:
        read = read[part]
    assert read == value
    assert run_ids(answer.body) == answered_steps(outcome, endpoints)


@pytest.mark.parametrize(("name", "judged", "status"), [
    ("research-synthesis", "pass", "ready"),
    ("research-synthesis", "fail", "needs_review"),
    ("content-pipeline", "pass", "ready_to_publish"),
    ("content-pipeline", "fail", "revised"),
])  # fmt: skip
def test_asynchronous_design_answers_202_then_calls_back_with_every_step(
    name: str, judged: str, status: str, service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    sandbox.configure(faults=[reply_with(FULL_MODEL, verdict(judged))])
    endpoints = endpoints_for(service, fallback)
    outcome = Runner(load(name), endpoints).run(SAMPLES[name])
    assert outcome.error is None and outcome.breaks == []
    (answer,) = outcome.answers
    assert (answer.status, answer.body) == (202, {"status": "accepted"})
    (callback,) = endpoints.callbacks
    assert callback.url == SAMPLES[name]["callback_url"] and callback.method == "POST"
    delivered = json.loads(callback.body)
    assert delivered["request_id"] == SAMPLES[name]["request_id"] and delivered["status"] == status
    assert delivered["judge"]["output"]["verdict"] == judged
    steps = answered_steps(outcome, endpoints)
    assert len(steps) == (3 if status == "revised" else 2)
    assert run_ids(delivered) == steps
    if status == "revised":
        revision = delivered["revision"]
        assert revision["node"] == "draft" and revision["routing"]["reason"] == "node default (mini)"
        assert revision["metadata"] == {"template": "content-pipeline", "step": "revise"}


# -- failures: the mini fallback and Break ----------------------------------------------------------------


@pytest.fixture
def no_retry_service(pooled_service: Callable[..., Service]) -> Service:
    """A service that gives up on a tier at its first failure, so a fault count fails exactly one call."""
    return pooled_service(max_retries=0)


@pytest.mark.parametrize("name", DESIGNS)
def test_failed_first_call_is_answered_by_the_mini_fallback_and_the_run_goes_on(
    name: str, no_retry_service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    node, upstream_calls = FIRST_CALL[name]
    sandbox.configure(faults=[{"kind": "server_error", "status": 503, "times": upstream_calls}])
    endpoints = endpoints_for(no_retry_service, fallback)
    blueprint = load(name)
    first = service_calls(blueprint)[0]
    outcome = Runner(blueprint, endpoints).run(SAMPLES[name])
    assert outcome.error is None and outcome.breaks == []
    ((_, failed),) = outcome.sent_by(first["id"])
    assert failed.status == 502 and json.loads(failed.body)["type"] == "/problems/run-failed"
    (fallback_run,) = endpoints.fallback_runs
    (mini_answer,) = fallback_run.answers
    assert mini_answer.status == 200 and mini_answer.headers["X-Tierwise-Fallback"] == "mini"
    assert mini_answer.body["node"] == node and mini_answer.body["tier"] == "mini"
    routing = mini_answer.body["routing"]
    assert (routing["start_tier"], routing["reason"]) == ("mini", "requested tier mini")
    assert routing["step"].startswith(f"{node}/")
    delivered = json.loads(endpoints.callbacks[0].body) if name in ASYNC else outcome.answers[0].body
    assert mini_answer.body["run_id"] in run_ids(delivered)
    assert run_ids(delivered) == answered_steps(outcome, endpoints)


@pytest.mark.parametrize("name", ASYNC)
def test_rate_limited_asynchronous_call_goes_to_break(
    name: str, pooled_service: Callable[..., Service], sandbox: Any, fallback: dict[str, Any]
) -> None:
    limited = pooled_service(key_rpm=1)
    assert limited.http.post("/v1/nodes/classify", json={"input": "warm-up", "labels": ["a", "b"]}).status_code == 200
    endpoints = endpoints_for(limited, fallback)
    blueprint = load(name)
    first = service_calls(blueprint)[0]
    outcome = Runner(blueprint, endpoints).run(SAMPLES[name])
    ((request, reply),) = outcome.exchanges
    assert (
        request.module_id == first["id"]
        and request.headers["Idempotency-Key"] == f"{SAMPLES[name]['request_id']}:draft"
    )
    assert reply.status == 429 and int(reply.headers["retry-after"]) > 0
    assert outcome.breaks == [first["onerror"][0]["routes"][0]["flow"][0]["id"]]
    assert endpoints.fallback_runs == [] and endpoints.callbacks == []
    assert [answer.status for answer in outcome.answers] == [202]


def run_fallback(service: Any, payload: dict[str, Any], fallback: dict[str, Any]) -> Outcome:
    return Runner(fallback, endpoints_for(service, fallback)).run(payload)


def test_mini_fallback_overrides_the_forwarded_tiers(service: Any, sandbox: Any, fallback: dict[str, Any]) -> None:
    request = {"input": 'a "billing" question\n', "labels": ["billing", "bug"], "tier": "full", "max_tier": "full"}
    outcome = run_fallback(service, {"node": "classify", "request": request}, fallback)
    (answer,) = outcome.answers
    assert answer.status == 200 and answer.body["output"]["label"] in ("billing", "bug")
    assert answer.body["tier"] == "mini" and answer.body["routing"]["start_tier"] == "mini"
    assert [entry["model"] for entry in sandbox.requests()] == ["gpt-5.4-mini"]


def test_mini_fallback_refuses_an_unknown_node(service: Any, sandbox: Any, fallback: dict[str, Any]) -> None:
    outcome = run_fallback(service, {"node": "../keys", "request": {"input": "x"}}, fallback)
    (answer,) = outcome.answers
    assert answer.status == 400 and answer.body["type"] == "/problems/unknown-node"
    assert outcome.exchanges == []


def test_mini_fallback_answers_502_when_mini_fails_too(
    no_retry_service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    sandbox.configure(faults=[{"kind": "server_error", "status": 500}])
    outcome = run_fallback(
        no_retry_service, {"node": "judge", "request": {"candidate": "x", "criteria": ["y"]}}, fallback
    )
    (answer,) = outcome.answers
    assert answer.status == 502 and answer.body["type"] == "/problems/mini-fallback-failed"
    item = answer.body["answer"]["results"][0]
    assert item["status"] == 502 and item["type"] == "/problems/run-failed"
    assert [attempt["tier"] for attempt in item["attempts"]] == ["mini"]


def test_mini_fallback_passes_a_429_on_with_retry_after(
    pooled_service: Callable[..., Service], sandbox: Any, fallback: dict[str, Any]
) -> None:
    limited = pooled_service(key_rpm=1)
    assert limited.http.post("/v1/nodes/classify", json={"input": "warm-up", "labels": ["a"]}).status_code == 200
    outcome = run_fallback(limited, {"node": "classify", "request": {"input": "x", "labels": ["a"]}}, fallback)
    (answer,) = outcome.answers
    assert answer.status == 429 and answer.body["type"] == "/problems/rate-limited"
    assert int(answer.headers["Retry-After"]) > 0


def test_mini_fallback_answer_does_not_break_on_quotes_in_the_request(
    service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    request = copy.deepcopy({"input": SAMPLES["support-triage"], "labels": ["billing", "bug"], "metadata": {"q": '"'}})
    outcome = run_fallback(service, {"node": "classify", "request": request}, fallback)
    ((sent, _),) = outcome.exchanges
    assert json.loads(sent.body)["defaults"] == request
