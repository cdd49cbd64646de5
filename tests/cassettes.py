"""Read the recorded OpenAI traffic in tests/fixtures/openai-cassettes and replay it over loopback.

Two formats are recorded there: vcrpy's standard YAML (read with vcrpy's own deserialiser) and
pydantic-ai's serializer (``parsed_body`` instead of a body string; read as plain YAML).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from vcr.serialize import deserialize
from vcr.serializers import yamlserializer

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openai-cassettes"


@dataclass(frozen=True)
class Recorded:
    """One recorded response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def cassette_path(prefix: str) -> Path:
    matches = sorted(FIXTURES.glob(f"{prefix}*.yaml"))
    assert matches, f"no cassette {prefix}* in {FIXTURES}"
    return matches[0]


def load_responses(prefix: str) -> list[Recorded]:
    """Every response recorded in the cassette whose file name starts with ``prefix``."""
    text = cassette_path(prefix).read_text()
    raw = yaml.safe_load(text)
    if any("parsed_body" in item["response"] for item in raw["interactions"]):
        responses = []
        for item in raw["interactions"]:
            response = item["response"]
            headers = {
                key.lower(): str(value[0] if isinstance(value, list) else value)
                for key, value in (response.get("headers") or {}).items()
            }
            responses.append(
                Recorded(response["status"]["code"], headers, json.dumps(response["parsed_body"]).encode())
            )
        return responses
    _requests, vcr_responses = deserialize(text, yamlserializer)
    result = []
    for response in vcr_responses:
        headers = {key.lower(): str(values[0]) for key, values in response["headers"].items()}
        body = response["body"]["string"]
        result.append(Recorded(response["status"]["code"], headers, body if isinstance(body, bytes) else body.encode()))
    return result


def replay_app(responses: list[Recorded]) -> Starlette:
    """An upstream that answers successive chat-completions calls with the recorded responses, in order."""
    queue = list(responses)
    seen: list[dict[str, Any]] = []

    async def completions(request: Request) -> Response:
        seen.append(json.loads(await request.body()))
        recorded = queue.pop(0) if len(queue) > 1 else queue[0]
        headers = {
            k: v
            for k, v in recorded.headers.items()
            if k not in ("content-length", "transfer-encoding", "content-encoding", "connection")
        }
        return Response(recorded.body, status_code=recorded.status, headers=headers)

    app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
    app.state.seen = seen
    return app
