"""The OpenAI-compatible surface's service side: admission, the run and its stored record, the answer.

    body ─▶ translate (chat or responses; 400) ─▶ admit (key, Idempotency-Key, quotas) ─▶ chat node
         ─▶ submissions.run_now (the ladder; the record stored) ─▶ OpenAI's object, or its stream

The run goes through the same runner, ladder and store as a node's, so ``/v1/stats``, ``/v1/steps``,
the dashboard, budgets and the routing audit all see it; its record keeps the OpenAI request as it
came. Every refusal, and a run that every tier failed, is answered as OpenAI's error body (``errors``).
A streamed answer is released only once the run has finished and its answer passed every check.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from nodes.admission import Admission, preferred_wait_s
from nodes.catalog.chat import Chat
from nodes.compat import chat, responses
from nodes.compat.chat import Translated, invalid
from nodes.compat.errors import openai_error
from nodes.errors import ProblemError, UnsupportedSchema
from nodes.jsonbody import parse_json_object
from nodes.keys import Caller
from nodes.protocol import Reply
from nodes.record import RunRecord
from nodes.submit import Submissions

Endpoint = Literal["chat", "responses"]
CHAT = Chat()
PATHS: dict[Endpoint, str] = {"chat": "/v1/chat/completions", "responses": "/v1/responses"}
SCHEMA_PARAMS: dict[Endpoint, str] = {"chat": "response_format.json_schema.schema", "responses": "text.format.schema"}


@dataclass(frozen=True)
class Answer:
    """What to send: a JSON reply, or (``events`` set) a stream of server-sent events with the reply's headers."""

    reply: Reply
    events: Iterator[bytes] | None = field(default=None)


def answer_of(endpoint: Endpoint, record: RunRecord, body: Mapping[str, Any]) -> Reply:
    """A finished run as the endpoint's JSON answer: its object, or OpenAI's error for a failed run."""
    if record.failure is not None:
        return openai_error(record.failure, record.headers())
    rendered = chat.completion(record) if endpoint == "chat" else responses.response(record, body)
    return Reply(200, rendered, record.headers())


def stream_of(
    endpoint: Endpoint, record: RunRecord, body: Mapping[str, Any], translated: Translated
) -> Iterator[bytes]:
    """A succeeded run's answer as the endpoint's event stream."""
    if endpoint == "chat":
        return chat.chunks(record, include_usage=translated.include_usage)
    return responses.events(record, body)


class OpenAISurface:
    """Answers ``/v1/chat/completions`` and ``/v1/responses`` for one service process."""

    def __init__(self, admission: Admission, submissions: Submissions, *, timeout_s: float, max_wait_s: float) -> None:
        self.admission = admission
        self.submissions = submissions
        self.timeout_s = timeout_s
        self.max_wait_s = max_wait_s

    async def answer(
        self,
        endpoint: Endpoint,
        raw: bytes,
        *,
        caller: Caller,
        headers: Mapping[str, str],
        received_at: float,
    ) -> Answer:
        """Run one request to either endpoint; every refusal comes back as OpenAI's error body."""
        try:
            return await self._run(endpoint, raw, caller, headers, received_at)
        except ProblemError as exc:
            return Answer(openai_error(exc))

    async def _run(
        self, endpoint: Endpoint, raw: bytes, caller: Caller, headers: Mapping[str, str], received_at: float
    ) -> Answer:
        body = parse_json_object(raw)
        translate: Callable[[dict[str, Any], Mapping[str, str]], Translated] = (
            chat.translate if endpoint == "chat" else responses.translate
        )
        translated = translate(body, headers)
        # A stream cannot be replayed as it was sent, so only whole answers are kept for an Idempotency-Key.
        idempotency_key = None if translated.stream else headers.get("idempotency-key")
        wait_s = preferred_wait_s(headers, self.max_wait_s)
        async with self.admission.admit(caller, PATHS[endpoint], body, idempotency_key, wait_s=wait_s) as admitted:
            if isinstance(admitted, Reply):
                return Answer(admitted)
            request = CHAT.parse(translated.request)
            try:
                task = CHAT.task(request)
            except UnsupportedSchema as exc:
                raise invalid(SCHEMA_PARAMS[endpoint], f"The schema is not supported: {exc.detail}") from None
            self.submissions.runner.check_lane(CHAT, request)
            record = await self.submissions.run_now(
                CHAT,
                request,
                task,
                body,
                admitted,
                received_at,
                answer=lambda finished: answer_of(endpoint, finished, body),
                timeout_s=self.timeout_s,
            )
        reply = answer_of(endpoint, record, body)
        if translated.stream and record.failure is None:
            return Answer(reply, stream_of(endpoint, record, body, translated))
        return Answer(reply)
