"""Reply validation: JSON with an optional code fence, then the schema, errors written for a repair turn."""

from __future__ import annotations

import pytest

from nodes.validate import check_reply, parse_json


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
    ],
)
def test_check_reply(content: str | None, errors: list[str]) -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert check_reply(content, schema).errors == errors


def test_parse_json_keeps_plain_json() -> None:
    assert parse_json('[1, "```"]') == [1, "```"]
