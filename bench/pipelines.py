"""The step economics benchmark's workload: five pipelines, their steps, and items that flow through them.

The five seed designs (the n8n and Make templates) are redrawn as pipelines of 2-4 steps each. A step is
one place in a pipeline (``support-triage/intent``): one node with fixed instructions, labels, schema,
criteria or format, asked the same thing for every item. ``build(runs, seed)`` returns items (one ticket,
document, pull request, research question or content brief each) until they hold at least ``runs``
step runs; the same arguments give the same list. An item's runs are in pipeline order, and which later
steps an item reaches depends on its true earlier answers (a spam ticket is closed after triage, only
complaints and urgent tickets go to the escalation judge, only failed drafts are revised, ...).

Later steps see the earlier steps' *right* answers (the intent and urgency in the reply's input, the
review comment in the severity step's), as a pipeline whose earlier steps were right would pass them on.
So a step's request is the same in every configuration the benchmark compares, which is what lets it put
one configuration's answer beside another's for the same request; an earlier step's mistake counts
against the item (``Item`` is right only when all its runs are) instead of changing later inputs.

**Difficulty** is mostly a property of the step, with variance per item: each step has weights over four
levels, drawn per run, and the material carries the drawn level to the simulator (``step_economics``
says what each level means for each tier):

* ``easy``: one clear-cut decision a small model gets right nearly always (a ticket's intent, a
  document's type);
* ``simple``: a single-condition task (the economics benchmark's simple tasks);
* ``multi``: several conditions that interact (the economics benchmark's multi-condition tasks);
* ``hard``: long or subtle material and several steps of reasoning (a security review of a diff,
  whether a synthesis misses a disagreement between sources).

Ground truth travels in simulator-only markers at the top of the (string) input, as in
``economics_workload``: ``[[truth: {...}]]`` (easy and simple) or ``[[truth multi: {...}]]`` (multi and
hard) with the answer; ``[[truth: {"label": "SIMPLE" | "MODERATE" | "COMPLEX"}]]`` with the true answer to
Tierwise's nano complexity check (SIMPLE for easy and simple, MODERATE for multi, COMPLEX for hard);
``[[level: easy]]`` or ``[[level: hard]]`` for the two levels the economics benchmark's profiles do not
know; ``[[words: N]]`` for drafts, the length the simulated model writes. Free text is right when it holds
the truth's keyword (a ticket number, the function at risk, the key source's citation, the feature's name).
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from economics_workload import CITIES, COMPANIES, DOC_FILLER, FILLER, FIRST, LAST, PRODUCTS

Level = Literal["easy", "simple", "multi", "hard"]
LEVELS: tuple[Level, ...] = ("easy", "simple", "multi", "hard")
COMPLEXITY: dict[Level, str] = {"easy": "SIMPLE", "simple": "SIMPLE", "multi": "MODERATE", "hard": "COMPLEX"}
MIN_CONFIDENCE = 0.6  # what the templates' classify steps ask for
FREE_TEXT_KEYS = frozenset({"text", "body"})  # answers whose truth is a keyword the text must contain


@dataclass(frozen=True)
class Step:
    """One place in a pipeline: a node, what every request of the step shares, and how hard its items are.

    ``levels`` are the weights of easy, simple, multi and hard per run; ``flex`` says whether the step
    tolerates latency (nobody waits on it), so the flex configurations send it with ``processing: flex``.
    """

    name: str
    node: str
    fixed: dict[str, Any]
    levels: tuple[float, float, float, float]
    flex: bool

    @property
    def design(self) -> str:
        """The pipeline the step belongs to (``support-triage``)."""
        return self.name.split("/", 1)[0]

    def level(self, rng: random.Random) -> Level:
        """One run's level, drawn from the step's weights."""
        return rng.choices(LEVELS, self.levels)[0]

    def expected_share(self, level: Level) -> float:
        """The share of the step's runs expected at ``level``."""
        return self.levels[LEVELS.index(level)] / sum(self.levels)


@dataclass(frozen=True)
class Run:
    """One request of the workload: its step, the request body (without tier, step or processing), its truth."""

    index: int
    item: int
    step: Step
    body: dict[str, Any]
    truth: dict[str, Any]
    level: Level

    @property
    def node(self) -> str:
        """The node the run calls."""
        return self.step.node

    def request(self, tier: str | None, flex: bool = False) -> dict[str, Any]:
        """The request for ``tier`` (None: the node's default); ``processing: flex`` if asked for and tolerated."""
        body = {**self.body, "step": self.step.name}
        if tier is not None:
            body["tier"] = tier
        if flex and self.step.flex:
            body["processing"] = "flex"
        return body


@dataclass(frozen=True)
class Item:
    """One thing that flows through a pipeline (a ticket, a document...) and the runs it made, in order."""

    index: int
    design: str
    runs: tuple[Run, ...]


# -- the steps -------------------------------------------------------------------------------------

INTENT_LABELS = [
    {"name": "billing", "description": "charges, invoices, refunds, plans"},
    {"name": "bug", "description": "something in the product does not work"},
    {"name": "how_to", "description": "a question about how to do something"},
    {"name": "complaint", "description": "an unhappy customer complaining about the service"},
    {"name": "spam", "description": "advertising, phishing or nonsense"},
]
URGENCY_LABELS = [
    {"name": "low", "description": "no deadline, nothing is blocked"},
    {"name": "normal", "description": "needs an answer within a working day"},
    {"name": "urgent", "description": "the customer is blocked, losing money or data right now"},
]
DOC_TYPES = ["invoice", "credit_note", "purchase_order", "receipt", "other"]
SEVERITIES = [
    {"name": "blocker", "description": "must be fixed before merging"},
    {"name": "major", "description": "should be fixed in this pull request"},
    {"name": "minor", "description": "worth fixing, not urgent"},
    {"name": "nit", "description": "style or preference"},
]
TOPICS = ["product_update", "how_to", "company_news", "promotion", "security"]
STANCES = ["supports", "opposes", "mixed", "unrelated"]
RELEVANCE = ["high", "medium", "low", "none"]
CURRENCIES = ["EUR", "USD", "GBP"]


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema object with every property required and nothing else allowed."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


FIELDS_SCHEMA = _object(
    {
        "vendor": {"type": "string"},
        "document_number": {"type": "string"},
        "document_date": {"type": "string"},
        "total": {"type": "number"},
        "currency": {"type": "string", "enum": CURRENCIES},
    }
)
LINES_SCHEMA = _object(
    {
        "supplier": _object({"name": {"type": "string"}, "vat_id": {"type": "string"}}),
        "lines": {
            "type": "array",
            "items": _object(
                {"sku": {"type": "string"}, "quantity": {"type": "integer"}, "unit_price": {"type": "number"}}
            ),
        },
    }
)
SOURCE_SCHEMA = _object(
    {
        "stance": {"type": "string", "enum": STANCES},
        "relevance": {"type": "string", "enum": RELEVANCE},
        "year": {"type": "integer"},
    }
)
CONTENT_SCHEMA = _object({"title": {"type": "string", "maxLength": 90}, "body": {"type": "string"}})

STEPS: dict[str, Step] = {
    step.name: step
    for step in (
        Step(
            "support-triage/intent",
            "classify",
            {
                "labels": INTENT_LABELS,
                "min_confidence": MIN_CONFIDENCE,
                "instructions": "Classify the ticket by what the customer wants.",
            },
            (0.80, 0.17, 0.03, 0.0),
            flex=False,
        ),
        Step(
            "support-triage/urgency",
            "classify",
            {
                "labels": URGENCY_LABELS,
                "min_confidence": MIN_CONFIDENCE,
                "instructions": "Urgent only if the customer is blocked, losing money or losing data right now; "
                "normal if they need an answer within a working day; low otherwise, unless they mention a "
                "contractual deadline, which makes it at least normal.",
            },
            (0.10, 0.50, 0.40, 0.0),
            flex=False,
        ),
        Step(
            "support-triage/reply",
            "draft",
            {
                "instructions": "Write the support reply to this ticket: friendly, specific to what the customer "
                'wrote, at most five sentences, signed "The Support Team". Do not promise refunds or dates; say '
                "what happens next and quote the ticket number.",
                "format": "text",
                "max_words": 150,
            },
            (0.0, 0.55, 0.40, 0.05),
            flex=True,
        ),
        Step(
            "support-triage/escalation",
            "judge",
            {
                "criteria": [
                    "The customer is upset, or reports a problem that blocks their work, loses money or loses data.",
                    "An automated reply would not be enough: a human should answer within the hour.",
                ],
            },
            (0.0, 0.25, 0.60, 0.15),
            flex=False,
        ),
        Step(
            "document-extraction/doc-type",
            "classify",
            {
                "labels": DOC_TYPES,
                "min_confidence": MIN_CONFIDENCE,
                "instructions": "What kind of business document is this?",
            },
            (0.85, 0.15, 0.0, 0.0),
            flex=True,
        ),
        Step(
            "document-extraction/fields",
            "extract",
            {
                "schema": FIELDS_SCHEMA,
                "instructions": "Copy values exactly as written in the document; amounts as plain numbers. For "
                "credit notes the total is negative. If the document states both a net and a gross total, use "
                "the gross total unless the buyer is a business, in which case use the net total.",
            },
            (0.05, 0.60, 0.30, 0.05),
            flex=True,
        ),
        Step(
            "document-extraction/lines",
            "extract",
            {
                "schema": LINES_SCHEMA,
                "instructions": "List every line item with its SKU, quantity and unit price. Quantities are per "
                "unit unless the line says per pack, in which case multiply by the pack size; skip cancelled lines.",
            },
            (0.0, 0.30, 0.55, 0.15),
            flex=True,
        ),
        Step(
            "pr-review/review",
            "draft",
            {
                "instructions": "Review this pull request for security, performance and correctness risks. Write "
                "one review comment: name the function or construct at risk, explain the risk, and suggest a fix.",
                "format": "text",
                "max_words": 120,
            },
            (0.0, 0.10, 0.40, 0.50),
            flex=True,
        ),
        Step(
            "pr-review/severity",
            "classify",
            {
                "labels": SEVERITIES,
                "min_confidence": MIN_CONFIDENCE,
                "instructions": "Blocker only if the problem can leak or corrupt data; major if it breaks behaviour "
                "users rely on, unless it is behind a feature flag; otherwise minor, or nit for style alone.",
            },
            (0.05, 0.50, 0.40, 0.05),
            flex=True,
        ),
        Step(
            "pr-review/verdict",
            "judge",
            {
                "criteria": [
                    "Every comment points at a concrete line or construct in the diff.",
                    "Each severity matches the risk the comment describes.",
                    "No serious security, performance or correctness problem in the diff is missed.",
                ],
            },
            (0.0, 0.10, 0.35, 0.55),
            flex=True,
        ),
        Step(
            "research-synthesis/sources",
            "extract",
            {
                "schema": SOURCE_SCHEMA,
                "instructions": "For this source and the question: its stance on the question, how relevant it is "
                "(high when it bears directly on the question, none when it has nothing to do with it), and the "
                "year it was published.",
            },
            (0.40, 0.50, 0.10, 0.0),
            flex=True,
        ),
        Step(
            "research-synthesis/synthesis",
            "draft",
            {
                "instructions": "Answer the question from these sources only, in one or two short paragraphs. Cite "
                "every claim with its source id in brackets, e.g. [S1], and say where the sources disagree.",
                "format": "text",
                "max_words": 200,
            },
            (0.0, 0.30, 0.55, 0.15),
            flex=True,
        ),
        Step(
            "research-synthesis/verdict",
            "judge",
            {
                "criteria": [
                    "Every claim is supported by a cited source.",
                    "It answers the question directly.",
                    "It says where the sources disagree.",
                ],
            },
            (0.0, 0.10, 0.40, 0.50),
            flex=True,
        ),
        Step(
            "content/draft",
            "draft",
            {
                "instructions": "Write the announcement: a title and a body of two or three short paragraphs. Name "
                "the feature exactly as the brief does.",
                "format": "json",
                "schema": CONTENT_SCHEMA,
            },
            (0.0, 0.60, 0.35, 0.05),
            flex=True,
        ),
        Step(
            "content/review",
            "judge",
            {
                "criteria": [
                    "The title is specific and under 90 characters.",
                    "The body explains what changed and why it matters to the audience.",
                    "The tone matches the brief and there are no unsupported claims.",
                ],
            },
            (0.0, 0.30, 0.55, 0.15),
            flex=True,
        ),
        Step(
            "content/revision",
            "draft",
            {
                "instructions": "Revise the draft so that it fixes every problem the reviewer found, and keep the "
                "feature's name exactly as the brief gives it.",
                "format": "json",
                "schema": CONTENT_SCHEMA,
            },
            (0.0, 0.40, 0.50, 0.10),
            flex=True,
        ),
        Step(
            "content/topic",
            "classify",
            {
                "labels": TOPICS,
                "min_confidence": MIN_CONFIDENCE,
                "instructions": "Tag the announcement with its topic.",
            },
            (0.75, 0.25, 0.0, 0.0),
            flex=True,
        ),
    )
}

# Each pipeline's share of the items. Support tickets and documents come in volume; PR reviews less so;
# research questions and content briefs are rarer (but a research item fans out over 3-5 sources).
DESIGNS: tuple[tuple[str, float], ...] = (
    ("support-triage", 0.30),
    ("document-extraction", 0.25),
    ("pr-review", 0.20),
    ("research-synthesis", 0.10),
    ("content", 0.15),
)


# -- material --------------------------------------------------------------------------------------


def _length(rng: random.Random, median: float, sigma: float, low: int, high: int) -> int:
    return int(min(high, max(low, median * math.exp(sigma * rng.gauss(0, 1)))))


def _name(rng: random.Random) -> str:
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _fill(rng: random.Random, lines: Sequence[str], text: str, target: int) -> str:
    """``text`` followed by filler sentences until it is about ``target`` characters long."""
    parts = [text]
    while sum(len(part) + 1 for part in parts) < target:
        parts.append(rng.choice(lines).format(n=rng.randint(2, 9), name=_name(rng), product=rng.choice(PRODUCTS)))
    return " ".join(parts)


def markers(truth: dict[str, Any], level: Level, words: int | None = None) -> str:
    """The simulator's markers for one run: its truth, the complexity check's truth, its level, its length."""
    tag = " multi" if level in ("multi", "hard") else ""
    lines = [f"[[truth{tag}: {json.dumps(truth)}]]", f'[[truth: {{"label": "{COMPLEXITY[level]}"}}]]']
    if level in ("easy", "hard"):
        lines.append(f"[[level: {level}]]")
    if words is not None:
        lines.append(f"[[words: {words}]]")
    return "\n".join(lines) + "\n"


TICKETS = {
    "billing": "I was charged twice for the {product} this month and need the duplicate payment refunded.",
    "bug": "The export button in the {product} fails with an error message every time I click it.",
    "how_to": "How do I add a second administrator to our {product} account?",
    "complaint": "This is the third time the {product} has let us down and nobody from your team has called back.",
    "spam": "Boost your ranking today with cheap followers, 90% discount for the first 100 buyers, visit our site!!!",
}
URGENCY_LINES = {
    "low": "No rush, whenever you get a chance.",
    "normal": "Could you get back to us by tomorrow?",
    "urgent": "We are completely blocked and losing orders right now.",
}
CODE_LINES = [
    "+    logger.debug('processing %s', item_id)",
    "+    result = helpers.normalise(payload, strict=True)",
    "     return render(request, 'reports/list.html', context)",
    "+    cache.set(key, value, timeout=300)",
    "-    total = 0",
    "+    totals = defaultdict(int)",
    "     for row in rows:",
    "+        totals[row.owner] += row.amount",
    "+    if not request.user.is_authenticated:",
    "+        return HttpResponseForbidden()",
    "@@ -40,7 +52,12 @@ class ReportView(View):",
    "+    items = list(queryset.select_related('owner'))",
]
RISKS = [
    ("rows = db.execute(\"SELECT * FROM reports WHERE owner = '%s'\" % request.GET['owner'])", "blocker"),
    ("for report in Report.objects.all(): report.owner.email  # one query per report", "major"),
    ("for i in range(1, len(rows)): export(rows[i])  # skips the first row", "major"),
    ("os.system('convert ' + request.GET['file'] + ' out.pdf')", "blocker"),
    ("data = pickle.loads(request.body)", "blocker"),
    ("time.sleep(5)  # wait for the cache", "minor"),
    ("def Export(Self, ROWS):  # naming", "nit"),
]
QUESTIONS = [
    "Should we move our nightly batch jobs to spot instances?",
    "Does a four-day work week change support response times?",
    "Is it worth self-hosting our vector database?",
    "Should the mobile app drop support for Android 10?",
    "Do annual plans reduce churn for small teams?",
]
SOURCE_KINDS = ["Vendor pricing page", "Internal post-mortem", "Engineering blog", "Analyst report", "Forum thread"]
FEATURES = [
    "scheduled CSV export",
    "single sign-on for teams",
    "audit log search",
    "usage-based billing alerts",
    "offline mode for the mobile app",
    "custom report templates",
]
AUDIENCES = ["operations managers", "finance teams", "developers", "small business owners"]
TONES = ["friendly and concise", "formal", "enthusiastic but factual"]


class _ItemMaker:
    """Collects one item's runs, numbering them from ``first``."""

    def __init__(self, rng: random.Random, item: int, first: int) -> None:
        self.rng = rng
        self.item = item
        self.next = first
        self.runs: list[Run] = []

    def add(
        self, step: str, material: str, truth: dict[str, Any], extra: dict[str, Any] | None = None, words: int = 0
    ) -> None:
        """One run of ``step``: its level drawn, its markers put before the material."""
        definition = STEPS[step]
        level = definition.level(self.rng)
        text = markers(truth, level, words or None) + material
        body: dict[str, Any] = {**definition.fixed, **(extra or {})}
        body["input"] = text
        self.runs.append(Run(self.next, self.item, definition, body, truth, level))
        self.next += 1


def _support(maker: _ItemMaker) -> None:
    rng = maker.rng
    intent = rng.choices(["billing", "bug", "how_to", "complaint", "spam"], [0.3, 0.25, 0.2, 0.15, 0.1])[0]
    urgency = "low" if intent == "spam" else rng.choices(["low", "normal", "urgent"], [0.35, 0.45, 0.2])[0]
    ticket = f"T-{rng.randint(10000, 99999)}"
    customer = f"{rng.choice(FIRST).lower()}.{rng.choice(LAST).lower()}@example.com"
    message = TICKETS[intent].format(product=rng.choice(PRODUCTS))
    if intent != "spam":
        message += " " + URGENCY_LINES[urgency]
    text = _fill(rng, FILLER, f"Ticket {ticket} from {customer}. {message}", _length(rng, 600, 0.7, 150, 6000))
    maker.add("support-triage/intent", text, {"label": intent})
    maker.add("support-triage/urgency", text, {"label": urgency})
    if intent == "spam":
        return
    if intent == "complaint" or urgency == "urgent":
        candidate = {
            "intent": intent,
            "urgency": urgency,
            "proposal": "Hand this ticket to a human support lead now instead of answering it automatically.",
        }
        verdict = "pass" if rng.random() < 0.6 else "fail"
        maker.add("support-triage/escalation", text, {"verdict": verdict}, {"candidate": candidate})
        return
    material = f"Intent: {intent}\nUrgency: {urgency}\n{text}"
    maker.add("support-triage/reply", material, {"text": ticket}, words=rng.randint(60, 130))


def _money(rng: random.Random) -> float:
    return round(rng.uniform(20, 20000), 2)


def _documents(maker: _ItemMaker) -> None:
    rng = maker.rng
    kind = rng.choices(DOC_TYPES, [0.5, 0.1, 0.2, 0.1, 0.1])[0]
    vendor = rng.choice(COMPANIES)
    number = f"{kind[:3].upper()}-2025-{rng.randint(1, 9999):04d}"
    date = f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    currency = rng.choice(CURRENCIES)
    lines: list[dict[str, Any]] = [
        {"sku": f"SKU-{rng.randint(100, 999)}-{rng.choice('ABCDEFGH')}", "quantity": rng.randint(1, 40),
         "unit_price": round(rng.uniform(2, 900), 2)}
        for _ in range(rng.randint(1, 4))
    ]  # fmt: skip
    total = round(sum(line["quantity"] * line["unit_price"] for line in lines), 2)
    if kind == "credit_note":
        total = -total
    vat_id = f"{rng.choice(CITIES)[1]}{rng.randint(100000000, 999999999)}"
    listed = " ".join(
        f"Line {n}: {line['sku']}, {line['quantity']} x {line['unit_price']} {currency}."
        for n, line in enumerate(lines, 1)
    )
    header = (
        f"{kind.replace('_', ' ').upper()} {number} issued {date} by {vendor} (VAT {vat_id}). {listed} "
        f"Total: {total} {currency}."
    )
    if kind == "other":
        header = f"Memo from {vendor}, {date}: the office will be closed on the {rng.randint(2, 28)}th for maintenance."
    text = _fill(rng, DOC_FILLER, header, _length(rng, 2400, 0.7, 400, 16000))
    maker.add("document-extraction/doc-type", text, {"label": kind})
    if kind == "other":
        return
    fields = {"vendor": vendor, "document_number": number, "document_date": date, "total": total, "currency": currency}
    maker.add("document-extraction/fields", text, fields)
    if kind in ("invoice", "purchase_order"):
        maker.add("document-extraction/lines", text, {"supplier": {"name": vendor, "vat_id": vat_id}, "lines": lines})


def _pr_review(maker: _ItemMaker) -> None:
    rng = maker.rng
    function = f"{rng.choice(['export', 'sync', 'import', 'render', 'archive'])}_{rng.choice(['reports', 'users', 'orders', 'invoices'])}_{rng.randint(100, 999)}"  # noqa: E501
    risk, severity = rng.choice(RISKS)
    lines = [f"+def {function}(request):", f"+    {risk}"]
    while sum(len(line) + 1 for line in lines) < _length(rng, 2500, 0.7, 500, 14000):
        lines.insert(rng.randint(0, len(lines)), rng.choice(CODE_LINES))
    title = f"PR #{rng.randint(100, 9999)}: add {function.rsplit('_', 1)[0].replace('_', ' ')}"
    diff = f"{title}\n--- a/app/views.py\n+++ b/app/views.py\n" + "\n".join(lines)
    maker.add("pr-review/review", diff, {"text": function}, words=rng.randint(50, 100))
    comment = f"{function}: `{risk.split('#')[0].strip()}` is a risk; fix it before merging."
    maker.add("pr-review/severity", f"Review comment on {title}: {comment}", {"label": severity})
    candidate = {"comments": [{"comment": comment, "severity": severity}]}
    verdict = "pass" if rng.random() < 0.55 else "fail"
    context = f"{title}\n" + diff[: _length(rng, 1500, 0.4, 400, 4000)]
    maker.add("pr-review/verdict", context, {"verdict": verdict}, {"candidate": candidate})


def _research(maker: _ItemMaker) -> None:
    rng = maker.rng
    question = rng.choice(QUESTIONS)
    sources = []
    for n in range(1, rng.randint(3, 5) + 1):
        truth = {"stance": rng.choice(STANCES), "relevance": rng.choice(RELEVANCE), "year": rng.randint(2015, 2025)}
        title = f"{rng.choice(SOURCE_KINDS)}, {truth['year']}"
        body = _fill(rng, FILLER, f"S{n} ({title}): on the question, this source {truth['stance']}.", 700)
        sources.append((f"S{n}", title, body, truth))
        maker.add("research-synthesis/sources", f"Question: {question}\nSource {body}", truth)
    key = rng.choice(sources)[0]
    listed = "\n".join(f"[{sid}] {title}: {body}" for sid, title, body, _ in sources)
    material = f"Question: {question}\nSources:\n{listed}"
    maker.add("research-synthesis/synthesis", material, {"text": f"[{key}]"}, words=rng.randint(90, 180))
    synthesis = _fill(rng, FILLER, f"On the question, the sources disagree; the strongest evidence is [{key}].", 900)
    verdict = "pass" if rng.random() < 0.5 else "fail"
    maker.add("research-synthesis/verdict", material, {"verdict": verdict}, {"candidate": synthesis})


def _content(maker: _ItemMaker) -> None:
    rng = maker.rng
    feature = rng.choice(FEATURES)
    brief = (
        f"Brief: announce the {feature} to existing customers. Audience: {rng.choice(AUDIENCES)}. "
        f"Tone: {rng.choice(TONES)}."
    )
    brief = _fill(rng, FILLER, brief, _length(rng, 500, 0.4, 200, 2000))
    maker.add("content/draft", brief, {"body": feature}, words=rng.randint(80, 200))
    draft = {"title": f"New: {feature}", "body": _fill(rng, FILLER, f"Meet the {feature}.", 800)}
    verdict = "pass" if rng.random() < 0.6 else "fail"
    maker.add("content/review", brief, {"verdict": verdict}, {"candidate": draft})
    if verdict == "fail":
        material = f"{brief}\nDraft: {json.dumps(draft)}\nReviewer: the body does not say why it matters."
        maker.add("content/revision", material, {"body": feature}, words=rng.randint(80, 200))
    topic = rng.choices(TOPICS, [0.5, 0.2, 0.1, 0.1, 0.1])[0]
    maker.add("content/topic", f"{draft['title']}\n\n{draft['body']}", {"label": topic})


MAKERS: dict[str, Callable[[_ItemMaker], None]] = {
    "support-triage": _support,
    "document-extraction": _documents,
    "pr-review": _pr_review,
    "research-synthesis": _research,
    "content": _content,
}


def build(runs: int, seed: int) -> list[Item]:
    """Items, fixed by ``seed``, until they hold at least ``runs`` runs; run indexes count from 0 in order."""
    rng = random.Random(f"step-economics-workload|{seed}")
    names = [name for name, _ in DESIGNS]
    weights = [share for _, share in DESIGNS]
    items: list[Item] = []
    total = 0
    while total < runs:
        design = rng.choices(names, weights)[0]
        maker = _ItemMaker(rng, len(items), total)
        MAKERS[design](maker)
        items.append(Item(len(items), design, tuple(maker.runs)))
        total += len(maker.runs)
    return items


def all_runs(items: Sequence[Item]) -> list[Run]:
    """Every run of ``items``, in order (``runs[i].index == i``)."""
    return [run for item in items for run in item.runs]


@dataclass
class Mix:
    """What a list of runs holds: runs per step, per level and per node."""

    steps: Counter[str] = field(default_factory=Counter)
    levels: Counter[str] = field(default_factory=Counter)
    nodes: Counter[str] = field(default_factory=Counter)


def mix(runs: Sequence[Run]) -> Mix:
    """Count ``runs`` by step, level and node."""
    counted = Mix()
    for run in runs:
        counted.steps[run.step.name] += 1
        counted.levels[run.level] += 1
        counted.nodes[run.node] += 1
    return counted
