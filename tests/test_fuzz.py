"""Whatever a client sends, the service answers with a success or a 4xx problem, never a 500."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support import Sandbox, Service

PROBLEM = "application/problem+json"

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


# --- hostile values in random places of otherwise valid requests --------------------------------------------

SLOT = "@slot@"  # replaced by the hostile text; no strategy here draws an "@"
plain_text = st.text(st.characters(exclude_characters="@", exclude_categories=("Cs",)), max_size=10)
finite_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**63), st.floats(allow_nan=False, allow_infinity=False),
    plain_text,
)  # fmt: skip
plain_values = st.recursive(
    finite_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(plain_text, children, max_size=3),
    max_leaves=6,
)
SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["name"],
}
VALID = {
    "classify": {"input": "I was charged twice", "labels": ["billing", "bug"], "metadata": {"item": 1}},
    "extract": {"input": {"text": "Ann Lee", "lines": ["a", "b"]}, "schema": SCHEMA, "metadata": {}},
    "draft": {"input": "Write a reply", "max_words": 40, "metadata": {"flow": "x"}},
    "judge": {"candidate": {"reply": "Refunded."}, "criteria": ["polite"], "metadata": {}},
}


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, str, int, str]:
    """(JSON text, where it goes: value or key, status, what the detail says) for one hostile value."""
    kind = draw(st.sampled_from(["deep", "long-int", "constant", "overflow", "surrogate", "surrogate-key"]))
    if kind == "deep":
        levels = draw(st.integers(65, 5_000))
        opener = draw(st.sampled_from(["[", '{"k":']))
        closer = "]" if opener == "[" else "}"
        return opener * levels + "0" + closer * levels, "value", 422, "levels deep"
    if kind == "long-int":
        digits = draw(st.integers(4_301, 20_000))
        return draw(st.sampled_from(["", "-"])) + "7" * digits, "value", 422, "4,300 digits"
    if kind == "constant":
        return draw(st.sampled_from(["NaN", "Infinity", "-Infinity"])), "value", 400, "is not valid JSON"
    if kind == "overflow":
        return draw(st.sampled_from(["1e400", "-2.5E+309", "9" * 400 + ".5"])), "value", 422, "too large"
    code = draw(st.integers(0xD800, 0xDFFF))
    text = json.dumps(draw(plain_text))[1:-1]
    escaped = f'"{text}\\u{code:04x}{text}"'
    return escaped, ("key" if kind == "surrogate-key" else "value"), 400, "lone UTF-16 surrogate"


@st.composite
def request(draw: st.DrawFn, node: str) -> dict[str, Any]:
    """A valid request for ``node`` with random metadata."""
    return {**VALID[node], "metadata": draw(st.dictionaries(plain_text, plain_values, max_size=3))}


@st.composite
def placed(draw: st.DrawFn, value: Any, depth: int = 0) -> tuple[Any, tuple[str | int, ...]]:
    """A copy of ``value`` with :data:`SLOT` put in one random place (a value, or a new key), and that place."""
    if isinstance(value, dict) and (not value or depth == 0 or draw(st.booleans())):
        keys = sorted(value)
        choice = draw(st.sampled_from([*keys, SLOT]) if keys else st.just(SLOT))
        if choice == SLOT:
            return {**value, SLOT: SLOT}, (SLOT,)
        inner, where = draw(placed(value[choice], depth + 1))
        return {**value, choice: inner}, (choice, *where)
    if isinstance(value, list) and value and draw(st.booleans()):
        index = draw(st.integers(0, len(value) - 1))
        inner, where = draw(placed(value[index], depth + 1))
        return [*value[:index], inner, *value[index + 1 :]], (index, *where)
    return SLOT, ()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(node=st.sampled_from(sorted(VALID)), data=st.data())
def test_hostile_value_anywhere_is_a_client_error_at_its_place(
    service: Service, sandbox: Sandbox, node: str, data: st.DataObject
) -> None:
    text, role, status, fragment = data.draw(hostile())
    body, where = data.draw(placed(data.draw(request(node))))
    raw = json.dumps(body)
    if where[-1] == SLOT:  # a new member of an object: the hostile key, or the hostile value under "extra"
        where = where[:-1] if role == "key" else (*where[:-1], "extra")
        raw = raw.replace(f'"{SLOT}": "{SLOT}"', f"{text}: 0" if role == "key" else f'"extra": {text}')
    else:  # in place of a value: the hostile value, or an object holding the hostile key
        raw = raw.replace(f'"{SLOT}"', f"{{{text}: 0}}" if role == "key" else text)
    response = service.http.post(
        f"/v1/nodes/{node}", content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    assert problem["status"] == status and fragment in problem["detail"]
    [error] = problem["errors"]
    assert error["loc"][: len(where)] == list(where), (error["loc"][:10], where)
    assert sandbox.requests() == []
    assert service.anonymous.get("/healthz").json()["status"] == "ok"


edge_values = st.one_of(
    st.just("9" * 4_300), st.just("-" + "9" * 4_300), st.just("1.7976931348623157e308"), st.just("5e-324"),
    st.just("-0.0"), st.just('"\\ud83d\\ude00 \\u00e9 \\u0000"'), st.just('"\\uffff\\ufffe"'),
    st.integers(1, 40).map(lambda n: "[" * n + "]" * n), st.integers(1, 40).map(lambda n: '{"k":' * n + "1" + "}" * n),
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(node=st.sampled_from(sorted(VALID)), data=st.data())
def test_values_at_the_edge_of_the_limits_never_break_the_service(
    service: Service, sandbox: Sandbox, node: str, data: st.DataObject
) -> None:
    text = data.draw(edge_values)
    body, _ = data.draw(placed(data.draw(request(node))))
    raw = json.dumps(body).replace(f'"{SLOT}": "{SLOT}"', f'"extra": {text}').replace(f'"{SLOT}"', text)
    response = service.http.post(
        f"/v1/nodes/{node}", content=raw.encode(), headers={"content-type": "application/json"}
    )
    assert response.status_code in (200, 400, 422), response.text[:500]
    if response.status_code != 200:
        assert response.headers["content-type"] == PROBLEM and response.json()["detail"]
    assert service.anonymous.get("/healthz").json()["status"] == "ok"
