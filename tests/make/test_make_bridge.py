"""make-bridge: the Make custom app, in the Apps SDK local-development layout, against the running service.

The file layout and JSON shapes are checked against the VS Code extension's own schemas (the parts of
``integromat/vscode-apps-sdk`` ``syntaxes/local-development/schemas/makecomapp.schema.json`` and
``syntaxes/imljson/schemas/{base,response,enums,parameters}.json`` that our files use, transcribed below);
the modules are checked against ``GET /v1/nodes`` and against real answers from the service. The services are
pooled: each test calls them with an API key of its own (``pooled_service``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from support import Service

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "make-bridge"
NODES = ("classify", "extract", "draft", "judge")
NOT_SENT = {"callback_url"}  # asynchronous mode answers 202, not a result; use the HTTP templates for it
ASYNC_ONLY = {"processing": {"batch"}}  # the batch lane needs callback_url, which the modules do not send
# An empty step is not a step, nor an empty processing a lane: the key is left out so the service's default applies.
OMITTED_WHEN_EMPTY = {"step", "processing"}
HEADER_PARAMS = {"idempotency_key": "Idempotency-Key"}
PARSED_PARAMS = {"schema", "metadata"}
UNDEFINED = object()

ERROR_TYPES = [
    "RuntimeError",
    "DataError",
    "RateLimitError",
    "OutOfSpaceError",
    "ConnectionError",
    "InvalidConfigurationError",
    "InvalidAccessTokenError",
    "IncompleteDataError",
    "DuplicateDataError",
]
PARAMETER_TYPES = [
    "any", "array", "boolean", "buffer", "cert", "collection", "color", "date", "email", "filename", "folder",
    "file", "filter", "hidden", "json", "integer", "uinteger", "number", "password", "path", "pkey", "port",
    "select", "text", "time", "timestamp", "timezone", "url", "uuid", "banner", "udt",
]  # fmt: skip
CODE_TYPES = [
    "attach", "code", "common", "communication", "defaultScope", "detach", "epoch", "installDirectives",
    "installSpec", "interface", "mappableParams", "params", "requiredScope", "samples", "scope", "scopeList",
    "staticParams", "test", "update",
]  # fmt: skip
KINDS = ["connection", "function", "module", "rpc", "webhook", "endpoint"]
NULLABLE_TEXT = {"type": ["null", "string"]}

MAKECOMAPP_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["components", "fileVersion", "generalCodeFiles", "origins"],
    "properties": {
        "fileVersion": {"type": "number"},
        "generalCodeFiles": {
            "type": "object",
            "additionalProperties": False,
            "required": ["base", "common", "groups", "readme"],
            "properties": {name: NULLABLE_TEXT for name in ("base", "common", "groups", "readme")},
        },
        "components": {
            "type": "object",
            "additionalProperties": False,
            "required": KINDS,
            "properties": {
                kind: {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["codeFiles"],
                        "properties": {
                            "label": {"type": "string"},
                            "description": {"type": "string"},
                            "connectionType": {"enum": ["basic", "oauth"]},
                            "moduleType": {
                                "enum": ["action", "instant_trigger", "responder", "search", "trigger", "universal"]
                            },
                            "actionCrud": {"enum": ["create", "delete", "read", "update", None]},
                            "connection": NULLABLE_TEXT,
                            "altConnection": NULLABLE_TEXT,
                            "webhook": NULLABLE_TEXT,
                            "webhookType": {"enum": ["web", "web-shared"]},
                            "codeFiles": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {code: NULLABLE_TEXT for code in CODE_TYPES},
                            },
                        },
                    },
                }
                for kind in KINDS
            },
        },
        "origins": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["apikeyFile", "appId", "appVersion", "baseUrl"],
                "properties": {
                    "label": {"type": "string", "pattern": "^(?!-FILL-ME-)"},
                    "baseUrl": {"type": "string", "pattern": "^https://(.*)/api$"},
                    "appId": {"type": "string", "pattern": "^[a-z][0-9a-z-]+[0-9a-z]$"},
                    "appVersion": {"type": "number"},
                    "apikeyFile": {"type": "string", "pattern": "^(?!.* - OR FILL)"},
                    "idMapping": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": KINDS,
                        "properties": {kind: {"type": "array"} for kind in KINDS},
                    },
                },
            },
        },
    },
}

ERROR_SPEC = {
    "type": "object",
    "additionalProperties": False,
    "required": ["message"],
    "properties": {"message": {"type": "string", "maxLength": 1024}, "type": {"enum": ERROR_TYPES}},
}
RESPONSE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "type": {"enum": ["automatic", "json", "urlencoded", "text", "raw", "string", "binary", "xml"]},
        "valid": {},
        "error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["message"],
            "properties": ERROR_SPEC["properties"],
            "patternProperties": {"^([0-9][0-9][0-9])$": ERROR_SPEC},
        },
        "output": {},
        "wrapper": {},
    },
}
REQUEST_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "url": {"type": "string"},
        "baseUrl": {"type": "string"},
        "method": {"enum": ["GET", "POST", "PUT", "PATCH", "DELETE"]},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "qs": {"type": "object"},
        "body": {},
        "type": {"enum": ["json", "urlencoded", "multipart/form-data", "text", "string", "raw", "binary"]},
        "response": RESPONSE_SCHEMA,
        "log": {"type": "object", "properties": {"sanitize": {"type": "array", "items": {"type": "string"}}}},
    },
    "if": {"required": ["method"], "properties": {"method": {"enum": ["POST", "PUT", "PATCH", "DELETE"]}}},
    "then": {"required": ["url", "body"]},
}
PARAMETER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 128},
        "label": {"type": "string", "minLength": 1, "maxLength": 256},
        "help": {"type": "string", "minLength": 1},
        "type": {"enum": PARAMETER_TYPES},
        "required": {"type": "boolean"},
        "advanced": {"type": "boolean"},
        "multiline": {"type": "boolean"},
        "default": {},
        "validate": {"type": "object"},
        "options": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["value"],
                "properties": {"label": {"type": "string", "minLength": 1}, "value": {}},
            },
        },
        "spec": {"anyOf": [{"$ref": "#/definitions/parameter"}, {"$ref": "#/definitions/parameters"}]},
    },
}
PARAMETERS_SCHEMA = {
    "definitions": {"parameter": PARAMETER_SCHEMA, "parameters": {"type": "array", "items": PARAMETER_SCHEMA}},
    "$ref": "#/definitions/parameters",
}


def jsonc(text: str) -> Any:
    """Parse an .iml.json file: JSON with // and /* */ comments (outside strings)."""
    pattern = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
    return json.loads(pattern.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "", text))


def app_file(path: str) -> Any:
    return jsonc((APP / path).read_text(encoding="utf-8"))


def makecomapp() -> dict[str, Any]:
    data: dict[str, Any] = app_file("makecomapp.json")
    return data


def code(kind: str, component: str, code_type: str) -> Any:
    return app_file(makecomapp()["components"][kind][component]["codeFiles"][code_type])


def kebab(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


# -- a small evaluator for the app IML these files use -----------------------------------------------------


def parse_json_value(value: Any) -> Any:
    """Python twin of functions/parse-json-value/parse-json-value.code.js."""
    if not isinstance(value, str):
        return value
    if not value.strip():
        return UNDEFINED
    try:
        return json.loads(value)
    except ValueError:
        return value


def evaluate(expression: str, scope: dict[str, Any]) -> Any:
    expression = expression.strip()
    if expression == "undefined":
        return UNDEFINED
    call = re.fullmatch(r"(\w+)\((.*)\)", expression)
    if call:
        args = [evaluate(arg, scope) for arg in call.group(2).split(",")]
        if call.group(1) == "parseJsonValue":
            return parse_json_value(args[0])
        if call.group(1) == "ifempty":
            return args[1] if args[0] in (None, "", UNDEFINED) else args[0]
        raise AssertionError(f"unknown function {call.group(1)}")
    value: Any = scope
    for quoted, plain in re.findall(r"`([^`]+)`|([^.`]+)", expression):
        value = value.get(quoted or plain, UNDEFINED) if isinstance(value, dict) else UNDEFINED
    return value


def render(template: Any, scope: dict[str, Any]) -> Any:
    """Fill in an IML template the way Make does: a lone {{…}} keeps its type, undefined drops the key."""
    if isinstance(template, str):
        whole = re.fullmatch(r"\{\{(.*)\}\}", template, re.DOTALL)
        if whole and "{{" not in whole.group(1):
            return evaluate(whole.group(1), scope)
        return re.sub(
            r"\{\{(.*?)\}\}",
            lambda m: "" if (v := evaluate(m.group(1), scope)) is UNDEFINED else str(v),
            template,
        )
    if isinstance(template, dict):
        rendered = {key: render(value, scope) for key, value in template.items()}
        return {key: value for key, value in rendered.items() if value is not UNDEFINED}
    return template


SAMPLE_PARAMETERS: dict[str, dict[str, Any]] = {
    "classify": {
        "input": 'Hi, I was "charged twice" this month.\nA billing problem.',
        "labels": [{"name": "billing", "description": "charges and refunds"}, {"name": "bug"}],
        "multi_label": False,
        "min_confidence": 0.5,
        "metadata": '{"source": "make"}',
        "idempotency_key": "make-classify-0001",
    },
    "extract": {
        "input": "Invoice INV-7 from ACME Ltd, total EUR 120.50",
        "schema": '{"type": "object", "properties": {"vendor": {"type": "string"}, "total": {"type": "number"}}, '
        '"required": ["vendor", "total"]}',
        "instructions": "Amounts exactly as printed.",
        "metadata": {"source": "make"},
    },
    "draft": {
        "input": {"ticket": "Where is my order #1234?"},
        "format": "text",
        "max_words": 60,
        "tier": "mini",
        "metadata": ' {"source": "make"} ',
    },
    "judge": {
        "input": "Reply to: where is my order?",
        "candidates": ["It shipped yesterday.", "No idea."],
        "criteria": ["Answers the question", "Polite"],
        "max_tier": "full",
        "metadata": {"source": "make"},
    },
}


def call_module(service: Any, node: str, parameters: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Render the module's communication with ``parameters`` (merged over base) and send it."""
    base = app_file("general/base.iml.json")
    communication = code("module", node, "communication")
    scope = {"parameters": parameters, "connection": {"serviceUrl": service.url, "apiKey": service.key}}
    headers = render({**base["headers"], **communication.get("headers", {})}, scope)
    body = render(communication["body"], scope)
    url = render(base["baseUrl"], scope) + communication["url"]
    response = service.anonymous.request(communication["method"], url, json=body, headers=headers)
    return body, response


def shape(value: Any) -> Any:
    """The key structure of a JSON value (dicts by key, lists by their first item)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return None


@pytest.fixture
def service(pooled_service: Callable[..., Service]) -> Service:
    """The service with default limits."""
    return pooled_service()


# -- layout ------------------------------------------------------------------------------------------------


def test_makecomapp_follows_the_local_development_schema() -> None:
    data = makecomapp()
    jsonschema.validate(data, MAKECOMAPP_SCHEMA)
    assert data["fileVersion"] == 1
    assert sorted(data["components"]["module"]) == sorted(NODES)
    assert list(data["components"]["connection"]) == ["tierwise"]
    for node in NODES:
        metadata = data["components"]["module"][node]
        assert metadata["moduleType"] == "action" and metadata["connection"] == "tierwise"
        assert metadata["label"] == node.capitalize() and metadata["description"]
    origin = data["origins"][0]
    assert origin["apikeyFile"] == ".secrets/apikey" and not (APP / ".secrets").exists()
    assert ".secrets/" in (APP / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert all(mapping == [] for mapping in origin["idMapping"].values()), "no account's remote ids"


def test_every_code_file_exists_is_named_by_convention_and_none_is_stray() -> None:
    data = makecomapp()
    named = {path for path in data["generalCodeFiles"].values() if path}
    for kind, components in data["components"].items():
        for component, metadata in components.items():
            for code_type, path in metadata["codeFiles"].items():
                if path is None:
                    continue
                extension = ".code.js" if code_type == "code" else f".{kebab(code_type)}.iml.json"
                folder = {"connection": "connections", "module": "modules", "function": "functions"}[kind]
                assert path == f"{folder}/{kebab(component)}/{kebab(component)}{extension}"
                named.add(path)
    present = {str(path.relative_to(APP)) for path in APP.rglob("*") if path.is_file()}
    assert present - named == {"makecomapp.json", ".gitignore"}
    assert named <= present
    for path in (p for p in named if p.endswith(".json")):
        app_file(path)  # parses


def test_groups_list_every_module_once() -> None:
    groups = app_file("modules/groups.json")
    assert [module for group in groups for module in group["modules"]] == list(NODES)


# -- base and connection -----------------------------------------------------------------------------------


def test_base_carries_the_service_url_the_key_and_the_error_mapping() -> None:
    base = app_file("general/base.iml.json")
    jsonschema.validate(base, REQUEST_SCHEMA)
    assert base["baseUrl"] == "{{connection.serviceUrl}}"
    assert base["headers"]["Authorization"] == "Bearer {{connection.apiKey}}"
    assert base["log"]["sanitize"] == ["request.headers.authorization"]
    assert base["response"]["type"] == "json", "problem+json bodies must be parsed too"
    error = base["response"]["error"]
    types = {status: spec["type"] for status, spec in error.items() if re.fullmatch(r"\d{3}", status)}
    assert types == {
        "400": "DataError",
        "401": "InvalidAccessTokenError",
        "404": "InvalidConfigurationError",
        "409": "DataError",
        "413": "DataError",
        "422": "DataError",
        "429": "RateLimitError",
        "502": "RuntimeError",
        "504": "ConnectionError",
    }


def test_connection_is_an_api_key_connection_checked_against_the_service(service: Any) -> None:
    params = code("connection", "tierwise", "params")
    jsonschema.validate(params, PARAMETERS_SCHEMA)
    assert [(p["name"], p["type"], p["required"]) for p in params] == [
        ("serviceUrl", "url", True),
        ("apiKey", "password", True),
    ]
    communication = code("connection", "tierwise", "communication")
    jsonschema.validate(communication, REQUEST_SCHEMA)
    for key, expected in ((service.key, 200), ("not-a-key-0000", 401)):
        scope = {"parameters": {"serviceUrl": service.url, "apiKey": key}}
        response = service.anonymous.request(
            communication["method"],
            render(communication["url"], scope),
            headers=render(communication["headers"], scope),
        )
        assert response.status_code == expected
    assert str(communication["response"]["error"]["401"]["type"]) == "InvalidAccessTokenError"


# -- modules against the service ---------------------------------------------------------------------------


@pytest.fixture
def catalogue(service: Any) -> dict[str, dict[str, Any]]:
    response = service.http.get("/v1/nodes")
    assert response.status_code == 200
    return {node["name"]: node for node in response.json()["nodes"]}


def schema_types(schema: dict[str, Any]) -> set[str]:
    if "anyOf" in schema:
        return {kind for option in schema["anyOf"] for kind in schema_types(option)}
    if "type" in schema:
        return {schema["type"]} if isinstance(schema["type"], str) else set(schema["type"])
    return {"any"}


def schema_enum(schema: dict[str, Any]) -> list[Any]:
    options = [schema, *schema.get("anyOf", [])]
    return next((option["enum"] for option in options if "enum" in option), [])


def schema_bounds(schema: dict[str, Any]) -> tuple[Any, Any]:
    for option in [schema, *schema.get("anyOf", [])]:
        if "minimum" in option or "maximum" in option:
            return option.get("minimum"), option.get("maximum")
    return None, None


COMPATIBLE = {
    "any": None,
    "text": {"string"},
    "boolean": {"boolean"},
    "number": {"number", "integer"},
    "uinteger": {"integer"},
    "array": {"array"},
    "select": {"string"},
}


@pytest.mark.parametrize("node", NODES)
def test_module_parameters_agree_with_the_services_input_schema(
    node: str, catalogue: dict[str, dict[str, Any]]
) -> None:
    params = code("module", node, "mappableParams")
    jsonschema.validate(params, PARAMETERS_SCHEMA)
    assert code("module", node, "staticParams") == []
    schema = catalogue[node]["input_schema"]
    properties = schema["properties"]
    by_name = {p["name"]: p for p in params}
    assert set(by_name) - set(HEADER_PARAMS) == set(properties) - NOT_SENT
    required = {name for name, p in by_name.items() if p.get("required")}
    assert required == set(schema["required"])
    for name, param in by_name.items():
        if name in HEADER_PARAMS:
            continue
        field = properties[name]
        allowed = COMPATIBLE[param["type"]]
        assert allowed is None or allowed & schema_types(field), (name, param["type"], field)
        if param["type"] == "select":
            expected = [value for value in schema_enum(field) if value not in ASYNC_ONLY.get(param["name"], set())]
            assert [option["value"] for option in param["options"]] == expected
        if param["type"] in ("number", "uinteger"):
            assert (param["validate"]["min"], param["validate"]["max"]) == schema_bounds(field)
    communication = code("module", node, "communication")
    jsonschema.validate(communication, REQUEST_SCHEMA)
    assert (communication["method"], communication["url"]) == ("POST", catalogue[node]["path"])
    assert communication["response"] == {"output": "{{body}}"}
    assert communication["headers"] == {"Idempotency-Key": "{{ifempty(parameters.idempotency_key, undefined)}}"}
    expected_body = {
        name: f"{{{{parseJsonValue(parameters.{name})}}}}"
        if name in PARSED_PARAMS
        else f"{{{{ifempty(parameters.{name}, undefined)}}}}"
        if name in OMITTED_WHEN_EMPTY
        else f"{{{{parameters.{name}}}}}"
        for name in by_name
        if name not in HEADER_PARAMS
    }
    assert communication["body"] == expected_body


@pytest.mark.parametrize("node", NODES)
def test_module_call_is_accepted_and_answers_its_interface_and_samples(node: str, service: Any, sandbox: Any) -> None:
    body, response = call_module(service, node, SAMPLE_PARAMETERS[node])
    assert response.status_code == 200, response.text
    assert set(body) == set(SAMPLE_PARAMETERS[node]) - set(HEADER_PARAMS)
    answer = response.json()
    assert answer["node"] == node
    assert answer["metadata"] == {"source": "make"}
    interface = code("module", node, "interface")
    jsonschema.validate(interface, PARAMETERS_SCHEMA)
    # ``confidence`` comes only from tiers that return token log-probabilities (here nano and mini).
    assert [field["name"] for field in interface if field["name"] != "confidence" or "confidence" in answer] == list(
        answer
    )
    for field in interface:
        if field["type"] == "collection" and field["name"] in answer and field["name"] != "output":
            assert [item["name"] for item in field["spec"]] == list(answer[field["name"]])
    attempts_spec = next(field["spec"] for field in interface if field["name"] == "attempts")
    assert set(answer["attempts"][0]) <= {item["name"] for item in attempts_spec}
    output = next(field for field in interface if field["name"] == "output")
    if node in ("classify", "judge"):
        assert set(answer["output"]) <= {item["name"] for item in output["spec"]}
    samples = code("module", node, "samples")
    assert shape(samples) == shape(answer) | {"output": shape(samples["output"])}
    assert samples["node"] == node and samples["sandbox"] is False


def test_idempotency_key_parameter_replays_the_first_answer(service: Any, sandbox: Any) -> None:
    _, first = call_module(service, "classify", SAMPLE_PARAMETERS["classify"])
    _, again = call_module(service, "classify", SAMPLE_PARAMETERS["classify"])
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.json()["run_id"] == first.json()["run_id"]


def test_json_text_and_mapped_collections_both_reach_the_service_as_json(service: Any, sandbox: Any) -> None:
    schema = json.loads(SAMPLE_PARAMETERS["extract"]["schema"])
    for value in (SAMPLE_PARAMETERS["extract"]["schema"], schema):
        body, response = call_module(service, "extract", {**SAMPLE_PARAMETERS["extract"], "schema": value})
        assert body["schema"] == schema and response.status_code == 200
    body, response = call_module(service, "extract", {**SAMPLE_PARAMETERS["extract"], "schema": "{not json"})
    assert response.status_code == 422 and body["schema"] == "{not json"


def test_rate_limit_becomes_a_rate_limit_error_with_the_services_message(
    pooled_service: Callable[..., Service], sandbox: Any
) -> None:
    limited = pooled_service(key_rpm=1)
    assert call_module(limited, "classify", {"input": "one", "labels": [{"name": "a"}]})[1].status_code == 200
    _, response = call_module(limited, "classify", {"input": "two", "labels": [{"name": "a"}]})
    assert response.status_code == 429
    mapping = app_file("general/base.iml.json")["response"]["error"]["429"]
    scope = {"body": response.json(), "headers": {k.lower(): v for k, v in response.headers.items()}}
    assert mapping["type"] == "RateLimitError"
    assert render(mapping["message"], scope) == (
        f"[429] {response.json()['detail']} Retry after {response.headers['retry-after']} s."
    )


def test_failed_run_message_says_what_it_cost(no_retry_service: Any, sandbox: Any) -> None:
    sandbox.configure(faults=[{"kind": "server_error", "status": 500}])
    _, response = call_module(no_retry_service, "judge", SAMPLE_PARAMETERS["judge"])
    assert response.status_code == 502
    mapping = app_file("general/base.iml.json")["response"]["error"]["502"]
    problem = response.json()
    assert problem["usage"]["cost_usd"] == 0  # failed calls that never got a reply are not billed
    message = render(mapping["message"], {"body": problem})
    assert message.startswith(f"[502] {problem['detail']} The run cost ") and message.endswith(" USD.")


@pytest.fixture
def no_retry_service(pooled_service: Callable[..., Service]) -> Service:
    return pooled_service(max_retries=0)


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the app's JavaScript function")
def test_parse_json_value_function_behaves_like_its_python_twin() -> None:
    source = (APP / "functions/parse-json-value/parse-json-value.code.js").read_text(encoding="utf-8")
    cases = ['{"a": 1}', "  [1, 2] ", "not json", "", "   ", {"type": "object"}, [1], 3]
    script = source + f"\nconsole.log(JSON.stringify({json.dumps(cases)}.map(v => parseJsonValue(v) ?? null)));"
    result = subprocess.run(["node", "-e", script], capture_output=True, text=True, timeout=30, check=True)
    expected = [None if (v := parse_json_value(case)) is UNDEFINED else v for case in cases]
    assert json.loads(result.stdout) == expected
