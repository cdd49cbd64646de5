"""The tier ladder: names, their order, and the concrete endpoint, model and price bound to each.

Escalation climbs ``nano → mini → full``; a run starts on some rung and may climb no higher than its
``max_tier``. Tiers differ only in base URL, key, model and price, so one provider serves them all.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, get_args

from nodes.cost import Price
from nodes.errors import ConfigError
from nodes.lanes import LANES, Lane, lane_price
from nodes.settings import Settings, StructuredOutputMode, TierSettings

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
    lanes: Mapping[Lane, Price] | None = None
    """The lanes this tier offers and their prices (None: standard only, at ``price``)."""
    flex_timeout_s: float = 900.0
    logprobs: bool = False

    def offers(self, lane: Lane) -> bool:
        """Whether this tier's endpoint processes calls on ``lane``."""
        return lane == "standard" or (self.lanes is not None and lane in self.lanes)

    def price_on(self, lane: Lane) -> Price:
        """What a call costs on ``lane`` (a lane the tier lacks is never sent, so never priced)."""
        if lane == "standard" or self.lanes is None:
            return self.price
        return self.lanes[lane]

    def call_timeout_s(self, lane: Lane) -> float:
        """How long one call on ``lane`` may take."""
        return self.flex_timeout_s if lane == "flex" else self.timeout_s


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
        price = Price(conf.price_input, conf.price_cached_input, conf.price_output)
        offered = lanes_of(conf, sandbox=sandbox_url is not None)
        tiers[name] = Tier(
            name=name,
            model=conf.model,
            base_url=base_url,
            api_key=api_key,
            price=price,
            timeout_s=conf.timeout_s,
            structured_outputs=conf.structured_outputs,
            lanes={lane: lane_price(price, _share(conf, lane)) for lane in offered},
            flex_timeout_s=conf.flex_timeout_s,
            logprobs=logprobs_of(name, conf, sandbox=sandbox_url is not None),
        )
    lacking = [name for name in LADDER if not tiers[name].offers(settings.processing)]
    if lacking:
        raise ConfigError(
            f"TIERWISE_PROCESSING is {settings.processing}, but the {', '.join(lacking)} tier has no "
            f"{settings.processing} lane: set TIERWISE_{lacking[0].upper()}_LANES if its endpoint offers it, "
            "or leave TIERWISE_PROCESSING at standard and ask for the lane per request."
        )
    return tiers


def logprobs_of(name: TierName, conf: TierSettings, *, sandbox: bool) -> bool:
    """Whether a tier is asked for logprobs: as configured, else nano and mini on OpenAI and the sandbox."""
    if conf.logprobs is not None:
        return conf.logprobs
    return name in ("nano", "mini") and (sandbox or conf.base_url is None)


def _share(conf: TierSettings, lane: Lane) -> Decimal:
    """The share of the standard prices a call on ``lane`` costs on this tier."""
    if lane == "flex":
        return conf.flex_price_share
    if lane == "batch":
        return conf.batch_price_share
    return Decimal(1)


def lanes_of(conf: TierSettings, *, sandbox: bool) -> tuple[Lane, ...]:
    """The lanes a tier offers: as configured, else every lane on OpenAI's endpoint and the sandbox."""
    if conf.lanes is not None:
        return tuple(lane for lane in LANES if lane in conf.lanes)
    if sandbox or conf.base_url is None:
        return LANES
    return ("standard",)
