"""The model ids of the OpenAI-compatible surface, and the starting tier each one names.

``tierwise/nano``, ``tierwise/mini`` and ``tierwise/full`` start a run on that tier; ``tierwise/auto``
routes like the nodes' ``tier: auto``. The bare names (``auto``, ``nano``...) are accepted too. Any
other id is OpenAI's 404 ``model_not_found``, naming the ids that exist.
"""

from __future__ import annotations

from typing import Any

from nodes.errors import NotFound
from nodes.protocol import TierChoice

PREFIX = "tierwise/"
TIER_CHOICES: tuple[TierChoice, ...] = ("auto", "nano", "mini", "full")
MODEL_IDS = tuple(PREFIX + choice for choice in TIER_CHOICES)


class ModelNotFound(NotFound):
    """A ``model`` that is not one of the surface's ids."""


def tier_of_model(model: object) -> TierChoice:
    """The tier choice a model id names, or ``ModelNotFound``."""
    name = model.removeprefix(PREFIX) if isinstance(model, str) else None
    for choice in TIER_CHOICES:
        if name == choice:
            return choice
    raise ModelNotFound(
        f"The model `{model}` does not exist; Tierwise serves {', '.join(MODEL_IDS)} "
        "(tierwise/auto picks the cheapest tier that is right for the step)"
    )


def model_list(created: int) -> dict[str, Any]:
    """``GET /v1/models`` in OpenAI's list shape."""
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": created, "owned_by": "tierwise"} for model in MODEL_IDS],
    }
