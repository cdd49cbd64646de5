"""The OpenAI-compatible routes: read the request, hand it to the surface, send its answer.

The key is checked here like on every ``/v1`` route, but a missing or wrong one is answered with
OpenAI's error body, as everything on these paths is.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from nodes.api import read_body, tierwise_of
from nodes.compat.errors import openai_error
from nodes.compat.models import model_list
from nodes.compat.surface import Answer, Endpoint
from nodes.errors import ProblemError
from nodes.keys import Caller
from nodes.openapi import ROUTES

router = APIRouter()
STARTED = int(time.time())
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


async def caller_or_error(request: Request) -> Caller | JSONResponse:
    """Who is calling, or OpenAI's 401."""
    try:
        return await tierwise_of(request).admission.caller(request.headers)
    except ProblemError as exc:
        reply = openai_error(exc)
        return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


def send(answer: Answer) -> Response:
    """The HTTP response of an answer: JSON, or a ``text/event-stream`` of its events."""
    reply = answer.reply
    if answer.events is not None:
        return StreamingResponse(
            answer.events, media_type="text/event-stream", headers={**reply.headers, **STREAM_HEADERS}
        )
    return JSONResponse(reply.body, status_code=reply.status, headers=reply.headers)


@router.get("/v1/models", **ROUTES["openai_models"])
async def list_models(request: Request) -> Response:
    """OpenAI's model list; n8n's OpenAI credential test calls it."""
    who = await caller_or_error(request)
    if isinstance(who, Response):
        return who
    return JSONResponse(model_list(STARTED))


async def _serve(endpoint: Endpoint, request: Request) -> Response:
    received_at = time.monotonic()
    who = await caller_or_error(request)
    if isinstance(who, Response):
        return who
    tierwise = tierwise_of(request)
    settings = tierwise.settings
    try:
        raw = await read_body(
            request, settings.max_body_bytes, "TIERWISE_MAX_BODY_BYTES", timeout_s=settings.body_timeout_s
        )
    except ProblemError as exc:
        return send(Answer(openai_error(exc)))
    answer = await tierwise.openai.answer(endpoint, raw, caller=who, headers=request.headers, received_at=received_at)
    return send(answer)


@router.post("/v1/chat/completions", **ROUTES["chat_completions"])
async def chat_completions(request: Request) -> Response:
    """A chat completion: ``model`` names the starting tier; a JSON Schema or tool parameters are enforced."""
    return await _serve("chat", request)


@router.post("/v1/responses", **ROUTES["responses"])
async def create_response(request: Request) -> Response:
    """A response, served through chat form on every tier."""
    return await _serve("responses", request)
