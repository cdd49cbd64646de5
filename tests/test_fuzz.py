"""Whatever a client sends, the service answers with a success or a 4xx problem, never a 500."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import Sandbox, Service

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False), st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "input",
    "instructions",
    "tier",
    "max_tier",
    "metadata",
    "labels",
    "multi_label",
    "min_confidence",
    "schema",
    "format",
    "max_words",
    "candidate",
    "candidates",
    "criteria",
    "callback_url",
]
TYPES = ["object", "string", "integer", "number", "boolean", "array", "null", "thing", 3]
schemas = st.recursive(
    st.fixed_dictionaries({"type": st.sampled_from(TYPES)}),
    lambda children: st.fixed_dictionaries(
        {"type": st.sampled_from(TYPES)},
        optional={
            "properties": st.dictionaries(st.text(min_size=1, max_size=6), children, max_size=3),
            "items": children,
            "required": st.lists(st.text(max_size=6), max_size=3),
            "enum": st.lists(json_scalars, max_size=3),
            "anyOf": st.lists(children, max_size=2),
            "additionalProperties": st.one_of(st.booleans(), children),
            "$ref": st.sampled_from(["#", "#/$defs/x", "http://example.com/s.json", 5]),
            "allOf": st.lists(children, max_size=2),
        },
    ),
    max_leaves=8,
)
field_values = st.one_of(json_values, schemas, st.sampled_from(["auto", "nano", "mini", "full", "text", "json"]))
bodies = st.dictionaries(st.sampled_from(FIELDS), field_values, max_size=7)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(node=st.sampled_from(["classify", "extract", "draft", "judge", "other"]), body=bodies)
def test_any_json_body_gets_success_or_a_client_error(
    service: Service, sandbox: Sandbox, node: str, body: dict[str, Any]
) -> None:
    response = service.http.post(
        f"/v1/nodes/{node}", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert response.status_code in (200, 400, 404, 422), response.text
    if response.status_code != 200:
        problem = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert problem["status"] == response.status_code and problem["detail"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200))
def test_any_bytes_get_a_client_error(service: Service, raw: bytes) -> None:
    response = service.http.post("/v1/nodes/classify", content=raw, headers={"content-type": "application/json"})
    assert response.status_code in (400, 422), response.text
