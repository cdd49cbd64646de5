#!/usr/bin/env python3
"""Generate the n8n workflow templates in this folder from one set of node builders.

Run ``python templates/n8n/build.py`` after changing anything here; ``--check`` exits 1 when a committed
file differs from what this script would write (the test suite asserts the same). Standard library only.

Every template has the same skeleton:

* two entry points: a Webhook (production; answered by Respond to Webhook) and a Manual Trigger followed
  by "Sample input" (so ``n8n execute --id`` can run it);
* "Config", a Set node holding ``service_url`` once; every HTTP node reads it as
  ``$('Config').item.json.service_url``;
* "Read input", a Code node that turns the webhook body (or the sample) into the run's state: the input,
  an empty list of ``steps`` and a per-execution ``nonce`` for idempotency keys;
* one block of nodes per service call (``Workflow.step``): a Code node building the request, the HTTP
  Request node, a Switch on the status code (2xx / 429 / anything else), an IF allowing a few 429 rounds,
  a Wait honouring ``Retry-After`` that loops back to the same HTTP node, the mini fallback (the same call
  with ``tier: mini, max_tier: mini``) and a Code node that records every call that ran
  (``{step, tier, model, cost_usd, status, ...}``) and applies the answer to the state;
* "Summary", a Code node with the result, every step and the total cost, then Respond to Webhook.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SERVICE_URL = "http://127.0.0.1:8080"
CREDENTIAL_TYPE = "httpBearerAuth"
CREDENTIAL = {"id": "TierwiseApiKey01", "name": "Tierwise API key"}
ID_NAMESPACE = uuid.UUID("6f1c3e2a-8d4b-4c1e-9a57-2b7e4c0e9a57")

#: 429 rounds a step waits out before it gives up and takes the mini fallback.
MAX_429_ROUNDS = 3
#: Longest single wait, in seconds. n8n keeps waits under 65 s in process; longer ones park the execution.
MAX_WAIT_S = 60
#: n8n's own Retry On Fail, for transport errors only (HTTP statuses never throw: neverError is on).
RETRY = {"retryOnFail": True, "maxTries": 3, "waitBetweenTries": 2000}
#: Single calls: the service ends every run by TIERWISE_RUN_TIMEOUT_S (120 s) with a 504, so wait a bit longer.
TIMEOUT_MS = 130_000
#: Batch calls run many items (TIERWISE_BATCH_CONCURRENCY at a time) and may take longer.
BATCH_TIMEOUT_MS = 600_000

HTTP = ("n8n-nodes-base.httpRequest", 4.2)
CODE = ("n8n-nodes-base.code", 2)
SET = ("n8n-nodes-base.set", 3.4)
SWITCH = ("n8n-nodes-base.switch", 3.2)
IF = ("n8n-nodes-base.if", 2.2)
WAIT = ("n8n-nodes-base.wait", 1.1)
WEBHOOK = ("n8n-nodes-base.webhook", 2)
RESPOND = ("n8n-nodes-base.respondToWebhook", 1.1)
MANUAL = ("n8n-nodes-base.manualTrigger", 1)

X = 240  # horizontal distance between columns
Y = 200  # vertical distance between rows


def js(value: Any, indent: int = 0) -> str:
    """A JSON value as a JavaScript literal for the Code node editor; lines after the first indented by ``indent``."""
    return json.dumps(value, indent=2, ensure_ascii=False).replace("\n", "\n" + " " * indent)


def condition(left: str, operator: dict[str, Any], right: Any = "") -> dict[str, Any]:
    """One filter condition (IF 2.2 / Switch 3.2, filter version 2)."""
    return {"leftValue": left, "rightValue": right, "operator": operator}


def conditions(*items: dict[str, Any], combinator: str = "and") -> dict[str, Any]:
    """A filter value with strict type validation."""
    return {
        "options": {"caseSensitive": True, "leftValue": "", "typeValidation": "strict", "version": 2},
        "conditions": list(items),
        "combinator": combinator,
    }


NUMBER_EQ = {"type": "number", "operation": "equals"}
NUMBER_GTE = {"type": "number", "operation": "gte"}
NUMBER_LT = {"type": "number", "operation": "lt"}
STRING_EQ = {"type": "string", "operation": "equals"}
IS_TRUE = {"type": "boolean", "operation": "true", "singleValue": True}


# -- the JavaScript shared by every step's result node --------------------------------------------------

RECORD_JS = """\
// How every call that reached the service is reported: {step, tier, model, cost_usd, status, ...}.
const isOk = (res) => !!res && res.statusCode >= 200 && res.statusCode < 300;
const record = (step, attempt, res, extra) => {
  const body = res && res.body && typeof res.body === 'object' ? res.body : {};
  const attempts = Array.isArray(body.attempts) ? body.attempts : [];
  const last = attempts.length ? attempts[attempts.length - 1] : {};
  const code = res && typeof res.statusCode === 'number' ? res.statusCode : null;
  const usage = body.usage && typeof body.usage.cost_usd === 'number' ? body.usage.cost_usd : null;
  return Object.assign({
    step,
    attempt,
    status: isOk(res) && body.output !== undefined ? 'ok' : code === 429 ? 'rate_limited' : 'failed',
    http_status: code,
    tier: body.tier || last.tier || null,
    model: body.model || last.model || null,
    // 429s are refused before any model call and cost nothing; a lost connection's cost is unknown.
    cost_usd: usage !== null ? usage : code === 429 ? 0 : null,
    run_id: body.run_id || null,
    escalated: body.escalated === true,
    error: isOk(res) && body.output !== undefined ? null
      : body.detail || (res && res.error && res.error.message) || (code === null ? 'no response' : 'HTTP ' + code),
  }, extra || {});
};
// Runs of a node in this execution (a step's HTTP node runs once more after every 429 wait).
const runsOf = (node) => {
  let n = 0;
  for (;;) {
    try { node.all(0, n); n += 1; } catch (error) { return n; }
  }
};
"""

SINGLE_COLLECT_JS = """\
const prep = $('{request}').first().json;
const {{ request, ...state }} = prep;
const primary = $('{http}').last().json;
const waits = $('{wait}').isExecuted ? runsOf($('{wait}')) : 0;
const records = [record({step}, 'primary', primary, {{ rate_limit_waits: waits }})];
let answer = isOk(primary) && primary.body.output !== undefined ? primary.body : null;
if (answer === null && $('{fallback}').isExecuted) {{
  const fallback = $('{fallback}').last().json;
  records.push(record({step}, 'mini_fallback', fallback, {{ rate_limit_waits: 0 }}));
  if (isOk(fallback) && fallback.body.output !== undefined) answer = fallback.body;
}}
state.steps = [...(state.steps || []), ...records];
"""

BATCH_COLLECT_JS = """\
const prep = $('{request}').first().json;
const {{ request, ...state }} = prep;
const count = request.items.length;
const primary = $('{http}').last().json;
const waits = $('{wait}').isExecuted ? runsOf($('{wait}')) : 0;
// A batch result is a success response or a problem object: give it the shape of a whole response.
const asResponse = (item) => ({{
  statusCode: item && item.output !== undefined ? 200 : (item && item.status) || null,
  body: item || {{}},
}});
const results = new Array(count).fill(null);
const records = [];
if (isOk(primary) && Array.isArray(primary.body.results)) {{
  primary.body.results.forEach((item, index) => {{
    results[index] = item;
    records.push(record({step}, 'primary', asResponse(item), {{ item: index, rate_limit_waits: waits }}));
  }});
}} else {{
  records.push(record({step}, 'primary', primary, {{ item: null, rate_limit_waits: waits }}));
}}
// The mini fallback was sent exactly the items that have no answer yet, in this order.
const missing = results
  .map((item, index) => (item && item.output !== undefined ? -1 : index))
  .filter((index) => index >= 0);
if (missing.length && $('{fallback}').isExecuted) {{
  const fallback = $('{fallback}').last().json;
  if (isOk(fallback) && Array.isArray(fallback.body.results)) {{
    fallback.body.results.forEach((item, position) => {{
      const index = missing[position];
      records.push(record({step}, 'mini_fallback', asResponse(item), {{ item: index, rate_limit_waits: 0 }}));
      if (item && item.output !== undefined) results[index] = item;
    }});
  }} else {{
    records.push(record({step}, 'mini_fallback', fallback, {{ item: null, rate_limit_waits: 0 }}));
  }}
}}
// answers[i]: the service's answer to request.items[i] (its output, tier, model, usage...), or null.
const answers = results.map((item) => (item && item.output !== undefined ? item : null));
state.steps = [...(state.steps || []), ...records];
"""

TOTAL_JS = """\
const steps = state.steps || [];
// Added in picodollars so the total is exact to the digits the service reports.
const picodollars = (calls) =>
  calls.reduce((sum, call) => sum + (typeof call.cost_usd === 'number' ? Math.round(call.cost_usd * 1e12) : 0), 0);
const pico = picodollars(steps);
const total_cost_usd = Number((pico / 1e12).toFixed(12));
"""


@dataclass
class Step:
    """One call to the service: what to send and what to do with the answer.

    ``request_js`` is the body of a JavaScript function of ``state`` (the run's state) returning the request
    (a batch step returns ``{items, defaults}``). ``apply_js`` runs with ``state`` and ``answer`` (the
    service's response body, or null when the primary call and the fallback both failed) or, for a batch,
    ``answers`` (one per request item, null where both failed) and updates ``state``.
    """

    key: str
    title: str
    node: str
    request_js: str
    apply_js: str
    batch: bool = False


class Workflow:
    """Nodes and connections of one template, with stable ids derived from the workflow id and node names."""

    def __init__(self, slug: str, workflow_id: str, name: str, description: str) -> None:
        assert len(workflow_id) <= 21, workflow_id
        self.slug = slug
        self.workflow_id = workflow_id
        self.name = name
        self.description = description
        self.nodes: list[dict[str, Any]] = []
        self.connections: dict[str, dict[str, list[list[dict[str, Any]]]]] = {}

    def uuid(self, label: str) -> str:
        """A stable uuid for ``label`` inside this workflow."""
        return str(uuid.uuid5(ID_NAMESPACE, f"{self.workflow_id}/{label}"))

    def add(
        self, name: str, kind: tuple[str, float], position: tuple[int, int], parameters: dict[str, Any], **extra: Any
    ) -> str:
        """Add a node and return its name."""
        assert all(node["name"] != name for node in self.nodes), name
        node: dict[str, Any] = {
            "id": self.uuid(f"node/{name}"),
            "name": name,
            "type": kind[0],
            "typeVersion": kind[1],
            "position": [position[0], position[1]],
            "parameters": parameters,
        }
        node.update(extra)
        self.nodes.append(node)
        return name

    def connect(self, source: str, target: str, output: int = 0) -> None:
        """Connect ``source``'s output ``output`` to ``target``'s first input."""
        outputs = self.connections.setdefault(source, {}).setdefault("main", [])
        while len(outputs) <= output:
            outputs.append([])
        outputs[output].append({"node": target, "type": "main", "index": 0})

    # -- node builders ----------------------------------------------------------------------------------

    def code(self, name: str, position: tuple[int, int], source: str) -> str:
        """A JavaScript Code node run once for all items."""
        parameters = {"mode": "runOnceForAllItems", "language": "javaScript", "jsCode": source}
        return self.add(name, CODE, position, parameters)

    def http(self, name: str, position: tuple[int, int], *, path: str, body: str, key: str, timeout_ms: int) -> str:
        """An HTTP Request node calling the service: credential, timeout, full response, never error."""
        parameters = {
            "method": "POST",
            "url": "={{ $('Config').item.json.service_url }}" + path,
            "authentication": "genericCredentialType",
            "genericAuthType": CREDENTIAL_TYPE,
            "sendHeaders": True,
            "specifyHeaders": "keypair",
            "headerParameters": {"parameters": [{"name": "Idempotency-Key", "value": key}]},
            "sendBody": True,
            "contentType": "json",
            "specifyBody": "json",
            "jsonBody": body,
            "options": {
                "timeout": timeout_ms,
                "response": {"response": {"fullResponse": True, "neverError": True, "responseFormat": "json"}},
            },
        }
        return self.add(
            name,
            HTTP,
            position,
            parameters,
            credentials={CREDENTIAL_TYPE: dict(CREDENTIAL)},
            onError="continueRegularOutput",
            **RETRY,
        )

    def chain(self, source: str, steps: list[Step], x: int) -> tuple[str, int]:
        """Place ``steps`` one after another on the main row after ``source``; return the last node and x."""
        last = source
        for step in steps:
            first, end, x = self.step(step, x, 0)
            self.connect(last, first)
            last = end
        return last, x

    def step(self, step: Step, x: int, y: int) -> tuple[str, str, int]:
        """Add one service call; return (first node, last node, next free column x)."""
        request = f"{step.title}: request"
        http = step.title
        status = f"{step.title}: status"
        retry = f"{step.title}: retry?"
        wait = f"{step.title}: wait"
        fallback = f"{step.title}: mini fallback"
        check = f"{step.title}: all items ok?"
        result = f"{step.title}: result"
        path = f"/v1/nodes/{step.node}" + ("/batch" if step.batch else "")
        timeout = BATCH_TIMEOUT_MS if step.batch else TIMEOUT_MS
        this = f"$('{request}').item.json"

        self.code(
            request,
            (x, y),
            f"// Build the {step.node} request of the '{step.key}' step from the run's state.\n"
            "const state = $input.first().json;\n"
            f"const request = ((state) => {{\n{_indent(step.request_js.strip())}\n}})(state);\n"
            "return [{ json: { ...state, request }, pairedItem: { item: 0 } }];\n",
        )
        key = "={{ $execution.id }}-{{ $itemIndex }}-" + step.key + "-{{ " + this + ".nonce }}"
        self.http(
            http, (x + X, y), path=path, body=f"={{{{ JSON.stringify({this}.request) }}}}", key=key, timeout_ms=timeout
        )
        self.add(
            status,
            SWITCH,
            (x + 2 * X, y),
            {
                "mode": "rules",
                "rules": {
                    "values": [
                        {
                            "conditions": conditions(
                                condition("={{ Number($json.statusCode || 0) }}", NUMBER_GTE, 200),
                                condition("={{ Number($json.statusCode || 0) }}", NUMBER_LT, 300),
                            ),
                            "renameOutput": True,
                            "outputKey": "2xx",
                        },
                        {
                            "conditions": conditions(
                                condition("={{ Number($json.statusCode || 0) }}", NUMBER_EQ, 429),
                            ),
                            "renameOutput": True,
                            "outputKey": "429",
                        },
                    ]
                },
                "options": {"fallbackOutput": "extra", "renameFallbackOutput": "other"},
            },
        )
        self.add(
            retry,
            IF,
            (x + 2 * X, y + Y),
            {
                "conditions": conditions(condition("={{ $runIndex }}", NUMBER_LT, MAX_429_ROUNDS)),
                "options": {},
            },
        )
        self.add(
            wait,
            WAIT,
            (x + X, y + Y),
            {
                "resume": "timeInterval",
                # Retry-After from the service, at least 2^round seconds, at most MAX_WAIT_S.
                "amount": (
                    f"={{{{ Math.min({MAX_WAIT_S}, Math.max(Number(($json.headers || {{}})['retry-after']) || 1,"
                    " Math.pow(2, $runIndex))) }}"
                ),
                "unit": "seconds",
            },
            webhookId=self.uuid(f"webhook/{wait}"),
        )
        if step.batch:
            fallback_body = (
                "={{ JSON.stringify({ items: "
                + this
                + ".request.items.filter((item, index) => !((($json.body || {}).results || [])[index] || {}).output), "
                "defaults: Object.assign({}, " + this + ".request.defaults, { tier: 'mini', max_tier: 'mini' }) }) }}"
            )
        else:
            fallback_body = (
                "={{ JSON.stringify(Object.assign({}, " + this + ".request, { tier: 'mini', max_tier: 'mini' })) }}"
            )
        fallback_key = "={{ $execution.id }}-{{ $itemIndex }}-" + step.key + "-mini-fallback-{{ " + this + ".nonce }}"
        self.http(fallback, (x + 3 * X, y + 2 * Y), path=path, body=fallback_body, key=fallback_key, timeout_ms=timeout)
        names = {"request": request, "http": http, "wait": wait, "fallback": fallback, "step": f"'{step.key}'"}
        collect = (BATCH_COLLECT_JS if step.batch else SINGLE_COLLECT_JS).format(**names)
        result_x = x + (4 if step.batch else 3) * X
        self.code(
            result,
            (result_x, y),
            f"// Record every call of the '{step.key}' step and apply its answer to the run's state.\n"
            + RECORD_JS
            + collect
            + step.apply_js.strip()
            + "\nreturn [{ json: state, pairedItem: { item: 0 } }];\n",
        )

        self.connect(request, http)
        self.connect(http, status)
        if step.batch:
            self.add(
                check,
                IF,
                (x + 3 * X, y),
                {
                    "conditions": conditions(
                        condition("={{ Number((($json.body || {}).summary || {}).failed) }}", NUMBER_EQ, 0)
                    ),
                    "options": {},
                },
            )
            self.connect(status, check, 0)
            self.connect(check, result, 0)
            self.connect(check, fallback, 1)
        else:
            self.connect(status, result, 0)
        self.connect(status, retry, 1)
        self.connect(status, fallback, 2)
        self.connect(retry, wait, 0)
        self.connect(retry, fallback, 1)
        self.connect(wait, http)
        self.connect(fallback, result)
        return request, result, result_x + X

    def entry(self, sample: dict[str, Any], read_input_js: str) -> tuple[str, int]:
        """Webhook and Manual Trigger → Config → Read input; return (Read input, next column x)."""
        self.add(
            "Webhook",
            WEBHOOK,
            (0, -Y // 2),
            {
                "httpMethod": "POST",
                "path": f"tierwise-{self.slug}",
                "responseMode": "responseNode",
                "options": {},
            },
            webhookId=self.uuid("webhook/Webhook"),
        )
        self.add("Manual Trigger", MANUAL, (0, Y // 2), {})
        self.add(
            "Sample input",
            SET,
            (X, Y // 2),
            {"mode": "raw", "jsonOutput": json.dumps({"body": sample}, indent=2, ensure_ascii=False), "options": {}},
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
            "// The webhook's JSON body (or the sample above) becomes the run's state.\n"
            "const item = $input.first().json;\n"
            "const body = item.body && typeof item.body === 'object' ? item.body : {};\n"
            "// Part of every Idempotency-Key: n8n's retries of a node reuse it, another execution never does.\n"
            "const nonce = Math.random().toString(36).slice(2, 10);\n"
            + read_input_js.strip()
            + "\nreturn [{ json: { ...state, steps: [], nonce }, pairedItem: { item: 0 } }];\n",
        )
        self.connect("Webhook", "Config")
        self.connect("Manual Trigger", "Sample input")
        self.connect("Sample input", "Config")
        self.connect("Config", "Read input")
        return "Read input", 4 * X

    def finish(self, source: str | list[str], x: int, summary_js: str, respond_with: str = "firstIncomingItem") -> None:
        """Summary (Code) → Respond to Webhook."""
        self.code(
            "Summary",
            (x, 0),
            "// The result, every model call that ran ({step, tier, model, cost_usd, status, ...}), the total cost.\n"
            "const state = $input.first().json;\n" + TOTAL_JS + summary_js.strip() + "\n",
        )
        self.add(
            "Respond to Webhook",
            RESPOND,
            (x + X, 0),
            {"respondWith": respond_with, "options": {"responseCode": 200}},
        )
        for name in [source] if isinstance(source, str) else source:
            self.connect(name, "Summary")
        self.connect("Summary", "Respond to Webhook")

    def document(self) -> dict[str, Any]:
        """The workflow as n8n imports it."""
        return {
            "id": self.workflow_id,
            "name": self.name,
            "description": self.description,
            "nodes": self.nodes,
            "connections": self.connections,
            "settings": {"executionOrder": "v1"},
            "pinData": {},
            "active": False,
            "tags": [],
        }


def _indent(source: str, prefix: str = "  ") -> str:
    return "\n".join(prefix + line if line else line for line in source.splitlines())


def summary(template: str, result_js: str) -> str:
    """Summary code for a template with one result object."""
    return (
        result_js.strip()
        + f"\nreturn [{{ json: {{ template: '{template}', result, steps, total_cost_usd }},"
        + " pairedItem: { item: 0 } }];"
    )


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
const state = {
  ticket: {
    ticket_id: body.ticket_id || null,
    customer: body.customer || null,
    subject: String(body.subject || ''),
    message: String(body.message || ''),
  },
};""",
    )
    ticket_text = "[state.ticket.subject, state.ticket.message].filter(Boolean).join('\\n\\n')"
    intent = Step(
        "intent",
        "Classify Intent",
        "classify",
        f"""
return {{
  input: {ticket_text},
  labels: {js(INTENT_LABELS, 2)},
  min_confidence: 0.6,
  tier: 'nano',
  max_tier: 'mini',
  metadata: {{ template: 'support-triage', step: 'intent', ticket_id: state.ticket.ticket_id }},
}};""",
        "state.intent = answer ? answer.output : { label: 'unknown', confidence: null };",
    )
    urgency = Step(
        "urgency",
        "Classify Urgency",
        "classify",
        f"""
return {{
  input: {ticket_text},
  labels: {js(URGENCY_LABELS, 2)},
  min_confidence: 0.6,
  tier: 'nano',
  max_tier: 'mini',
  metadata: {{ template: 'support-triage', step: 'urgency', ticket_id: state.ticket.ticket_id }},
}};""",
        "state.urgency = answer ? answer.output : { label: 'unknown', confidence: null };",
    )
    first, last, x = wf.step(intent, x, 0)
    wf.connect(start, first)
    first, after_urgency, x = wf.step(urgency, x, 0)
    wf.connect(last, first)

    wf.add(
        "Route Ticket",
        SWITCH,
        (x, 0),
        {
            "mode": "rules",
            "rules": {
                "values": [
                    {
                        "conditions": conditions(condition("={{ $json.intent.label }}", STRING_EQ, "spam")),
                        "renameOutput": True,
                        "outputKey": "spam",
                    },
                    {
                        "conditions": conditions(
                            condition("={{ $json.intent.label }}", STRING_EQ, "complaint"),
                            condition("={{ $json.intent.label }}", STRING_EQ, "unknown"),
                            condition("={{ $json.urgency.label }}", STRING_EQ, "urgent"),
                            combinator="or",
                        ),
                        "renameOutput": True,
                        "outputKey": "escalate",
                    },
                ]
            },
            "options": {"fallbackOutput": "extra", "renameFallbackOutput": "reply"},
        },
    )
    wf.connect(after_urgency, "Route Ticket")
    x += X

    wf.code(
        "Close Spam",
        (x, -2 * Y),
        "// Spam is closed without another model call.\n"
        "const state = $input.first().json;\n"
        "state.result = { route: 'spam', action: 'close' };\n"
        "return [{ json: state, pairedItem: { item: 0 } }];\n",
    )
    wf.connect("Route Ticket", "Close Spam", 0)

    judge = Step(
        "escalation",
        "Judge Escalation",
        "judge",
        """
return {
  input: { subject: state.ticket.subject, message: state.ticket.message },
  candidate: {
    intent: state.intent.label,
    urgency: state.urgency.label,
    proposal: 'Hand this ticket to a human support lead now instead of answering it automatically.',
  },
  criteria: [
    'The customer is upset, or reports a problem that blocks their work, loses money or loses data.',
    'An automated reply would not be enough: a human should answer within the hour.',
  ],
  tier: 'full',
  max_tier: 'full',
  metadata: { template: 'support-triage', step: 'escalation', ticket_id: state.ticket.ticket_id },
};""",
        """
state.result = answer
  ? { route: 'escalate', action: answer.output.verdict === 'pass' ? 'escalate_to_human' : 'queue_for_agent',
      verdict: answer.output.verdict, score: answer.output.score, reasons: answer.output.reasons }
  : { route: 'escalate', action: 'escalate_to_human', verdict: null, score: null,
      reasons: ['the judge could not be reached; escalated to be safe'] };""",
    )
    first, after_judge, _ = wf.step(judge, x, 0)
    wf.connect("Route Ticket", first, 1)

    draft = Step(
        "reply",
        "Draft Reply",
        "draft",
        """
return {
  input: { subject: state.ticket.subject, message: state.ticket.message, intent: state.intent.label,
           urgency: state.urgency.label },
  instructions: 'Write the support reply to this ticket: friendly, specific to what the customer wrote, at most '
    + 'five sentences, signed "The Support Team". Do not promise refunds or dates; say what happens next.',
  format: 'text',
  max_words: 150,
  tier: 'mini',
  max_tier: 'mini',
  metadata: { template: 'support-triage', step: 'reply', ticket_id: state.ticket.ticket_id },
};""",
        """
state.result = answer
  ? { route: 'reply', action: 'send_reply', reply: answer.output.text }
  : { route: 'reply', action: 'escalate_to_human', reply: null };""",
    )
    first, after_draft, x = wf.step(draft, x, 3 * Y)
    wf.connect("Route Ticket", first, 2)

    wf.finish(
        ["Close Spam", after_judge, after_draft],
        x,
        summary(
            "support-triage",
            """
const result = Object.assign({ ticket_id: state.ticket.ticket_id, intent: state.intent, urgency: state.urgency },
  state.result);""",
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
const state = {
  documents: documents.map((doc, index) => ({
    id: String(doc.id || 'doc-' + (index + 1)),
    text: String(doc.text || ''),
  })),
};""",
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
        f"""
// The fields to extract: edit this JSON Schema (object root; see docs/protocol.md for what is accepted).
const schema = {js(schema)};
return {{
  items: state.documents.map((doc) => ({{ input: doc.text, metadata: {{ document_id: doc.id }} }})),
  defaults: {{
    schema,
    instructions: 'Copy values exactly as written in the document; amounts as plain numbers.',
    tier: 'nano',
    max_tier: 'mini',
    metadata: {{ template: 'document-extraction', step: 'extract' }},
  }},
}};""",
        "state.answers = answers;",
        batch=True,
    )
    first, last, x = wf.step(extract, x, 0)
    wf.connect(start, first)
    wf.finish(
        last,
        x,
        """
// One output item per document: its fields, tier, model, cost and every call made for it.
return state.documents.map((doc, index) => {
  const answer = state.answers[index];
  const calls = steps.filter((step) => step.item === index || step.item === null);
  const pico = picodollars(calls);
  return {
    json: {
      template: 'document-extraction',
      document_id: doc.id,
      status: answer ? 'ok' : 'failed',
      fields: answer ? answer.output : null,
      tier: answer ? answer.tier : null,
      model: answer ? answer.model : null,
      cost_usd: Number((pico / 1e12).toFixed(12)),
      steps: calls,
      total_cost_usd,
    },
    pairedItem: { item: 0 },
  };
});""",
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
const state = {
  pr: {
    repository: body.repository || null,
    pr_number: body.pr_number || null,
    title: String(body.title || ''),
    diff: String(body.diff || ''),
  },
  // One review comment is drafted per risk area.
  areas: ['security', 'performance', 'correctness'],
};""",
    )
    drafts = Step(
        "review",
        "Draft Reviews",
        "draft",
        """
// One batch item per risk area.
return {
  items: state.areas.map((area) => ({
    input: { title: state.pr.title, diff: state.pr.diff },
    instructions: 'Review this pull request for ' + area + ' risks only. Write one review comment: name the '
      + 'line or construct, explain the risk, and suggest a fix. If there is no ' + area + ' risk, say so.',
    metadata: { template: 'pr-review', step: 'review', area },
  })),
  defaults: { format: 'text', max_words: 120, tier: 'mini', max_tier: 'mini' },
};""",
        """
state.comments = state.areas.map((area, index) => ({
  area,
  comment: answers[index] ? answers[index].output.text : null,
}));""",
        batch=True,
    )
    severity = Step(
        "severity",
        "Classify Severity",
        "classify",
        """
const drafted = state.comments.filter((entry) => entry.comment);
return {
  items: (drafted.length ? drafted : state.comments).map((entry) => ({
    input: entry.area + ' review comment: ' + (entry.comment || '(no comment could be drafted)'),
    metadata: { template: 'pr-review', step: 'severity', area: entry.area },
  })),
  defaults: {
    labels: [
      { name: 'blocker', description: 'must be fixed before merging' },
      { name: 'major', description: 'should be fixed in this pull request' },
      { name: 'minor', description: 'worth fixing, not urgent' },
      { name: 'nit', description: 'style or preference' },
    ],
    min_confidence: 0.6,
    tier: 'nano',
    max_tier: 'mini',
  },
};""",
        """
const drafted = state.comments.filter((entry) => entry.comment);
const classified = drafted.length ? drafted : state.comments;
classified.forEach((entry, index) => {
  entry.severity = answers[index] ? answers[index].output.label : null;
  entry.confidence = answers[index] ? answers[index].output.confidence : null;
});""",
        batch=True,
    )
    judge = Step(
        "verdict",
        "Judge Review",
        "judge",
        """
return {
  input: { title: state.pr.title, diff: state.pr.diff },
  candidate: { comments: state.comments },
  criteria: [
    'Every comment points at a concrete line or construct in the diff.',
    'Each severity matches the risk the comment describes.',
    'No serious security, performance or correctness problem in the diff is missed.',
  ],
  tier: 'full',
  max_tier: 'full',
  metadata: { template: 'pr-review', step: 'verdict', pr_number: state.pr.pr_number },
};""",
        "state.verdict = answer ? answer.output : null;",
    )
    last, x = wf.chain(start, [drafts, severity, judge], x)
    wf.finish(
        last,
        x,
        summary(
            "pr-review",
            """
const blocking = state.comments.some((entry) => entry.severity === 'blocker');
const result = {
  repository: state.pr.repository,
  pr_number: state.pr.pr_number,
  comments: state.comments,
  recommendation: blocking ? 'request_changes' : 'comment',
  verdict: state.verdict ? state.verdict.verdict : null,
  score: state.verdict ? state.verdict.score : null,
  reasons: state.verdict ? state.verdict.reasons : [],
};""",
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
const state = {
  question: String(body.question || ''),
  sources: sources.map((source, index) => ({
    id: String(source.id || 'S' + (index + 1)),
    title: String(source.title || ''),
    text: String(source.text || ''),
  })),
  // How many of the best-ranked sources the synthesis uses.
  keep: Number(body.keep) || 3,
};""",
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
        f"""
const schema = {js(schema)};
return {{
  items: state.sources.map((source) => ({{
    input: {{ question: state.question, source: source.title + ': ' + source.text }},
    metadata: {{ source_id: source.id }},
  }})),
  defaults: {{
    schema,
    instructions: 'Relevance: 1 when the source bears directly on the question, 0 when it has nothing to do with it.',
    tier: 'nano',
    max_tier: 'mini',
    metadata: {{ template: 'research-synthesis', step: 'sources' }},
  }},
}};""",
        """
// Rank by relevance; keep the best few for the synthesis.
state.ranked = state.sources
  .map((source, index) => Object.assign({ id: source.id, title: source.title, text: source.text },
    answers[index] ? answers[index].output : { claim: null, stance: null, relevance: null }))
  .filter((source) => source.relevance !== null)
  .sort((a, b) => b.relevance - a.relevance)
  .slice(0, state.keep);""",
        batch=True,
    )
    draft = Step(
        "synthesis",
        "Draft Synthesis",
        "draft",
        """
return {
  input: { question: state.question, sources: state.ranked },
  instructions: 'Answer the question from these sources only, in one or two short paragraphs. Cite every claim '
    + 'with its source id in brackets, e.g. [S1], and say where the sources disagree.',
  format: 'text',
  max_words: 200,
  tier: 'mini',
  max_tier: 'mini',
  metadata: { template: 'research-synthesis', step: 'synthesis' },
};""",
        "state.synthesis = answer ? answer.output.text : null;",
    )
    judge = Step(
        "verdict",
        "Judge Synthesis",
        "judge",
        """
return {
  input: { question: state.question, sources: state.ranked },
  candidate: state.synthesis || '(no synthesis could be drafted)',
  criteria: [
    'Every claim is supported by a cited source.',
    'It answers the question directly.',
    'It says where the sources disagree.',
  ],
  tier: 'full',
  max_tier: 'full',
  metadata: { template: 'research-synthesis', step: 'verdict' },
};""",
        "state.verdict = answer ? answer.output : null;",
    )
    last, x = wf.chain(start, [sources, draft, judge], x)
    wf.finish(
        last,
        x,
        summary(
            "research-synthesis",
            """
const result = {
  question: state.question,
  sources: state.ranked.map((source) => ({ id: source.id, title: source.title, claim: source.claim,
    stance: source.stance, relevance: source.relevance })),
  synthesis: state.synthesis,
  verdict: state.verdict ? state.verdict.verdict : null,
  score: state.verdict ? state.verdict.score : null,
  reasons: state.verdict ? state.verdict.reasons : [],
};""",
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
const state = {
  brief: String(body.brief || ''),
  audience: String(body.audience || 'customers'),
  tone: String(body.tone || 'friendly'),
};""",
    )
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 90},
            "body": {"type": "string"},
        },
        "required": ["title", "body"],
    }
    criteria = [
        "The title is specific and under 90 characters.",
        "The body explains what changed and why it matters to the audience.",
        "The tone matches the brief and there are no unsupported claims.",
    ]
    draft = Step(
        "draft",
        "Draft Content",
        "draft",
        f"""
return {{
  input: {{ brief: state.brief, audience: state.audience, tone: state.tone }},
  instructions: 'Write the announcement: a title and a body of two or three short paragraphs.',
  format: 'json',
  schema: {js(schema, 2)},
  tier: 'mini',
  max_tier: 'mini',
  metadata: {{ template: 'content-pipeline', step: 'draft' }},
}};""",
        "state.content = answer ? answer.output : null;\nstate.revised = false;",
    )
    judge = Step(
        "review",
        "Judge Content",
        "judge",
        f"""
return {{
  input: {{ brief: state.brief, audience: state.audience, tone: state.tone }},
  candidate: state.content || '(no draft could be written)',
  criteria: {js(criteria, 2)},
  tier: 'full',
  max_tier: 'full',
  metadata: {{ template: 'content-pipeline', step: 'review' }},
}};""",
        "state.review = answer ? answer.output : null;",
    )
    revise = Step(
        "revision",
        "Revise Content",
        "draft",
        f"""
return {{
  input: {{ brief: state.brief, audience: state.audience, tone: state.tone, draft: state.content }},
  instructions: 'Revise the draft so that it fixes every problem a reviewer found:\\n- '
    + state.review.reasons.join('\\n- '),
  format: 'json',
  schema: {js(schema, 2)},
  tier: 'mini',
  max_tier: 'mini',
  metadata: {{ template: 'content-pipeline', step: 'revision' }},
}};""",
        "if (answer) {\n  state.content = answer.output;\n  state.revised = true;\n}",
    )
    topic = Step(
        "topic",
        "Classify Topic",
        "classify",
        """
return {
  input: state.content ? state.content.title + '\\n\\n' + state.content.body : state.brief,
  labels: ['product_update', 'how_to', 'company_news', 'promotion', 'security'],
  min_confidence: 0.6,
  tier: 'nano',
  max_tier: 'mini',
  metadata: { template: 'content-pipeline', step: 'topic' },
};""",
        "state.topic = answer ? answer.output : null;",
    )
    first, last, x = wf.step(draft, x, 0)
    wf.connect(start, first)
    first, after_judge, x = wf.step(judge, x, 0)
    wf.connect(last, first)
    wf.add(
        "Verdict Fail?",
        IF,
        (x, 0),
        {
            "conditions": conditions(condition("={{ ($json.review || {}).verdict || '' }}", STRING_EQ, "fail")),
            "options": {},
        },
    )
    wf.connect(after_judge, "Verdict Fail?")
    x += X
    first, after_revision, _ = wf.step(revise, x, -3 * Y)
    wf.connect("Verdict Fail?", first, 0)
    x += 4 * X
    first, last, x = wf.step(topic, x, 0)
    wf.connect("Verdict Fail?", first, 1)
    wf.connect(after_revision, first)
    wf.finish(
        last,
        x,
        summary(
            "content-pipeline",
            """
const result = {
  title: state.content ? state.content.title : null,
  body: state.content ? state.content.body : null,
  revised: state.revised,
  verdict: state.review ? state.review.verdict : null,
  score: state.review ? state.review.score : null,
  reasons: state.review ? state.review.reasons : [],
  topic: state.topic ? state.topic.label : null,
};""",
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
