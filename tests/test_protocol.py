"""The protocol's shared request fields, batches and the reply value."""

from __future__ import annotations

import pytest

from nodes.errors import InvalidRequest
from nodes.protocol import BatchRequest, NodeRequest, Reply, summarise, validate_request


def test_unknown_fields_are_refused_by_name() -> None:
    with pytest.raises(InvalidRequest) as refused:
        validate_request(NodeRequest, {"input": "x", "max_teir": "mini"})
    assert refused.value.detail == "max_teir: unknown field; check the spelling against GET /v1/nodes"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({}, "input: field required"),
        ({"input": None}, "input: input must not be null; send the text or JSON to work on"),
        ({"input": "  "}, "input: input must not be empty; send the text or JSON to work on"),
        ({"input": "x", "tier": "huge"}, "tier: Input should be 'auto', 'nano', 'mini' or 'full'"),
    ],
)
def test_common_fields_are_checked_with_a_sentence(body: dict[str, object], detail: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        validate_request(NodeRequest, body)
    assert refused.value.detail == detail


def test_a_batch_needs_items_and_takes_defaults() -> None:
    batch = validate_request(BatchRequest, {"items": [{"input": "a"}], "defaults": {"labels": ["x"]}})
    assert batch.items == [{"input": "a"}] and batch.defaults == {"labels": ["x"]}
    with pytest.raises(InvalidRequest, match="items: List should have at least 1 item"):
        validate_request(BatchRequest, {"items": []})


def test_summaries_and_replies() -> None:
    assert summarise([]) == "the request is invalid"
    assert Reply(502, {}).is_problem and not Reply(202, {}).is_problem
