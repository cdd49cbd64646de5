"""Server-sent events as OpenAI frames them.

Each event is ``data: <compact JSON>`` (after ``event: <type>`` on the Responses API), ended by a
blank line; Chat Completions streams end with ``data: [DONE]``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

DONE = b"data: [DONE]\n\n"


def data_frame(payload: dict[str, Any]) -> bytes:
    """One ``data:`` event."""
    return b"data: " + compact(payload) + b"\n\n"


def event_frame(payload: dict[str, Any]) -> bytes:
    """One named event: its ``type`` as the ``event:`` line, then its data."""
    return f"event: {payload['type']}\n".encode() + data_frame(payload)


def compact(payload: dict[str, Any]) -> bytes:
    """JSON without spaces after separators, non-ASCII kept, as OpenAI's streams carry it."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def pieces(text: str, size: int = 24) -> Iterable[str]:
    """A text cut into deltas of about ``size`` characters, at spaces where it can be."""
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            space = text.rfind(" ", start + 1, end + 8)
            end = space if space > start else end
        yield text[start:end]
        start = end
