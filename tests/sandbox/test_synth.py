"""``synthesize``: valid instances for a varied set of schemas and for generated ones."""

from __future__ import annotations

import ipaddress
import json
import random
import re
import uuid
from datetime import date, datetime, time
from typing import Any
from urllib.parse import urlparse

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import interrupted_after

from nodes.patterns import MAX_PATTERN_CHARS, search
from nodes.sandbox import synthesize
from nodes.sandbox.synth import WORDS, mentioned

FORMAT_CHECKER = jsonschema.FormatChecker()
# jsonschema checks these only with optional extra packages; check them with the standard library.


@FORMAT_CHECKER.checks("date-time", raises=ValueError)
def is_date_time(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).tzinfo is not None


@FORMAT_CHECKER.checks("time", raises=ValueError)
def is_time(value: object) -> bool:
    return not isinstance(value, str) or time.fromisoformat(value).tzinfo is not None


@FORMAT_CHECKER.checks("uri")
def is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlparse(value).scheme and urlparse(value).netloc)


@FORMAT_CHECKER.checks("hostname")
def is_hostname(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"[a-z0-9]+(\.[a-z0-9-]+)+", value))


@FORMAT_CHECKER.checks("duration")
def is_duration(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"P(T\d+[HMS])+", value))


def assert_valid(schema: dict[str, Any], instance: Any) -> None:
    jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER).validate(instance)


def obj(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        **extra,
    }


TREE = {
    "$defs": {
        "node": obj(
            {
                "name": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                "parent": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
            }
        )
    },
    **obj({"root": {"$ref": "#/$defs/node"}}),
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "flat": obj({"label": {"type": "string"}, "count": {"type": "integer"}, "ok": {"type": "boolean"}}),
    "classify": obj(
        {
            "label": {"type": "string", "enum": ["billing", "technical", "sales"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "reasoning": {"type": "string"},
        }
    ),
    "nested": obj(
        {
            "customer": obj({"name": {"type": "string"}, "email": {"type": "string", "format": "email"}}),
            "order": obj({"id": {"type": "string", "format": "uuid"}, "total": {"type": "number", "minimum": 0}}),
        }
    ),
    "arrays": obj(
        {
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
            "empty": {"type": "array", "items": {"type": "integer"}, "maxItems": 0},
            "exact": {"type": "array", "items": {"type": "boolean"}, "minItems": 5, "maxItems": 5},
            "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
            "unique": {"type": "array", "items": {"enum": [1, 2, 3]}, "minItems": 3, "uniqueItems": True},
        }
    ),
    "enums-and-consts": obj(
        {
            "mixed": {"enum": [None, 3, "x", {"a": 1}]},
            "fixed": {"const": "v1"},
            "object-const": {"const": {"k": [1, 2]}},
        }
    ),
    "nullable": obj(
        {
            "maybe": {"type": ["string", "null"]},
            "null-first": {"type": ["null", "integer"], "minimum": 10, "maximum": 10},
            "any-of": {"anyOf": [{"type": "null"}, {"type": "string", "format": "date"}]},
            "only-null": {"type": "null"},
        }
    ),
    "any-of-objects": obj(
        {
            "payment": {
                "anyOf": [
                    obj({"card": {"type": "string", "pattern": "^\\d{4}$"}}),
                    obj({"iban": {"type": "string"}}),
                ]
            },
            "one-of": {"oneOf": [{"type": "integer"}, {"type": "string", "maxLength": 3}]},
        }
    ),
    "defs-and-refs": {
        "$defs": {"Money": obj({"amount": {"type": "number", "multipleOf": 0.01}, "currency": {"enum": ["EUR"]}})},
        "definitions": {"Id": {"type": "string", "format": "uuid"}},
        **obj({"price": {"$ref": "#/$defs/Money"}, "id": {"$ref": "#/definitions/Id"}}),
    },
    "recursive-tree": TREE,
    "recursive-root": {
        **obj({"value": {"type": "integer"}, "next": {"anyOf": [{"$ref": "#"}, {"type": "null"}]}}),
    },
    "formats": obj(
        {
            fmt.replace("-", "_"): {"type": "string", "format": fmt}
            for fmt in (
                "date-time",
                "date",
                "time",
                "duration",
                "email",
                "uuid",
                "uri",
                "hostname",
                "ipv4",
                "ipv6",
            )
        }
    ),
    "string-bounds": obj(
        {
            "short": {"type": "string", "maxLength": 3},
            "long": {"type": "string", "minLength": 40},
            "exact": {"type": "string", "minLength": 7, "maxLength": 7},
            "summary": {"type": "string", "maxLength": 30},
            "code": {"type": "string", "pattern": "^[A-Z]{3}-\\d{3}$"},
            "invoice": {"type": "string", "pattern": "^INV-\\d{4}-\\d{4}$"},
            "digits": {"type": "string", "pattern": "^[0-9]+$", "minLength": 5},
        }
    ),
    "numeric-bounds": obj(
        {
            "pct": {"type": "integer", "minimum": 0, "maximum": 100, "multipleOf": 5},
            "exclusive": {"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 5},
            "negative": {"type": "integer", "maximum": -10},
            "fraction": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 0.001},
            "tenth": {"type": "number", "minimum": 0.25, "maximum": 0.75, "multipleOf": 0.1},
            "float-bound-int": {"type": "integer", "minimum": 2.5, "maximum": 3.5},
            "score": {"type": "number", "minimum": 1, "maximum": 10},
            "confidence": {"type": "number", "exclusiveMaximum": 0.5, "minimum": 0},
            "big": {"type": "number", "minimum": 1e9, "multipleOf": 0.5},
        }
    ),
    "all-of": {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {"$ref": "#/$defs/B"},
        ],
        "$defs": {"B": {"properties": {"b": {"type": "string", "format": "date"}}, "required": ["b"]}},
    },
    "untyped": {"properties": {"x": {}, "y": True, "z": {"minimum": 3}}, "required": ["x", "y", "z"]},
    "ref-with-siblings": {
        "$defs": {"Base": {"type": "integer", "minimum": 0}},
        **obj({"n": {"$ref": "#/$defs/Base", "maximum": 0}}),
    },
}


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_synthesized_instance_is_valid(name: str) -> None:
    schema = SCHEMAS[name]
    jsonschema.Draft202012Validator.check_schema(schema)
    for seed in range(20):
        assert_valid(schema, synthesize(schema, random.Random(seed)))


@pytest.mark.parametrize("name", list(SCHEMAS))
def test_deterministic_for_a_seed(name: str) -> None:
    schema = SCHEMAS[name]
    assert synthesize(schema, random.Random(42)) == synthesize(schema, random.Random(42))


def test_seeds_vary_the_output() -> None:
    outputs = {json.dumps(synthesize(SCHEMAS["classify"], random.Random(seed))) for seed in range(10)}
    assert len(outputs) > 1


def test_realism_heuristics() -> None:
    instance = synthesize(SCHEMAS["classify"], random.Random(1))
    assert instance["confidence"] == 0.9
    assert instance["label"] in {"billing", "technical", "sales"}
    schema = obj({name: {"type": "string"} for name in ("text", "summary", "reply", "body", "other")})
    instance = synthesize(schema, random.Random(1))
    for name in ("text", "summary", "reply", "body"):
        assert instance[name][0].isupper() and instance[name].endswith(".")
        assert len(instance[name].split()) >= 8
    assert instance["other"] in WORDS


def test_confidence_outside_unit_range_is_not_forced() -> None:
    schema = obj({"confidence": {"type": "number", "minimum": 1, "maximum": 5}, "score": {"type": "integer"}})
    instance = synthesize(schema, random.Random(1))
    assert 1 <= instance["confidence"] <= 5
    assert isinstance(instance["score"], int)


def test_prefers_non_null_branches() -> None:
    for seed in range(10):
        instance = synthesize(SCHEMAS["nullable"], random.Random(seed))
        assert instance["maybe"] in WORDS
        assert instance["null-first"] == 10
        assert date.fromisoformat(instance["any-of"])
        assert instance["only-null"] is None


def test_first_non_null_any_of_branch() -> None:
    instance = synthesize(SCHEMAS["any-of-objects"], random.Random(0))
    assert set(instance["payment"]) == {"card"}
    assert isinstance(instance["one-of"], int)


def test_recursion_terminates_and_nests() -> None:
    instance = synthesize(TREE, random.Random(0))

    def depth(node: dict[str, Any] | None) -> int:
        if node is None:
            return 0
        return 1 + max([depth(node["parent"]), *(depth(child) for child in node["children"])])

    assert 2 <= depth(instance["root"]) <= 8
    chain = synthesize(SCHEMAS["recursive-root"], random.Random(0))
    links = 0
    while chain is not None:
        chain, links = chain["next"], links + 1
    assert 2 <= links <= 8


def test_self_reference_with_no_finite_instance_gives_up() -> None:
    assert synthesize({"$ref": "#"}, random.Random(0)) is None


def test_formats_are_well_formed() -> None:
    instance = synthesize(SCHEMAS["formats"], random.Random(3))
    assert datetime.fromisoformat(instance["date_time"]).tzinfo is not None
    assert uuid.UUID(instance["uuid"]).version == 4
    assert ipaddress.ip_address(instance["ipv4"]).version == 4
    assert ipaddress.ip_address(instance["ipv6"]).version == 6
    assert instance["email"].endswith("@example.com")
    assert instance["uri"].startswith("https://example.com/")


def test_string_and_number_bounds() -> None:
    strings = synthesize(SCHEMAS["string-bounds"], random.Random(5))
    assert strings["code"] == "ABC-123"
    assert strings["invoice"] == "INV-2025-0001"
    assert strings["digits"] == "12345"
    assert len(strings["exact"]) == 7
    numbers = synthesize(SCHEMAS["numeric-bounds"], random.Random(5))
    assert numbers["exclusive"] == 4
    assert numbers["float-bound-int"] == 3
    assert round(numbers["tenth"], 10) in (0.3, 0.4, 0.5, 0.6, 0.7)
    assert numbers["confidence"] != 0.9


def test_unsatisfiable_pattern_falls_back_to_a_word() -> None:
    value = synthesize({"type": "string", "pattern": "^zz[0-9]{9}q$"}, random.Random(0))
    assert value in WORDS


def test_candidates_are_tried_without_backtracking() -> None:
    # A sentence ends in a full stop, which a backtracking engine refuses here only after trying every split.
    schema = obj(
        {"summary": {"type": "string", "pattern": r"^(\w+\s?)*$"}, "code": {"type": "string", "pattern": "^(a+)+$"}}
    )
    with interrupted_after(1):
        values = [synthesize(schema, random.Random(seed)) for seed in range(20)]
    for value in values:
        assert search(r"^(\w+\s?)*$", value["summary"]) and value["code"] == "a"


@pytest.mark.parametrize("pattern", ["^(?=.*[0-9])[a-z0-9]+$", r"^(\w)\1$", "(", "a" * (MAX_PATTERN_CHARS + 1)])
def test_a_pattern_the_engine_cannot_run_falls_back_to_a_word(pattern: str) -> None:
    assert synthesize({"type": "string", "pattern": pattern}, random.Random(0)) in WORDS


# -- property test over generated schemas ---------------------------------------------------------

PROPERTY_NAMES = st.sampled_from(
    [
        "label",
        "confidence",
        "score",
        "summary",
        "text",
        "reply",
        "id",
        "count",
        "items",
        "when",
        "note",
        "amount",
    ]
)
FORMATS = ["date-time", "date", "time", "duration", "email", "uuid", "uri", "hostname", "ipv4", "ipv6"]
PATTERNS = ["^[a-z]+$", "^[A-Z]{3}-\\d{3}$", "^\\d+$", "^INV-\\d{4}-\\d{4}$", "@", "^[a-z]{2}(-[A-Z]{2})?$"]
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=6))


@st.composite
def string_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    variant = draw(st.sampled_from(["plain", "format", "pattern", "enum"]))
    if variant == "format":
        schema["format"] = draw(st.sampled_from(FORMATS))
    elif variant == "pattern":
        schema["pattern"] = draw(st.sampled_from(PATTERNS))
    elif variant == "enum":
        schema["enum"] = draw(st.lists(st.text(max_size=8), min_size=1, max_size=5, unique=True))
    else:
        low = draw(st.integers(0, 12))
        if draw(st.booleans()):
            schema["minLength"] = low
        if draw(st.booleans()):
            schema["maxLength"] = low + draw(st.integers(0, 30))
    return schema


@st.composite
def integer_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    low = draw(st.integers(-10_000, 10_000))
    step = draw(st.sampled_from([None, 1, 2, 3, 5, 7, 10]))
    span = draw(st.integers((step or 1) + 2, 500))
    if draw(st.booleans()):
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = low + span
    if step is not None:
        schema["multipleOf"] = step
    return schema


@st.composite
def number_schemas(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "number"}
    low = draw(st.floats(-10_000, 10_000, allow_nan=False, allow_infinity=False))
    step = draw(st.sampled_from([None, 0.5, 0.25, 0.1, 0.01, 2, 5]))
    span = draw(st.floats(0.001 if step is None else 50 * step, 1000))
    if draw(st.booleans()):
        schema["exclusiveMinimum" if draw(st.booleans()) else "minimum"] = low
    if draw(st.booleans()):
        schema["exclusiveMaximum" if draw(st.booleans()) else "maximum"] = low + span
    if step is not None:
        schema["multipleOf"] = step
    return schema


LEAVES = st.one_of(
    string_schemas(),
    integer_schemas(),
    number_schemas(),
    st.just({"type": "boolean"}),
    st.just({"type": "null"}),
    JSON_SCALARS.map(lambda value: {"const": value}),
    st.lists(JSON_SCALARS, min_size=1, max_size=4, unique_by=json.dumps).map(lambda values: {"enum": values}),
)


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if isinstance(schema.get("type"), str) and schema["type"] != "null" and "enum" not in schema:
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def containers(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.dictionaries(PROPERTY_NAMES, children, max_size=4).map(obj),
        st.builds(
            lambda items, low, extra: {
                "type": "array",
                "items": items,
                "minItems": low,
                "maxItems": low + extra,
            },
            children,
            st.integers(0, 3),
            st.integers(0, 3),
        ),
        children.map(nullable),
        st.lists(children, min_size=1, max_size=3).map(lambda branches: {"anyOf": branches}),
    )


SCHEMA_TREES = st.recursive(LEAVES, containers, max_leaves=12)


@st.composite
def root_schemas(draw: st.DrawFn) -> dict[str, Any]:
    properties = draw(st.dictionaries(PROPERTY_NAMES, SCHEMA_TREES, min_size=1, max_size=5))
    if not draw(st.booleans()):
        return obj(properties)
    definition = draw(SCHEMA_TREES)
    recursive = obj({"value": definition, "next": {"anyOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}]}})
    return {
        "$defs": {"Item": recursive},
        **obj(
            {
                **properties,
                "item": {"$ref": "#/$defs/Item"},
                "list": {"type": "array", "items": {"$ref": "#"}},
            }
        ),
    }


@settings(max_examples=150, deadline=None)
@given(schema=root_schemas(), seed=st.integers(0, 2**32))
def test_generated_schemas_give_valid_deterministic_instances(schema: dict[str, Any], seed: int) -> None:
    instance = synthesize(schema, random.Random(seed))
    assert_valid(schema, instance)
    assert synthesize(schema, random.Random(seed)) == instance


def test_enum_member_mentioned_in_the_hint_is_preferred() -> None:
    schema = {"type": "string", "enum": ["billing", "bug", "feature_request"]}
    for seed in range(20):
        rng = random.Random(seed)
        assert synthesize(schema, rng, "There is a billing problem on my card") == "billing"
        assert synthesize(schema, rng, "A feature request: dark mode") == "feature_request"
    picks = {synthesize(schema, random.Random(seed), "nothing relevant here") for seed in range(40)}
    assert picks == {"billing", "bug", "feature_request"}
    assert mentioned(["bug", "billing"], "debugging the app") == []
