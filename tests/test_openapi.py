"""The OpenAPI document: every route's body, parameters and problems."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from support import Service

from nodes.catalog import catalogue

PROBLEM_JSON = "application/problem+json"
PROBLEM_SCHEMAS = {"Problem", "LimitProblem", "RunFailed"}
PROBLEMS_OF = {
    ("post", "/v1/nodes/{node_name}"): {400, 401, 404, 408, 409, 413, 422, 429, 502, 503, 504},
    ("post", "/v1/nodes/{node_name}/batch"): {400, 401, 404, 408, 409, 413, 422, 429, 503},
    ("get", "/v1/runs/{run_id}"): {401, 404, 503},
    ("get", "/v1/nodes"): {401, 503},
    ("get", "/v1/stats"): {401, 422, 503},
    ("get", "/metrics"): {503},
    ("get", "/healthz"): set(),
    ("get", "/dashboard"): set(),
}
NODE_MODELS = ["Classify", "Extract", "Draft", "Judge"]


@pytest.fixture
def served(pooled_service: Callable[..., Service]) -> tuple[Service, dict[str, Any]]:
    service = pooled_service()
    response = service.anonymous.get("/openapi.json")
    assert response.status_code == 200
    return service, response.json()


def conforms(document: dict[str, Any], name: str, value: Any) -> list[str]:
    """What is wrong with ``value`` as an instance of the component schema ``name``."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": document["components"]}
    return [error.message for error in Draft202012Validator(schema).iter_errors(value)]


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref" and isinstance(item, str):
                yield item
            else:
                yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def test_every_operation_is_documented_with_every_problem_it_answers(served: tuple[Service, dict[str, Any]]) -> None:
    _, document = served
    operations = {(method, path): op for path, ops in document["paths"].items() for method, op in ops.items()}
    assert set(PROBLEMS_OF) <= set(operations)
    for place, operation in operations.items():
        statuses = {int(status) for status in operation["responses"] if int(status) >= 400}
        assert statuses == PROBLEMS_OF.get(place, statuses), place
        for status in statuses:
            content = operation["responses"][str(status)]["content"]
            assert list(content) == [PROBLEM_JSON], (place, status)
            assert content[PROBLEM_JSON]["schema"]["$ref"].rsplit("/", 1)[1] in PROBLEM_SCHEMAS
        if place[1].startswith("/v1/"):
            assert operation["security"] == [{"bearer": []}, {"apiKey": []}], place
    assert operations[("post", "/v1/nodes/{node_name}")]["responses"]["429"]["headers"]["Retry-After"]["required"]
    assert "WWW-Authenticate" in operations[("get", "/v1/nodes")]["responses"]["401"]["headers"]
    assert set(document["components"]["securitySchemes"]) == {"bearer", "apiKey"}
    assert "HTTPValidationError" not in json.dumps(document)


def test_node_routes_document_their_bodies_path_and_idempotency_key(served: tuple[Service, dict[str, Any]]) -> None:
    _, document = served
    schemas = document["components"]["schemas"]
    node = document["paths"]["/v1/nodes/{node_name}"]["post"]
    batch = document["paths"]["/v1/nodes/{node_name}/batch"]["post"]
    body = node["requestBody"]["content"]["application/json"]["schema"]
    assert node["requestBody"]["required"] is True
    assert body == {"oneOf": [{"$ref": f"#/components/schemas/{name}Request"} for name in NODE_MODELS]}
    for entry in catalogue():
        documented = json.loads(json.dumps(entry["input_schema"]).replace("#/$defs/", "#/components/schemas/"))
        definitions = documented.pop("$defs")
        assert schemas[documented["title"]] == documented
        assert all(schemas[name] == definition for name, definition in definitions.items())
    assert batch["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BatchRequest"
    }
    assert schemas["BatchRequest"]["properties"]["items"]["minItems"] == 1
    for operation in (node, batch):
        parameters = {parameter["name"]: parameter for parameter in operation["parameters"]}
        assert parameters["node_name"]["schema"]["enum"] == ["classify", "extract", "draft", "judge"]
        key = parameters["Idempotency-Key"]
        assert (key["in"], key["required"], key["schema"]["maxLength"]) == ("header", False, 255)


def test_links_lead_from_an_answer_to_its_run(served: tuple[Service, dict[str, Any]]) -> None:
    _, document = served
    responses = document["paths"]["/v1/nodes/{node_name}"]["post"]["responses"]
    for status in ("200", "202"):
        assert responses[status]["links"]["GetRun"]["operationId"] == "get_run"
        assert responses[status]["links"]["GetRun"]["parameters"] == {"run_id": "$response.body#/run_id"}
    operation_ids = {op["operationId"] for ops in document["paths"].values() for op in ops.values()}
    assert "get_run" in operation_ids
    components = set(document["components"]["schemas"])
    assert {reference.removeprefix("#/components/schemas/") for reference in references(document)} <= components


def test_real_answers_conform_to_the_documented_schemas(served: tuple[Service, dict[str, Any]]) -> None:
    service, document = served
    answer = service.http.post("/v1/nodes/classify", json={"input": "I was charged twice", "labels": ["a", "b"]})
    assert answer.status_code == 200 and conforms(document, "NodeAnswer", answer.json()) == []
    run = service.http.get(f"/v1/runs/{answer.json()['run_id']}")
    assert conforms(document, "RunStatus", run.json()) == []
    batch = service.http.post("/v1/nodes/classify/batch", json={"items": [{"input": "x"}, 5], "defaults": {}})
    assert batch.status_code == 200 and conforms(document, "BatchAnswer", batch.json()) == []
    invalid = service.http.post("/v1/nodes/classify", json={"input": "x", "labels": []})
    assert invalid.status_code == 422 and conforms(document, "Problem", invalid.json()) == []
    assert conforms(document, "Catalogue", service.http.get("/v1/nodes").json()) == []
    assert conforms(document, "Health", service.anonymous.get("/healthz").json()) == []
    assert conforms(document, "Problem", {"type": "/problems/x", "title": "X"}) != []
