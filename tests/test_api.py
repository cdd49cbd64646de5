"""The HTTP surface over real loopback HTTP: success bodies and headers, auth, and every kind of bad input."""

from __future__ import annotations

import json
import logging
import select
import socket
import sqlite3
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

import pytest
from support import CLIENT_KEY, Sandbox, Service

from nodes.catalog import NODES
from nodes.keys import hash_key, key_id_of
from nodes.settings import Settings

PROBLEM = "application/problem+json"
TICKET = "I was charged twice for my subscription this month, please refund one of the payments."


def assert_problem(response: Any, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["type"] == f"/problems/{slug}"
    assert body["status"] == status
    assert isinstance(body["detail"], str) and body["detail"]
    assert isinstance(body["errors"], list)
    return body


def db_rows(service: Service, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    conn = sqlite3.connect(service.settings.db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# --- success -----------------------------------------------------------------------------------------


def test_classify_success_body_headers_and_stored_record(service: Service, sandbox: Sandbox) -> None:
    response = service.http.post(
        "/v1/nodes/classify",
        json={"input": TICKET, "labels": ["billing", "bug", "feature_request"], "metadata": {"item": 7}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["node"] == "classify"
    assert body["output"]["label"] in ("billing", "bug", "feature_request")
    assert 0 <= body["output"]["confidence"] <= 1
    assert (body["tier"], body["model"], body["escalated"]) == ("nano", "gpt-5.4-nano", False)
    assert body["metadata"] == {"item": 7}
    step = NODES["classify"].step_of(
        NODES["classify"].parse({"input": "x", "labels": ["billing", "bug", "feature_request"]})
    )
    assert body["routing"] == {"start_tier": "nano", "reason": "node default (nano)", "step": step}
    assert body["sandbox"] is False
    [attempt] = body["attempts"]
    assert attempt["outcome"] == "ok" and attempt["tier"] == "nano"
    cost = (
        Decimal(attempt["input_tokens"]) * Decimal("0.20") + Decimal(attempt["output_tokens"]) * Decimal("1.25")
    ) / 10**6
    baseline = (
        Decimal(attempt["input_tokens"]) * Decimal("2.50") + Decimal(attempt["output_tokens"]) * Decimal("15.00")
    ) / 10**6
    assert body["usage"]["cost_usd"] == float(cost)
    assert body["usage"]["baseline_cost_usd"] == float(baseline)
    assert response.headers["x-tierwise-run-id"] == body["run_id"] and body["run_id"].startswith("run_")
    assert response.headers["x-tierwise-tier"] == "nano"
    assert Decimal(response.headers["x-tierwise-cost-usd"]) == cost
    assert float(response.headers["x-tierwise-overhead-ms"]) >= 0

    [run] = db_rows(service, "SELECT * FROM runs WHERE run_id = ?", (body["run_id"],))
    assert (run["node"], run["status"], run["start_tier"], run["final_tier"]) == (
        "classify",
        "succeeded",
        "nano",
        "nano",
    )
    assert run["routing_reason"] == "node default (nano)"
    assert Decimal(run["cost_usd"]) == cost and Decimal(run["baseline_cost_usd"]) == baseline
    assert run["key_id"] == key_id_of(hash_key(CLIENT_KEY))
    assert json.loads(run["metadata"]) == {"item": 7}
    assert json.loads(run["response"])["run_id"] == body["run_id"]
    [row] = db_rows(service, "SELECT * FROM attempts WHERE run_id = ?", (body["run_id"],))
    assert (row["tier"], row["outcome"], row["input_tokens"]) == ("nano", "ok", attempt["input_tokens"])


@pytest.mark.parametrize(
    ("node", "payload", "start"),
    [
        (
            "extract",
            {
                "input": "Ann Lee, ann@example.com",
                "schema": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                    "required": ["name"],
                },
            },
            "nano",
        ),
        ("draft", {"input": TICKET, "instructions": "Write a short apology.", "max_words": 80}, "mini"),
        (
            "draft",
            {
                "input": TICKET,
                "format": "json",
                "schema": {
                    "type": "object",
                    "properties": {"subject": {"type": "string"}, "body": {"type": "string"}},
                    "required": ["subject", "body"],
                },
            },
            "mini",
        ),
        ("judge", {"candidate": "We refunded you.", "criteria": ["polite", "answers the question"]}, "full"),
        (
            "judge",
            {"input": TICKET, "candidates": ["Refunded.", "Sorry! Refund issued."], "criteria": "best reply"},
            "full",
        ),
    ],
)
def test_every_node_answers_on_its_default_tier(
    service: Service, node: str, payload: dict[str, Any], start: str
) -> None:
    response = service.http.post(f"/v1/nodes/{node}", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["node"] == node and body["tier"] == start and body["routing"]["start_tier"] == start
    if node == "judge":
        assert body["output"]["verdict"] in ("pass", "fail")
        count = len(payload.get("candidates", [None]))
        assert body["output"]["best_index"] is None or 0 <= body["output"]["best_index"] < count
    elif node == "draft" and payload.get("format") != "json":
        assert isinstance(body["output"]["text"], str)
        assert len(body["output"]["text"].split()) <= 80
    else:
        assert set(payload["schema"]["required"]) <= set(body["output"])


def test_requested_tier_and_max_tier_cap(service: Service) -> None:
    body = service.http.post("/v1/nodes/classify", json={"input": "x", "labels": ["a"], "tier": "full"}).json()
    assert (body["tier"], body["routing"]["reason"]) == ("full", "requested tier full")
    capped = service.http.post("/v1/nodes/judge", json={"candidate": "x", "criteria": "c", "max_tier": "mini"}).json()
    assert capped["tier"] == "mini"
    assert capped["routing"]["reason"] == "node default (full); capped at max_tier mini"


def test_auto_moves_nested_extraction_to_mini(service: Service) -> None:
    schema = {
        "type": "object",
        "properties": {
            "customer": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
        },
        "required": ["customer"],
    }
    body = service.http.post("/v1/nodes/extract", json={"input": "Ann", "schema": schema, "tier": "auto"}).json()
    assert body["tier"] == "mini"
    assert body["routing"]["reason"] == "auto: output schema has nested objects"


def test_x_api_key_header_is_accepted(service: Service) -> None:
    response = service.anonymous.post(
        "/v1/nodes/classify", json={"input": "x", "labels": ["a"]}, headers={"X-Api-Key": CLIENT_KEY}
    )
    assert response.status_code == 200


def test_healthz_needs_no_key(service: Service) -> None:
    response = service.anonymous.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok", "sandbox": False}


def test_node_catalogue(service: Service) -> None:
    nodes = service.http.get("/v1/nodes").json()["nodes"]
    assert [(n["name"], n["default_tier"]) for n in nodes] == [
        ("classify", "nano"),
        ("extract", "nano"),
        ("draft", "mini"),
        ("judge", "full"),
    ]
    classify = nodes[0]
    assert {"input", "labels", "multi_label", "min_confidence", "tier", "max_tier", "metadata"} <= set(
        classify["input_schema"]["properties"]
    )
    assert nodes[3]["output_schema"]["required"] == ["verdict", "score", "reasons", "best_index"]


# --- upstream failure -----------------------------------------------------------------------------------


def test_all_tiers_failing_is_a_502_with_every_attempt_and_the_cost(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "schema_drift"}])
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    response = service.http.post("/v1/nodes/extract", json={"input": "Ann", "schema": schema, "metadata": {"k": 1}})
    body = assert_problem(response, 502, "run-failed")
    assert [(a["tier"], a["outcome"], a["repair"]) for a in body["attempts"]] == [
        ("nano", "invalid_output", False),
        ("nano", "invalid_output", True),
        ("mini", "invalid_output", False),
        ("mini", "invalid_output", True),
        ("full", "invalid_output", False),
        ("full", "invalid_output", True),
    ]
    total = sum(Decimal(str(a["cost_usd"])) for a in body["attempts"])
    assert body["usage"]["cost_usd"] == float(total) > 0
    assert Decimal(response.headers["x-tierwise-cost-usd"]) == sum(
        (Decimal(str(a["cost_usd"])) for a in body["attempts"]), Decimal(0)
    )
    assert body["run_id"] == response.headers["x-tierwise-run-id"]
    assert body["metadata"] == {"k": 1}
    assert "output" not in body
    assert body["detail"].startswith("every allowed tier failed (nano:invalid_output")
    [run] = db_rows(service, "SELECT status, attempt_count FROM runs WHERE run_id = ?", (body["run_id"],))
    assert (run["status"], run["attempt_count"]) == ("failed", 6)


def test_deadline_is_a_504(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    service = start_service(make_settings(run_timeout_s=0.5))
    sandbox.configure(faults=[{"kind": "slow", "delay_ms": 3000}])
    body = assert_problem(
        service.http.post("/v1/nodes/classify", json={"input": "x", "labels": ["a"]}),
        504,
        "run-deadline-exceeded",
    )
    assert body["attempts"][0]["outcome"] == "timeout"


# --- bad input --------------------------------------------------------------------------------------------


def test_missing_key_is_401(service: Service) -> None:
    response = service.anonymous.post("/v1/nodes/classify", json={"input": "x", "labels": ["a"]})
    body = assert_problem(response, 401, "unauthorized")
    assert "API key is required" in body["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer wrong-key-123"},
        {"X-Api-Key": "wrong-key-123"},
        {"Authorization": f"Basic {CLIENT_KEY}"},
        {"Authorization": "Bearer"},
    ],
)
def test_wrong_key_is_401(service: Service, headers: dict[str, str]) -> None:
    assert_problem(
        service.anonymous.post("/v1/nodes/classify", json={"input": "x", "labels": ["a"]}, headers=headers),
        401,
        "unauthorized",
    )


def test_catalogue_needs_a_key(service: Service) -> None:
    assert_problem(service.anonymous.get("/v1/nodes"), 401, "unauthorized")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (b"{not json", "not valid JSON at line 1 column 2"),
        (b"", "empty"),
        (b"[1, 2]", "must be a JSON object, not list"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_body_is_400(service: Service, content: bytes, fragment: str) -> None:
    response = service.http.post("/v1/nodes/classify", content=content, headers={"content-type": "application/json"})
    assert fragment in assert_problem(response, 400, "malformed-request")["detail"]


INVALID = [
    ("classify", {"input": "x", "labels": []}, ["labels"], "at least one label"),
    ("classify", {"input": "x"}, ["labels"], "field required"),
    ("classify", {"labels": ["a"]}, ["input"], "field required"),
    ("classify", {"input": None, "labels": ["a"]}, ["input"], "must not be null"),
    ("classify", {"input": "  ", "labels": ["a"]}, ["input"], "must not be empty"),
    ("classify", {"input": "x", "labels": ["a", "a"]}, ["labels"], "repeated: a"),
    ("classify", {"input": "x", "labels": "a,b"}, ["labels"], "valid list"),
    (
        "classify",
        {"input": "x", "labels": ["a"], "min_confidence": 1.5},
        ["min_confidence"],
        "less than or equal to 1",
    ),
    (
        "classify",
        {"input": "x", "labels": ["a"], "tier": "huge"},
        ["tier"],
        "'auto', 'nano', 'mini' or 'full'",
    ),
    (
        "classify",
        {"input": "x", "labels": ["a"], "max_tier": "auto"},
        ["max_tier"],
        "'nano', 'mini' or 'full'",
    ),
    ("classify", {"input": "x", "labels": ["a"], "max_teir": "mini"}, ["max_teir"], "unknown field"),
    ("classify", {"input": "x", "labels": ["a"], "metadata": [1]}, ["metadata"], "valid dictionary"),
    (
        "classify",
        {"input": "x", "labels": [{"name": ""}]},
        ["labels", 0, "Label", "name"],
        "at least 1 character",
    ),
    ("extract", {"input": "x"}, ["schema"], "field required"),
    ("extract", {"input": "x", "schema": "object"}, ["schema"], "valid dictionary"),
    ("draft", {"input": "x", "format": "json"}, [], "schema is required when format is json"),
    ("draft", {"input": "x", "format": "yaml"}, ["format"], "'text' or 'json'"),
    ("draft", {"input": "x", "max_words": 0}, ["max_words"], "greater than or equal to 1"),
    ("judge", {"criteria": ["ok"]}, [], "exactly one of candidate"),
    ("judge", {"candidate": "a", "candidates": ["b"], "criteria": ["ok"]}, [], "exactly one of candidate"),
    ("judge", {"candidate": "a"}, ["criteria"], "field required"),
    ("judge", {"candidate": "a", "criteria": []}, ["criteria"], "at least one non-empty criterion"),
    ("judge", {"candidates": [], "criteria": "c"}, [], "between 1 and 50"),
]


@pytest.mark.parametrize(("node", "payload", "loc", "fragment"), INVALID)
def test_invalid_fields_are_422_naming_the_field(
    service: Service, sandbox: Sandbox, node: str, payload: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    body = assert_problem(service.http.post(f"/v1/nodes/{node}", json=payload), 422, "invalid-request")
    locs = [error["loc"] for error in body["errors"]]
    assert loc in locs, locs
    assert any(fragment in error["msg"] for error in body["errors"]), body["errors"]
    assert fragment in body["detail"] or len(body["errors"]) > 1
    assert sandbox.requests() == []


@pytest.mark.parametrize(
    ("schema", "loc", "fragment"),
    [
        ({"type": 5, "properties": {}}, ["schema", "type"], "is not valid"),
        ({"type": "array", "items": {"type": "string"}}, ["schema"], "object"),
        (
            {"type": "object", "properties": {"a": {"allOf": [{"type": "string"}]}}},
            ["schema", "properties", "a", "allOf"],
            "allOf",
        ),
        (
            {
                "type": "object",
                "properties": {"tags": {"type": "object", "additionalProperties": {"type": "string"}}},
            },
            ["schema", "properties", "tags", "additionalProperties"],
            "additionalProperties",
        ),
    ],
)
def test_unsupported_schema_is_422_with_the_place(
    service: Service, sandbox: Sandbox, schema: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    body = assert_problem(
        service.http.post("/v1/nodes/extract", json={"input": "x", "schema": schema}),
        422,
        "unsupported-schema",
    )
    assert any(error["loc"][: len(loc)] == loc and fragment in error["msg"] for error in body["errors"]), body["errors"]
    assert sandbox.requests() == []


def test_unknown_node_is_404(service: Service) -> None:
    body = assert_problem(service.http.post("/v1/nodes/summarize", json={"input": "x"}), 404, "not-found")
    assert body["detail"] == "there is no node 'summarize'; the nodes are: classify, extract, draft, judge"


def test_unknown_path_is_404_and_wrong_method_405(service: Service) -> None:
    assert_problem(service.http.get("/v2/nothing"), 404, "not-found")
    wrong = service.http.get("/v1/nodes/classify")
    assert_problem(wrong, 405, "method-not-allowed")
    assert wrong.headers["allow"] == "POST"
    assert service.http.post("/v1/runs/run_x").headers["allow"] == "GET"


def test_body_over_the_limit_is_413(
    start_service: Callable[[Settings], Service], make_settings: Callable[..., Settings], sandbox: Sandbox
) -> None:
    service = start_service(make_settings(max_body_bytes=2000))
    big = {"input": "x" * 5000, "labels": ["a"]}
    body = assert_problem(service.http.post("/v1/nodes/classify", json=big), 413, "payload-too-large")
    assert "2000" in body["detail"]

    def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 500

    chunked = service.http.post("/v1/nodes/classify", content=chunks(), headers={"content-type": "application/json"})
    assert_problem(chunked, 413, "payload-too-large")
    assert sandbox.requests() == []


def post_slowly(service: Service, path: str, declared: int, parts: list[bytes], interval_s: float) -> bytes:
    """POST over a raw socket, sending ``parts`` of a body of ``declared`` bytes ``interval_s`` apart; the answer."""
    address = urlsplit(service.url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {service.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode())
        for part in parts:
            if select.select([sock], [], [], interval_s)[0]:
                break  # the service has answered: stop sending, read what it said
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_body_shorter_than_its_content_length_is_a_408(pooled_service: Callable[..., Service]) -> None:
    service = pooled_service(body_timeout_s=0.5)
    started = time.monotonic()
    answer = post_slowly(service, "/v1/nodes/classify", 1000, [b'{"input": "x", '], 0)
    elapsed = time.monotonic() - started
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"content-type: application/problem+json" in head.lower() and b"connection: close" in head.lower()
    problem = json.loads(body)
    assert (problem["type"], problem["status"]) == ("/problems/request-timeout", 408)
    assert problem["detail"] == "the request body did not arrive within 0.5 s (TIERWISE_BODY_TIMEOUT_S)"
    assert 0.5 <= elapsed < 5


def test_a_body_trickling_past_the_deadline_is_a_408(pooled_service: Callable[..., Service]) -> None:
    service = pooled_service(body_timeout_s=0.5)
    started = time.monotonic()
    answer = post_slowly(service, "/v1/nodes/classify/batch", 100, [b" "] * 100, 0.05)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert 0.5 <= elapsed < 3  # every byte came in time, but the whole body did not


def test_a_client_gone_before_its_body_ends_is_one_line_of_log(
    pooled_service: Callable[..., Service], caplog: pytest.LogCaptureFixture
) -> None:
    service = pooled_service()
    address = urlsplit(service.url)
    with caplog.at_level(logging.INFO, logger="tierwise"):
        with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
            sock.sendall(
                f"POST /v1/nodes/classify HTTP/1.1\r\nHost: {address.netloc}\r\nAuthorization: Bearer {service.key}"
                f'\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{"input": '.encode()
            )
            time.sleep(0.1)
        deadline = time.monotonic() + 5
        while not any("disconnected" in record.getMessage() for record in caplog.records):
            assert time.monotonic() < deadline, [record.getMessage() for record in caplog.records]
            time.sleep(0.02)
    [record] = [record for record in caplog.records if record.name == "tierwise"]
    assert (record.levelno, record.exc_info) == (logging.INFO, None)
    assert record.getMessage() == "POST /v1/nodes/classify: the client disconnected before its request was read"


# --- hostile bodies: refused with the place, never a 500 or a 502 ----------------------------------------


def deep_arrays(levels: int) -> str:
    return "[" * levels + "]" * levels


def deep_schema(levels: int) -> str:
    return '{"type": "array", "items": ' * levels + '{"type": "string"}' + "}" * levels


def loop_schema(defs: dict[str, Any]) -> str:
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/a"}}, "required": ["a"], "$defs": defs}
    return json.dumps({"input": "x", "schema": schema})


NINES = "9" * 5000
HOSTILE = [
    ("deep-metadata", "classify", f'{{"input": "x", "labels": ["a"], "metadata": {{"a": {deep_arrays(10_000)}}}}}',
     422, "invalid-request", ["metadata", "a", 0], "metadata.a[0][0]", "nested more than 64 levels deep"),
    ("deep-input", "classify", f'{{"input": {deep_arrays(10_000)}, "labels": ["a"]}}',
     422, "invalid-request", ["input", 0], "input[0][0]", "nested more than 64 levels deep"),
    ("deep-schema", "extract", f'{{"input": "x", "schema": {{"type": "object", "properties": {{"a": '
     f"{deep_schema(10_000)}}}}}}}",
     422, "invalid-request", ["schema", "properties", "a", "items"], "schema.properties.a.items.items",
     "nested more than 64 levels deep"),
    ("long-int-metadata", "classify", f'{{"input": "x", "labels": ["a"], "metadata": {{"n": {NINES}}}}}',
     422, "invalid-request", ["metadata", "n"], "metadata.n: ", "more than 4,300 digits"),
    ("long-int-input", "classify", f'{{"input": {{"total": [1, {NINES}]}}, "labels": ["a"]}}',
     422, "invalid-request", ["input", "total", 1], "input.total[1]: ", "more than 4,300 digits"),
    ("long-int-field", "classify", f'{{"input": "x", "labels": ["a"], "min_confidence": {NINES}}}',
     422, "invalid-request", ["min_confidence"], "min_confidence: ", "more than 4,300 digits"),
    ("long-int-schema", "extract", f'{{"input": "x", "schema": {{"type": "object", "properties": {{"a": '
     f'{{"type": "integer", "maximum": {NINES}}}}}}}}}',
     422, "invalid-request", ["schema", "properties", "a", "maximum"], "schema.properties.a.maximum: ",
     "more than 4,300 digits"),
    ("nan-metadata", "classify", '{"input": "x", "labels": ["a"], "metadata": {"score": NaN}}',
     400, "malformed-request", ["metadata", "score"], "metadata.score: ", "NaN is not valid JSON"),
    ("infinity-metadata", "classify", '{"input": "x", "labels": ["a"], "metadata": {"v": [Infinity]}}',
     400, "malformed-request", ["metadata", "v", 0], "metadata.v[0]: ", "Infinity is not valid JSON"),
    ("minus-infinity-metadata", "classify", '{"input": "x", "labels": ["a"], "metadata": {"v": -Infinity}}',
     400, "malformed-request", ["metadata", "v"], "metadata.v: ", "-Infinity is not valid JSON"),
    ("surrogate-metadata", "classify", '{"input": "x", "labels": ["a"], "metadata": {"s": "\\ud800"}}',
     400, "malformed-request", ["metadata", "s"], "metadata.s: ", "lone UTF-16 surrogate (\\ud800)"),
    ("surrogate-input", "classify", '{"input": "refund \\ud800 please", "labels": ["a"]}',
     400, "malformed-request", ["input"], "input: ", "lone UTF-16 surrogate (\\ud800)"),
    ("surrogate-label", "classify", '{"input": "x", "labels": ["billing", "bug\\ud800"]}',
     400, "malformed-request", ["labels", 1], "labels[1]: ", "lone UTF-16 surrogate (\\ud800)"),
    ("nan-schema-minimum", "extract", '{"input": "x", "schema": {"type": "object", "properties": '
     '{"a": {"type": "number", "minimum": NaN}}}}',
     400, "malformed-request", ["schema", "properties", "a", "minimum"], "schema.properties.a.minimum: ",
     "NaN is not valid JSON"),
    ("ref-loop", "extract", loop_schema({"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}),
     422, "unsupported-schema", ["schema", "$defs", "b", "$ref"], "(at schema.$defs.b.$ref)",
     "#/$defs/a → #/$defs/b → #/$defs/a"),
    ("ref-self", "extract", loop_schema({"a": {"$ref": "#/$defs/a"}}),
     422, "unsupported-schema", ["schema", "$defs", "a", "$ref"], "(at schema.$defs.a.$ref)",
     "#/$defs/a → #/$defs/a"),
    ("ref-loop-anyof", "extract", loop_schema({"a": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "string"}]}}),
     422, "unsupported-schema", ["schema", "$defs", "a", "anyOf", 0, "$ref"], "(at schema.$defs.a.anyOf[0].$ref)",
     "recursive schemas are supported only through properties or items"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("node", "content", "status", "slug", "loc", "place", "fragment"),
    [case[1:] for case in HOSTILE],
    ids=[case[0] for case in HOSTILE],
)
def test_hostile_bodies_are_refused_with_the_place(
    service: Service,
    sandbox: Sandbox,
    node: str,
    content: str,
    status: int,
    slug: str,
    loc: list[Any],
    place: str,
    fragment: str,
) -> None:
    response = service.http.post(
        f"/v1/nodes/{node}", content=content.encode(), headers={"content-type": "application/json"}
    )
    body = assert_problem(response, status, slug)
    assert place in body["detail"] and fragment in body["detail"], body["detail"]
    assert any(error["loc"][: len(loc)] == loc for error in body["errors"]), body["errors"]
    assert sandbox.requests() == []
    assert service.http.get("/healthz").json()["status"] == "ok"


def test_hostile_batch_item_is_refused_with_its_place(service: Service, sandbox: Sandbox) -> None:
    content = b'{"items": [{"input": "ok"}, {"input": "\\udfff"}], "defaults": {"labels": ["a"]}}'
    response = service.http.post(
        "/v1/nodes/classify/batch", content=content, headers={"content-type": "application/json"}
    )
    body = assert_problem(response, 400, "malformed-request")
    assert body["detail"].startswith("items[1].input: this string contains a lone UTF-16 surrogate (\\udfff)")
    assert body["errors"][0]["loc"] == ["items", 1, "input"]
    assert sandbox.requests() == []


MIDDLE = {
    "input": "word " * 500,
    "labels": ["billing", "bug"],
    "instructions": "Use bug if it is a defect.",
    "tier": "auto",
}


def test_auto_asks_nano_when_the_rules_are_unsure(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "content", "model": "*nano*", "times": 1,
                               "content": '{"label": "COMPLEX", "confidence": 0.8}'}])  # fmt: skip
    body = service.http.post("/v1/nodes/classify", json=MIDDLE).json()
    assert body["routing"]["start_tier"] == "full"
    assert body["routing"]["reason"] == "auto: nano rated the task COMPLEX → full"
    routing, answer = body["attempts"]
    assert (routing["tier"], routing["outcome"], routing["purpose"]) == ("nano", "ok", "routing")
    assert (answer["tier"], answer["outcome"]) == ("full", "ok") and "purpose" not in answer
    assert body["tier"] == "full" and body["escalated"] is False
    assert body["usage"]["cost_usd"] == float(Decimal(str(routing["cost_usd"])) + Decimal(str(answer["cost_usd"])))
    first_request = sandbox.requests()[0]["body"]
    assert "SIMPLE" in json.dumps(first_request["response_format"])


def test_auto_falls_back_to_mini_when_the_nano_check_fails(service: Service, sandbox: Sandbox) -> None:
    sandbox.configure(faults=[{"kind": "non_json", "model": "*nano*", "times": 2}])
    body = service.http.post("/v1/nodes/classify", json=MIDDLE).json()
    assert body["routing"]["start_tier"] == "mini"
    assert body["routing"]["reason"] == (
        "auto: the nano complexity check failed (the reply is not valid JSON (Expecting value at line 1 column 1)); "
        "starting on mini"
    )
    assert [(a["tier"], a.get("purpose")) for a in body["attempts"]] == [
        ("nano", "routing"),
        ("nano", "routing"),
        ("mini", None),
    ]


def test_readiness_names_what_it_checked(service: Service) -> None:
    ready = service.anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "storage": {"ok": True, "engine": "sqlite"},
        "jobs": {"running": True},
        "deliveries": {"running": True},
    }
