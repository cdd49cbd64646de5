"""The catalogue's input schemas agree with the validation: a body fits the schema exactly when it is accepted."""

from __future__ import annotations

from typing import Any

import pytest
from jsonschema import Draft202012Validator

from nodes.catalog import NODES, catalogue
from nodes.errors import InvalidRequest

OBJECT_SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}}}

CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("classify", {"input": "x", "labels": ["a", {"name": "b", "description": "bee"}]}, True),
    ("classify", {"input": {"ticket": 1}, "labels": ["a"]}, True),
    ("classify", {"input": 0, "labels": ["a"]}, True),
    ("classify", {"input": False, "labels": ["a"]}, True),
    ("classify", {"labels": ["a"]}, False),
    ("classify", {"input": None, "labels": ["a"]}, False),
    ("classify", {"input": " \n\t", "labels": ["a"]}, False),
    ("classify", {"input": "x", "labels": []}, False),
    ("classify", {"input": "x", "labels": ["a", "a"]}, False),
    ("classify", {"input": "x", "labels": [" "]}, False),
    ("classify", {"input": "x", "labels": [{"name": "\t"}]}, False),
    ("classify", {"input": "x", "labels": [f"label-{n}" for n in range(500)]}, True),
    ("classify", {"input": "x", "labels": [f"label-{n}" for n in range(501)]}, False),
    ("classify", {"input": "x", "labels": ["a"], "min_confidence": 0.5}, True),
    ("classify", {"input": "x", "labels": ["a"], "min_confidence": 1}, True),
    ("classify", {"input": "x", "labels": ["a"], "min_confidence": None}, True),
    ("classify", {"input": "x", "labels": ["a"], "min_confidence": 1.5}, False),
    ("classify", {"input": "x", "labels": ["a"], "min_confidence": False}, False),
    ("classify", {"input": "x", "labels": ["a"], "min_confidence": True}, False),
    ("extract", {"input": "x", "schema": OBJECT_SCHEMA}, True),
    ("extract", {"input": "x", "schema": {"type": "object", "properties": {}}}, True),
    ("extract", {"input": "x"}, False),
    ("extract", {"input": "x", "schema": {"type": "object"}}, False),
    ("extract", {"input": "x", "schema": {"properties": {"name": {"type": "string"}}}}, False),
    ("extract", {"input": "x", "schema": {"type": "array", "items": {"type": "string"}}}, False),
    ("draft", {"input": "x"}, True),
    ("draft", {"input": "x", "format": "text", "schema": None}, True),
    ("draft", {"input": "x", "format": "json", "schema": OBJECT_SCHEMA}, True),
    ("draft", {"input": "x", "format": "json"}, False),
    ("draft", {"input": "x", "format": "json", "schema": None}, False),
    ("draft", {"input": "x", "schema": OBJECT_SCHEMA}, False),
    ("draft", {"input": "x", "format": "text", "schema": OBJECT_SCHEMA}, False),
    ("draft", {"input": "x", "max_words": 5}, True),
    ("draft", {"input": "x", "max_words": 0}, False),
    ("draft", {"input": "x", "max_words": True}, False),
    ("judge", {"candidate": "a", "criteria": "polite"}, True),
    ("judge", {"candidate": False, "criteria": ["polite", "short"]}, True),
    ("judge", {"input": "the question", "candidates": ["a", "b"], "criteria": "best"}, True),
    ("judge", {"candidate": None, "candidates": ["a"], "criteria": "best"}, True),
    ("judge", {"candidate": "a", "candidates": None, "criteria": "best"}, True),
    ("judge", {"candidates": [f"c{n}" for n in range(50)], "criteria": "best"}, True),
    ("judge", {"candidates": [f"c{n}" for n in range(51)], "criteria": "best"}, False),
    ("judge", {"candidates": [], "criteria": "best"}, False),
    ("judge", {"candidate": "a", "candidates": ["b"], "criteria": "best"}, False),
    ("judge", {"criteria": "best"}, False),
    ("judge", {"candidate": "a"}, False),
    ("judge", {"candidate": "a", "criteria": ""}, False),
    ("judge", {"candidate": "a", "criteria": "  "}, False),
    ("judge", {"candidate": "a", "criteria": []}, False),
    ("judge", {"candidate": "a", "criteria": ["polite", " "]}, False),
    ("judge", {"input": None, "candidate": "a", "criteria": "c"}, False),
]


def accepted(node: str, body: dict[str, Any]) -> bool:
    try:
        NODES[node].task(NODES[node].parse(body))
    except InvalidRequest:
        return False
    return True


@pytest.mark.parametrize(("node", "body", "valid"), CASES)
def test_the_catalogue_schema_and_the_validation_agree(node: str, body: dict[str, Any], valid: bool) -> None:
    [entry] = [entry for entry in catalogue() if entry["name"] == node]
    schema = entry["input_schema"]
    Draft202012Validator.check_schema(schema)
    assert Draft202012Validator(schema).is_valid(body) is valid
    assert accepted(node, body) is valid


@pytest.mark.parametrize(
    ("node", "body", "field"),
    [
        ("classify", {"input": "x", "labels": ["a"], "min_confidence": False}, "min_confidence"),
        ("classify", {"input": "x", "labels": ["a"], "min_confidence": True}, "min_confidence"),
        ("draft", {"input": "x", "max_words": True}, "max_words"),
    ],
)
def test_a_boolean_is_not_a_number(node: str, body: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        NODES[node].parse(body)
    assert [issue.as_dict() for issue in refused.value.errors] == [
        {"loc": [field], "msg": "must be a number, not true or false"}
    ]
