"""The sandbox's Batch API, driven by the official openai SDK: upload, start, poll, read the results."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from support import Sandbox

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["billing", "bug"]}, "confidence": {"type": "number"}},
    "required": ["label", "confidence"],
    "additionalProperties": False,
}


def line(custom_id: str, model: str = "gpt-5.4-nano", **extra: Any) -> dict[str, Any]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": "I was charged twice"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA, "strict": True}},
        **extra,
    }
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=sandbox.base_url, api_key="sk-test", http_client=httpx.Client(), max_retries=0) as sdk:
        yield sdk


def finished(client: openai.OpenAI, batch_id: str) -> Any:
    deadline = time.monotonic() + 10
    while (batch := client.batches.retrieve(batch_id)).status != "completed":
        assert time.monotonic() < deadline, batch.status
        time.sleep(0.02)
    return batch


def test_a_batch_answers_every_line_in_its_output_and_error_files(sandbox: Sandbox, client: openai.OpenAI) -> None:
    content = "".join(json.dumps(item) + "\n" for item in [line("a"), line("b", messages=[]), line("c")])
    uploaded = client.files.create(file=("in.jsonl", content.encode()), purpose="batch")
    assert (uploaded.purpose, uploaded.bytes) == ("batch", len(content))
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"tierwise_batch": "b-1"},
    )
    assert batch.status == "in_progress" and batch.metadata == {"tierwise_batch": "b-1"}
    done = finished(client, batch.id)
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 2, 1)
    outputs = [json.loads(text) for text in client.files.content(done.output_file_id).text.splitlines()]
    assert [item["custom_id"] for item in outputs] == ["a", "c"]
    answer = json.loads(outputs[0]["response"]["body"]["choices"][0]["message"]["content"])
    assert answer["label"] in ("billing", "bug") and outputs[0]["response"]["status_code"] == 200
    (error,) = [json.loads(text) for text in client.files.content(done.error_file_id).text.splitlines()]
    assert error["custom_id"] == "b" and error["response"]["status_code"] == 400
    assert [batch.id for batch in client.batches.list(limit=100)][0] == batch.id
    logged = [entry for entry in sandbox.requests() if entry.get("batch") == batch.id]
    assert [entry["status"] for entry in logged] == [200, 400, 200]


def test_faults_apply_to_batch_lines_and_a_batch_waits_its_delay(sandbox: Sandbox, client: openai.OpenAI) -> None:
    sandbox.configure(batch_delay_ms=300, faults=[{"kind": "refusal", "model": "*nano*", "times": 1}])
    uploaded = client.files.create(file=("in.jsonl", json.dumps(line("a")).encode()), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h")
    assert client.batches.retrieve(batch.id).status == "in_progress"  # 300 ms not yet passed
    done = finished(client, batch.id)
    (output,) = [json.loads(text) for text in client.files.content(done.output_file_id).text.splitlines()]
    assert output["response"]["body"]["choices"][0]["message"]["refusal"]


def test_a_batch_over_a_missing_file_is_refused(client: openai.OpenAI) -> None:
    try:
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    except openai.BadRequestError as exc:
        assert exc.status_code == 400 and "file-nope" in exc.message
    else:
        raise AssertionError("a batch over a missing file was accepted")
