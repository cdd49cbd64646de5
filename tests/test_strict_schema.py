from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from support import interrupted_after

from nodes.errors import FieldIssue, UnsupportedSchema
from nodes.patterns import UnsupportedPattern, program_size
from nodes.strict_schema import (
    MAX_JSON_DEPTH,
    MAX_TOTAL_PATTERN_SIZE,
    check_user_schema,
    restore_optional,
    to_strict,
)

Schema = dict[str, Any]
Loc = tuple[str | int, ...]


def obj(props: dict[str, Any], required: list[str] | None = None, **extra: Any) -> Schema:
    """A user-style object schema (``required`` omitted when None)."""
    schema: Schema = {"type": "object", "properties": props}
    if required is not None:
        schema["required"] = required
    schema.update(extra)
    return schema


def sobj(props: dict[str, Any], **extra: Any) -> Schema:
    """The strict form of an object schema: every property required, no extra properties."""
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": False,
        **extra,
    }


def with_field(field: Any, **root_extra: Any) -> Schema:
    """A root object with a single required property ``field``."""
    return obj({"field": field}, ["field"], **root_extra)


FIELD = ("schema", "properties", "field")


def problems(schema: Any, **kwargs: Any) -> list[FieldIssue]:
    with pytest.raises(UnsupportedSchema) as info:
        to_strict(schema, **kwargs)
    assert info.value.status == 422
    assert info.value.errors, "an UnsupportedSchema must carry at least one FieldIssue"
    return info.value.errors


def containers(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from containers(child)
    elif isinstance(value, list):
        yield value
        for child in value:
            yield from containers(child)


# ---------------------------------------------------------------------------------------------
# to_strict: conversions
# ---------------------------------------------------------------------------------------------

CONVERSIONS: list[tuple[str, Schema, Schema]] = [
    (
        "flat-optional",
        obj(
            {
                "name": {"type": "string"},
                "age": {"type": "integer"},
                "score": {"type": ["number", "null"]},
                "nick": {"type": ["string", "integer"]},
                "maybe": {"type": "null"},
            },
            ["name"],
        ),
        sobj(
            {
                "name": {"type": "string"},
                "age": {"type": ["integer", "null"]},
                "score": {"type": ["number", "null"]},
                "nick": {"type": ["string", "integer", "null"]},
                "maybe": {"type": "null"},
            }
        ),
    ),
    (
        "no-required-keyword",
        obj({"a": {"type": "boolean"}}),
        sobj({"a": {"type": ["boolean", "null"]}}),
    ),
    (
        "empty-properties",
        obj({}),
        sobj({}),
    ),
    (
        "nested-objects",
        obj(
            {
                "customer": obj(
                    {
                        "name": {"type": "string"},
                        "address": obj({"city": {"type": "string"}, "zip": {"type": "string"}}, ["city"]),
                    },
                    ["name", "address"],
                ),
            },
            [],
        ),
        sobj(
            {
                "customer": {
                    "type": ["object", "null"],
                    "properties": {
                        "name": {"type": "string"},
                        "address": sobj({"city": {"type": "string"}, "zip": {"type": ["string", "null"]}}),
                    },
                    "required": ["name", "address"],
                    "additionalProperties": False,
                },
            }
        ),
    ),
    (
        "array-of-objects",
        obj(
            {
                "lines": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": obj(
                        {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
                        ["sku"],
                    ),
                },
                "notes": {"type": "array", "items": {"type": "string"}},
            },
            ["lines"],
        ),
        sobj(
            {
                "lines": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": 50,
                    "items": sobj({"sku": {"type": "string"}, "qty": {"type": ["integer", "null"], "minimum": 1}}),
                },
                "notes": {"type": ["array", "null"], "items": {"type": "string"}},
            }
        ),
    ),
    (
        "enums-optional",
        obj(
            {
                "priority": {"enum": ["low", "high"]},
                "level": {"type": "string", "enum": ["a", "b"]},
                "already": {"enum": ["x", None]},
                "needed": {"enum": [1, 2]},
                "flag": {"const": "yes", "description": "set when sure"},
            },
            ["needed"],
        ),
        sobj(
            {
                "priority": {"enum": ["low", "high", None]},
                "level": {"type": ["string", "null"], "enum": ["a", "b", None]},
                "already": {"enum": ["x", None]},
                "needed": {"enum": [1, 2]},
                "flag": {"description": "set when sure", "anyOf": [{"const": "yes"}, {"type": "null"}]},
            }
        ),
    ),
    (
        "defs-ref-recursion",
        obj(
            {
                "tree": {"$ref": "#/$defs/Node", "description": "dropped: strict mode refuses $ref siblings"},
                "spare": {"$ref": "#/$defs/Node", "title": "Spare", "default": None},
                "again": {"$ref": "#"},
            },
            ["tree"],
            **{
                "$defs": {
                    "Node": obj(
                        {
                            "label": {"type": "string"},
                            "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                        },
                        ["label"],
                    )
                }
            },
        ),
        sobj(
            {
                "tree": {"$ref": "#/$defs/Node"},
                "spare": {"title": "Spare", "anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                "again": {"anyOf": [{"$ref": "#"}, {"type": "null"}]},
            },
            **{
                "$defs": {
                    "Node": sobj(
                        {
                            "label": {"type": "string"},
                            "children": {"type": ["array", "null"], "items": {"$ref": "#/$defs/Node"}},
                        }
                    )
                }
            },
        ),
    ),
    (
        "definitions-renamed",
        {
            "type": "object",
            "definitions": {
                "Money": obj(
                    {"amount": {"type": "number"}, "currency": {"type": "string", "enum": ["EUR", "USD"]}},
                    ["amount", "currency"],
                ),
                "a/b": {"type": "string"},
            },
            "properties": {
                "total": {"$ref": "#/definitions/Money"},
                "slashed": {"$ref": "#/definitions/a~1b"},
            },
            "required": ["slashed"],
        },
        {
            "type": "object",
            "$defs": {
                "Money": sobj({"amount": {"type": "number"}, "currency": {"type": "string", "enum": ["EUR", "USD"]}}),
                "a/b": {"type": "string"},
            },
            "properties": {
                "total": {"anyOf": [{"$ref": "#/$defs/Money"}, {"type": "null"}]},
                "slashed": {"$ref": "#/$defs/a~1b"},
            },
            "required": ["total", "slashed"],
            "additionalProperties": False,
        },
    ),
    (
        "oneof-to-anyof",
        obj(
            {
                "contact": {
                    "oneOf": [
                        obj({"email": {"type": "string", "format": "email"}}, ["email"]),
                        obj({"phone": {"type": "string", "pattern": "^[0-9 +]+$"}}, ["phone"]),
                    ]
                },
                "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            },
            ["contact"],
        ),
        sobj(
            {
                "contact": {
                    "anyOf": [
                        sobj({"email": {"type": "string", "format": "email"}}),
                        sobj({"phone": {"type": "string", "pattern": "^[0-9 +]+$"}}),
                    ]
                },
                "id": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
                "either": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            }
        ),
    ),
    (
        "dropped-keywords",
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://example.com/invoice",
            "$comment": "internal",
            "title": "Invoice",
            "description": "An invoice",
            "type": "object",
            "minProperties": 1,
            "maxProperties": 9,
            "x-ui": {"order": 1},
            "properties": {
                "name": {
                    "type": "string",
                    "title": "Name",
                    "description": "Full name",
                    "minLength": 1,
                    "maxLength": 80,
                    "pattern": "^[A-Z]",
                    "default": "A",
                    "examples": ["Ada"],
                    "readOnly": True,
                    "writeOnly": False,
                    "deprecated": False,
                    "contentMediaType": "text/plain",
                },
                "site": {"type": "string", "format": "uri"},
                "when": {"type": "string", "format": "date-time"},
                "tags": {
                    "type": "array",
                    "items": {"type": "string"},
                    "uniqueItems": True,
                    "contains": {"const": "x"},
                    "minContains": 1,
                    "maxContains": 3,
                },
                "price": {
                    "type": "number",
                    "multipleOf": 0.01,
                    "minimum": 0,
                    "maximum": 10,
                    "exclusiveMinimum": -1,
                    "exclusiveMaximum": 11,
                },
            },
            "required": ["name", "site", "when", "tags", "price"],
        },
        {
            "title": "Invoice",
            "description": "An invoice",
            "type": "object",
            "properties": {
                "name": {"type": "string", "title": "Name", "description": "Full name", "pattern": "^[A-Z]"},
                "site": {"type": "string"},
                "when": {"type": "string", "format": "date-time"},
                "tags": {"type": "array", "items": {"type": "string"}},
                "price": {
                    "type": "number",
                    "multipleOf": 0.01,
                    "minimum": 0,
                    "maximum": 10,
                    "exclusiveMinimum": -1,
                    "exclusiveMaximum": 11,
                },
            },
            "required": ["name", "site", "when", "tags", "price"],
            "additionalProperties": False,
        },
    ),
    (
        "keywords-for-another-type-dropped",
        with_field({"type": "string", "properties": {"a": {}}, "required": ["a"], "items": {}}),
        sobj({"field": {"type": "string"}}),
    ),
    (
        "explicit-additional-properties-false",
        obj({"a": {"type": "string"}}, ["a"], additionalProperties=False),
        sobj({"a": {"type": "string"}}),
    ),
]


@pytest.mark.parametrize(("schema", "expected"), [c[1:] for c in CONVERSIONS], ids=[c[0] for c in CONVERSIONS])
def test_to_strict_converts(schema: Schema, expected: Schema) -> None:
    before = copy.deepcopy(schema)
    strict = to_strict(schema)
    assert strict == expected
    assert schema == before, "to_strict must not mutate its input"
    Draft202012Validator.check_schema(strict)


def test_required_keeps_property_order() -> None:
    strict = to_strict(obj({"z": {"type": "string"}, "a": {"type": "string"}, "m": {"type": "string"}}, ["m"]))
    assert strict["required"] == ["z", "a", "m"]
    assert list(strict["properties"]) == ["z", "a", "m"]


def test_output_shares_nothing_with_input() -> None:
    schema = {name: schema for name, schema, _ in CONVERSIONS}["enums-optional"]  # enum lists must be copied
    before = copy.deepcopy(schema)
    strict = to_strict(schema)
    input_ids = {id(node) for node in containers(schema)}
    assert not [node for node in containers(strict) if id(node) in input_ids]
    strict["properties"]["needed"]["enum"].append(3)
    assert schema == before


def test_custom_loc_prefix() -> None:
    errors = problems(with_field({"type": "string", "not": {"const": ""}}), loc=("body", "output_schema"))
    assert [e.loc for e in errors] == [("body", "output_schema", "properties", "field", "not")]


# ---------------------------------------------------------------------------------------------
# to_strict: rejections
# ---------------------------------------------------------------------------------------------

STRING = {"type": "string"}

# (id, schema, [(loc, text the message must mention), ...])
REJECTIONS: list[tuple[str, Any, list[tuple[tuple[str | int, ...], str]]]] = [
    ("allOf", with_field({"allOf": [STRING]}), [((*FIELD, "allOf"), "allOf")]),
    ("not", with_field({"type": "string", "not": {"const": "x"}}), [((*FIELD, "not"), "not")]),
    (
        "if-then-else",
        with_field({"type": "string", "if": {"const": "a"}, "then": {"minLength": 2}, "else": {"maxLength": 1}}),
        [
            ((*FIELD, "if"), "if/then/else"),
            ((*FIELD, "then"), "if/then/else"),
            ((*FIELD, "else"), "if/then/else"),
        ],
    ),
    (
        "dependentRequired",
        with_field(obj({"a": STRING, "b": STRING}, dependentRequired={"a": ["b"]})),
        [((*FIELD, "dependentRequired"), "dependentRequired")],
    ),
    (
        "dependentSchemas",
        with_field(obj({"a": STRING}, dependentSchemas={"a": {"required": ["a"]}})),
        [((*FIELD, "dependentSchemas"), "dependentSchemas")],
    ),
    (
        "dependencies",
        with_field(obj({"a": STRING}, dependencies={"a": ["a"]})),
        [((*FIELD, "dependencies"), "dependencies")],
    ),
    (
        "patternProperties",
        with_field({"type": "object", "patternProperties": {"^x-": STRING}}),
        [((*FIELD, "patternProperties"), "patternProperties")],
    ),
    (
        "propertyNames",
        with_field(obj({"a": STRING}, propertyNames={"pattern": "^a"})),
        [((*FIELD, "propertyNames"), "propertyNames")],
    ),
    (
        "unevaluatedProperties",
        with_field(obj({"a": STRING}, unevaluatedProperties=False)),
        [((*FIELD, "unevaluatedProperties"), "unevaluatedProperties")],
    ),
    (
        "unevaluatedItems",
        with_field({"type": "array", "items": STRING, "unevaluatedItems": False}),
        [((*FIELD, "unevaluatedItems"), "unevaluatedItems")],
    ),
    (
        "prefixItems",
        with_field({"type": "array", "prefixItems": [STRING], "items": STRING}),
        [((*FIELD, "prefixItems"), "prefixItems")],
    ),
    (
        "additionalProperties-true",
        with_field(obj({"a": STRING}, additionalProperties=True)),
        [((*FIELD, "additionalProperties"), "additionalProperties")],
    ),
    (
        "additionalProperties-schema-map",
        with_field({"type": "object", "additionalProperties": {"type": "number"}}),
        [((*FIELD, "additionalProperties"), "additionalProperties")],
    ),
    (
        "root-additionalProperties-true",
        obj({"a": STRING}, additionalProperties=True),
        [(("schema", "additionalProperties"), "additionalProperties")],
    ),
    ("object-without-properties", with_field({"type": "object"}), [((*FIELD, "properties"), "properties")]),
    (
        "nullable-object-without-properties",
        with_field({"type": ["object", "null"], "description": "anything"}),
        [((*FIELD, "properties"), "properties")],
    ),
    ("any-value-empty", with_field({}), [(FIELD, "type")]),
    ("any-value-annotated", with_field({"description": "whatever"}), [(FIELD, "type")]),
    ("any-value-true", with_field(True), [(FIELD, "any value")]),
    ("nothing-false", with_field(False), [(FIELD, "false")]),
    ("untyped-properties", with_field({"properties": {"a": STRING}}), [(FIELD, '"type": "object"')]),
    ("untyped-items", with_field({"items": STRING}), [(FIELD, '"type": "array"')]),
    (
        "properties-beside-enum",
        with_field({"enum": [{"a": 1}], "properties": {"a": {"type": "integer"}}}),
        [((*FIELD, "properties"), '"type": "object"')],
    ),
    ("array-without-items", with_field({"type": "array"}), [((*FIELD, "items"), "items")]),
    (
        "remote-ref",
        with_field({"$ref": "https://example.com/address.json"}),
        [((*FIELD, "$ref"), "$ref")],
    ),
    ("anchor-ref", with_field({"$ref": "#address"}), [((*FIELD, "$ref"), "$ref")]),
    ("pointer-ref", with_field({"$ref": "#/properties/other"}), [((*FIELD, "$ref"), "$ref")]),
    ("missing-def", with_field({"$ref": "#/$defs/Nope"}), [((*FIELD, "$ref"), "Nope")]),
    (
        "ref-with-siblings",
        with_field({"$ref": "#/$defs/A", "type": "object", "minItems": 1}, **{"$defs": {"A": STRING}}),
        [((*FIELD, "type"), "$ref"), ((*FIELD, "minItems"), "$ref")],
    ),
    ("dynamic-ref", with_field({"$dynamicRef": "#meta"}), [((*FIELD, "$dynamicRef"), "$dynamicRef")]),
    (
        "nested-defs",
        with_field({"type": "string", "$defs": {"X": STRING}}),
        [((*FIELD, "$defs"), "$defs")],
    ),
    (
        "defs-and-definitions-collide",
        obj({}, **{"$defs": {"A": STRING}, "definitions": {"A": STRING}}),
        [(("schema", "definitions", "A"), "definitions")],
    ),
    (
        "anyOf-and-oneOf",
        with_field({"anyOf": [STRING], "oneOf": [STRING]}),
        [((*FIELD, "oneOf"), "oneOf")],
    ),
    (
        "required-not-in-properties",
        with_field(obj({"a": STRING}, ["a", "b"])),
        [((*FIELD, "required", 1), "required")],
    ),
    (
        "root-anyOf",
        obj({"a": STRING}, anyOf=[obj({"a": STRING}, ["a"])]),
        [(("schema", "anyOf"), "anyOf")],
    ),
    (
        "root-oneOf",
        obj({"a": STRING}, oneOf=[obj({"a": STRING}, ["a"])]),
        [(("schema", "oneOf"), "anyOf/oneOf")],
    ),
    (
        "inside-defs-and-branches",
        obj(
            {"x": {"anyOf": [STRING, {"type": "integer", "not": {"const": 0}}]}},
            **{"$defs": {"D": {"type": "object", "allOf": [STRING]}}},
        ),
        [
            (("schema", "properties", "x", "anyOf", 1, "not"), "not"),
            (("schema", "$defs", "D", "allOf"), "allOf"),
            (("schema", "$defs", "D", "properties"), "properties"),
        ],
    ),
    (
        "inside-array-items",
        with_field({"type": "array", "items": obj({"m": {"type": "object", "additionalProperties": True}})}),
        [((*FIELD, "items", "properties", "m", "additionalProperties"), "additionalProperties")],
    ),
]


@pytest.mark.parametrize(("schema", "expected"), [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS])
def test_to_strict_rejects(schema: Any, expected: list[tuple[tuple[str | int, ...], str]]) -> None:
    before = copy.deepcopy(schema)
    errors = problems(schema)
    assert [e.loc for e in errors] == [loc for loc, _ in expected]
    for issue, (_, mention) in zip(errors, expected, strict=True):
        assert mention in issue.msg
    assert schema == before


def test_free_form_map_message_tells_what_to_do() -> None:
    (issue,) = problems(with_field({"type": "object", "additionalProperties": True}))
    assert issue.msg == (
        "additionalProperties: free-form maps are not supported in structured outputs; list the properties instead"
    )


def test_collects_every_problem_and_summarises_the_first() -> None:
    schema = obj(
        {
            "a": {"allOf": [STRING]},
            "b": {"type": "object"},
            "c": {"type": "array", "items": {"$ref": "other.json"}},
        },
        ["a"],
    )
    with pytest.raises(UnsupportedSchema) as info:
        to_strict(schema)
    err = info.value
    assert [e.loc for e in err.errors] == [
        ("schema", "properties", "a", "allOf"),
        ("schema", "properties", "b", "properties"),
        ("schema", "properties", "c", "items", "$ref"),
    ]
    assert "3 problems" in err.detail
    assert err.errors[0].msg in err.detail
    assert "schema.properties.a.allOf" in err.detail
    body = err.to_problem()
    assert body["type"] == "/problems/unsupported-schema"
    assert body["status"] == 422
    assert body["errors"][2] == {
        "loc": ["schema", "properties", "c", "items", "$ref"],
        "msg": err.errors[2].msg,
    }


def test_single_problem_detail() -> None:
    with pytest.raises(UnsupportedSchema) as info:
        to_strict(with_field({"allOf": [STRING]}))
    assert info.value.detail.startswith("The JSON Schema cannot be used for structured outputs: allOf")
    assert "schema.properties.field.allOf" in info.value.detail


# ---------------------------------------------------------------------------------------------
# to_strict: limits
# ---------------------------------------------------------------------------------------------


def nested(levels: int, leaf: Any = None) -> Schema:
    """``levels`` objects nested through a ``child`` property; the innermost holds ``leaf``."""
    node = obj({"leaf": leaf if leaf is not None else STRING}, ["leaf"])
    for _ in range(levels - 1):
        node = obj({"child": node}, ["child"])
    return node


def test_ten_object_levels_are_allowed() -> None:
    strict = to_strict(nested(10))
    assert strict["properties"]["child"]["required"] == ["child"]


def test_eleven_object_levels_are_rejected() -> None:
    (issue,) = problems(nested(11))
    assert issue.loc == ("schema", *("properties", "child") * 10)
    assert "nested" in issue.msg and "10" in issue.msg


def test_depth_counts_objects_only_not_arrays() -> None:
    inner = nested(9)
    wrapped = obj({"list": {"type": "array", "items": {"type": "array", "items": inner}}}, ["list"])
    to_strict(wrapped)  # 1 + 9 = 10 object levels


def test_depth_through_ref() -> None:
    ok = nested(4, leaf={"$ref": "#/$defs/Deep"})
    ok["$defs"] = {"Deep": nested(6)}
    to_strict(ok)

    too_deep = nested(5, leaf={"$ref": "#/$defs/Deep"})
    too_deep["$defs"] = {"Deep": nested(6)}
    (issue,) = problems(too_deep)
    assert issue.loc == ("schema", *("properties", "child") * 4, "properties", "leaf", "$ref")
    assert "11 levels" in issue.msg


def test_recursion_through_ref_is_not_depth() -> None:
    schema = obj(
        {"root": {"$ref": "#/$defs/T"}},
        ["root"],
        **{"$defs": {"T": obj({"kids": {"type": "array", "items": {"$ref": "#/$defs/T"}}}, ["kids"])}},
    )
    to_strict(schema)


def test_total_properties_limit() -> None:
    five_thousand = obj({f"p{i}": STRING for i in range(5_000)}, [])
    assert len(to_strict(five_thousand)["required"]) == 5_000
    # 4,999 at the root + 1 inside the definition + the property holding the definition = 5,001.
    over = obj({f"p{i}": STRING for i in range(4_999)}, [], **{"$defs": {"D": obj({"x": STRING}, ["x"])}})
    over["properties"]["d"] = {"$ref": "#/$defs/D"}
    (issue,) = problems(over)
    assert issue.loc == ("schema",)
    assert "5,001 properties" in issue.msg and "5,000" in issue.msg


def test_total_enum_values_limit() -> None:
    props = {f"e{i}": {"enum": list(range(100))} for i in range(10)}
    to_strict(obj(props, list(props)))  # exactly 1,000
    (issue,) = problems(obj(props, list(props)[1:]))  # one optional enum gains a null: 1,001
    assert issue.loc == ("schema",)
    assert "1,001 enum values" in issue.msg and "1,000" in issue.msg


def test_large_string_enum_limit() -> None:
    to_strict(with_field({"enum": [f"{i:03d}".ljust(59, "x") for i in range(251)]}))  # 14,809 chars
    to_strict(with_field({"enum": [f"{i:03d}".ljust(100, "x") for i in range(250)]}))  # not over 250 values
    (issue,) = problems(with_field({"enum": [f"{i:03d}".ljust(60, "x") for i in range(251)]}))  # 15,060
    assert issue.loc == (*FIELD, "enum")
    assert "enum" in issue.msg and "15,060" in issue.msg and "15,000" in issue.msg


def total_chars_schema(enum_value_length: int) -> Schema:
    # 10,000 (def name) + 50,000 + 30,000 + 15,000 (property names and const) + 1 + n (enum).
    name = "D" * 10_000
    return obj(
        {
            "a" * 50_000: {"$ref": f"#/$defs/{name}"},
            "b" * 30_000: {"const": "x" * 15_000},
            "c": {"enum": ["y" * enum_value_length]},
        },
        ["a" * 50_000, "b" * 30_000, "c"],
        **{"$defs": {name: STRING}},
    )


def test_total_characters_limit() -> None:
    to_strict(total_chars_schema(14_999))  # exactly 120,000
    (issue,) = problems(total_chars_schema(15_000))
    assert issue.loc == ("schema",)
    assert "120,001 characters" in issue.msg and "120,000" in issue.msg


def test_all_limit_problems_are_collected() -> None:
    props: dict[str, Any] = {f"p{i}": {"enum": ["v" * 30] * 1} for i in range(1_001)}
    props.update({f"q{i}": STRING for i in range(4_000)})
    errors = problems(obj(props, list(props)))
    assert [e.loc for e in errors] == [("schema",), ("schema",)]
    assert "properties" in errors[0].msg and "enum" in errors[1].msg


# ---------------------------------------------------------------------------------------------
# to_strict: recursion through $ref
# ---------------------------------------------------------------------------------------------

LOOP = (
    "without passing through an object's properties or an array's items, so it never describes a value; "
    "recursive schemas are supported only through properties or items, so remove the loop"
)
ENDLESS = (
    "properties (and arrays with minItems) recurse through $ref at every level, so a value would have to be "
    "infinitely deep; make a recursive property optional or nullable, or let the array be empty"
)


def using_a(defs: dict[str, Any], **extra: Any) -> Schema:
    """A root whose required property ``a`` is ``#/$defs/a``, with these definitions."""
    return obj({"a": {"$ref": "#/$defs/a"}}, ["a"], **{"$defs": defs}, **extra)


@pytest.mark.parametrize(
    ("defs", "loc", "chain"),
    [
        ({"a": {"$ref": "#/$defs/a"}}, ("$defs", "a", "$ref"), "#/$defs/a → #/$defs/a"),
        (
            {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
            ("$defs", "b", "$ref"),
            "#/$defs/a → #/$defs/b → #/$defs/a",
        ),
        (
            {"a": {"anyOf": [{"$ref": "#/$defs/a"}, STRING]}},
            ("$defs", "a", "anyOf", 0, "$ref"),
            "#/$defs/a → #/$defs/a",
        ),
        (
            {"a": {"oneOf": [{"type": "null"}, {"anyOf": [{"$ref": "#/$defs/b"}]}]}, "b": {"$ref": "#/$defs/a"}},
            ("$defs", "b", "$ref"),
            "#/$defs/a → #/$defs/b → #/$defs/a",
        ),
    ],
    ids=["self", "a-b-a", "through-anyOf", "through-oneOf-and-anyOf"],
)
def test_ref_loops_that_describe_nothing_are_rejected(defs: dict[str, Any], loc: Loc, chain: str) -> None:
    (issue,) = problems(using_a(defs))
    assert issue.loc == ("schema", *loc)
    assert issue.msg == f"this $ref leads back to #/$defs/a ({chain}) {LOOP}"


def test_every_ref_loop_is_reported_once_and_long_loops_are_shortened() -> None:
    ring = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(30)}
    ring["d30"] = {"$ref": "#/$defs/d0"}
    defs = {"a": {"$ref": "#/$defs/d0"}, "x": {"$ref": "#/$defs/x"}, **ring}
    errors = problems(using_a(defs))
    assert [e.loc for e in errors] == [("schema", "$defs", "d30", "$ref"), ("schema", "$defs", "x", "$ref")]
    assert errors[0].msg == (
        f"this $ref leads back to #/$defs/d0 (#/$defs/d0 → #/$defs/d1 → #/$defs/d2 → … 27 more … → "
        f"#/$defs/d30 → #/$defs/d0) {LOOP}"
    )


def test_ref_loop_detail_names_the_place() -> None:
    with pytest.raises(UnsupportedSchema) as info:
        to_strict(using_a({"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}}))
    assert info.value.status == 422
    assert info.value.detail.endswith("(at schema.$defs.b.$ref).")
    assert "recursive schemas are supported only through properties or items" in info.value.detail


@pytest.mark.parametrize(
    "defs",
    [
        {"a": obj({"next": {"$ref": "#/$defs/a"}, "v": STRING}, ["v"])},  # next is optional
        {"a": obj({"next": {"anyOf": [{"$ref": "#/$defs/a"}, {"type": "null"}]}}, ["next"])},
        {"a": {"type": "array", "items": {"$ref": "#/$defs/a"}}},  # may be empty
        {"a": {"type": "array", "items": {"$ref": "#/$defs/a"}, "minItems": 0}},
        {"a": obj({"kids": {"type": "array", "items": {"$ref": "#/$defs/a"}, "minItems": 1}})},
        {"a": {"anyOf": [obj({"next": {"$ref": "#/$defs/a"}}, ["next"]), STRING]}},  # a string ends it
        {"a": obj({"b": {"$ref": "#/$defs/b"}}, ["b"]), "b": obj({"a": {"$ref": "#/$defs/a"}, "v": STRING}, ["v"])},
    ],
    ids=["optional", "nullable", "array", "minItems-0", "optional-kids", "anyOf-way-out", "mutual-optional"],
)
def test_recursion_that_a_value_can_end_is_accepted(defs: dict[str, Any]) -> None:
    strict = to_strict(using_a(defs))
    assert set(strict["$defs"]) == set(defs)


@pytest.mark.parametrize(
    ("schema", "loc", "what"),
    [
        (using_a({"a": obj({"next": {"$ref": "#/$defs/a"}}, ["next"])}), ("$defs", "a"), "definition"),
        (
            using_a({"a": {"type": "array", "items": {"$ref": "#/$defs/a"}, "minItems": 1}}),
            ("$defs", "a"),
            "definition",
        ),
        (
            using_a({"a": obj({"kids": {"type": "array", "items": {"$ref": "#/$defs/a"}, "minItems": 1}}, ["kids"])}),
            ("$defs", "a"),
            "definition",
        ),
        (obj({"again": {"$ref": "#"}, "v": STRING}, ["again", "v"]), (), "schema"),
        (
            obj({"again": {"type": "array", "items": {"$ref": "#"}, "minItems": 2}}, ["again"]),
            (),
            "schema",
        ),
    ],
    ids=["required-property", "array-minItems", "required-kids", "root-required", "root-array-minItems"],
)
def test_recursion_no_finite_value_ends_is_rejected(schema: Schema, loc: Loc, what: str) -> None:
    (issue,) = problems(schema)
    assert issue.loc == ("schema", *loc)
    assert issue.msg == f"no finite value satisfies this {what}: its required {ENDLESS}"


def test_endless_recursion_is_reported_for_each_definition_it_traps() -> None:
    # a needs b, b needs b: neither has a finite value; the root's failure follows from them.
    schema = using_a({"a": obj({"b": {"$ref": "#/$defs/b"}}, ["b"]), "b": obj({"b": {"$ref": "#/$defs/b"}}, ["b"])})
    assert [e.loc for e in problems(schema)] == [("schema", "$defs", "a"), ("schema", "$defs", "b")]


def test_long_ref_chains_are_rejected_without_recursion() -> None:
    # The root, the property and 3,000 definitions that only point at the next, then the string.
    chain = {f"d{i}": {"$ref": f"#/$defs/d{i + 1}"} for i in range(3_000)}
    chain["d3000"] = STRING
    (issue,) = problems(obj({"a": {"$ref": "#/$defs/d0"}}, ["a"], **{"$defs": chain}))
    assert issue.loc == ("schema", "properties", "a", "$ref")
    assert issue.msg == (
        "with its definitions filled in, this $ref nests schemas 3003 levels deep; at most 64 are supported, "
        "so flatten the definitions (or point $ref at the final one)"
    )


def test_ref_chain_depth_counts_arrays_and_stops_at_the_limit() -> None:
    def arrays(count: int) -> Schema:
        chain: dict[str, Any] = {
            f"d{i}": {"type": "array", "items": {"$ref": f"#/$defs/d{i + 1}"}} for i in range(count)
        }
        chain[f"d{count}"] = STRING
        return obj({"a": {"$ref": "#/$defs/d0"}}, ["a"], **{"$defs": chain})

    to_strict(arrays(30))  # root + a + 30 × (array + its items ref) + the string = 63 levels
    (issue,) = problems(arrays(31))
    assert issue.loc == ("schema", "properties", "a", "$ref") and "65 levels deep" in issue.msg
    (issue,) = problems(arrays(500))  # heights are measured without recursion
    assert "1003 levels deep" in issue.msg


def test_object_depth_through_a_long_chain_of_definitions() -> None:
    chain: dict[str, Any] = {f"d{i}": obj({"x": {"$ref": f"#/$defs/d{i + 1}"}}, ["x"]) for i in range(600)}
    chain["d600"] = STRING
    errors = problems(obj({"a": {"$ref": "#/$defs/d0"}}, ["a"], **{"$defs": chain}))
    assert ("schema", "properties", "a", "$ref") in [e.loc for e in errors]
    assert any("nests objects" in e.msg for e in errors)


# ---------------------------------------------------------------------------------------------
# check_user_schema
# ---------------------------------------------------------------------------------------------


def check_problems(schema: Any, **kwargs: Any) -> list[FieldIssue]:
    with pytest.raises(UnsupportedSchema) as info:
        check_user_schema(schema, **kwargs)
    return info.value.errors


@pytest.mark.parametrize(
    ("schema", "loc", "mention"),
    [
        ({"type": 5}, ("schema", "type"), "not valid JSON Schema"),
        (
            obj({"a": {"type": "string", "minLength": -1}}),
            ("schema", "properties", "a", "minLength"),
            "-1 is less than the minimum of 0",
        ),
        (
            obj({"a": {"type": "string", "pattern": "("}}),
            ("schema", "properties", "a", "pattern"),
            'this is not a valid regular expression (RE2 says "missing ): (")',
        ),
        (obj({"a": {"$ref": 7}}), ("schema", "properties", "a", "$ref"), "not valid JSON Schema"),
        ([], ("schema",), "JSON object"),
        (None, ("schema",), "JSON object"),
        ("{}", ("schema",), "JSON object"),
        ({"type": "string"}, ("schema", "type"), '"type": "object"'),
        ({"type": ["object", "null"], "properties": {}}, ("schema", "type"), '"type": "object"'),
        ({"properties": {"a": STRING}}, ("schema", "type"), '"type": "object"'),
        ({"anyOf": [obj({"a": STRING})]}, ("schema", "anyOf"), "anyOf"),
        ({"oneOf": [obj({"a": STRING})]}, ("schema", "oneOf"), "anyOf/oneOf"),
        ({"type": "object"}, ("schema", "properties"), "list its properties"),
    ],
    ids=[
        "type-5",
        "negative-minLength",
        "bad-regex",
        "ref-not-string",
        "list",
        "none",
        "string",
        "string-root",
        "nullable-root",
        "untyped-root",
        "anyOf-root",
        "oneOf-root",
        "object-root-without-properties",
    ],
)
def test_check_user_schema_rejects(schema: Any, loc: tuple[str | int, ...], mention: str) -> None:
    (issue,) = check_problems(schema)
    assert issue.loc == loc
    assert mention in issue.msg
    # to_strict runs the same check first.
    assert [e.loc for e in problems(schema)] == [loc]


def test_check_user_schema_accepts_and_uses_loc() -> None:
    check_user_schema(obj({"a": STRING}))
    check_user_schema(obj({}))
    (issue,) = check_problems({"type": 5}, loc=("body", "schema"))
    assert issue.loc == ("body", "schema", "type")


@pytest.mark.parametrize(
    ("value", "literal"), [(float("nan"), "NaN"), (float("inf"), "Infinity"), (float("-inf"), "-Infinity")]
)
def test_check_user_schema_refuses_non_finite_numbers(value: float, literal: str) -> None:
    schema = obj({"a": {"type": "number", "minimum": 0}, "b": {"type": "array", "items": STRING, "enum": [[1, value]]}})
    (issue,) = check_problems(schema)
    assert issue.loc == ("schema", "properties", "b", "enum", 0, 1)
    assert issue.msg == f"{literal} is not a finite number; JSON Schema takes finite numbers only, so use one"
    (issue,) = check_problems(obj({"a": {"type": "number", "minimum": value}}))
    assert issue.loc == ("schema", "properties", "a", "minimum")


def test_check_user_schema_refuses_lone_surrogates() -> None:
    (issue,) = check_problems(obj({"a": {"type": "string", "description": "bad \ud800 text"}}))
    assert issue.loc == ("schema", "properties", "a", "description")
    assert issue.msg == "this string contains a lone UTF-16 surrogate, which is not valid Unicode; fix the text"
    (issue,) = check_problems(obj({"a\udfff": STRING}))
    assert issue.loc == ("schema", "properties")
    assert issue.msg == ('the key "a\\udfff" contains a lone UTF-16 surrogate, which is not valid Unicode; rename it')


def test_check_user_schema_guards_deep_nesting() -> None:
    deep: Any = STRING
    for _ in range(MAX_JSON_DEPTH):
        deep = {"type": "array", "items": deep}
    (issue,) = check_problems(obj({"a": deep}))
    assert issue.loc == ("schema",)
    assert "nested" in issue.msg


def reason(pattern: str) -> str:
    with pytest.raises(UnsupportedPattern) as info:
        program_size(pattern)
    return info.value.reason


def test_patterns_the_engine_cannot_run_are_refused_where_they_are() -> None:
    schema = obj(
        {
            "a": {"type": "string", "pattern": r"^(\w)\1$"},
            "b": {"type": "array", "items": {"type": "string", "pattern": "^(?=.*[0-9])"}},
            "c": {"$ref": "#/$defs/C"},
            # contains is left out of the strict copy, but the answer is validated against it.
            "d": {"type": "array", "items": STRING, "contains": {"pattern": "(?<=x)y"}},
            "e": {"anyOf": [{"type": "string", "pattern": "^(a+)+$"}, {"type": "null"}]},  # RE2 runs this one
            "f": {"type": "string", "pattern": "(" * 1_000 + ")" * 1_000},  # too deep for re's parser
        },
        **{"$defs": {"C": {"type": "string", "pattern": "x\\Z"}}},
    )
    expected = [
        (("schema", "properties", "a", "pattern"), reason(r"^(\w)\1$")),
        (("schema", "properties", "b", "items", "pattern"), reason("^(?=.*[0-9])")),
        (("schema", "properties", "d", "contains", "pattern"), reason("(?<=x)y")),
        (
            ("schema", "properties", "f", "pattern"),
            "this pattern has 2,000 characters; patterns may have at most 1,000, so shorten it",
        ),
        (("schema", "$defs", "C", "pattern"), reason("x\\Z")),
    ]
    # In the document's order, which is not the order jsonschema visits the properties of an object in.
    assert [(issue.loc, issue.msg) for issue in check_problems(schema)] == expected
    assert [(issue.loc, issue.msg) for issue in problems(schema)] == expected  # to_strict says the same


def test_pattern_properties_are_refused_wherever_they_are() -> None:
    hidden = {"type": "object", "patternProperties": {"^(a+)+$": STRING}, "unevaluatedProperties": False}
    (issue,) = check_problems(obj({"a": {"type": "array", "items": STRING, "contains": hidden}}))
    assert issue.loc == ("schema", "properties", "a", "contains", "patternProperties")
    assert issue.msg.startswith("patternProperties: keys matching a pattern are not supported in structured outputs")


def test_the_patterns_of_a_schema_are_bounded_together() -> None:
    heavy = [r"^\p{L}{1,90}$", r"^\p{L}{1,91}$"]
    sizes = [program_size(pattern) for pattern in heavy]
    assert sizes[0] < MAX_TOTAL_PATTERN_SIZE < sum(sizes)
    repeated = obj({f"p{n}": {"type": "string", "pattern": heavy[0]} for n in range(50)})
    check_user_schema(repeated)  # one pattern, compiled once, counted once
    (issue,) = check_problems(
        obj({"a": {"type": "string", "pattern": heavy[0]}, "b": {"type": "string", "pattern": heavy[1]}})
    )
    assert issue.loc == ("schema", "properties", "b", "pattern")
    assert issue.msg == (
        f"with this pattern the schema's patterns compile to {sum(sizes):,} instructions of the regular-expression "
        f"engine, over the {MAX_TOTAL_PATTERN_SIZE:,} one schema may use; simplify them (a bounded repetition such "
        "as [a-z]{1,100} is copied once per repetition: use + or * and limit the length with maxLength) or use fewer"
    )


def test_no_pattern_is_compiled_after_one_too_large_to_compile() -> None:
    schema = obj({name: {"type": "string", "pattern": rf"^\p{{L}}{{1,{n}}}$"} for name, n in [("a", 300), ("b", 400)]})
    with interrupted_after(5):
        (issue,) = check_problems(schema)
    assert issue.loc == ("schema", "properties", "a", "pattern")
    assert issue.msg.startswith("this pattern is too large once compiled")


def test_patterns_go_upstream_as_written() -> None:
    schema = obj({"a": {"type": "string", "pattern": "^[\\u0041-\\u005A]+$"}}, ["a"])
    assert to_strict(schema)["properties"]["a"]["pattern"] == "^[\\u0041-\\u005A]+$"


# ---------------------------------------------------------------------------------------------
# restore_optional
# ---------------------------------------------------------------------------------------------

PERSON = obj(
    {
        "name": {"type": "string"},
        "nick": {"type": "string"},
        "middle": {"type": ["string", "null"]},
        "boss": {"type": ["string", "null"]},
        "kind": {"enum": ["a", None]},
        "tags": {"type": "array", "items": obj({"k": STRING, "v": STRING}, ["k"])},
        "home": {"$ref": "#/$defs/Place"},
        "work": {"$ref": "#/definitions/Office"},
    },
    ["name", "boss"],
    **{
        "$defs": {"Place": obj({"city": STRING, "zip": STRING}, ["city"])},
        "definitions": {"Office": obj({"city": STRING, "zip": STRING}, ["city"])},
    },
)

RESTORES: list[tuple[str, Schema, Any, Any]] = [
    (
        "optional-nulls-removed",
        PERSON,
        {
            "name": "Ada",
            "nick": None,
            "middle": None,
            "boss": None,
            "kind": None,
            "tags": None,
            "home": None,
            "work": None,
        },
        # middle and kind accept null themselves; boss is required (and nullable): all kept.
        {"name": "Ada", "middle": None, "boss": None, "kind": None},
    ),
    (
        "nested-through-arrays-and-refs",
        PERSON,
        {
            "name": "Ada",
            "nick": "A",
            "middle": "B",
            "boss": "C",
            "kind": "a",
            "tags": [{"k": "x", "v": None}, {"k": "y", "v": "1"}],
            "home": {"city": "Oslo", "zip": None},
            "work": {"city": "Bergen", "zip": "5003"},
        },
        {
            "name": "Ada",
            "nick": "A",
            "middle": "B",
            "boss": "C",
            "kind": "a",
            "tags": [{"k": "x"}, {"k": "y", "v": "1"}],
            "home": {"city": "Oslo"},
            "work": {"city": "Bergen", "zip": "5003"},
        },
    ),
    (
        "recursion-through-root-ref",
        obj({"label": STRING, "next": {"$ref": "#"}}, ["label"]),
        {"label": "a", "next": {"label": "b", "next": {"label": "c", "next": None}}},
        {"label": "a", "next": {"label": "b", "next": {"label": "c"}}},
    ),
    (
        "anyOf-branch-covering-the-keys",
        obj(
            {
                "contact": {
                    "oneOf": [
                        obj({"email": STRING, "name": STRING}, ["email"]),
                        obj({"phone": STRING, "name": STRING}, ["phone"]),
                    ]
                }
            },
            ["contact"],
        ),
        {"contact": {"phone": "123", "name": None}},
        {"contact": {"phone": "123"}},
    ),
    (
        "anyOf-first-branch-that-validates",
        obj(
            {
                "v": {
                    "anyOf": [
                        obj({"n": {"type": "integer"}, "x": STRING}, ["n"]),
                        obj({"n": STRING, "x": {"type": "integer"}}, ["n", "x"]),
                    ]
                }
            },
            ["v"],
        ),
        {"v": {"n": "s", "x": 1}},
        {"v": {"n": "s", "x": 1}},
    ),
    (
        "anyOf-of-arrays",
        obj({"v": {"anyOf": [STRING, {"type": "array", "items": obj({"a": STRING})}]}}, ["v"]),
        {"v": [{"a": None}, {"a": "x"}]},
        {"v": [{}, {"a": "x"}]},
    ),
    (
        "unknown-keys-and-scalars-kept",
        obj({"a": STRING}),
        {"a": "x", "extra": None},
        {"a": "x", "extra": None},
    ),
    ("not-an-object", obj({"a": STRING}), "text", "text"),
    ("unresolvable-ref", obj({"a": {"$ref": "#/$defs/Missing"}}), {"a": None}, {}),
]


@pytest.mark.parametrize(("original", "instance", "expected"), [r[1:] for r in RESTORES], ids=[r[0] for r in RESTORES])
def test_restore_optional(original: Schema, instance: Any, expected: Any) -> None:
    before = copy.deepcopy(instance)
    restored = restore_optional(instance, original)
    assert restored == expected
    assert instance == before, "restore_optional must not mutate the instance"
    if isinstance(restored, dict | list):
        assert restored is not instance


def test_restored_person_validates_against_original() -> None:
    for _, original, instance, _ in RESTORES[:2]:
        strict = to_strict(original)
        assert Draft202012Validator(strict).is_valid(instance)
        Draft202012Validator(original).validate(restore_optional(instance, original))


# ---------------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------------

NAMES = st.text(alphabet="abcdefg_", min_size=1, max_size=4)
SCALAR_TYPES = ["string", "number", "integer", "boolean"]

SCALARS: st.SearchStrategy[Schema] = st.one_of(
    st.sampled_from(SCALAR_TYPES).map(lambda t: {"type": t}),
    st.sampled_from(SCALAR_TYPES).map(lambda t: {"type": [t, "null"]}),
    st.lists(st.text(alphabet="xyz", max_size=3), min_size=1, max_size=4, unique=True).map(
        lambda values: {"type": "string", "enum": values}
    ),
    st.lists(
        st.one_of(st.text(alphabet="xyz", max_size=2), st.integers(-3, 3), st.none()),
        min_size=1,
        max_size=4,
        unique=True,
    ).map(lambda values: {"enum": values}),
    st.sampled_from(["on", 1, None]).map(lambda value: {"const": value}),
    st.just({"type": "string", "description": "free text", "format": "date"}),
)


def objects(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Schema]:
    def with_required(props: dict[str, Any]) -> st.SearchStrategy[Schema]:
        names = list(props)
        return st.one_of(
            st.just(obj(props)),
            st.lists(st.sampled_from(names), unique=True).map(lambda req: obj(props, req))
            if names
            else st.just(obj(props, [])),
        )

    return st.dictionaries(NAMES, children, max_size=4).flatmap(with_required)


def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        objects(children),
        children.map(lambda items: {"type": "array", "items": items}),
        children.map(lambda items: {"type": ["array", "null"], "items": items, "maxItems": 3}),
        st.lists(objects(children), min_size=1, max_size=3).map(lambda branches: {"anyOf": branches}),
    )


PLAIN = st.recursive(SCALARS, extend, max_leaves=6)
# Recursion through the root, kept finite by the array around it.
ROOT_RECURSION = st.just({"type": "array", "items": {"$ref": "#"}, "maxItems": 2})


@functools.cache
def roots(container: str, names: tuple[str, ...]) -> st.SearchStrategy[Schema]:
    """Root objects whose leaves may refer to the definitions ``names`` (built once per set of names)."""
    leaves = SCALARS
    if names:
        leaves = st.one_of(SCALARS, st.sampled_from(names).map(lambda n: {"$ref": f"#/{container}/{n}"}))
    return objects(st.recursive(st.one_of(leaves, ROOT_RECURSION), extend, max_leaves=10))


@st.composite
def original_schemas(draw: st.DrawFn) -> Schema:
    container = draw(st.sampled_from(["$defs", "definitions"]))
    defs = draw(st.dictionaries(st.sampled_from(["D0", "D1"]), PLAIN, max_size=2))
    root = draw(roots(container, tuple(sorted(defs))))
    if defs:
        root[container] = defs
    return root


def resolve(root: Schema, ref: str) -> Any:
    node: Any = root
    for part in ref[2:].split("/") if ref != "#" else []:
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def strict_instances(schema: Any, root: Schema, budget: int) -> st.SearchStrategy[Any]:
    """Values valid against a strict schema; ``budget`` bounds recursion through refs."""
    if "$ref" in schema:
        if budget <= 0:
            return st.nothing()
        return st.deferred(lambda: strict_instances(resolve(root, schema["$ref"]), root, budget - 1))
    if "anyOf" in schema:
        return st.one_of([strict_instances(branch, root, budget) for branch in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    options: list[st.SearchStrategy[Any]] = []
    for t in types:
        if t == "null":
            options.append(st.none())
        elif t == "string":
            options.append(st.text(max_size=4))
        elif t == "integer":
            options.append(st.integers(-100, 100))
        elif t == "number":
            options.append(st.one_of(st.integers(-100, 100), st.floats(allow_nan=False, allow_infinity=False)))
        elif t == "boolean":
            options.append(st.booleans())
        elif t == "array":
            items = strict_instances(schema["items"], root, budget)
            options.append(st.lists(items, max_size=min(schema.get("maxItems", 3), 3 if budget > 0 else 0)))
        elif t == "object":
            options.append(
                st.fixed_dictionaries(
                    {name: strict_instances(sub, root, budget) for name, sub in schema["properties"].items()}
                )
            )
    return st.one_of(options)


@st.composite
def schema_and_instance(draw: st.DrawFn) -> tuple[Schema, Schema, Any]:
    original = draw(original_schemas())
    strict = to_strict(original)
    instance = draw(strict_instances(strict, strict, budget=2))
    return original, strict, instance


def strict_objects(schema: Any) -> Iterator[dict[str, Any]]:
    for node in containers(schema):
        if isinstance(node, dict) and "properties" in node and isinstance(node.get("type"), str | list):
            types = node["type"] if isinstance(node["type"], list) else [node["type"]]
            if "object" in types:
                yield node


PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@PROPERTY_SETTINGS
@given(original_schemas())
def test_property_strict_schema_shape(original: Schema) -> None:
    strict = to_strict(original)
    Draft202012Validator.check_schema(strict)
    found = list(strict_objects(strict))
    assert found, "the root at least is an object"
    for node in found:
        assert node["additionalProperties"] is False
        assert node["required"] == list(node["properties"])
    assert "definitions" not in strict


@PROPERTY_SETTINGS
@given(schema_and_instance())
def test_property_restored_output_validates_against_original(case: tuple[Schema, Schema, Any]) -> None:
    original, strict, instance = case
    assert Draft202012Validator(strict).is_valid(instance), "generator produced an invalid strict instance"
    before = copy.deepcopy(instance)
    restored = restore_optional(instance, original)
    errors = [e.message for e in Draft202012Validator(original).iter_errors(restored)]
    assert not errors, (restored, errors)
    assert instance == before


KEYWORDS = [
    "type", "properties", "items", "required", "enum", "const", "minimum", "maxLength", "pattern", "format",
    "$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf", "not", "if", "then", "additionalProperties",
    "dependencies", "dependentRequired", "dependentSchemas", "prefixItems", "contains", "minContains",
    "$id", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary", "$recursiveRef", "unevaluatedProperties",
    "propertyNames", "contentSchema", "deprecated", "examples", "multipleOf", "uniqueItems", "x-note",
]  # fmt: skip
META_VALUES = st.recursive(
    st.one_of(
        st.none(), st.booleans(), st.integers(-2, 2), st.floats(-2, 2),
        st.sampled_from(
            ["string", "object", "array", "null", "(", "[a-z]+", "(?=a)", "#", "#/$defs/a", "a", "date", ""]
        ),
    ),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from([*KEYWORDS, "a", "b"]), children, max_size=4),
    max_leaves=12,
)  # fmt: skip


META_DOCUMENTS = st.one_of(
    st.dictionaries(st.sampled_from(KEYWORDS), META_VALUES, max_size=5),  # mostly invalid
    original_schemas(),  # valid
    st.tuples(original_schemas(), st.sampled_from(KEYWORDS), META_VALUES).map(lambda c: {**c[0], c[1]: c[2]}),
)


# Whether a pattern can run is RE2's to say, in sentences of its own: jsonschema's verdict is taken with every
# string counted as a regex.
ANY_REGEX = FormatChecker(formats=())
ANY_REGEX.checkers.update(Draft202012Validator.FORMAT_CHECKER.checkers)
ANY_REGEX.checks("regex")(lambda instance: True)


@PROPERTY_SETTINGS
@given(META_DOCUMENTS)
def test_property_meta_schema_check_agrees_with_jsonschema(document: Schema) -> None:
    try:
        Draft202012Validator.check_schema(document, format_checker=ANY_REGEX)
        official = None
    except SchemaError as err:
        official = (("schema", *err.absolute_path), f"this is not valid JSON Schema: {err.message}")
    try:
        check_user_schema(document)
        ours = None
    except UnsupportedSchema as exc:
        ours = (exc.errors[0].loc, exc.errors[0].msg)
    if official is None:
        assert ours is None or not ours[1].startswith("this is not valid JSON Schema"), ours
    else:
        assert ours == official


@PROPERTY_SETTINGS
@given(original_schemas())
def test_property_to_strict_is_idempotent(original: Schema) -> None:
    before = copy.deepcopy(original)
    strict = to_strict(original)
    assert original == before
    assert to_strict(strict) == strict


def test_references_to_other_documents_are_refused_where_the_conversion_does_not_look() -> None:
    contains = {"type": "array", "items": {"type": "string"}, "contains": {"$ref": "https://example.com/s.json"}}
    with pytest.raises(UnsupportedSchema) as refused:
        to_strict({"type": "object", "properties": {"a": contains}})
    (issue,) = refused.value.errors
    assert list(issue.loc) == ["schema", "properties", "a", "contains", "$ref"]
    assert issue.msg.startswith("$ref 'https://example.com/s.json' points outside this schema")


def test_answers_are_checked_without_fetching_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    from referencing.exceptions import Unresolvable

    from nodes.validate import validator_for

    fetched: list[object] = []
    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: fetched.append(args))
    validator = validator_for({"type": "object", "properties": {"a": {"$ref": "http://127.0.0.1:1/remote.json"}}})
    with pytest.raises(Unresolvable):
        list(validator.iter_errors({"a": 1}))
    assert fetched == []
