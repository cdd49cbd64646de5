"""extract: the user's schema in its strict form for the model, the reply mapped back."""

from __future__ import annotations

from typing import Any

from nodes.catalog import NODES


def task(node: str, **fields: Any) -> Any:
    return NODES[node].task(NODES[node].parse(fields))


def test_extract_optional_fields_round_trip() -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string", "minLength": 2}, "age": {"type": "integer"}},
        "required": ["name"],
    }
    t = task("extract", input="x", schema=schema)
    assert t.strict_schema["required"] == ["name", "age"]
    assert t.strict_schema["properties"]["age"]["type"] == ["integer", "null"]
    assert t.output_schema == schema
    assert t.finalize({"name": "Ann", "age": None}) == {"name": "Ann"}
