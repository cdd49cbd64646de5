"""The sandbox's Batch API: files, batches and their results, shaped like OpenAI's.

* ``POST /v1/files`` (multipart ``file`` and ``purpose``) keeps an uploaded JSONL file;
  ``GET /v1/files/{id}/content`` gives a file's bytes back (input, output or error file).
* ``POST /v1/batches`` starts a batch over an uploaded file: ``batch_delay_ms`` later (sandbox
  configuration) every line's ``body`` is answered as ``POST /v1/chat/completions`` would answer it
  (faults and reply shaping included, rate-limit buckets not: the Batch API has limits of its own),
  200 answers going to the output file and the rest to the error file, and the batch is ``completed``.
* ``GET /v1/batches/{id}`` and ``GET /v1/batches`` (newest first) report batches.

Everything lives in memory, for as long as the sandbox runs: a service restarted against it finds its
batches again, as it would find them at OpenAI.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from nodes.sandbox import wire

LineAnswer = Callable[[Any, str], tuple[int, dict[str, Any]]]
"""Answers one batch line's ``body`` (for the batch with that id): its HTTP status and JSON body."""

ENDPOINTS = ("/v1/chat/completions",)


class BatchDesk:
    """The uploaded files and the batches over them."""

    def __init__(self, answer: LineAnswer, delay_s: Callable[[], float]) -> None:
        self.answer = answer
        self.delay_s = delay_s
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(1)
        self._work: set[asyncio.Task[None]] = set()

    def add_file(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        """Keep a file; its OpenAI file object."""
        file_id = f"file-sandbox-{next(self._numbers)}"
        self.files[file_id] = {
            "id": file_id,
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
        }
        self.contents[file_id] = content
        return self.files[file_id]

    def start(self, input_file_id: str, endpoint: str, metadata: dict[str, str] | None) -> dict[str, Any]:
        """Start a batch over an uploaded file; it completes ``delay_s()`` later."""
        batch_id = f"batch_sandbox_{next(self._numbers)}"
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": input_file_id,
            "completion_window": "24h",
            "status": "in_progress",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": now,
            "expires_at": now + 86_400,
            "completed_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata,
        }
        self.batches[batch_id] = batch
        task = asyncio.get_running_loop().create_task(self._process(batch))
        self._work.add(task)
        task.add_done_callback(self._work.discard)
        return batch

    async def _process(self, batch: dict[str, Any]) -> None:
        await asyncio.sleep(self.delay_s())
        answered: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for text in self.contents[batch["input_file_id"]].decode().splitlines():
            if not text.strip():
                continue
            try:
                line = json.loads(text)
                custom_id, body = line["custom_id"], line["body"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "invalid_json", "message": "This line is not a batch request."}
                failed.append({"id": wire.request_id(), "custom_id": None, "response": None, "error": error})
                continue
            status, reply = self.answer(body, batch["id"])
            result = {
                "id": f"batch_req_{next(self._numbers)}",
                "custom_id": custom_id,
                "response": {"status_code": status, "request_id": wire.request_id(), "body": reply},
                "error": None,
            }
            (answered if status == 200 else failed).append(result)
        if answered:
            batch["output_file_id"] = self._results(answered, batch["id"], "output")
        if failed:
            batch["error_file_id"] = self._results(failed, batch["id"], "error")
        batch["request_counts"] = {"total": len(answered) + len(failed), "completed": len(answered),
                                   "failed": len(failed)}  # fmt: skip
        batch["status"] = "completed"
        batch["completed_at"] = int(time.time())

    def _results(self, lines: list[dict[str, Any]], batch_id: str, kind: str) -> str:
        content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        return str(self.add_file(content, f"{batch_id}_{kind}.jsonl", "batch_output")["id"])


def _error(status: int, message: str, param: str | None = None) -> JSONResponse:
    return JSONResponse(wire.error_body(message, "invalid_request_error", param=param), status_code=status)


def add_batch_api(app: FastAPI, desk: BatchDesk) -> None:
    """Serve the Batch API's endpoints from ``desk``."""
    app.state.batches = desk

    @app.post("/v1/files")
    async def upload(request: Request) -> Response:
        async with request.form() as form:
            upload, purpose = form.get("file"), form.get("purpose")
            if upload is None or isinstance(upload, str):
                return _error(400, "Missing required parameter: 'file'.", "file")
            if not isinstance(purpose, str) or not purpose:
                return _error(400, "Missing required parameter: 'purpose'.", "purpose")
            return JSONResponse(desk.add_file(await upload.read(), upload.filename or "upload.jsonl", purpose))

    @app.get("/v1/files/{file_id}/content")
    async def content(file_id: str) -> Response:
        if file_id not in desk.contents:
            return _error(404, f"No such File object: {file_id}", "id")
        return Response(desk.contents[file_id], media_type="application/octet-stream")

    @app.post("/v1/batches")
    async def create(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _error(400, "We could not parse the JSON body of your request.")
        input_file_id, endpoint = body.get("input_file_id"), body.get("endpoint")
        if input_file_id not in desk.files or desk.files[input_file_id]["purpose"] != "batch":
            return _error(400, f"No batch input file found with id {input_file_id!r}.", "input_file_id")
        if endpoint not in ENDPOINTS:
            return _error(400, f"Invalid 'endpoint': expected one of {', '.join(ENDPOINTS)}.", "endpoint")
        if body.get("completion_window") != "24h":
            return _error(400, "Invalid 'completion_window': expected '24h'.", "completion_window")
        metadata = body.get("metadata")
        return JSONResponse(desk.start(input_file_id, endpoint, metadata if isinstance(metadata, dict) else None))

    @app.get("/v1/batches/{batch_id}")
    async def retrieve(batch_id: str) -> Response:
        if batch_id not in desk.batches:
            return _error(404, f"No batch found with id '{batch_id}'.", "batch_id")
        return JSONResponse(desk.batches[batch_id])

    @app.get("/v1/batches")
    async def listed(limit: int = 20, after: str | None = None) -> Response:
        newest = list(reversed(desk.batches.values()))
        if after is not None and after in desk.batches:
            newest = newest[[batch["id"] for batch in newest].index(after) + 1 :]
        page = newest[: max(1, min(limit, 100))]
        return JSONResponse({
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(newest) > len(page),
        })  # fmt: skip
