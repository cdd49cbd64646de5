"""Price lanes: how a model call is processed upstream, and what each lane costs on each tier.

    standard  the endpoint's normal processing, at the tier's prices
    flex      OpenAI's flex processing (``service_tier: "flex"``): slower, sometimes out of capacity
              (429 ``resource_unavailable``, not billed), at a share of the standard prices (50%)
    batch     the Batch API (``nodes.batchlane``): minutes to hours, for asynchronous work only, at a
              share of the standard prices (50%)

A run asks for a lane with the request's ``processing`` field (default ``TIERWISE_PROCESSING``).
Which tiers have which lanes is configuration (``TIERWISE_<TIER>_LANES``): OpenAI's endpoint and
the sandbox have both; any other endpoint only ``standard`` unless configured. A lane a tier lacks
is refused — at start-up for the default, at request time for a request — never sent at another
lane's price. A flex call that finds no capacity is repeated at once on standard (or, with
``TIERWISE_FLEX_UNAVAILABLE=retry``, waited out and tried on flex again).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal, get_args

from nodes.cost import Price

Lane = Literal["standard", "flex", "batch"]
LANES: tuple[Lane, ...] = get_args(Lane)

FLEX_SERVICE_TIER = "flex"


def lane_price(standard: Price, share: Decimal) -> Price:
    """``standard`` prices scaled to a lane that costs ``share`` of them."""
    return Price(standard.input * share, standard.cached_input * share, standard.output * share)


def lane_answered(requested: Lane, service_tier: str | None) -> Lane:
    """The lane a reply was processed on: the one asked for, unless the reply says it was processed otherwise.

    OpenAI's reply names the ``service_tier`` it used; a flex request it answered on ``default`` is billed
    at standard prices, so it is priced at them. An endpoint that does not say is taken at its word.
    """
    if requested == "flex" and service_tier is not None and service_tier != FLEX_SERVICE_TIER:
        return "standard"
    return requested
