"""``tierwise batch`` files: one answer per line in input order, broken lines answered as problems, a tally."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

from scripted import ScriptedProvider, fail, reply

from nodes.app import Tierwise
from nodes.batchfile import CLI_CALLER, Tally, parse_line, run_file
from nodes.catalog import NODES
from nodes.errors import InvalidRequest, MalformedRequest, RateLimited
from nodes.settings import Settings


def test_the_tally_counts_answers_cost_and_upstream_429s() -> None:
    tally = Tally(items=3)
    tally.add(1, {"attempts": [{"outcome": "rate_limited"}, {"outcome": "ok"}]}, Decimal("0.25"))
    tally.add(2, {"status": 422, "detail": "labels: must contain at least one label"}, Decimal(0))
    tally.add(3, {"attempts": [{"outcome": "ok"}]}, Decimal("0.5"))
    assert (tally.succeeded, tally.failed, tally.cost_usd, tally.upstream_rate_limited) == (2, 1, Decimal("0.75"), 1)
    assert tally.failures == {2: "labels: must contain at least one label"}


async def test_lines_are_answered_in_input_order_and_stored_under_the_cli(tmp_path: Path) -> None:
    answers = [reply({"label": label, "confidence": 0.9}) for label in ("billing", "bug", "billing")]
    provider = ScriptedProvider.of(answers[0], fail(RateLimited("429", retry_after_s=0)), answers[1], answers[2])
    settings = Settings(openai_api_key="sk-real-looking-key-1234", db=str(tmp_path / "t.db"))
    tierwise = await Tierwise.open(settings, provider=provider)
    sink = io.StringIO()
    lines = ['{"input": "a"}', "", "{broken", '{"input": "b"}', '{"input": "c"}']
    async with tierwise.running(background=False):
        tally = await run_file(
            tierwise.submissions,
            NODES["classify"],
            lines,
            sink,
            defaults={"labels": ["billing", "bug"]},
            concurrency=1,
            progress=False,
        )
        rows = await tierwise.store.fetchall("SELECT key_id FROM runs")
    written = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [answer.get("output", {}).get("label") for answer in written] == ["billing", None, "bug", "billing"]
    assert written[1]["status"] == 400
    assert (tally.items, tally.succeeded, tally.failed, tally.upstream_rate_limited) == (4, 3, 1, 1)
    assert rows == [{"key_id": CLI_CALLER.key_id}] * 3


def test_batch_lines_are_read_like_request_bodies() -> None:
    assert parse_line(3, '{"input": "x"}') == {"input": "x"}
    broken = parse_line(4, "{broken")
    assert isinstance(broken, MalformedRequest)
    assert broken.detail == "line 4: the request body is not valid JSON at line 1 column 2; send a JSON object"
    listed = parse_line(5, "[1]")
    assert isinstance(listed, MalformedRequest)
    assert listed.detail == "line 5: the request body must be a JSON object, not list"
    nan = parse_line(6, '{"metadata": {"x": NaN}}')
    assert isinstance(nan, MalformedRequest) and nan.detail.startswith("line 6: metadata.x: NaN is not valid JSON")
    assert [issue.loc for issue in nan.errors] == [("metadata", "x")]
    deep = parse_line(7, '{"input": ' + "[" * 5000 + "]" * 5000 + "}")
    assert isinstance(deep, InvalidRequest) and deep.status == 422
    assert deep.detail.startswith("line 7: input[0][0]") and "nested more than 64 levels deep" in deep.detail
