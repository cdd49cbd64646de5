"""The economics benchmark's workload: a pipeline-like mix of node requests, each with its ground truth.

``build(runs, seed)`` returns ``runs`` items, the same list for the same arguments. The mix (shares are
drawn per item, so a 1,000-run workload is close to, not exactly, these):

* classify 45%: support-ticket triage over 7 labels, ``min_confidence`` 0.7; 20% multi-condition.
* extract 35%: four flat schemas (4-8 fields) and two nested ones (30% of extracts); 30% multi-condition.
* draft 12%: a customer reply of 60-200 words that must mention a reference (the truth keyword); 40% multi.
* judge 8%: one candidate reply against 2-3 criteria (simple) or 4-5 conditional ones (multi); 50% multi.

A multi-condition task states several conditions in its instructions. Two thirds of them (drawn per
item) say so with words ``auto``'s rules count (if, unless, otherwise, only when...); the rest state the
same kind of conditions in other words ("for resellers ...; when both ... and ..."), as people do.

Input lengths are lognormal: tickets median 600 characters (a few long threads), extract documents median
2,400 (some contracts past 8,000 characters, i.e. 2,000 tokens), draft material median 1,400, judged
candidates median 1,100 plus 500 of context.

Ground truth travels in simulator-only markers at the top of the (string) input, which the simulator's
behaviour profiles read (``profiles``): ``[[truth: {...}]]`` or ``[[truth multi: {...}]]``
with the task's true answer, a second ``[[truth: {"label": "SIMPLE" | "MODERATE"}]]`` with the true
answer to Tierwise's nano complexity check (MODERATE for multi-condition tasks), and for drafts
``[[words: N]]``, the length the simulated model writes.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

LABELS = ["billing", "bug", "feature_request", "account", "shipping", "cancellation", "other"]
MIN_CONFIDENCE = 0.7
MIX = (("classify", 0.45), ("extract", 0.35), ("draft", 0.12), ("judge", 0.08))
MULTI_SHARE = {"classify": 0.20, "extract": 0.30, "draft": 0.40, "judge": 0.50}
NESTED_SHARE = 0.30
EXPLICIT_SHARE = 2 / 3

FIRST = ["Ana", "Ben", "Chloe", "David", "Elif", "Farid", "Greta", "Hugo", "Ines", "Jonas", "Keiko", "Liam"]
LAST = ["Costa", "Meyer", "Okafor", "Dubois", "Novak", "Larsen", "Rossi", "Tanaka", "Silva", "Kowalski"]
COMPANIES = ["Acme GmbH", "Northwind Ltd", "Globex SA", "Initech BV", "Umbrella AB", "Hooli Inc", "Vandelay Srl"]
CITIES = [("Berlin", "DE"), ("Lyon", "FR"), ("Porto", "PT"), ("Leeds", "GB"), ("Austin", "US"), ("Turin", "IT")]
PRODUCTS = ["starter plan", "team plan", "API add-on", "analytics module", "mobile app", "export service"]

FILLER = [
    "I have been a customer for {n} years and this is the first time I am writing to support.",
    "Our team uses the {product} every day across three offices.",
    "I checked the help centre and the FAQ before writing but could not find an answer.",
    "My colleague {name} had a similar question last month and it was resolved quickly.",
    "We are planning to roll this out to another {n} users next quarter.",
    "Please let me know if you need any screenshots or log files from our side.",
    "The previous reply from your team said it would be looked at within {n} days.",
    "For reference, our account was set up by {name} when we signed the contract.",
    "I am available by phone most mornings if that is easier.",
    "Thanks in advance for looking into this, it is holding up our month-end work.",
    "We also noticed the dashboard loads slowly in the afternoons, but that is a separate matter.",
    "Our finance department needs this settled before the audit on the {n}th.",
]
DOC_FILLER = [
    "This document is issued under the terms of the framework agreement signed on 2024-0{n}-1{n}.",
    "Payment terms are {n}0 days net from the date of issue unless agreed otherwise in writing.",
    "All amounts are stated in the currency shown and exclude any bank charges of the recipient.",
    "Goods remain the property of the seller until paid in full.",
    "Please quote the reference number on all correspondence relating to this document.",
    "Delivery was made to the loading dock at the address given, signed for by {name}.",
    "Any discrepancies must be reported within {n} working days of receipt.",
    "The parties agree that the laws of the seller's country govern this agreement.",
    "Section {n}.2 applies to partial deliveries and back orders.",
    "Contact {name} at the accounts department for questions about this statement.",
]

TICKETS = {
    "billing": "I was charged twice for the {product} this month and need one of the payments refunded.",
    "bug": "The export button in the {product} crashes with an error message every time I click it.",
    "feature_request": "It would be great if the {product} could schedule reports to be sent every Monday.",
    "account": "How do I change the e-mail address and the owner of our account to {name}?",
    "shipping": "The hardware kit for the {product} was supposed to arrive last week but tracking shows nothing.",
    "cancellation": "We would like to cancel our subscription to the {product} at the end of this term.",
    "other": "Do you have a partner programme for agencies in {city}?",
}

CLASSIFY_SIMPLE = [None, "Route support tickets for the helpdesk.", "If you are unsure, choose other."]
CLASSIFY_EXPLICIT = [
    "Use cancellation only if the customer asks to end the contract, otherwise account. If a charge is "
    "disputed use billing, unless the customer reports an error message, in which case use bug.",
    "Use shipping only when a physical delivery is late or damaged; otherwise treat delivery questions as "
    "other. Refund requests are billing unless the refund is for a cancelled subscription.",
    "If the ticket mentions both a crash and a charge, use bug only if the charge was caused by the crash, "
    "otherwise billing. Feature ideas are feature_request except when they come with a cancellation threat.",
]
CLASSIFY_IMPLICIT = [
    "Resellers' invoice questions go to billing, but their end customers' questions go to account. A crash "
    "reported together with a double charge is a bug when the charge came from the crash.",
    "Tickets that threaten to leave and also ask for a feature are cancellation; ones that only ask for a "
    "feature are feature_request. Late hardware with a damaged box counts as shipping, late hardware alone "
    "as other.",
]

FLAT_SCHEMAS: dict[str, dict[str, Any]] = {
    "contact": {
        "name": {"type": "string"},
        "email": {"type": "string"},
        "company": {"type": "string"},
        "phone": {"type": "string"},
    },
    "invoice": {
        "invoice_number": {"type": "string"},
        "vendor": {"type": "string"},
        "total": {"type": "number"},
        "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
        "due_date": {"type": "string"},
    },
    "order": {
        "order_id": {"type": "string"},
        "sku": {"type": "string"},
        "quantity": {"type": "integer"},
        "country": {"type": "string"},
        "express": {"type": "boolean"},
    },
    "lead": {
        "name": {"type": "string"},
        "company": {"type": "string"},
        "role": {"type": "string"},
        "budget_usd": {"type": "number"},
        "timeline": {"type": "string"},
        "source": {"type": "string", "enum": ["web", "referral", "event", "outbound"]},
        "employees": {"type": "integer"},
        "decision_maker": {"type": "boolean"},
    },
}
PARTY = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "city": {"type": "string"}, "country": {"type": "string"}},
}
LINE = {
    "type": "object",
    "properties": {"sku": {"type": "string"}, "quantity": {"type": "integer"}, "unit_price": {"type": "number"}},
}
NESTED_SCHEMAS: dict[str, dict[str, Any]] = {
    "invoice_lines": {
        "vendor": {"type": "object", "properties": {"name": {"type": "string"}, "vat_id": {"type": "string"}}},
        "total": {"type": "number"},
        "currency": {"type": "string", "enum": ["EUR", "USD", "GBP"]},
        "line_items": {"type": "array", "items": LINE},
    },
    "shipment": {
        "sender": PARTY,
        "recipient": PARTY,
        "parcels": {"type": "integer"},
        "weight_kg": {"type": "number"},
    },
}
EXTRACT_SIMPLE = [None, "Extract the fields exactly as written in the document.", "Dates as YYYY-MM-DD."]
EXTRACT_EXPLICIT = [
    "Use the billing address unless a separate shipping address is given, except for EU customers, where "
    "the VAT address wins. If the total is stated both net and gross, use the gross figure.",
    "If several people sign, use the first signatory only when they are from the customer's side, otherwise "
    "the second. Quantities are per parcel unless the document says per pallet.",
]
EXTRACT_IMPLICIT = [
    "For credit notes the total is negative; amounts are net of VAT for business customers and gross for "
    "consumers. A corrected document replaces the original's values.",
]
DRAFT_EXPLICIT = [
    "Reply to the customer. Apologise only if the delay is over three days, otherwise thank them for their "
    "patience. Offer a refund unless the order has already shipped. Mention the reference {ref}.",
    "Write the follow-up e-mail. If the customer is on a trial, invite them to a demo; if they are paying, "
    "offer a call with their account manager, except on weekends. Mention the reference {ref}.",
]
DRAFT_IMPLICIT = [
    "Reply to the customer: trial users get a demo invitation and paying ones a call with their account "
    "manager; both get the reference {ref} and the next step with a date.",
]
DRAFT_SIMPLE = [
    "Write a short, friendly reply confirming the next step. Mention the reference {ref}.",
    "Summarise the material for the customer in plain words and mention the reference {ref}.",
]
JUDGE_SIMPLE = [
    ["is polite", "answers the customer's question"],
    ["mentions the order reference", "gives a next step", "has no spelling mistakes"],
]
JUDGE_MULTI = [
    [
        "offers a refund only if the order has not shipped",
        "apologises if the delay is over three days, otherwise thanks the customer",
        "mentions the order reference",
        "promises no date unless the warehouse confirmed it",
    ],
    [
        "escalates to a manager when the customer is on an enterprise plan and reports data loss",
        "does not offer a discount to trial users",
        "gives a next step with a date",
        "keeps to the company's tone guide",
        "names the account manager if one is assigned",
    ],
]


@dataclass(frozen=True)
class Item:
    """One run of the workload: the node, the request body (without ``tier``) and its ground truth."""

    index: int
    node: str
    body: dict[str, Any]
    truth: dict[str, Any]
    multi: bool
    nested: bool
    explicit: bool
    complexity: str

    @property
    def kind(self) -> str:
        """A short description, e.g. ``extract/nested/multi``."""
        shape = "nested" if self.nested else "flat"
        return f"{self.node}/{shape}/{'multi' if self.multi else 'simple'}"


def _length(rng: random.Random, median: float, sigma: float, low: int, high: int) -> int:
    return int(min(high, max(low, median * math.exp(sigma * rng.gauss(0, 1)))))


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _fill(rng: random.Random, lines: list[str], text: str, target: int) -> str:
    parts = [text]
    while sum(len(part) + 1 for part in parts) < target:
        parts.append(rng.choice(lines).format(n=rng.randint(2, 9), name=_name(rng), product=rng.choice(PRODUCTS)))
    return " ".join(parts)


def _markers(truth: dict[str, Any], multi: bool, complexity: str, words: int | None = None) -> str:
    lines = [
        f"[[truth{' multi' if multi else ''}: {json.dumps(truth)}]]",
        f'[[truth: {{"label": "{complexity}"}}]]',
    ]
    if words is not None:
        lines.append(f"[[words: {words}]]")
    return "\n".join(lines) + "\n"


def _instructions(
    rng: random.Random, multi: bool, simple: list[Any], explicit: list[str], implicit: list[str]
) -> tuple[Any, bool]:
    if not multi:
        return rng.choice(simple), False
    if rng.random() < EXPLICIT_SHARE:
        return rng.choice(explicit), True
    return rng.choice(implicit), False


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema object with every property required and nothing else allowed (nested ones too)."""
    props = {}
    for key, child in properties.items():
        if child.get("type") == "object":
            child = _object(child["properties"])
        elif child.get("type") == "array" and child["items"].get("type") == "object":
            child = {"type": "array", "items": _object(child["items"]["properties"])}
        props[key] = child
    return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}


def _classify(rng: random.Random, index: int, multi: bool) -> Item:
    label = rng.choice(LABELS)
    city, _ = rng.choice(CITIES)
    ticket = TICKETS[label].format(product=rng.choice(PRODUCTS), name=_name(rng), city=city)
    length = _length(rng, 600, 0.8, 120, 9000)
    text = _fill(rng, FILLER, f"Ticket #{100000 + index}: {ticket}", length)
    instructions, explicit = _instructions(rng, multi, CLASSIFY_SIMPLE, CLASSIFY_EXPLICIT, CLASSIFY_IMPLICIT)
    complexity = "MODERATE" if multi else "SIMPLE"
    body: dict[str, Any] = {
        "input": _markers({"label": label}, multi, complexity) + text,
        "labels": LABELS,
        "min_confidence": MIN_CONFIDENCE,
    }
    if instructions:
        body["instructions"] = instructions
    return Item(index, "classify", body, {"label": label}, multi, False, explicit, complexity)


def _value(rng: random.Random, key: str, schema: dict[str, Any]) -> Any:
    kind = schema.get("type")
    if "enum" in schema:
        return rng.choice(schema["enum"])
    if kind == "object":
        return {k: _value(rng, k, v) for k, v in schema["properties"].items()}
    if kind == "array":
        return [_value(rng, key, schema["items"]) for _ in range(rng.randint(1, 4))]
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "integer":
        return rng.randint(1, 400)
    if kind == "number":
        return round(rng.uniform(5, 20000), 2)
    values = {
        "name": _name(rng),
        "email": f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}@example.com",
        "company": rng.choice(COMPANIES),
        "vendor": rng.choice(COMPANIES),
        "phone": f"+49 30 {rng.randint(1000000, 9999999)}",
        "invoice_number": f"INV-2025-{rng.randint(1, 9999):04d}",
        "due_date": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "order_id": f"ORD-{rng.randint(10000, 99999)}",
        "sku": f"SKU-{rng.randint(100, 999)}-{rng.choice('ABCDEFGH')}",
        "country": rng.choice(CITIES)[1],
        "city": rng.choice(CITIES)[0],
        "role": rng.choice(["Head of Operations", "CTO", "Procurement Lead", "Office Manager"]),
        "timeline": rng.choice(["this quarter", "next quarter", "within six months", "next year"]),
        "vat_id": f"DE{rng.randint(100000000, 999999999)}",
    }
    return values.get(key, rng.choice(PRODUCTS))


def _extract(rng: random.Random, index: int, multi: bool) -> Item:
    nested = rng.random() < NESTED_SHARE
    name = rng.choice(sorted(NESTED_SCHEMAS if nested else FLAT_SCHEMAS))
    properties = (NESTED_SCHEMAS if nested else FLAT_SCHEMAS)[name]
    schema = _object(properties)
    truth = {key: _value(rng, key, child) for key, child in properties.items()}
    stated = "; ".join(f"{key.replace('_', ' ')}: {json.dumps(value)}" for key, value in truth.items())
    length = _length(rng, 2400, 0.8, 300, 24000)
    text = _fill(rng, DOC_FILLER, f"Document {name.upper()}-{index}. {stated}.", length)
    instructions, explicit = _instructions(rng, multi, EXTRACT_SIMPLE, EXTRACT_EXPLICIT, EXTRACT_IMPLICIT)
    complexity = "MODERATE" if multi else "SIMPLE"
    body: dict[str, Any] = {"input": _markers(truth, multi, complexity) + text, "schema": schema}
    if instructions:
        body["instructions"] = instructions
    return Item(index, "extract", body, truth, multi, nested, explicit, complexity)


def _draft(rng: random.Random, index: int, multi: bool) -> Item:
    ref = f"REF-{rng.randint(10000, 99999)}"
    words = rng.randint(60, 200)
    max_words = words + 60
    length = _length(rng, 1400, 0.6, 200, 9000)
    label = rng.choice(LABELS)
    ticket = TICKETS[label].format(product=rng.choice(PRODUCTS), name=_name(rng), city=rng.choice(CITIES)[0])
    text = _fill(rng, FILLER, f"Customer message: {ticket}", length)
    instructions, explicit = _instructions(rng, multi, DRAFT_SIMPLE, DRAFT_EXPLICIT, DRAFT_IMPLICIT)
    complexity = "MODERATE" if multi else "SIMPLE"
    body = {
        "input": _markers({"text": ref}, multi, complexity, words) + text,
        "instructions": instructions.format(ref=ref),
        "max_words": max_words,
    }
    return Item(index, "draft", body, {"text": ref}, multi, False, explicit, complexity)


def _judge(rng: random.Random, index: int, multi: bool) -> Item:
    verdict = "pass" if rng.random() < 0.6 else "fail"
    criteria = list(rng.choice(JUDGE_MULTI if multi else JUDGE_SIMPLE))
    length = _length(rng, 1100, 0.5, 200, 6000)
    candidate = _fill(rng, FILLER, f"Dear {_name(rng)}, thank you for your message about order ORD-{index}.", length)
    context = _fill(rng, FILLER, "Context: the customer asked about a late delivery and a refund.", 500)
    complexity = "MODERATE" if multi else "SIMPLE"
    body = {
        "input": _markers({"verdict": verdict}, multi, complexity) + context,
        "candidate": candidate,
        "criteria": criteria,
    }
    # auto's rules read instructions, not criteria: a judge's conditions are never "explicit" to them.
    return Item(index, "judge", body, {"verdict": verdict}, multi, False, False, complexity)


def build(runs: int, seed: int, multi_scale: float = 1.0) -> list[Item]:
    """The workload: ``runs`` items, fixed by ``seed``; ``multi_scale`` multiplies every multi-condition share."""
    rng = random.Random(f"economics-workload|{seed}")
    makers = {"classify": _classify, "extract": _extract, "draft": _draft, "judge": _judge}
    nodes = [node for node, _ in MIX]
    weights = [share for _, share in MIX]
    items = []
    for index in range(runs):
        node = rng.choices(nodes, weights)[0]
        multi = rng.random() < MULTI_SHARE[node] * multi_scale
        items.append(makers[node](rng, index, multi))
    return items
