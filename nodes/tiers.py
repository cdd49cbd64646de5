"""The tier ladder: names, their order, and the concrete endpoint, model and price bound to each.

Escalation climbs ``nano → mini → full``; a run starts on some rung and may climb no higher than its
``max_tier``. Tiers differ only in base URL, key, model and price, so one provider serves them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from nodes.cost import Price
from nodes.errors import ConfigError
from nodes.settings import Settings, StructuredOutputMode

TierName = Literal["nano", "mini", "full"]
LADDER: tuple[TierName, ...] = get_args(TierName)

SANDBOX_API_KEY = "sandbox"


@dataclass(frozen=True)
class Tier:
    """One rung of the ladder, resolved from the settings."""

    name: TierName
    model: str
    base_url: str | None
    api_key: str
    price: Price
    timeout_s: float
    structured_outputs: StructuredOutputMode


@dataclass(frozen=True)
class Decision:
    """Where a run starts, and why (returned with the run and stored with it)."""

    tier: TierName
    reason: str


def climb(start: TierName, ceiling: TierName) -> list[TierName]:
    """The rungs a run may use, from ``start`` up to ``ceiling`` inclusive (just ``start`` if above it)."""
    first, last = LADDER.index(start), LADDER.index(ceiling)
    return list(LADDER[first : max(first, last) + 1])


def uses_sandbox(settings: Settings) -> bool:
    """True when every tier should be served by the built-in sandbox upstream.

    That is when ``TIERWISE_SANDBOX=1``, or when no key and no base URL is configured anywhere.
    """
    if settings.sandbox:
        return True
    configured = settings.openai_api_key or any(
        settings.tier(name).api_key or settings.tier(name).base_url for name in LADDER
    )
    return not configured


def resolve_tiers(settings: Settings, *, sandbox_url: str | None = None) -> dict[TierName, Tier]:
    """Bind every tier to its endpoint and key; with ``sandbox_url`` all tiers point at the sandbox.

    A tier with a real endpoint but no key of its own and no ``OPENAI_API_KEY`` is refused here, at
    start-up, rather than failing on the first request. A tier with a custom base URL and no key is
    allowed: local servers (Ollama, vLLM, LM Studio) need none.
    """
    tiers: dict[TierName, Tier] = {}
    for name in LADDER:
        conf = settings.tier(name)
        if sandbox_url is not None:
            base_url: str | None = sandbox_url
            api_key = SANDBOX_API_KEY
        else:
            base_url = conf.base_url
            key = conf.api_key or settings.openai_api_key
            if key is None and base_url is None:
                upper = name.upper()
                raise ConfigError(
                    f"the {name} tier has no API key: set TIERWISE_{upper}_API_KEY or OPENAI_API_KEY, "
                    f"or point it at a local endpoint with TIERWISE_{upper}_BASE_URL "
                    "(or set TIERWISE_SANDBOX=1 to use the built-in sandbox)."
                )
            api_key = key or "not-needed"
        tiers[name] = Tier(
            name=name,
            model=conf.model,
            base_url=base_url,
            api_key=api_key,
            price=Price(conf.price_input, conf.price_cached_input, conf.price_output),
            timeout_s=conf.timeout_s,
            structured_outputs=conf.structured_outputs,
        )
    return tiers
