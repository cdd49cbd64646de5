"""The Make blueprints in templates/make: HTTP v4 shape, wiring of the mini fallback, error routes and Break.

The contract tests run each blueprint with ``make_sim`` against the running service (sandbox tiers), the
Tierwise key attached as Make's API-key keychain (``Authorization: Bearer <key>``): every HTTP module's body
is rendered from sample webhook data through the blueprint's own Transform-to-JSON modules, sent, and must be
accepted; the fields the routers filter on must come back with values the filters know; every step's tier and
cost must reach the webhook response (or the callback, for asynchronous flows). The failure tests make the
service fail (502, 429) or hang (the module's ``timeout`` runs out, on the runner's simulated clock) and check
that an error route answers the caller every time. The services are pooled: each test calls them with an API
key of its own (``pooled_service``).
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
    NO_REPLY,
    SERVICE_PLACEHOLDER,
    ApiKey,
    Endpoints,
    Outcome,
    Request,
    condition_holds,
    resolve,
)
from support import Service

from nodes.tools import make_lint
from nodes.tools.make_specs import HTTP_V4, LEGACY_SPECS

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "templates" / "make"
V4_EXPORT = (
    ROOT
    / "tests"
    / "fixtures"
    / "make-blueprints-v4"
    / "newsapi-apikey-keychain-get-plus-noauth-jsonstring-post.blueprint.json"
)

SYNC = ("support-triage", "document-extraction", "pr-review")
ASYNC = ("research-synthesis", "content-pipeline")
DESIGNS = SYNC + ASYNC

#: Seconds each kind of HTTP module waits: above TIERWISE_RUN_TIMEOUT_S (120), so the service's own 504 comes
#: first; the mini fallback's own call gives up 20 s before the modules that wait for the mini fallback.
SERVICE_TIMEOUT, FALLBACK_CALL_TIMEOUT, FORWARD_TIMEOUT, CALLBACK_TIMEOUT = 150, 130, 150, 150

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


#: The step each service call's body names (``metadata.step``), by design and module id.
STEPS = {
    "support-triage": {3: "classify", 6: "draft"},
    "document-extraction": {3: "extract", 5: "enrich"},
    "pr-review": {3: "draft", 5: "judge"},
    "research-synthesis": {5: "draft", 7: "judge"},
    "content-pipeline": {5: "draft", 7: "judge", 14: "revise"},
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


def http_modules(blueprint: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [module for module in modules(blueprint) if module["module"].startswith("http:")]


def service_calls(blueprint: Mapping[str, Any]) -> list[dict[str, Any]]:
    """HTTP modules on the main path (not in error routes) that call the service."""
    return [
        module
        for module, in_error in walk(blueprint["flow"])
        if module["module"] == "http:MakeRequest"
        and not in_error
        and module["mapper"]["url"].startswith(SERVICE_PLACEHOLDER)
    ]


def forwarders(module: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The modules in a module's error route that ask the mini-fallback scenario."""
    return [m for m, _ in walk(module.get("onerror", [])) if (m.get("mapper") or {}).get("url") == FALLBACK_PLACEHOLDER]


def error_path(blueprint: Mapping[str, Any], target: int) -> list[int]:
    """``target`` and the modules whose error routes must be taken to reach it, outermost first."""

    def search(flow: list[dict[str, Any]], failing: list[int]) -> list[int] | None:
        for module in flow:
            if module["id"] == target:
                return [*failing, target]
            for route in module.get("routes", []):
                found = search(route["flow"], failing)
                if found:
                    return found
            found = search(module.get("onerror", []), [*failing, module["id"]])
            if found:
                return found
        return None

    path = search(blueprint["flow"], [])
    assert path is not None
    return path


def main_routers(blueprint: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Routers on the main path (the ones that route on the service's answers)."""
    return [m for m, in_error in walk(blueprint["flow"]) if m["module"] == "builtin:BasicRouter" and not in_error]


def node_of(module: Mapping[str, Any]) -> str:
    return module["mapper"]["url"].removeprefix(SERVICE_PLACEHOLDER + "/v1/nodes/")


def body_of(module: Mapping[str, Any]) -> str:
    body: str = module["mapper"]["jsonStringBodyContent"]
    return body


def template_json(text: str) -> Any:
    """Parse a JSON body, each {{…}} mapping (unquoted) read as the string "<…>"."""
    return json.loads(re.sub(r"\{\{(.*?)\}\}", lambda match: json.dumps(f"<{match.group(1)}>"), text))


def canonical(value: Any) -> str:
    """JSON with sorted keys: Make's UI and API exports order keys differently, nothing else."""
    return json.dumps(value, sort_keys=True)


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


def endpoints_for(
    service: Any, fallback: Mapping[str, Any], hangs: Callable[[Request], bool] | None = None
) -> Endpoints:
    """The service, the mini fallback and the callbacks, with the service's key in the API-key keychain."""
    return Endpoints(service.anonymous, ApiKey(f"Bearer {service.key}"), fallback, hangs=hangs)


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
    assert (TEMPLATES / f"{name}.json").read_text(encoding="utf-8") == json.dumps(load(name), indent=4) + "\n"


@pytest.mark.parametrize("name", [*DESIGNS, "mini-fallback"])
def test_template_has_the_shape_of_a_make_export(name: str) -> None:
    blueprint = load(name)
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
    places = []
    for module in modules(blueprint):
        designer = module["metadata"]["designer"]
        assert set(designer) == {"x", "y", "name"} and designer["name"], module["id"]
        places.append((designer["x"], designer["y"]))
        key = f"{module['module']}@{module['version']}"
        if key in LEGACY_SPECS and module["module"] != "builtin:Break":
            exported = module["metadata"]
            assert "restore" in exported, module["id"]
            for section in ("parameters", "expect"):
                if LEGACY_SPECS[key][section]:
                    assert exported[section] == LEGACY_SPECS[key][section], (module["id"], section)
        if module["module"] == "builtin:Break":
            assert module["metadata"]["expect"] == LEGACY_SPECS["builtin:Break@1"]["expect"]
    assert len(places) == len(set(places)), "two modules on the same spot of the canvas"
    notes = {module_id for note in metadata["notes"] for module_id in note["moduleIds"]}
    assert notes <= set(by_id(blueprint))


@pytest.mark.parametrize("name", [*DESIGNS, "mini-fallback"])
def test_every_http_module_is_v4_with_the_metadata_of_a_real_v4_export(name: str) -> None:
    """Each HTTP call is http:MakeRequest v4 exactly as Make's editor exports a JSON-string POST."""
    export = {module["id"]: module for module in json.loads(V4_EXPORT.read_text(encoding="utf-8"))["flow"]}
    by_auth = {"apiKey": export[1], "noAuth": export[6]}  # a GET with an API-key keychain, a jsonString POST
    blueprint = load(name)
    assert not [m["id"] for m in modules(blueprint) if m["module"] == "http:ActionSendData"]
    calls = http_modules(blueprint)
    assert calls
    for module in calls:
        assert f"{module['module']}@{module['version']}" == HTTP_V4, module["id"]
        authentication = module["parameters"]["authenticationType"]
        assert module["parameters"] == {"authenticationType": authentication, "tlsType": "", "proxyKeychain": ""}
        mapper = module["mapper"]
        assert list(mapper) == [
            "url", "method", "headers", "contentType", "parseResponse", "stopOnHttpError", "timeout",
            "allowRedirects", "shareCookies", "requestCompressedContent", "inputMethod", "jsonStringBodyContent",
        ]  # fmt: skip
        assert (mapper["method"], mapper["contentType"], mapper["inputMethod"]) == ("post", "json", "jsonString")
        assert (mapper["allowRedirects"], mapper["shareCookies"], mapper["requestCompressedContent"]) == (
            True,
            False,
            True,
        )
        assert isinstance(mapper["timeout"], int) and 1 <= mapper["timeout"] <= 300
        assert module["onerror"], f"module {module['id']} has no error route"
        exported = module["metadata"]
        assert canonical(exported["parameters"]) == canonical(by_auth[authentication]["metadata"]["parameters"])
        assert canonical(exported["expect"]) == canonical(export[6]["metadata"]["expect"])
        assert canonical(exported["interface"]) == canonical(export[6]["metadata"]["interface"])
        restore = exported["restore"]
        assert set(restore["parameters"]) == {"authenticationType", "tlsType", "proxyKeychain"}
        assert set(restore["expect"]) == set(export[6]["metadata"]["restore"]["expect"])
        assert restore["expect"]["headers"] == {"mode": "chose", "items": [None] * len(mapper["headers"])}


@pytest.mark.parametrize("name", [*DESIGNS, "mini-fallback"])
def test_no_key_in_the_file_only_placeholders_and_a_keychain_to_attach(name: str) -> None:
    blueprint = load(name)
    assert "zone" not in blueprint["metadata"]
    text = json.dumps(blueprint)
    assert "X-Api-Key" not in text and "Bearer" not in json.dumps(blueprint["flow"])
    for module in modules(blueprint):
        for section in ("parameters", "mapper"):
            assert not set(module.get(section) or {}) & make_lint.ACCOUNT_KEYS - {"proxyKeychain"}, module["id"]
        restored = module["metadata"].get("restore", {}).get("parameters", {})
        assert not set(restored) & make_lint.ACCOUNT_KEYS - {"proxyKeychain"}, module["id"]
    for module in http_modules(blueprint):
        url = module["mapper"]["url"]
        assert url.startswith((SERVICE_PLACEHOLDER + "/v1/nodes/", "{{1.callback_url}}")) or url == FALLBACK_PLACEHOLDER
        calls_tierwise = url.startswith(SERVICE_PLACEHOLDER)
        assert module["parameters"]["authenticationType"] == ("apiKey" if calls_tierwise else "noAuth")
        assert module["parameters"]["proxyKeychain"] == ""
        assert [h["name"] for h in module["mapper"]["headers"]] in (["Accept"], ["Accept", "Idempotency-Key"])
    key_notes = [note for note in blueprint["metadata"]["notes"] if "Credentials" in note["content"]]
    (note,) = key_notes
    assert "Bearer" in note["content"] and "Authorization" in note["content"]
    assert set(note["moduleIds"]) == {
        m["id"] for m in http_modules(blueprint) if m["parameters"]["authenticationType"] == "apiKey"
    }


@pytest.mark.parametrize("name", [*DESIGNS, "mini-fallback"])
def test_timeouts_let_the_mini_fallback_answer_before_its_callers_give_up(name: str) -> None:
    for module in http_modules(load(name)):
        url, timeout = module["mapper"]["url"], module["mapper"]["timeout"]
        if name == "mini-fallback":
            expected = FALLBACK_CALL_TIMEOUT
        elif url == FALLBACK_PLACEHOLDER:
            expected = FORWARD_TIMEOUT
        elif url.startswith(SERVICE_PLACEHOLDER):
            expected = SERVICE_TIMEOUT
        else:
            expected = CALLBACK_TIMEOUT
        assert timeout == expected, module["id"]
    assert FALLBACK_CALL_TIMEOUT < FORWARD_TIMEOUT


# -- what the designs do ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DESIGNS)
def test_webhook_then_serialised_payload_then_service_then_router_then_response(name: str) -> None:
    blueprint = load(name)
    ids = by_id(blueprint)
    calls = service_calls(blueprint)
    assert [call["id"] for call in calls] == list(STEPS[name])
    for call in calls:
        body = body_of(call)
        mapped = re.findall(r"\{\{(.*?)\}\}", body)
        assert mapped, "the request carries the webhook's data"
        for expression in mapped:
            match = re.fullmatch(r"(\d+)\.json", expression)
            assert match, f"module {call['id']} maps {{{{{expression}}}}} directly; only Transform-to-JSON output"
            assert ids[int(match.group(1))]["module"] == "json:TransformToJSON"
        parsed = template_json(body)  # a mapping inside a JSON string would not parse here
        assert parsed["metadata"] == {"template": name, "step": STEPS[name][call["id"]]}
        assert call["parameters"]["authenticationType"] == "apiKey"
        assert call["mapper"]["stopOnHttpError"] is True and call["mapper"]["parseResponse"] is True
    filtered = [route["flow"][0]["filter"] for router in main_routers(blueprint) for route in router["routes"]]
    read = {condition["a"] for f in filtered for group in f["conditions"] for condition in group}
    assert read == ROUTER_READS[name]
    assert any(m["module"] == "gateway:WebhookRespond" for m in modules(blueprint))


def ignore(module: Mapping[str, Any]) -> None:
    assert module["module"] == "builtin:Ignore" and set(module) == {"id", "module", "version", "metadata"}


@pytest.mark.parametrize("name", DESIGNS)
def test_every_service_call_has_the_mini_fallback_route_and_the_fallback_has_one_too(name: str) -> None:
    blueprint = load(name)
    for call in service_calls(blueprint):
        onerror = call["onerror"]
        step = STEPS[name][call["id"]]
        if name in SYNC:
            forward, resume = onerror
            assert [m["module"] for m in onerror] == ["http:MakeRequest", "builtin:Resume"]
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
        assert forward["parameters"]["authenticationType"] == "noAuth" and forward["mapper"]["stopOnHttpError"]
        envelope = template_json(body_of(forward))
        assert envelope == {"node": node_of(call), "request": template_json(body_of(call))}
        assert resume["mapper"] == {
            "data": f"{{{{{forward['id']}.data}}}}",
            "headers": f"{{{{{forward['id']}.headers}}}}",
            "statusCode": f"{{{{{forward['id']}.statusCode}}}}",
        }
        # when the mini fallback fails too, its own error route answers the caller
        serialise, answer, end = forward["onerror"]
        assert serialise["module"] == "json:TransformToJSON"
        assert serialise["mapper"] == {"object": f"{{{{{forward['id']}.error.message}}}}"}
        ignore(end)
        detail = f"<{serialise['id']}.json>"
        if name in SYNC:
            assert answer["module"] == "gateway:WebhookRespond" and answer["mapper"]["status"] == "502"
            assert template_json(answer["mapper"]["body"]) == {
                "type": "/problems/step-failed",
                "title": "Tierwise and the mini fallback both failed",
                "status": 502,
                "step": step,
                "detail": detail,
            }
        else:
            assert answer["module"] == "http:MakeRequest" and answer["mapper"]["url"] == "{{1.callback_url}}"
            assert template_json(body_of(answer)) == {
                "request_id": "<4.json>",
                "status": "failed",
                "step": step,
                "detail": detail,
            }
            (retry,) = answer["onerror"]
            assert retry["module"] == "builtin:Break" and retry["mapper"] == {
                "retry": True,
                "count": "5",
                "interval": "2",
            }


@pytest.mark.parametrize("name", ASYNC)
def test_every_callback_delivery_is_retried_by_a_break(name: str) -> None:
    blueprint = load(name)
    callbacks = [m for m in http_modules(blueprint) if m["mapper"]["url"] == "{{1.callback_url}}"]
    assert len(callbacks) == 2 + len(service_calls(blueprint))  # two outcomes, one failure per service call
    for callback in callbacks:
        (retry,) = callback["onerror"]
        assert retry["module"] == "builtin:Break" and retry["mapper"] == {"retry": True, "count": "5", "interval": "2"}


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
            assert keys == [f"{{{{1.request_id}}}}:{STEPS[name][call['id']]}"]


def test_mini_fallback_calls_the_same_node_capped_at_mini() -> None:
    blueprint = load("mini-fallback")
    ids = by_id(blueprint)
    call = ids[4]
    assert call["mapper"]["url"] == SERVICE_PLACEHOLDER + "/v1/nodes/{{1.node}}/batch"
    assert call["parameters"]["authenticationType"] == "apiKey"
    assert call["mapper"]["stopOnHttpError"] is False and call["mapper"]["parseResponse"] is True
    assert template_json(body_of(call)) == {"items": [{"tier": "mini", "max_tier": "mini"}], "defaults": "<3.json>"}
    assert ids[3]["mapper"] == {"object": "{{1.request}}"}
    serialise, answer, end = call["onerror"]
    assert serialise["mapper"] == {"object": "{{4.error.message}}"}
    assert answer["module"] == "gateway:WebhookRespond" and answer["mapper"]["status"] == "502"
    assert template_json(answer["mapper"]["body"]) == {
        "type": "/problems/mini-fallback-failed",
        "title": "The mini fallback got no answer from Tierwise",
        "status": 502,
        "detail": "<13.json>",
    }
    ignore(end)


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
    outcome = endpoints.run(blueprint, SAMPLES[name], all_routes=True)
    assert outcome.error is None
    calls = service_calls(blueprint)
    for call in calls:
        ((request, reply),) = outcome.sent_by(call["id"])
        assert json.loads(request.body)["metadata"]["template"] == name, "the body is valid JSON"
        # the key comes from the keychain, the Content-Type from contentType json
        assert request.headers["Authorization"] == f"Bearer {service.key}"
        assert request.headers["Content-Type"] == "application/json" and request.timeout == SERVICE_TIMEOUT
        assert reply.status == 200, reply.body
        answer = json.loads(reply.body)
        assert answer["node"] == node_of(call)
        assert answer["tier"] in ("nano", "mini", "full") and answer["usage"]["cost_usd"] > 0
    assert len(outcome.exchanges) == len(calls) + (2 if name in ASYNC else 0)
    callbacks = [request for request, _ in outcome.exchanges if not request.url.startswith(SERVICE_PLACEHOLDER)]
    assert len(callbacks) == (2 if name in ASYNC else 0)
    for request in callbacks:
        assert request.url == SAMPLES[name]["callback_url"]
        assert "Authorization" not in request.headers, "a callback carries no Tierwise key"
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
        ((request, _),) = outcome.sent_by(call["id"])
        for forward in forwarders(call):
            envelope = json.loads(resolve(body_of(forward), outcome.outputs))
            assert envelope == {"node": node_of(call), "request": json.loads(request.body)}


@pytest.mark.parametrize("name", SYNC)
def test_synchronous_design_answers_with_every_steps_tier_and_cost(
    name: str, service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    endpoints = endpoints_for(service, fallback)
    outcome = endpoints.run(load(name), SAMPLES[name])
    assert outcome.error is None and outcome.breaks == []
    (answer,) = outcome.answers
    assert answer.status == 200 and answer.headers == {"Content-Type": "application/json"}
    steps = answered_steps(outcome, endpoints)
    assert steps and run_ids(answer.body) == steps


def test_the_service_refuses_a_call_without_the_keychain(service: Any, sandbox: Any, fallback: dict[str, Any]) -> None:
    """The blueprint holds no key: without the keychain attached after import, Tierwise answers 401."""
    endpoints = Endpoints(service.anonymous, ApiKey("Bearer not-a-key"), fallback)
    outcome = endpoints.run(load("mini-fallback"), {"node": "classify", "request": {"input": "x", "labels": ["a"]}})
    ((request, reply),) = outcome.exchanges
    assert request.headers["Authorization"] == "Bearer not-a-key" and reply.status == 401
    (answer,) = outcome.answers
    assert answer.status == 502 and answer.body["answer"]["status"] == 401


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
    outcome = endpoints.run(load(name), SAMPLES[name])
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
    outcome = endpoints.run(load(name), SAMPLES[name])
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


# -- failures: the mini fallback, error routes that answer the caller, and Break --------------------------


@pytest.fixture
def no_retry_service(pooled_service: Callable[..., Service]) -> Service:
    """A service that gives up on a tier at its first failure, so a fault count fails exactly one call."""
    return pooled_service(max_retries=0)


def hang(*targets: tuple[str, int]) -> Callable[[Request], bool]:
    """Requests that never get an answer: those of the given (scenario name, module id) pairs."""
    return lambda request: (request.scenario, request.module_id) in targets


def delivered(endpoints: Endpoints, name: str, outcome: Outcome) -> Any:
    """What the caller of a design got: the webhook response's body, or the callback's."""
    if name in ASYNC:
        (callback,) = endpoints.callbacks
        return json.loads(callback.body)
    (answer,) = outcome.answers
    return answer.body


@pytest.mark.parametrize("name", DESIGNS)
def test_failed_first_call_is_answered_by_the_mini_fallback_and_the_run_goes_on(
    name: str, no_retry_service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    node, upstream_calls = FIRST_CALL[name]
    sandbox.configure(faults=[{"kind": "server_error", "status": 503, "times": upstream_calls}])
    endpoints = endpoints_for(no_retry_service, fallback)
    blueprint = load(name)
    first = service_calls(blueprint)[0]
    outcome = endpoints.run(blueprint, SAMPLES[name])
    assert outcome.error is None and outcome.breaks == []
    ((_, failed),) = outcome.sent_by(first["id"])
    assert failed.status == 502 and json.loads(failed.body)["type"] == "/problems/run-failed"
    (fallback_run,) = endpoints.fallback_runs
    ((mini_request, _),) = fallback_run.exchanges
    assert mini_request.headers["Authorization"] == f"Bearer {no_retry_service.key}"
    (mini_answer,) = fallback_run.answers
    assert mini_answer.status == 200 and mini_answer.headers["X-Tierwise-Fallback"] == "mini"
    assert mini_answer.body["node"] == node and mini_answer.body["tier"] == "mini"
    routing = mini_answer.body["routing"]
    assert (routing["start_tier"], routing["reason"]) == ("mini", "requested tier mini")
    assert routing["step"].startswith(f"{node}/")
    answer = delivered(endpoints, name, outcome)
    assert mini_answer.body["run_id"] in run_ids(answer)
    assert run_ids(answer) == answered_steps(outcome, endpoints)


@pytest.mark.parametrize("name", DESIGNS)
def test_first_call_timing_out_goes_to_the_mini_fallback_and_the_run_goes_on(
    name: str, service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    blueprint = load(name)
    first = service_calls(blueprint)[0]
    endpoints = endpoints_for(service, fallback, hang((blueprint["name"], first["id"])))
    outcome = endpoints.run(blueprint, SAMPLES[name])
    assert outcome.error is None and outcome.breaks == []
    ((request, reply),) = outcome.sent_by(first["id"])
    assert reply is NO_REPLY and request.timeout == SERVICE_TIMEOUT
    (fallback_run,) = endpoints.fallback_runs
    (mini_answer,) = fallback_run.answers
    assert mini_answer.status == 200 and mini_answer.body["tier"] == "mini"
    assert mini_answer.body["run_id"] in run_ids(delivered(endpoints, name, outcome))
    if name in SYNC:
        (answer,) = outcome.answers
        assert (answer.status, answer.at) == (200, SERVICE_TIMEOUT)


@pytest.mark.parametrize("name", SYNC)
def test_synchronous_caller_gets_a_502_problem_when_the_mini_fallback_fails_too(
    name: str, no_retry_service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    sandbox.configure(faults=[{"kind": "server_error", "status": 503}])
    endpoints = endpoints_for(no_retry_service, fallback)
    blueprint = load(name)
    first = service_calls(blueprint)[0]
    outcome = endpoints.run(blueprint, SAMPLES[name])
    assert outcome.error is None
    ((_, failed),) = outcome.sent_by(first["id"])
    assert failed.status == 502
    (fallback_run,) = endpoints.fallback_runs
    (mini_answer,) = fallback_run.answers
    assert mini_answer.status == 502 and mini_answer.body["type"] == "/problems/mini-fallback-failed"
    assert [request.module_id for request, _ in outcome.exchanges] == [first["id"], forwarders(first)[0]["id"]]
    (answer,) = outcome.answers
    assert answer.status == 502 and answer.headers == {"Content-Type": "application/json"}
    detail = answer.body.pop("detail")
    assert answer.body == {
        "type": "/problems/step-failed",
        "title": "Tierwise and the mini fallback both failed",
        "status": 502,
        "step": STEPS[name][first["id"]],
    }
    assert detail.startswith("[502] ") and json.loads(detail[6:]) == mini_answer.body


@pytest.mark.parametrize("name", SYNC)
def test_synchronous_caller_is_answered_in_time_when_tierwise_hangs_for_the_call_and_the_fallback(
    name: str, service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    blueprint = load(name)
    first = service_calls(blueprint)[0]
    hangs = hang((blueprint["name"], first["id"]), (fallback["name"], 4))
    endpoints = endpoints_for(service, fallback, hangs)
    outcome = endpoints.run(blueprint, SAMPLES[name])
    assert outcome.error is None and sandbox.requests() == []
    (fallback_run,) = endpoints.fallback_runs
    (mini_answer,) = fallback_run.answers
    # the mini fallback gives up after 130 s and answers, 20 s before the forwarder would stop waiting
    assert (mini_answer.status, mini_answer.at) == (502, FALLBACK_CALL_TIMEOUT)
    assert mini_answer.body["detail"] == "The request timed out after 130 seconds"
    (answer,) = outcome.answers
    assert (answer.status, answer.at) == (502, SERVICE_TIMEOUT + FALLBACK_CALL_TIMEOUT)
    assert answer.body["type"] == "/problems/step-failed" and answer.body["step"] == STEPS[name][first["id"]]
    assert json.loads(answer.body["detail"].removeprefix("[502] ")) == mini_answer.body


@pytest.mark.parametrize("name", SYNC)
def test_without_its_error_route_the_mini_fallback_would_leave_the_caller_waiting(
    name: str, service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    """The issue this design fixes: a timeout in the mini fallback answered no one; the caller waited it out."""
    del by_id(fallback)[4]["onerror"]
    blueprint = load(name)
    first = service_calls(blueprint)[0]
    endpoints = endpoints_for(service, fallback, hang((blueprint["name"], first["id"]), (fallback["name"], 4)))
    outcome = endpoints.run(blueprint, SAMPLES[name])
    (fallback_run,) = endpoints.fallback_runs
    assert fallback_run.answers == [] and fallback_run.error is not None
    assert fallback_run.error.message == "The request timed out after 130 seconds"
    # only the forwarder's own timeout and error route still answer, 20 s later than with the fallback's route
    (answer,) = outcome.answers
    assert (answer.status, answer.at) == (502, SERVICE_TIMEOUT + FORWARD_TIMEOUT)
    assert answer.body["detail"] == "The request timed out after 150 seconds"


@pytest.mark.parametrize("name", DESIGNS)
def test_every_http_module_that_never_answers_still_leaves_the_caller_answered(
    name: str, service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    """For each HTTP module: it and every module whose error route leads to it hang; the run still ends handled."""
    blueprint = load(name)
    for module in http_modules(blueprint):
        path = error_path(blueprint, module["id"])
        endpoints = endpoints_for(service, fallback, hang(*((blueprint["name"], step) for step in path)))
        outcome = endpoints.run(blueprint, SAMPLES[name], all_routes=True)
        assert outcome.error is None, (module["id"], outcome.error)
        assert [reply for _, reply in outcome.sent_by(module["id"])] == [NO_REPLY], module["id"]
        if name in SYNC:
            assert outcome.answers, module["id"]
            assert all(answer.status in (200, 502) for answer in outcome.answers)
        else:
            assert outcome.answers[0].status == 202
            statuses = [json.loads(request.body)["status"] for request in endpoints.callbacks]
            if module["mapper"]["url"] == "{{1.callback_url}}":  # the delivery itself: retried later
                assert outcome.breaks == [module["onerror"][0]["id"]], module["id"]
            else:
                assert statuses and outcome.breaks == [], module["id"]
            if module["mapper"]["url"] == FALLBACK_PLACEHOLDER:  # its call failed too: the caller hears why
                assert statuses.count("failed") == 1 and statuses[-1] == "failed", module["id"]


@pytest.mark.parametrize("name", ASYNC)
def test_asynchronous_caller_is_called_back_with_the_failure_when_the_mini_fallback_fails_too(
    name: str, no_retry_service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    sandbox.configure(faults=[{"kind": "server_error", "status": 503}])
    endpoints = endpoints_for(no_retry_service, fallback)
    blueprint = load(name)
    first = service_calls(blueprint)[0]
    outcome = endpoints.run(blueprint, SAMPLES[name])
    assert outcome.error is None and outcome.breaks == []
    assert [answer.status for answer in outcome.answers] == [202]
    (callback,) = endpoints.callbacks
    assert callback.url == SAMPLES[name]["callback_url"] and "Authorization" not in callback.headers
    body = json.loads(callback.body)
    detail = body.pop("detail")
    assert body == {"request_id": SAMPLES[name]["request_id"], "status": "failed", "step": "draft"}
    (fallback_run,) = endpoints.fallback_runs
    assert json.loads(detail.removeprefix("[502] ")) == fallback_run.answers[0].body
    assert [request.module_id for request, _ in outcome.exchanges][:2] == [first["id"], forwarders(first)[0]["id"]]


@pytest.mark.parametrize("name", ASYNC)
def test_rate_limited_asynchronous_call_goes_to_break(
    name: str, pooled_service: Callable[..., Service], sandbox: Any, fallback: dict[str, Any]
) -> None:
    limited = pooled_service(key_rpm=1)
    assert limited.http.post("/v1/nodes/classify", json={"input": "warm-up", "labels": ["a", "b"]}).status_code == 200
    endpoints = endpoints_for(limited, fallback)
    blueprint = load(name)
    first = service_calls(blueprint)[0]
    outcome = endpoints.run(blueprint, SAMPLES[name])
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
    return endpoints_for(service, fallback).run(fallback, payload)


def test_mini_fallback_answers_502_when_its_own_call_times_out(
    service: Any, sandbox: Any, fallback: dict[str, Any]
) -> None:
    endpoints = endpoints_for(service, fallback, hang((fallback["name"], 4)))
    outcome = endpoints.run(fallback, {"node": "extract", "request": {"input": "x", "schema": {"type": "object"}}})
    assert outcome.error is None and sandbox.requests() == []
    ((request, reply),) = outcome.exchanges
    assert reply is NO_REPLY and request.timeout == FALLBACK_CALL_TIMEOUT
    (answer,) = outcome.answers
    assert (answer.status, answer.at) == (502, FALLBACK_CALL_TIMEOUT)
    assert answer.body == {
        "type": "/problems/mini-fallback-failed",
        "title": "The mini fallback got no answer from Tierwise",
        "status": 502,
        "detail": "The request timed out after 130 seconds",
    }


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
