#!/usr/bin/env python3
"""Generate the n8n workflow templates in this folder from one set of node builders.

Run ``python templates/n8n/build.py`` after changing anything here; ``--check`` exits 1 when a committed
file differs from what this script would write (the test suite asserts the same). Standard library only.

Every template has the same skeleton, laid out left to right and explained by sticky notes:

* two entry points: first the Manual Trigger followed by "Sample input" (so the editor's *Execute
  workflow* button and ``n8n execute --id`` run the sample), then a Webhook for production (answered by
  Respond to Webhook);
* "Config", a Set node holding ``service_url`` once; every HTTP node reads it as
  ``$('Config').item.json.service_url``;
* "Read input", a Code node that turns the webhook body (or the sample) into the run's input and a
  per-execution ``nonce`` for idempotency keys;
* one or two nodes per LLM step (``Workflow.step``): the HTTP Request node calling the service, whose
  error output leads to "<step>: mini fallback", the same request with ``tier: mini, max_tier: mini``.
  The request's ``Prefer: wait=60`` lets the service hold a call over the key's per-minute limit instead
  of answering 429, so no Wait loop is needed; n8n's Retry On Fail covers a 503 or a lost connection;
* Code nodes only where the template decides something (route a ticket, rank sources, ...); they and
  "Summary" read each step's answer with the same helpers (``HELPERS_JS``), and Summary lists every call
  that reached the service with its tier, model and cost, then Respond to Webhook answers with it.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVICE_URL = "http://127.0.0.1:8080"
CREDENTIAL_TYPE = "httpBearerAuth"
CREDENTIAL = {"id": "TierwiseApiKey01", "name": "Tierwise API key"}
ID_NAMESPACE = uuid.UUID("6f1c3e2a-8d4b-4c1e-9a57-2b7e4c0e9a57")

#: Seconds a call may be held by the service for its key's per-minute window (``Prefer: wait``, RFC 7240).
#: A per-minute window always reopens within 60 s, and the service caps the wait at TIERWISE_MAX_WAIT_S
#: (60 s by default), so at the defaults no per-minute 429 reaches the workflow.
PREFER_WAIT_S = 60
#: n8n's Retry On Fail: 3 tries 5 s apart (n8n's maximum wait), for a 503 (the service's Retry-After is 5 s),
#: a lost connection, or a 429 when the service's wait cap is shorter than the window. Every try carries the
#: same Idempotency-Key, so a retry never pays twice.
RETRY = {"retryOnFail": True, "maxTries": 3, "waitBetweenTries": 5000}
#: Single calls: the service ends every run by TIERWISE_RUN_TIMEOUT_S (120 s) with a 504; add the wait.
TIMEOUT_MS = (PREFER_WAIT_S + 130) * 1000
#: Batch calls run many items (TIERWISE_BATCH_CONCURRENCY at a time) and may take longer.
BATCH_TIMEOUT_MS = (PREFER_WAIT_S + 600) * 1000

HTTP = ("n8n-nodes-base.httpRequest", 4.4)
CODE = ("n8n-nodes-base.code", 2)
SET = ("n8n-nodes-base.set", 3.4)
SWITCH = ("n8n-nodes-base.switch", 3.4)
IF = ("n8n-nodes-base.if", 2.3)
NOOP = ("n8n-nodes-base.noOp", 1)
WEBHOOK = ("n8n-nodes-base.webhook", 2.1)
RESPOND = ("n8n-nodes-base.respondToWebhook", 1.5)
MANUAL = ("n8n-nodes-base.manualTrigger", 1)
STICKY = ("n8n-nodes-base.stickyNote", 1)

MANUAL_NAME = "When clicking ‘Execute workflow’"  # the name n8n gives a new Manual Trigger

X = 200  # horizontal distance between columns
Y = 200  # vertical distance between rows
FALLBACK_DX, FALLBACK_DY = 110, 170  # where a step's mini fallback sits, from its HTTP node
STEP_W = 300  # the columns one step takes
HEADER = 150  # room above a group's nodes for its sticky note's text

#: Sticky note colours in n8n's palette.
YELLOW, ORANGE, RED, GREEN, BLUE, PURPLE, GRAY = range(1, 8)
TIER_COLOR = {"nano": GREEN, "mini": BLUE, "full": PURPLE}


class Expr:
    """A JavaScript expression inside a JSON body: rendered as ``{{ JSON.stringify(<js>) }}``."""

    def __init__(self, js: str) -> None:
        self.js = js


def json_body(value: Any) -> str:
    """A JSON body for an HTTP Request node: JSON text, with n8n expressions where ``Expr`` values are."""
    found: list[str] = []

    def mark(item: Any) -> Any:
        if isinstance(item, Expr):
            found.append(item.js)
            return f"\x00{len(found) - 1}\x00"
        if isinstance(item, dict):
            return {key: mark(inner) for key, inner in item.items()}
        if isinstance(item, list):
            return [mark(inner) for inner in item]
        return item

    text = json.dumps(mark(value), indent=2, ensure_ascii=False)
    for index, source in enumerate(found):
        text = text.replace(f'"\\u0000{index}\\u0000"', "{{ JSON.stringify(" + source + ") }}")
    return "=" + text


def js(value: Any, indent: int = 0) -> str:
    """A JSON value as a JavaScript literal for the Code node editor; lines after the first indented by ``indent``."""
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + " " * indent)


def condition(left: str, operator: dict[str, Any], right: Any = "") -> dict[str, Any]:
    """One filter condition (IF 2.3 / Switch 3.4: filter version 3)."""
    return {"leftValue": left, "rightValue": right, "operator": operator}


def conditions(*items: dict[str, Any], combinator: str = "and") -> dict[str, Any]:
    """A filter value with strict type validation."""
    return {
        "options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict", "version": 3},
        "conditions": list(items),
        "combinator": combinator,
    }


STRING_EQ = {"type": "string", "operation": "equals"}


# -- the JavaScript every Code node that reads answers starts with ------------------------------------------

HELPERS_JS = """\
// How a step's answer is read. A step is its HTTP node ('primary') and, when that call failed, its
// mini fallback. A call that answered gives {statusCode, body}; a failed one gives the {error} n8n passes
// on, whose message holds the service's problem body (with the run's cost).
const replyOf = (json) => {
  if (json && typeof json.statusCode === 'number') {
    return { status: json.statusCode, body: json.body && typeof json.body === 'object' ? json.body : {}, error: null };
  }
  const error = (json && json.error) || {};
  const message = String(error.message || 'no response');
  let body = {};
  try {
    const parsed = JSON.parse(message.slice(message.indexOf(' - ') + 3));
    if (parsed && typeof parsed === 'object') body = parsed;
  } catch (e) {}
  const status = Number(error.status || error.httpCode || error.statusCode) || null;
  return { status, body, error: body.detail || message };
};
const isOk = (reply) => reply.status >= 200 && reply.status < 300;
const itemOf = (node, output) => {
  try { return node.first(output); } catch (e) { return undefined; }
};
// Every call of a step that ran, in order: {attempt: 'primary' | 'mini_fallback', reply}.
const callsOf = (step) => {
  const calls = [];
  for (const [name, attempt] of [[step, 'primary'], [step + ': mini fallback', 'mini_fallback']]) {
    const node = $(name);
    if (!node.isExecuted) continue;
    const item = itemOf(node, 0) || (attempt === 'primary' ? itemOf(node, 1) : undefined);
    if (item) calls.push({ attempt, reply: replyOf(item.json) });
  }
  return calls;
};
// A step's answer (the service's response body), or null when every call failed.
const answerOf = (step) => {
  const good = callsOf(step).filter((call) => isOk(call.reply) && call.reply.body.output !== undefined);
  return good.length ? good[good.length - 1].reply.body : null;
};
// A batch step's answers: one per item (that item's response), null where the item failed.
const answersOf = (step, count) => {
  const good = callsOf(step).filter((call) => isOk(call.reply) && Array.isArray(call.reply.body.results));
  const results = good.length ? good[good.length - 1].reply.body.results : [];
  return Array.from({ length: count }, (_, index) =>
    results[index] && results[index].output !== undefined ? results[index] : null);
};
"""

RECORDS_JS = """\
// Every call that reached the service, as {step, attempt, status, tier, model, cost_usd, run_id, ...}.
const record = (step, attempt, status, body, error, extra) => {
  const ok = status >= 200 && status < 300 && body.output !== undefined;
  const attempts = Array.isArray(body.attempts) ? body.attempts : [];
  const last = attempts.length ? attempts[attempts.length - 1] : {};
  const cost = body.usage && typeof body.usage.cost_usd === 'number' ? body.usage.cost_usd : null;
  return Object.assign({
    step,
    attempt,
    status: ok ? 'ok' : status === 429 ? 'rate_limited' : 'failed',
    http_status: status,
    tier: body.tier || last.tier || null,
    model: body.model || last.model || null,
    // A 429 is refused before any model call and costs nothing; a lost connection's cost is unknown.
    cost_usd: cost !== null ? cost : status === 429 ? 0 : null,
    run_id: body.run_id || null,
    escalated: body.escalated === true,
    error: ok ? null : body.detail || error || (status === null ? 'no response' : 'HTTP ' + status),
  }, extra || {});
};
const recordsOf = (step, key, batch) => {
  const records = [];
  for (const call of callsOf(step)) {
    const { status, body, error } = call.reply;
    if (batch && isOk(call.reply) && Array.isArray(body.results)) {
      body.results.forEach((item, index) => {
        const itemStatus = item && item.output !== undefined ? 200 : (item && item.status) || null;
        records.push(record(key, call.attempt, itemStatus, item || {}, null, { item: index }));
      });
    } else {
      records.push(record(key, call.attempt, status, body, error, batch ? { item: null } : {}));
    }
  }
  return records;
};
"""

TOTAL_JS = """\
// Added in picodollars so the total is exact to the digits the service reports.
const picodollars = (calls) =>
  calls.reduce((sum, call) => sum + (typeof call.cost_usd === 'number' ? Math.round(call.cost_usd * 1e12) : 0), 0);
const total_cost_usd = Number((picodollars(steps) / 1e12).toFixed(12));
"""


@dataclass
class Step:
    """One LLM step: a call to the service, drawn as its HTTP node and its mini fallback.

    ``body`` is the request (``Expr`` values become n8n expressions); the fallback sends the same body with
    ``tier`` and ``max_tier`` (a batch: in ``defaults``) set to mini. ``note`` is the step's sticky note.
    """

    key: str
    title: str
    node: str
    body: dict[str, Any]
    note: str
    batch: bool = False
    fallback_body: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.fallback_body = copy.deepcopy(self.body)
        target = self.fallback_body["defaults"] if self.batch else self.fallback_body
        target["tier"] = target["max_tier"] = "mini"

    @property
    def tier(self) -> str:
        """The tier the step starts on."""
        return str((self.body["defaults"] if self.batch else self.body)["tier"])

    @property
    def max_tier(self) -> str:
        """The highest tier the service may escalate the step to."""
        return str((self.body["defaults"] if self.batch else self.body)["max_tier"])


Exits = list[tuple[str, int]]
"""The (node, output) pairs a step's answer leaves by: the HTTP node's success output and the fallback."""


class Workflow:
    """Nodes and connections of one template, with stable ids derived from the workflow id and node names."""

    def __init__(self, slug: str, workflow_id: str, name: str, description: str) -> None:
        assert len(workflow_id) <= 21, workflow_id
        self.slug = slug
        self.workflow_id = workflow_id
        self.name = name
        self.description = description
        self.nodes: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []
        self.connections: dict[str, dict[str, list[list[dict[str, Any]]]]] = {}
        self.steps: list[Step] = []

    def uuid(self, label: str) -> str:
        """A stable uuid for ``label`` inside this workflow."""
        return str(uuid.uuid5(ID_NAMESPACE, f"{self.workflow_id}/{label}"))

    def add(
        self, name: str, kind: tuple[str, float], position: tuple[int, int], parameters: dict[str, Any], **extra: Any
    ) -> str:
        """Add a node and return its name."""
        assert all(node["name"] != name for node in self.nodes + self.notes), name
        node: dict[str, Any] = {
            "id": self.uuid(f"node/{name}"),
            "name": name,
            "type": kind[0],
            "typeVersion": kind[1],
            "position": [position[0], position[1]],
            "parameters": parameters,
        }
        node.update(extra)
        (self.notes if kind == STICKY else self.nodes).append(node)
        return name

    def connect(self, source: str, target: str, output: int = 0) -> None:
        """Connect ``source``'s output ``output`` to ``target``'s first input."""
        outputs = self.connections.setdefault(source, {}).setdefault("main", [])
        while len(outputs) <= output:
            outputs.append([])
        outputs[output].append({"node": target, "type": "main", "index": 0})

    def link(self, exits: Exits, target: str) -> None:
        """Connect every exit of a step (or a single node's output 0) to ``target``."""
        for source, output in exits:
            self.connect(source, target, output)

    # -- node builders ----------------------------------------------------------------------------------

    def sticky(self, content: str, box: tuple[int, int, int, int], color: int = YELLOW) -> str:
        """A sticky note over the canvas area ``(x, y, width, height)``; n8n draws it behind the nodes."""
        x, y, width, height = box
        name = "Sticky Note" + (str(len(self.notes)) if self.notes else "")
        parameters = {"content": content.strip() + "\n", "height": height, "width": width, "color": color}
        return self.add(name, STICKY, (x, y), parameters)

    def around(self, content: str, names: list[str], color: int, header: int = HEADER, *, width: int = 0) -> str:
        """A sticky note behind the nodes ``names``, with ``header`` pixels above them for its text."""
        spots = [node["position"] for node in self.nodes if node["name"] in names]
        assert len(spots) == len(names), names
        left, top = min(x for x, _ in spots) - 40, min(y for _, y in spots) - header
        right, bottom = max(x for x, _ in spots) + 100 + 40, max(y for _, y in spots) + 100 + 80
        return self.sticky(content, (left, top, max(width, right - left), bottom - top), color)

    def code(self, name: str, position: tuple[int, int], source: str) -> str:
        """A JavaScript Code node run once for all items."""
        parameters = {"mode": "runOnceForAllItems", "language": "javaScript", "jsCode": source}
        return self.add(name, CODE, position, parameters)

    def http(
        self, name: str, position: tuple[int, int], *, path: str, body: str, key: str, timeout_ms: int, **extra: Any
    ) -> str:
        """An HTTP Request node calling the service: credential, timeout, full response, Prefer: wait."""
        parameters = {
            "method": "POST",
            "url": "={{ $('Config').item.json.service_url }}" + path,
            "authentication": "genericCredentialType",
            "genericAuthType": CREDENTIAL_TYPE,
            "sendHeaders": True,
            "specifyHeaders": "keypair",
            "headerParameters": {
                "parameters": [
                    {"name": "Idempotency-Key", "value": key},
                    {"name": "Prefer", "value": f"wait={PREFER_WAIT_S}"},
                ]
            },
            "sendBody": True,
            "contentType": "json",
            "specifyBody": "json",
            "jsonBody": body,
            "options": {
                "timeout": timeout_ms,
                "response": {"response": {"fullResponse": True, "responseFormat": "json"}},
            },
        }
        return self.add(
            name, HTTP, position, parameters, credentials={CREDENTIAL_TYPE: dict(CREDENTIAL)}, **RETRY, **extra
        )

    def step(self, step: Step, x: int, y: int, number: int) -> Exits:
        """Add one LLM step at ``(x, y)``: the HTTP node and its mini fallback, under a sticky note.

        The HTTP node's error output (any status but 2xx, or no answer after Retry On Fail) leads to the
        fallback; the HTTP node's success output and the fallback are the step's exits.
        """
        self.steps.append(step)
        path = f"/v1/nodes/{step.node}" + ("/batch" if step.batch else "")
        timeout = BATCH_TIMEOUT_MS if step.batch else TIMEOUT_MS
        nonce = "{{ $('Read input').first().json.nonce }}"
        key = "={{ $execution.id }}-{{ $itemIndex }}-" + step.key + "-" + nonce
        tiers = step.tier if step.tier == step.max_tier else f"{step.tier}, up to {step.max_tier}"
        primary = self.http(
            step.title,
            (x, y),
            path=path,
            body=json_body(step.body),
            key=key,
            timeout_ms=timeout,
            onError="continueErrorOutput",
            notes=("batch: " if step.batch else "") + tiers,
            notesInFlow=True,
        )
        fallback = self.http(
            f"{step.title}: mini fallback",
            (x + FALLBACK_DX, y + FALLBACK_DY),
            path=path,
            body=json_body(step.fallback_body),
            key="={{ $execution.id }}-{{ $itemIndex }}-" + step.key + "-mini-fallback-" + nonce,
            timeout_ms=timeout,
            onError="continueRegularOutput",
        )
        self.connect(primary, fallback, 1)
        self.around(f"## {number}. {step.note.strip()}", [primary, fallback], TIER_COLOR[step.tier])
        return [(primary, 0), (fallback, 0)]

    def entry(self, sample: dict[str, Any], read_input_js: str, about: str) -> tuple[Exits, int]:
        """Manual Trigger → Sample input and Webhook → Config → Read input, under the template's main note."""
        self.add(MANUAL_NAME, MANUAL, (0, 0), {})
        self.add(
            "Sample input",
            SET,
            (X, 0),
            {"mode": "raw", "jsonOutput": json.dumps({"body": sample}, indent=2, ensure_ascii=False), "options": {}},
        )
        self.add(
            "Webhook",
            WEBHOOK,
            (0, Y),
            {
                "httpMethod": "POST",
                "path": f"tierwise-{self.slug}",
                "responseMode": "responseNode",
                "options": {},
            },
            webhookId=self.uuid("webhook/Webhook"),
            # n8n's Execute workflow button picks an enabled Webhook over the Manual Trigger; off, it runs the sample.
            disabled=True,
        )
        self.add(
            "Config",
            SET,
            (2 * X, 0),
            {
                "mode": "manual",
                "assignments": {
                    "assignments": [
                        {
                            "id": self.uuid("config/service_url"),
                            "name": "service_url",
                            "value": SERVICE_URL,
                            "type": "string",
                        }
                    ]
                },
                "includeOtherFields": True,
                "options": {},
            },
        )
        self.code(
            "Read input",
            (3 * X, 0),
            "// The webhook's JSON body (or the sample) becomes the run's input.\n"
            "const item = $input.first().json;\n"
            "const body = item.body && typeof item.body === 'object' ? item.body : {};\n"
            "// Part of every Idempotency-Key: n8n's retries of a node reuse it, another execution never does.\n"
            "const nonce = Math.random().toString(36).slice(2, 10);\n"
            + read_input_js.strip()
            + "\nreturn [{ json: { ...input, nonce }, pairedItem: { item: 0 } }];\n",
        )
        self.connect(MANUAL_NAME, "Sample input")
        self.connect("Sample input", "Config")
        self.connect("Webhook", "Config")
        self.connect("Config", "Read input")
        self.around(about, [MANUAL_NAME, "Sample input", "Webhook", "Config", "Read input"], YELLOW, header=420)
        return [("Read input", 0)], 4 * X + 60

    def finish(self, exits: Exits, x: int, summary_js: str, respond_with: str = "firstIncomingItem") -> None:
        """Summary (Code) → Respond to Webhook, under the note on where the cost summary is."""
        calls = ",\n".join(
            f"  ...recordsOf('{step.title}', '{step.key}', {str(step.batch).lower()})" for step in self.steps
        )
        self.code(
            "Summary",
            (x, 0),
            "// The result, every model call that ran ({step, tier, model, cost_usd, status, ...}), the total cost.\n"
            + HELPERS_JS
            + RECORDS_JS
            + f"const steps = [\n{calls},\n];\n"
            + TOTAL_JS
            + summary_js.strip()
            + "\n",
        )
        self.add(
            "Respond to Webhook",
            RESPOND,
            (x + X, 0),
            {"respondWith": respond_with, "options": {"responseCode": 200}},
        )
        self.link(exits, "Summary")
        self.connect("Summary", "Respond to Webhook")
        self.around(
            "## Cost summary\nOpen **Summary**: the result, then `steps` — every model call with its "
            "`tier`, `model` and `cost_usd` — and `total_cost_usd`.\n\nThe Webhook gets the same JSON.",
            ["Summary", "Respond to Webhook"],
            ORANGE,
        )

    def document(self) -> dict[str, Any]:
        """The workflow as n8n imports it."""
        return {
            "id": self.workflow_id,
            "name": self.name,
            "description": self.description,
            "nodes": self.nodes + self.notes,
            "connections": self.connections,
            "settings": {"executionOrder": "v1"},
            "pinData": {},
            "active": False,
            "tags": [],
        }


def about(title: str, what: str, calls: str) -> str:
    """The main sticky note: what the template does, the one thing to set up, how to run it, the cost."""
    return f"""
# {title}
{what.strip()}

Model calls: {calls}.

## Set up (once)
1. **Credential**: *Bearer Auth* named **Tierwise API key**, holding your Tierwise key.
2. **Base URL**: in **Config**, set `service_url`.

## Run
**Execute workflow** runs the **Sample input** (edit it to try your own). Every call's cost is in **Summary**.

**Production**: enable the **Webhook** (select it, press *D*), publish, POST the sample's `body` to it.
"""


def summary(template: str, result_js: str) -> str:
    """Summary code for a template with one result object."""
    return (
        result_js.strip()
        + f"\nreturn [{{ json: {{ template: '{template}', result, steps, total_cost_usd }},"
        + " pairedItem: { item: 0 } }];"
    )


def read(node: str) -> str:
    """An expression reading the output of the (single-item) node ``node``."""
    return f"$('{node}').first().json"


INPUT = read("Read input")


# -- the templates ----------------------------------------------------------------------------------------


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


def support_triage() -> Workflow:
    """Classify intent and urgency on nano, then reply on mini, escalate through a judge on full, or close spam."""
    wf = Workflow(
        "support-triage",
        "twSupportTriage0001",
        "Tierwise: support triage",
        "Classify a ticket's intent and urgency on nano; draft a reply on mini, send complaints and urgent "
        "tickets through a judge on full, close spam without another model call.",
    )
    start, x = wf.entry(
        {
            "ticket_id": "T-1042",
            "customer": "alex.morgan@example.com",
            "subject": "Charged twice this month",
            "message": "Billing question: I was charged twice for my subscription this month. Priority: normal. "
            "Could you refund the duplicate charge?",
        },
        """
const input = {
  ticket_id: body.ticket_id || null,
  customer: body.customer || null,
  subject: String(body.subject || ''),
  message: String(body.message || ''),
};
// What the classifiers read.
input.text = [input.subject, input.message].filter(Boolean).join('\\n\\n');""",
        about(
            "Support triage",
            "Classifies a ticket's **intent** and **urgency** on nano, then: spam is closed with no further call; "
            "complaints and urgent tickets go to a **judge** on full that decides whether a human takes it now; "
            "everything else gets a **reply** drafted on mini.",
            "3 (2 for spam)",
        ),
    )

    def classify(key: str, title: str, labels: list[dict[str, str]], note: str) -> Step:
        return Step(
            key,
            title,
            "classify",
            {
                "input": Expr(f"{INPUT}.text"),
                "labels": labels,
                "min_confidence": 0.6,
                "tier": "nano",
                "max_tier": "mini",
                "metadata": {
                    "template": "support-triage",
                    "step": key,
                    "ticket_id": Expr(f"{INPUT}.ticket_id"),
                },
            },
            note,
        )

    intent = classify(
        "intent",
        "Classify Intent",
        INTENT_LABELS,
        "Intent · nano\nbilling, bug, how_to, complaint or spam. The labels are in the node's JSON body.",
    )
    urgency = classify("urgency", "Classify Urgency", URGENCY_LABELS, "Urgency · nano\nlow, normal or urgent.")
    exits = wf.step(intent, x, 0, 1)
    wf.link(start, intent.title)
    x += STEP_W
    after_intent = exits
    exits = wf.step(urgency, x, 0, 2)
    wf.link(after_intent, urgency.title)
    x += STEP_W

    wf.code(
        "Triage",
        (x, 0),
        "// Which way the ticket goes: spam is closed; complaints, urgent tickets and tickets whose intent could\n"
        "// not be classified are escalated; everything else gets a drafted reply.\n"
        + HELPERS_JS
        + f"""const ticket = {INPUT};
const unknown = {{ label: 'unknown', confidence: null }};
const intent = (answerOf('Classify Intent') || {{ output: unknown }}).output;
const urgency = (answerOf('Classify Urgency') || {{ output: unknown }}).output;
const escalate = ['complaint', 'unknown'].includes(intent.label) || urgency.label === 'urgent';
const route = intent.label === 'spam' ? 'spam' : escalate ? 'escalate' : 'reply';
return [{{ json: {{ ...ticket, intent, urgency, route }}, pairedItem: {{ item: 0 }} }}];
""",
    )
    wf.link(exits, "Triage")
    x += X
    wf.add(
        "Route Ticket",
        SWITCH,
        (x, 0),
        {
            "mode": "rules",
            "rules": {
                "values": [
                    {
                        "conditions": conditions(condition("={{ $json.route }}", STRING_EQ, route)),
                        "renameOutput": True,
                        "outputKey": route,
                    }
                    for route in ("spam", "escalate")
                ]
            },
            "options": {"fallbackOutput": "extra", "renameFallbackOutput": "reply"},
        },
    )
    wf.connect("Triage", "Route Ticket")
    wf.around(
        "## 3. Route\n**Triage** picks the route from the two labels; **Route Ticket** sends the ticket "
        "one of three ways.",
        ["Triage", "Route Ticket"],
        GRAY,
    )
    x += X + 40

    wf.add("Close Spam", NOOP, (x + FALLBACK_DX // 2, -340), {}, notes="no model call", notesInFlow=True)
    wf.connect("Route Ticket", "Close Spam", 0)
    wf.around(
        "### Spam\nNo model call: put your helpdesk's *close* action here.", ["Close Spam"], GRAY, header=120, width=250
    )

    triage = read("Triage")
    judge = Step(
        "escalation",
        "Judge Escalation",
        "judge",
        {
            "input": {"subject": Expr(f"{triage}.subject"), "message": Expr(f"{triage}.message")},
            "candidate": {
                "intent": Expr(f"{triage}.intent.label"),
                "urgency": Expr(f"{triage}.urgency.label"),
                "proposal": "Hand this ticket to a human support lead now instead of answering it automatically.",
            },
            "criteria": [
                "The customer is upset, or reports a problem that blocks their work, loses money or loses data.",
                "An automated reply would not be enough: a human should answer within the hour.",
            ],
            "tier": "full",
            "max_tier": "full",
            "metadata": {"template": "support-triage", "step": "escalation", "ticket_id": Expr(f"{triage}.ticket_id")},
        },
        "Escalate? · full\nA judge decides whether a human takes the ticket now.",
    )
    after_judge = wf.step(judge, x, 0, 4)
    wf.connect("Route Ticket", judge.title, 1)

    draft = Step(
        "reply",
        "Draft Reply",
        "draft",
        {
            "input": {
                "subject": Expr(f"{triage}.subject"),
                "message": Expr(f"{triage}.message"),
                "intent": Expr(f"{triage}.intent.label"),
                "urgency": Expr(f"{triage}.urgency.label"),
            },
            "instructions": "Write the support reply to this ticket: friendly, specific to what the customer wrote, "
            'at most five sentences, signed "The Support Team". Do not promise refunds or dates; say what happens '
            "next.",
            "format": "text",
            "max_words": 150,
            "tier": "mini",
            "max_tier": "mini",
            "metadata": {"template": "support-triage", "step": "reply", "ticket_id": Expr(f"{triage}.ticket_id")},
        },
        "Reply · mini\nThe reply to send; the instructions are in the node's JSON body.",
    )
    after_draft = wf.step(draft, x, 520, 5)
    wf.connect("Route Ticket", draft.title, 2)
    x += STEP_W + 40

    wf.finish(
        [("Close Spam", 0), *after_judge, *after_draft],
        x,
        summary(
            "support-triage",
            f"""
const triage = {triage};
const ticket = {{ ticket_id: triage.ticket_id, intent: triage.intent, urgency: triage.urgency }};
let result;
if (triage.route === 'spam') {{
  result = {{ ...ticket, route: 'spam', action: 'close' }};
}} else if (triage.route === 'escalate') {{
  const verdict = answerOf('Judge Escalation');
  result = verdict
    ? {{ ...ticket, route: 'escalate',
        action: verdict.output.verdict === 'pass' ? 'escalate_to_human' : 'queue_for_agent',
        verdict: verdict.output.verdict, score: verdict.output.score, reasons: verdict.output.reasons }}
    : {{ ...ticket, route: 'escalate', action: 'escalate_to_human', verdict: null, score: null,
        reasons: ['the judge could not be reached; escalated to be safe'] }};
}} else {{
  const reply = answerOf('Draft Reply');
  result = reply
    ? {{ ...ticket, route: 'reply', action: 'send_reply', reply: reply.output.text }}
    : {{ ...ticket, route: 'reply', action: 'escalate_to_human', reply: null }};
}}""",
        ),
    )
    return wf


def document_extraction() -> Workflow:
    """Extract fields from many documents in one batch call on nano; one output item per document."""
    wf = Workflow(
        "document-extraction",
        "twDocExtraction0001",
        "Tierwise: document extraction",
        "Extract invoice fields with a JSON Schema from many documents in one batch call on nano; one output "
        "item per document with its fields, tier and cost.",
    )
    start, x = wf.entry(
        {
            "documents": [
                {
                    "id": "DOC-1",
                    "text": "INVOICE INV-2025-0001 from Northwind Supplies, issued 2025-03-04. "
                    "Office chairs x4. Total due: 1,280.00 EUR by 2025-04-03.",
                },
                {
                    "id": "DOC-2",
                    "text": "Contoso Cloud - invoice number INV-2025-0002, dated 2025-03-06. "
                    "Hosting, March. Amount payable: 349.90 USD.",
                },
                {
                    "id": "DOC-3",
                    "text": "Fabrikam Ltd invoice INV-2025-0003 (2025-03-09): consulting, 12 hours. "
                    "Please pay 1,920.00 GBP within 30 days.",
                },
            ]
        },
        """
// {"documents": [{"id": "...", "text": "..."}, ...]}
const documents = Array.isArray(body.documents) ? body.documents : [];
const input = {
  documents: documents.map((doc, index) => ({
    id: String(doc.id || 'doc-' + (index + 1)),
    text: String(doc.text || ''),
  })),
};""",
        about(
            "Document extraction",
            "Extracts invoice fields (vendor, number, date, total, currency) from many documents with a "
            "**JSON Schema**, in **one** batch call on nano. The output has one item per document with its "
            "fields, tier and cost.",
            "1 HTTP call, 1 run per document",
        ),
    )
    schema = {
        "type": "object",
        "properties": {
            "vendor": {"type": "string", "description": "who issued the invoice"},
            "invoice_number": {"type": "string"},
            "invoice_date": {"type": "string", "format": "date"},
            "total": {"type": "number", "minimum": 0, "description": "the amount due"},
            "currency": {"type": "string", "enum": ["USD", "EUR", "GBP"]},
        },
        "required": ["vendor", "invoice_number", "total", "currency"],
    }
    extract = Step(
        "extract",
        "Extract Fields",
        "extract",
        {
            "items": Expr(
                f"{INPUT}.documents.map((doc) => ({{ input: doc.text, metadata: {{ document_id: doc.id }} }}))"
            ),
            "defaults": {
                "schema": schema,
                "instructions": "Copy values exactly as written in the document; amounts as plain numbers.",
                "tier": "nano",
                "max_tier": "mini",
                "metadata": {"template": "document-extraction", "step": "extract"},
            },
        },
        "Extract · nano, batch\nOne call for every document. The fields are the JSON Schema in the node's "
        "JSON body: edit it to extract other fields.",
        batch=True,
    )
    exits = wf.step(extract, x, 0, 1)
    wf.link(start, extract.title)
    x += STEP_W + 40
    wf.finish(
        exits,
        x,
        f"""
// One output item per document: its fields, tier, model, cost and every call made for it.
const documents = {INPUT}.documents;
const answers = answersOf('Extract Fields', documents.length);
return documents.map((doc, index) => {{
  const answer = answers[index];
  const calls = steps.filter((step) => step.item === index || step.item === null);
  return {{
    json: {{
      template: 'document-extraction',
      document_id: doc.id,
      status: answer ? 'ok' : 'failed',
      fields: answer ? answer.output : null,
      tier: answer ? answer.tier : null,
      model: answer ? answer.model : null,
      cost_usd: Number((picodollars(calls) / 1e12).toFixed(12)),
      steps: calls,
      total_cost_usd,
    }},
    pairedItem: {{ item: 0 }},
  }};
}});""",
        respond_with="allIncomingItems",
    )
    return wf


def pr_review() -> Workflow:
    """Draft one review comment per risk area on mini, classify each one's severity on nano, judge on full."""
    wf = Workflow(
        "pr-review",
        "twPrReview000000001",
        "Tierwise: PR review",
        "Draft a review comment per risk area (security, performance, correctness) on mini, classify each "
        "comment's severity on nano, and judge the review on full.",
    )
    start, x = wf.entry(
        {
            "repository": "acme/reports-api",
            "pr_number": 42,
            "title": "Add CSV export for the reports endpoint",
            "diff": "--- a/reports/views.py\n+++ b/reports/views.py\n@@ -10,6 +10,18 @@\n"
            "+def export_csv(request):\n"
            "+    rows = db.execute(\"SELECT * FROM reports WHERE owner = '%s'\" % request.GET['owner'])\n"
            "+    out = ''\n"
            "+    for row in rows:\n"
            "+        out += ','.join(str(v) for v in row) + '\\n'\n"
            "+    return HttpResponse(out, content_type='text/csv')\n",
        },
        """
const input = {
  repository: body.repository || null,
  pr_number: body.pr_number || null,
  title: String(body.title || ''),
  diff: String(body.diff || ''),
  // One review comment is drafted per risk area.
  areas: ['security', 'performance', 'correctness'],
};""",
        about(
            "PR review",
            "Drafts one **review comment** per risk area (security, performance, correctness) on mini, "
            "classifies each comment's **severity** (blocker, major, minor, nit) on nano, and has a **judge** "
            "on full check the whole review.",
            "3 + 3 + 1",
        ),
    )
    drafts = Step(
        "review",
        "Draft Reviews",
        "draft",
        {
            "items": Expr(
                f"{INPUT}.areas.map((area) => ({{\n"
                f"    input: {{ title: {INPUT}.title, diff: {INPUT}.diff }},\n"
                "    instructions: 'Review this pull request for ' + area + ' risks only. Write one review comment: '\n"
                "      + 'name the line or construct, explain the risk, and suggest a fix. If there is no ' + area\n"
                "      + ' risk, say so.',\n"
                "    metadata: { template: 'pr-review', step: 'review', area },\n"
                "  }))"
            ),
            "defaults": {"format": "text", "max_words": 120, "tier": "mini", "max_tier": "mini"},
        },
        "Review comments · mini, batch\nOne comment per risk area, in one call.",
        batch=True,
    )
    exits = wf.step(drafts, x, 0, 1)
    wf.link(start, drafts.title)
    x += STEP_W
    # The drafted comments come in as this step's input ($json: the draft batch's answer, each result
    # carrying its area in the metadata it was sent with).
    severity = Step(
        "severity",
        "Classify Severity",
        "classify",
        {
            "items": Expr(
                "(($json.body || {}).results || []).filter((result) => result.output).map((result) => ({\n"
                "    input: result.metadata.area + ' review comment: ' + result.output.text,\n"
                "    metadata: { template: 'pr-review', step: 'severity', area: result.metadata.area },\n"
                "  }))"
            ),
            "defaults": {
                "labels": [
                    {"name": "blocker", "description": "must be fixed before merging"},
                    {"name": "major", "description": "should be fixed in this pull request"},
                    {"name": "minor", "description": "worth fixing, not urgent"},
                    {"name": "nit", "description": "style or preference"},
                ],
                "min_confidence": 0.6,
                "tier": "nano",
                "max_tier": "mini",
            },
        },
        "Severity · nano, batch\nblocker, major, minor or nit, for each drafted comment.",
        batch=True,
    )
    after_drafts = exits
    exits = wf.step(severity, x, 0, 2)
    wf.link(after_drafts, severity.title)
    x += STEP_W
    wf.code(
        "Assemble Review",
        (x, 0),
        "// The review: every area's comment with its severity; a blocker means 'request changes'.\n"
        + HELPERS_JS
        + f"""const pr = {INPUT};
const drafts = answersOf('Draft Reviews', pr.areas.length);
const comments = pr.areas.map((area, index) => ({{
  area,
  comment: drafts[index] ? drafts[index].output.text : null,
  severity: null,
  confidence: null,
}}));
// Only drafted comments were classified, in this order.
const drafted = comments.filter((entry) => entry.comment);
answersOf('Classify Severity', drafted.length).forEach((answer, index) => {{
  drafted[index].severity = answer ? answer.output.label : null;
  drafted[index].confidence = answer ? answer.output.confidence : null;
}});
const recommendation = comments.some((entry) => entry.severity === 'blocker') ? 'request_changes' : 'comment';
return [{{ json: {{ repository: pr.repository, pr_number: pr.pr_number, title: pr.title, diff: pr.diff, comments,
  recommendation }}, pairedItem: {{ item: 0 }} }}];
""",
    )
    wf.link(exits, "Assemble Review")
    wf.around("### Assemble\nComments and severities; a blocker means *request changes*.", ["Assemble Review"], GRAY)
    x += X + 40
    review = read("Assemble Review")
    judge = Step(
        "verdict",
        "Judge Review",
        "judge",
        {
            "input": {"title": Expr(f"{review}.title"), "diff": Expr(f"{review}.diff")},
            "candidate": {"comments": Expr(f"{review}.comments")},
            "criteria": [
                "Every comment points at a concrete line or construct in the diff.",
                "Each severity matches the risk the comment describes.",
                "No serious security, performance or correctness problem in the diff is missed.",
            ],
            "tier": "full",
            "max_tier": "full",
            "metadata": {"template": "pr-review", "step": "verdict", "pr_number": Expr(f"{review}.pr_number")},
        },
        "Judge · full\nIs the review right and complete?",
    )
    exits = wf.step(judge, x, 0, 3)
    wf.connect("Assemble Review", judge.title)
    x += STEP_W + 40
    wf.finish(
        exits,
        x,
        summary(
            "pr-review",
            f"""
const review = {review};
const verdict = answerOf('Judge Review');
const result = {{
  repository: review.repository,
  pr_number: review.pr_number,
  comments: review.comments,
  recommendation: review.recommendation,
  verdict: verdict ? verdict.output.verdict : null,
  score: verdict ? verdict.output.score : null,
  reasons: verdict ? verdict.output.reasons : [],
}};""",
        ),
    )
    return wf


def research_synthesis() -> Workflow:
    """Extract and rank sources on nano (batch), draft a synthesis on mini, judge it on full."""
    wf = Workflow(
        "research-synthesis",
        "twResearchSynth0001",
        "Tierwise: research synthesis",
        "Extract the claim and relevance of every source on nano in one batch call, rank them, draft a cited "
        "synthesis on mini and judge it on full.",
    )
    start, x = wf.entry(
        {
            "question": "Should we move our nightly batch jobs to spot instances?",
            "sources": [
                {
                    "id": "S1",
                    "title": "Cloud provider pricing page",
                    "text": "Spot capacity is offered at up to 90% off on-demand prices and can be reclaimed "
                    "with two minutes' notice.",
                },
                {
                    "id": "S2",
                    "title": "Internal post-mortem, March",
                    "text": "Our nightly report job failed twice when spot capacity was reclaimed; it has no "
                    "checkpointing and restarts from scratch.",
                },
                {
                    "id": "S3",
                    "title": "Engineering blog: checkpointed batch on spot",
                    "text": "Jobs that checkpoint every few minutes lose little work on interruption and cut "
                    "compute cost by 70% on average.",
                },
                {
                    "id": "S4",
                    "title": "Office newsletter",
                    "text": "The cafeteria will serve a new lunch menu from Monday.",
                },
            ],
        },
        """
// {"question": "...", "sources": [{"id", "title", "text"}, ...], "keep": 3}
const sources = Array.isArray(body.sources) ? body.sources : [];
const input = {
  question: String(body.question || ''),
  sources: sources.map((source, index) => ({
    id: String(source.id || 'S' + (index + 1)),
    title: String(source.title || ''),
    text: String(source.text || ''),
  })),
  // How many of the best-ranked sources the synthesis uses.
  keep: Number(body.keep) || 3,
};""",
        about(
            "Research synthesis",
            "Extracts each source's **claim, stance and relevance** on nano (one batch call), keeps the best "
            "three, drafts a **cited synthesis** on mini and has a **judge** on full check it.",
            "one per source + 1 + 1",
        ),
    )
    schema = {
        "type": "object",
        "properties": {
            "claim": {"type": "string", "description": "what the source says about the question, in one sentence"},
            "stance": {"type": "string", "enum": ["supports", "opposes", "mixed", "unrelated"]},
            "relevance": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["claim", "stance", "relevance"],
    }
    sources = Step(
        "sources",
        "Extract Sources",
        "extract",
        {
            "items": Expr(
                f"{INPUT}.sources.map((source) => ({{\n"
                f"    input: {{ question: {INPUT}.question, source: source.title + ': ' + source.text }},\n"
                "    metadata: { source_id: source.id },\n"
                "  }))"
            ),
            "defaults": {
                "schema": schema,
                "instructions": "Relevance: 1 when the source bears directly on the question, 0 when it has "
                "nothing to do with it.",
                "tier": "nano",
                "max_tier": "mini",
                "metadata": {"template": "research-synthesis", "step": "sources"},
            },
        },
        "Sources · nano, batch\nClaim, stance and relevance of every source, in one call.",
        batch=True,
    )
    exits = wf.step(sources, x, 0, 1)
    wf.link(start, sources.title)
    x += STEP_W
    wf.code(
        "Rank Sources",
        (x, 0),
        "// Rank the sources by relevance and keep the best few for the synthesis.\n"
        + HELPERS_JS
        + f"""const input = {INPUT};
const answers = answersOf('Extract Sources', input.sources.length);
const ranked = input.sources
  .map((source, index) => Object.assign({{ id: source.id, title: source.title, text: source.text }},
    answers[index] ? answers[index].output : {{ claim: null, stance: null, relevance: null }}))
  .filter((source) => source.relevance !== null)
  .sort((a, b) => b.relevance - a.relevance)
  .slice(0, input.keep);
return [{{ json: {{ question: input.question, ranked }}, pairedItem: {{ item: 0 }} }}];
""",
    )
    wf.link(exits, "Rank Sources")
    wf.around("### Rank\nThe most relevant sources, best first.", ["Rank Sources"], GRAY)
    x += X + 40
    ranked = read("Rank Sources")
    draft = Step(
        "synthesis",
        "Draft Synthesis",
        "draft",
        {
            "input": {"question": Expr(f"{ranked}.question"), "sources": Expr(f"{ranked}.ranked")},
            "instructions": "Answer the question from these sources only, in one or two short paragraphs. Cite "
            "every claim with its source id in brackets, e.g. [S1], and say where the sources disagree.",
            "format": "text",
            "max_words": 200,
            "tier": "mini",
            "max_tier": "mini",
            "metadata": {"template": "research-synthesis", "step": "synthesis"},
        },
        "Synthesis · mini\nA cited answer from the kept sources.",
    )
    exits = wf.step(draft, x, 0, 2)
    wf.connect("Rank Sources", draft.title)
    x += STEP_W
    # The synthesis comes in as this step's input ($json: the draft's answer, or {error} when it failed).
    judge = Step(
        "verdict",
        "Judge Synthesis",
        "judge",
        {
            "input": {"question": Expr(f"{ranked}.question"), "sources": Expr(f"{ranked}.ranked")},
            "candidate": Expr(
                "$json.body && $json.body.output ? $json.body.output.text : '(no synthesis could be drafted)'"
            ),
            "criteria": [
                "Every claim is supported by a cited source.",
                "It answers the question directly.",
                "It says where the sources disagree.",
            ],
            "tier": "full",
            "max_tier": "full",
            "metadata": {"template": "research-synthesis", "step": "verdict"},
        },
        "Judge · full\nIs every claim cited and supported?",
    )
    after_draft = exits
    exits = wf.step(judge, x, 0, 3)
    wf.link(after_draft, judge.title)
    x += STEP_W + 40
    wf.finish(
        exits,
        x,
        summary(
            "research-synthesis",
            f"""
const ranked = {ranked};
const synthesis = answerOf('Draft Synthesis');
const verdict = answerOf('Judge Synthesis');
const result = {{
  question: ranked.question,
  sources: ranked.ranked.map((source) => ({{ id: source.id, title: source.title, claim: source.claim,
    stance: source.stance, relevance: source.relevance }})),
  synthesis: synthesis ? synthesis.output.text : null,
  verdict: verdict ? verdict.output.verdict : null,
  score: verdict ? verdict.output.score : null,
  reasons: verdict ? verdict.output.reasons : [],
}};""",
        ),
    )
    return wf


def content_pipeline() -> Workflow:
    """Draft on mini, judge on full, one revision on mini when the judge fails it, topic tag on nano."""
    wf = Workflow(
        "content-pipeline",
        "twContentPipeln0001",
        "Tierwise: content pipeline",
        "Draft a title and body on mini, judge them on full, revise once on mini with the judge's reasons when "
        "the verdict is fail, and tag the topic on nano.",
    )
    start, x = wf.entry(
        {
            "brief": "Announce the new CSV export in the reporting dashboard to existing customers.",
            "audience": "operations managers",
            "tone": "friendly and concise",
        },
        """
const input = {
  brief: String(body.brief || ''),
  audience: String(body.audience || 'customers'),
  tone: String(body.tone || 'friendly'),
};""",
        about(
            "Content pipeline",
            "Drafts a **title and body** on mini, has a **judge** on full review them, **revises** once on mini "
            "with the judge's reasons when the verdict is *fail*, and tags the **topic** on nano.",
            "3, or 4 with a revision",
        ),
    )
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 90},
            "body": {"type": "string"},
        },
        "required": ["title", "body"],
    }
    brief = {"brief": Expr(f"{INPUT}.brief"), "audience": Expr(f"{INPUT}.audience"), "tone": Expr(f"{INPUT}.tone")}
    draft = Step(
        "draft",
        "Draft Content",
        "draft",
        {
            "input": brief,
            "instructions": "Write the announcement: a title and a body of two or three short paragraphs.",
            "format": "json",
            "schema": schema,
            "tier": "mini",
            "max_tier": "mini",
            "metadata": {"template": "content-pipeline", "step": "draft"},
        },
        "Draft · mini\nA title and a body (JSON with a schema).",
    )
    exits = wf.step(draft, x, 0, 1)
    wf.link(start, draft.title)
    x += STEP_W
    # The draft comes in as this step's input ($json: the draft's answer, or {error} when it failed).
    judge = Step(
        "review",
        "Judge Content",
        "judge",
        {
            "input": brief,
            "candidate": Expr("$json.body && $json.body.output ? $json.body.output : '(no draft could be written)'"),
            "criteria": [
                "The title is specific and under 90 characters.",
                "The body explains what changed and why it matters to the audience.",
                "The tone matches the brief and there are no unsupported claims.",
            ],
            "tier": "full",
            "max_tier": "full",
            "metadata": {"template": "content-pipeline", "step": "review"},
        },
        "Judge · full\npass or fail, with reasons.",
    )
    after_draft = exits
    exits = wf.step(judge, x, 0, 2)
    wf.link(after_draft, judge.title)
    x += STEP_W
    wf.code(
        "Read Verdict",
        (x, 0),
        "// The draft and the judge's verdict on it.\n"
        + HELPERS_JS
        + """const draft = answerOf('Draft Content');
const review = answerOf('Judge Content');
return [{ json: { content: draft ? draft.output : null, review: review ? review.output : null },
  pairedItem: { item: 0 } }];
""",
    )
    wf.link(exits, "Read Verdict")
    wf.add(
        "Verdict Fail?",
        IF,
        (x + X, 0),
        {
            "conditions": conditions(condition("={{ ($json.review || {}).verdict || '' }}", STRING_EQ, "fail")),
            "options": {},
        },
    )
    wf.connect("Read Verdict", "Verdict Fail?")
    wf.around("## 3. Fail?\nA failed draft is revised once.", ["Read Verdict", "Verdict Fail?"], GRAY)
    x += 2 * X + 40
    verdict = read("Read Verdict")
    revise = Step(
        "revision",
        "Revise Content",
        "draft",
        {
            "input": {**brief, "draft": Expr(f"{verdict}.content")},
            "instructions": Expr(
                "'Revise the draft so that it fixes every problem a reviewer found:\\n- ' + "
                f"{verdict}.review.reasons.join('\\n- ')"
            ),
            "format": "json",
            "schema": schema,
            "tier": "mini",
            "max_tier": "mini",
            "metadata": {"template": "content-pipeline", "step": "revision"},
        },
        "Revise · mini\nOnce, with the judge's reasons.",
    )
    after_revision = wf.step(revise, x, -520, 4)
    wf.connect("Verdict Fail?", revise.title, 0)
    x += STEP_W
    # The content comes in as this step's input: the revision's answer, or (no revision) Read Verdict's draft.
    topic = Step(
        "topic",
        "Classify Topic",
        "classify",
        {
            "input": Expr(
                f"((content) => content ? content.title + '\\n\\n' + content.body : {INPUT}.brief)"
                f"(($json.body && $json.body.output) || {verdict}.content)"
            ),
            "labels": ["product_update", "how_to", "company_news", "promotion", "security"],
            "min_confidence": 0.6,
            "tier": "nano",
            "max_tier": "mini",
            "metadata": {"template": "content-pipeline", "step": "topic"},
        },
        "Topic · nano\nA tag for the final content.",
    )
    exits = wf.step(topic, x, 0, 5)
    wf.connect("Verdict Fail?", topic.title, 1)
    wf.link(after_revision, topic.title)
    x += STEP_W + 40
    wf.finish(
        exits,
        x,
        summary(
            "content-pipeline",
            f"""
const verdict = {verdict};
const revision = answerOf('Revise Content');
const content = revision ? revision.output : verdict.content;
const topic = answerOf('Classify Topic');
const result = {{
  title: content ? content.title : null,
  body: content ? content.body : null,
  revised: revision !== null,
  verdict: verdict.review ? verdict.review.verdict : null,
  score: verdict.review ? verdict.review.score : null,
  reasons: verdict.review ? verdict.review.reasons : [],
  topic: topic ? topic.output.label : null,
}};""",
        ),
    )
    return wf


TEMPLATES = {
    "support-triage": support_triage,
    "document-extraction": document_extraction,
    "pr-review": pr_review,
    "research-synthesis": research_synthesis,
    "content-pipeline": content_pipeline,
}


def build() -> dict[str, str]:
    """File name → file text for every template."""
    return {
        f"{slug}.json": json.dumps(make().document(), indent=2, ensure_ascii=False) + "\n"
        for slug, make in TEMPLATES.items()
    }


def main(argv: list[str] | None = None) -> int:
    """Write the templates next to this script, or with ``--check`` report the ones that differ."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed template is out of date")
    args = parser.parse_args(argv)
    stale = []
    for name, text in build().items():
        path = HERE / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print("out of date (run python templates/n8n/build.py): " + ", ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
