"""Reply validation: JSON with an optional code fence, then the schema, errors written for a repair turn."""

from __future__ import annotations

import json

import pytest
from support import interrupted_after

from nodes.validate import UNUSABLE, check_reply, parse_json, schema_errors

TOO_DEEP = (
    "nested more than 64 levels deep; objects and arrays may nest at most 64 levels, so flatten this "
    "value or send it as a string"
)
TOO_LARGE = "this number is too large to represent (beyond ±1.8e308); send a smaller number, or the digits as a string"
SURROGATE = (
    "this string contains a lone UTF-16 surrogate (\\ud800), which is not valid Unicode; send valid UTF-8 text, "
    "with characters outside the Basic Multilingual Plane as a complete surrogate pair"
)


@pytest.mark.parametrize(
    ("content", "errors"),
    [
        ('{"a": 1}', []),
        ('```json\n{"a": 1}\n```', []),
        ('{"a": "x"}', ["$.a: 'x' is not of type 'integer'"]),
        ("{}", ["$: 'a' is a required property"]),
        ("", ["the reply was empty; a JSON object was expected"]),
        (None, ["the reply was empty; a JSON object was expected"]),
        (
            "{a: 1}",
            ["the reply is not valid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"],
        ),
        # Replies that used to escape as a 500: each is an invalid output, repaired or escalated.
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", [f"the reply is not usable JSON: {UNUSABLE}"]),
        ('{"a": ' + "9" * 5000 + "}", [f"the reply is not usable JSON: {UNUSABLE}"]),
        ('{"a": 1, "b": ' + "[" * 100 + "]" * 100 + "}", ["$.b" + "[0]" * 63 + ": " + TOO_DEEP]),
        ('{"a": NaN}', ["$.a: NaN is not valid JSON; send a number, null or a string instead"]),
        ('{"a": 1, "b": [1e999]}', [f"$.b[0]: {TOO_LARGE}"]),
        ('{"a": 1, "b": "\\ud800"}', [f"$.b: {SURROGATE}"]),
    ],
)
def test_check_reply(content: str | None, errors: list[str]) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert check_reply(content, schema).errors == errors


def test_parse_json_keeps_plain_json() -> None:
    assert parse_json('[1, "```"]') == [1, "```"]


# 28 characters that a backtracking engine takes seconds to refuse against ^(a+)+$ (twice as long per extra "a").
HOSTILE = "a" * 28 + "!"


def test_a_pattern_is_checked_in_linear_time() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(a+)+$"}}, "required": ["a"]}
    with interrupted_after(1):
        refused = check_reply(json.dumps({"a": HOSTILE}), schema)
        accepted = check_reply(json.dumps({"a": "a" * 100_000}), schema)
    assert refused.errors == [f"$.a: '{HOSTILE}' does not match '^(a+)+$'"]
    assert accepted.ok


def test_pattern_properties_and_the_properties_they_leave_use_the_same_engine() -> None:
    schema = {"type": "object", "patternProperties": {"^(a+)+$": {"type": "integer"}}, "additionalProperties": False}
    with interrupted_after(1):
        errors = schema_errors({HOSTILE: 1, "aaa": "x"}, schema)
    assert errors == [
        f"$: '{HOSTILE}' does not match any of the regexes: '^(a+)+$'",
        "$.aaa: 'x' is not of type 'integer'",
    ]
