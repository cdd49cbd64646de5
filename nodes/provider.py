"""The one seam between Tierwise and a model: ``Provider.complete(tier, request) -> ModelReply``.

``OpenAIProvider`` is the real implementation: the ``openai`` SDK's async client pointed at the
tier's base URL, with the SDK's own retries off so every attempt is the pipeline's to log and cost,
on the SDK's aiohttp transport (its default pool slows down badly past a few dozen concurrent calls).
It asks for strict structured outputs (``response_format`` json_schema) and, for endpoints that do
not support them, falls back to JSON mode with the schema in the prompt — remembering the downgrade
per tier so the refused request is made only once. A tier set to ``json_object_schema`` is sent JSON
mode with the schema attached as well, which local servers (llama.cpp, Ollama) enforce while decoding.
SDK errors are converted to ``UpstreamError`` here, at the edge, so nothing above this module knows
the SDK.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import httpx2
import openai

from nodes.backoff import is_retryable, parse_retry_after
from nodes.confidence import TokenLogprob, parse_logprobs
from nodes.cost import Usage
from nodes.errors import (
    CapacityUnavailable,
    ConnectionFailed,
    QuotaExhausted,
    RateLimited,
    RequestRejected,
    ServerError,
    UpstreamError,
    UpstreamTimeout,
)
from nodes.settings import StructuredOutputMode
from nodes.tiers import Tier, TierName
from nodes.tls import client_tls

logger = logging.getLogger("tierwise.provider")

JSON_MODE_INSTRUCTION = (
    "Reply with one JSON object only, no prose and no code fences. "
    "It must satisfy this JSON Schema:\n<json_schema>\n{schema}\n</json_schema>"
)


OutputKind = Literal["schema", "json_object", "text"]
"""What a reply must be: JSON satisfying the request's schema, any JSON object, or free text."""


@dataclass(frozen=True)
class ModelRequest:
    """One call's messages and the schema its reply must satisfy (or that it is free text or any JSON object)."""

    messages: list[dict[str, Any]]
    schema_name: str
    output_schema: dict[str, Any]
    max_output_tokens: int
    timeout_s: float
    output_kind: OutputKind = "schema"
    tools: tuple[dict[str, Any], ...] = ()
    """Function tools, in chat-completions form, sent as they are."""
    options: tuple[tuple[str, Any], ...] = ()
    """Further chat-completions parameters sent as they are (``tool_choice``, ``temperature``...)."""
    service_tier: str | None = None
    """OpenAI's processing lane for the call (``flex``); None sends none, which is standard."""
    prompt_cache_key: str | None = None
    """Groups calls that share a prompt prefix, so OpenAI's prompt cache finds them (the step's identity)."""
    logprobs: bool = False
    """Ask for the output tokens' log-probabilities (for a confidence that can be calibrated)."""


@dataclass(frozen=True)
class ModelReply:
    """What came back from one successful HTTP exchange, before any validation."""

    content: str | None
    refusal: str | None
    finish_reason: str | None
    usage: Usage
    model: str
    structured_outputs: StructuredOutputMode
    headers: Mapping[str, str] = field(default_factory=dict)
    service_tier: str | None = None
    """The processing lane the endpoint says it used, when it says."""
    token_logprobs: tuple[TokenLogprob, ...] | None = None
    """The output tokens and their log-probabilities, when they were asked for and given."""
    tool_calls: tuple[dict[str, Any], ...] = ()
    """The function calls the model made, in chat-completions form (``id``, ``type``, ``function``)."""


class Provider(Protocol):
    """Anything that can answer a ``ModelRequest`` on a tier."""

    async def complete(self, tier: Tier, request: ModelRequest) -> ModelReply:
        """Make one model call; raise ``UpstreamError`` when no answer came back."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def response_format_for(mode: StructuredOutputMode, request: ModelRequest) -> dict[str, Any] | None:
    """The ``response_format`` parameter for ``mode`` (None for free text: none is sent)."""
    if request.output_kind == "text":
        return None
    if request.output_kind == "json_object":
        return {"type": "json_object"}
    if mode == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": request.schema_name, "schema": request.output_schema, "strict": True},
        }
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": request.output_schema}
    return {"type": "json_object"}


def messages_for(mode: StructuredOutputMode, request: ModelRequest) -> list[dict[str, Any]]:
    """The messages for ``mode``: JSON mode (either kind) carries the schema in an extra system message."""
    if mode == "json_schema" or request.output_kind != "schema":
        return request.messages
    instruction = JSON_MODE_INSTRUCTION.format(schema=json.dumps(request.output_schema, indent=1))
    return [*request.messages[:1], {"role": "system", "content": instruction}, *request.messages[1:]]


def _refuses_json_schema(exc: openai.APIStatusError) -> bool:
    if exc.status_code != 400:
        return False
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    param = error.get("param") if isinstance(error, dict) else None
    text = f"{param} {exc.message}".lower()
    return "response_format" in text or "json_schema" in text


def _refuses_logprobs(exc: openai.APIStatusError) -> bool:
    if exc.status_code != 400:
        return False
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error", body) if isinstance(body, dict) else {}
    param = error.get("param") if isinstance(error, dict) else None
    return "logprobs" in f"{param} {exc.message}".lower()


def _status_error_class(status: int, code: str | None) -> type[UpstreamError]:
    """Which kind of failure an HTTP error status is (the mapping table at the SDK edge)."""
    if status == 429:
        if code == "resource_unavailable":
            return CapacityUnavailable
        return QuotaExhausted if code == "insufficient_quota" else RateLimited
    if status in (408, 409) or status >= 500:
        return ServerError
    return RequestRejected


def _error_code(body: object) -> str | None:
    error = body.get("error", body) if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None
    if error.get("type") == "insufficient_quota":
        return "insufficient_quota"
    raw_code = error.get("code") or error.get("type")
    return str(raw_code) if raw_code is not None else None


def upstream_error_from(exc: Exception) -> UpstreamError:
    """Translate an SDK or transport exception into one of the ``UpstreamError`` kinds."""
    if isinstance(exc, openai.APITimeoutError):
        return UpstreamTimeout("the model call timed out")
    if isinstance(exc, openai.APIConnectionError):
        return ConnectionFailed(f"could not reach the model endpoint: {exc}")
    if isinstance(exc, openai.APIStatusError):
        headers = exc.response.headers
        code = _error_code(exc.body)
        status = exc.status_code
        kind = _status_error_class(status, code)
        return kind(
            f"HTTP {status}{f' {code}' if code else ''}: {exc.message}"[:500],
            status=status,
            code=code,
            retry_after_s=parse_retry_after(headers),
            headers={key.lower(): value for key, value in headers.items()},
            retryable=is_retryable(status, code, headers.get("x-should-retry")),
        )
    return UpstreamError(f"unexpected error from the model client: {exc!r}")


BATCH_LABEL = "tierwise_batch"
"""The metadata key under which a batch carries the service's own name for it."""


@dataclass(frozen=True)
class BatchState:
    """A Batch API batch as the endpoint reports it."""

    status: str
    output_file_id: str | None
    error_file_id: str | None

    @property
    def ended(self) -> bool:
        """True once the batch will change no more (completed, failed, expired or cancelled)."""
        return self.status in ("completed", "failed", "expired", "cancelled")


def request_body(tier: Tier, request: ModelRequest, mode: StructuredOutputMode) -> dict[str, Any]:
    """The chat-completions body of one call on ``tier`` in ``mode`` (sent as is, or as a Batch API line)."""
    body: dict[str, Any] = {"model": tier.model, "messages": messages_for(mode, request)}
    response_format = response_format_for(mode, request)
    if response_format is not None:
        body["response_format"] = response_format
    body["max_completion_tokens"] = request.max_output_tokens
    if request.tools:
        body["tools"] = list(request.tools)
    body.update(request.options)
    if request.service_tier is not None:
        body["service_tier"] = request.service_tier
    if request.prompt_cache_key is not None:
        body["prompt_cache_key"] = request.prompt_cache_key
    if request.logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = 1  # llama.cpp's server returns logprobs only when top_logprobs is set too
    return body


def reply_from(
    completion: Any, tier: Tier, request: ModelRequest, mode: StructuredOutputMode, headers: Mapping[str, str]
) -> ModelReply:
    """The ``ModelReply`` of a chat-completions answer (a response body, or a Batch API result line's body)."""
    try:
        choice = completion["choices"][0]
        message = choice["message"]
        content, refusal = message.get("content"), message.get("refusal")
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ServerError("the endpoint answered with no usable choice") from exc
    service_tier = completion.get("service_tier")
    return ModelReply(
        content=content,
        refusal=refusal,
        finish_reason=choice.get("finish_reason"),
        usage=Usage.from_openai(completion.get("usage")),
        model=completion.get("model") or tier.model,
        structured_outputs=mode,
        headers=headers,
        service_tier=service_tier if isinstance(service_tier, str) else None,
        token_logprobs=parse_logprobs(choice) if request.logprobs else None,
        tool_calls=tuple(call for call in message.get("tool_calls") or () if isinstance(call, dict)),
    )


class OpenAIProvider:
    """The OpenAI-compatible provider: one ``AsyncOpenAI`` client per (base URL, key)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[str | None, str], openai.AsyncOpenAI] = {}
        self._downgraded: set[TierName] = set()
        self._no_logprobs: set[TierName] = set()

    def _client(self, tier: Tier) -> openai.AsyncOpenAI:
        key = (tier.base_url, tier.api_key)
        client = self._clients.get(key)
        if client is None:
            client = openai.AsyncOpenAI(
                api_key=tier.api_key,
                base_url=tier.base_url,
                max_retries=0,
                http_client=openai.DefaultAioHttpClient(verify=client_tls()),
            )
            self._clients[key] = client
        return client

    def mode_for(self, tier: Tier) -> StructuredOutputMode:
        """The structured-output mode in force for ``tier`` (configured, or downgraded after a refusal)."""
        return "json_object" if tier.name in self._downgraded else tier.structured_outputs

    async def complete(self, tier: Tier, request: ModelRequest) -> ModelReply:
        """Make one chat-completions call on ``tier``."""
        mode = self.mode_for(tier)
        if request.logprobs and tier.name in self._no_logprobs:
            request = replace(request, logprobs=False)
        try:
            return await self._call(tier, request, mode)
        except UpstreamError:
            raise
        except openai.APIStatusError as exc:
            if request.logprobs and _refuses_logprobs(exc):
                logger.warning(
                    "the %s tier's endpoint refused logprobs; its confidences are the model's own from now on "
                    "(set TIERWISE_%s_LOGPROBS=0 to skip this probe)",
                    tier.name,
                    tier.name.upper(),
                )
                self._no_logprobs.add(tier.name)
                return await self.complete(tier, request)
            if mode == "json_schema" and _refuses_json_schema(exc):
                logger.warning(
                    "the %s tier's endpoint refused json_schema structured outputs; "
                    "using JSON mode from now on "
                    "(set TIERWISE_%s_STRUCTURED_OUTPUTS=json_object to skip this probe)",
                    tier.name,
                    tier.name.upper(),
                )
                self._downgraded.add(tier.name)
                try:
                    return await self._call(tier, request, "json_object")
                except UpstreamError:
                    raise
                except Exception as retry_exc:
                    raise upstream_error_from(retry_exc) from retry_exc
            raise upstream_error_from(exc) from exc
        except Exception as exc:
            raise upstream_error_from(exc) from exc

    async def _call(self, tier: Tier, request: ModelRequest, mode: StructuredOutputMode) -> ModelReply:
        # The SDK's documented raw request (``client.post`` with ``cast_to=httpx2.Response``): the same
        # endpoint, auth, timeouts and error types as ``chat.completions.create``, without re-walking a
        # body that is already plain JSON against the SDK's parameter types or building its pydantic
        # models from the reply; together those cost more CPU than the rest of the service's work on a
        # request, and only five fields of the reply are needed.
        raw = await self._client(tier).post(
            "/chat/completions",
            cast_to=httpx2.Response,
            body=request_body(tier, request, mode),
            options={"timeout": request.timeout_s},
        )
        try:
            completion = json.loads(raw.content)
        except ValueError as exc:
            raise ServerError("the endpoint answered with no usable choice") from exc
        return reply_from(completion, tier, request, mode, {k.lower(): v for k, v in raw.headers.items()})

    # -- the Batch API -----------------------------------------------------------------------------------------

    async def submit_batch(self, tier: Tier, lines: list[dict[str, Any]], label: str) -> str:
        """Upload ``lines`` (``custom_id``, ``method``, ``url``, ``body``) as a batch file and start a batch.

        ``label`` is stored in the batch's metadata, so ``find_batch`` can find it after a crash.
        """
        content = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines).encode()
        try:
            client = self._client(tier)
            uploaded = await client.files.create(file=(f"{label}.jsonl", content), purpose="batch")
            batch = await client.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={BATCH_LABEL: label},
            )
        except Exception as exc:
            raise upstream_error_from(exc) from exc
        return batch.id

    async def find_batch(self, tier: Tier, label: str) -> str | None:
        """The id of the batch started with ``label`` among the endpoint's recent batches, or None."""
        try:
            async for batch in self._client(tier).batches.list(limit=100):
                if (batch.metadata or {}).get(BATCH_LABEL) == label:
                    return batch.id
        except Exception as exc:
            raise upstream_error_from(exc) from exc
        return None

    async def batch_state(self, tier: Tier, batch_id: str) -> BatchState:
        """Where a batch stands: its status and, once it has them, its output and error files."""
        try:
            batch = await self._client(tier).batches.retrieve(batch_id)
        except Exception as exc:
            raise upstream_error_from(exc) from exc
        return BatchState(batch.status, batch.output_file_id, batch.error_file_id)

    async def batch_lines(self, tier: Tier, file_id: str) -> list[dict[str, Any]]:
        """The JSON lines of a batch's output or error file."""
        try:
            content = await self._client(tier).files.content(file_id)
        except Exception as exc:
            raise upstream_error_from(exc) from exc
        lines = []
        for text in content.text.splitlines():
            if not text.strip():
                continue
            try:
                line = json.loads(text)
            except ValueError:
                continue
            if isinstance(line, dict):
                lines.append(line)
        return lines

    async def aclose(self) -> None:
        """Close every client's connection pool."""
        for client in self._clients.values():
            await client.close()
        self._clients.clear()
