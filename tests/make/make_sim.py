"""A small Make scenario runner for the tests: runs our blueprints' modules against real HTTP endpoints.

It executes the subset of Make the templates use, the way Make documents it:

* ``gateway:CustomWebHook`` outputs the posted JSON; ``json:TransformToJSON`` outputs ``{"json": <text>}``;
* ``http:ActionSendData`` v3 sends ``mapper.data`` as the raw body and outputs ``{data, statusCode, headers}``
  (``data`` parsed when ``parseResponse`` is on). With ``handleErrors`` a non-2xx/3xx answer is a module error
  whose ``message`` carries the status code and the body (how Make words it is not documented: the templates
  only test that the message contains ``429``);
* ``builtin:BasicRouter`` runs every route in order; a module's ``filter`` (OR of AND conditions) must pass
  before it runs, otherwise its route stops;
* a failing module with ``onerror`` runs that route with ``{{N.error}}`` set; ``builtin:Resume`` replaces the
  module's output with its mapper and the flow goes on, ``builtin:Break`` is recorded (an incomplete
  execution Make retries later) and ``builtin:Ignore`` stops the bundle;
* ``gateway:WebhookRespond`` records the answer to the webhook's caller.

Mappings are limited to what the templates use: ``{{`N`}}`` (a module's whole bundle) and ``{{N.path}}`` with
``.key``, ``.`key```` and 1-based ``[i]``. Anything else raises ``Unsupported``, so a template that grows a
mapping this runner cannot evaluate fails loudly instead of being skipped.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

BLOCK = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
WHOLE_BUNDLE = re.compile(r"^`(\d+)`$")
PATH = re.compile(r"^(\d+)((?:\.(?:`[^`]+`|[A-Za-z_][\w-]*)|\[\d+\])*)$")
STEP = re.compile(r"\.`([^`]+)`|\.([A-Za-z_][\w-]*)|\[(\d+)\]")


class Unsupported(Exception):
    """The blueprint uses something this runner does not implement."""


class ModuleError(Exception):
    """A module failed the way Make reports it: an error type and a message."""

    def __init__(self, module_id: int, kind: str, message: str) -> None:
        super().__init__(f"module {module_id}: {kind}: {message}")
        self.module_id = module_id
        self.kind = kind
        self.message = message


@dataclass
class Request:
    """One HTTP request an HTTP module sent."""

    module_id: int
    method: str
    url: str
    headers: dict[str, str]
    body: str


@dataclass
class Reply:
    """What the other side answered."""

    status: int
    headers: dict[str, str]
    body: str


@dataclass
class Answer:
    """One webhook response (``gateway:WebhookRespond``)."""

    module_id: int
    status: int
    headers: dict[str, str]
    body: Any


@dataclass
class Outcome:
    """Everything one run did."""

    exchanges: list[tuple[Request, Reply]] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    breaks: list[int] = field(default_factory=list)
    ran: list[int] = field(default_factory=list)
    outputs: dict[int, Any] = field(default_factory=dict)
    error: ModuleError | None = None

    def sent_by(self, module_id: int) -> list[tuple[Request, Reply]]:
        """The exchanges of one HTTP module."""
        return [(request, reply) for request, reply in self.exchanges if request.module_id == module_id]


Transport = Callable[[Request], Reply]

RESUME, STOP = "resume", "stop"


def lookup(bundles: Mapping[int, Any], expression: str) -> Any:
    """Evaluate one supported IML expression against the module outputs."""
    expression = expression.strip()
    whole = WHOLE_BUNDLE.match(expression)
    if whole:
        return bundles.get(int(whole.group(1)))
    match = PATH.match(expression)
    if not match:
        raise Unsupported(f"mapping {{{{{expression}}}}} is not a plain module reference")
    value: Any = bundles.get(int(match.group(1)))
    for quoted, plain, index in STEP.findall(match.group(2)):
        if index:
            position = int(index) - 1
            value = value[position] if isinstance(value, list) and 0 <= position < len(value) else None
        else:
            key = quoted or plain
            value = value.get(key) if isinstance(value, Mapping) else None
    return value


def text_of(value: Any) -> str:
    """How a mapped value reads when it is placed inside text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise Unsupported(f"a collection or array placed inside text: {value!r}")


def resolve(value: Any, bundles: Mapping[int, Any]) -> Any:
    """Fill in a mapper value: a string that is one mapping gives the mapped value itself."""
    if isinstance(value, str):
        blocks = BLOCK.findall(value)
        if not blocks:
            return value
        if len(blocks) == 1 and value.strip() == "{{" + blocks[0] + "}}":
            return lookup(bundles, blocks[0])
        return BLOCK.sub(lambda match: text_of(lookup(bundles, match.group(1))), value)
    if isinstance(value, Mapping):
        return {key: resolve(item, bundles) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, bundles) for item in value]
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def condition_holds(condition: Mapping[str, Any], bundles: Mapping[int, Any]) -> bool:
    """Evaluate one ``{a, o, b}`` filter condition."""
    operator = condition["o"]
    a = resolve(condition.get("a"), bundles)
    b = resolve(condition.get("b"), bundles)
    if operator == "exist":
        return a is not None and a != ""
    if operator == "notexist":
        return a is None or a == ""
    kind, _, rest = operator.partition(":")
    if kind == "text":
        name, _, ci = rest.partition(":")
        left, right = text_of(a), text_of(b)
        if ci:
            left, right = left.lower(), right.lower()
        tests = {
            "equal": left == right,
            "notequal": left != right,
            "contain": right in left,
            "notcontain": right not in left,
        }
        if name in tests:
            return tests[name]
    if kind == "number":
        left_number, right_number = _number(a), _number(b)
        if left_number is None or right_number is None:
            return rest == "notequal"
        tests = {
            "equal": left_number == right_number,
            "notequal": left_number != right_number,
            "greater": left_number > right_number,
            "less": left_number < right_number,
            "greaterorequal": left_number >= right_number,
            "lessorequal": left_number <= right_number,
        }
        if rest in tests:
            return tests[rest]
    raise Unsupported(f"filter operator {operator}")


def filter_passes(condition_filter: Mapping[str, Any] | None, bundles: Mapping[int, Any]) -> bool:
    """Whether a module's filter lets the bundle through (OR of AND groups; no filter passes)."""
    if not condition_filter:
        return True
    groups = condition_filter.get("conditions") or []
    if not groups:
        return True
    return any(all(condition_holds(condition, bundles) for condition in group) for group in groups)


class Runner:
    """Runs one blueprint; ``transport`` answers every HTTP request its modules send.

    With ``all_routes`` every filter passes, so every route of every router runs: the way to reach every
    module of a template in one run.
    """

    def __init__(self, blueprint: Mapping[str, Any], transport: Transport, *, all_routes: bool = False) -> None:
        self.blueprint = blueprint
        self.transport = transport
        self.all_routes = all_routes

    def run(self, payload: Any) -> Outcome:
        """Start the scenario with ``payload`` posted to its webhook."""
        outcome = Outcome()
        bundles: dict[int, Any] = {}
        flow = self.blueprint["flow"]
        if flow[0]["module"] != "gateway:CustomWebHook":
            raise Unsupported("the scenario does not start with a custom webhook")
        bundles[flow[0]["id"]] = outcome.outputs[flow[0]["id"]] = copy.deepcopy(payload)
        outcome.ran.append(flow[0]["id"])
        try:
            self.run_flow(flow[1:], bundles, outcome)
        except ModuleError as error:
            outcome.error = error
        return outcome

    def run_flow(self, flow: list[Mapping[str, Any]], bundles: dict[int, Any], outcome: Outcome) -> str | None:
        """Run modules in order; returns the directive that ended the flow, if any."""
        for module in flow:
            if not self.all_routes and not filter_passes(module.get("filter"), bundles):
                return STOP
            name = module["module"]
            outcome.ran.append(module["id"])
            if name == "builtin:BasicRouter":
                signals = [self.run_flow(route["flow"], dict(bundles), outcome) for route in module["routes"]]
                return RESUME if RESUME in signals else None
            if name == "builtin:Resume":
                return RESUME
            if name == "builtin:Break":
                outcome.breaks.append(module["id"])
                return STOP
            if name in ("builtin:Ignore", "builtin:Commit", "builtin:Rollback"):
                return STOP
            try:
                bundles[module["id"]] = outcome.outputs[module["id"]] = self.execute(module, bundles, outcome)
            except ModuleError as error:
                if not module.get("onerror"):
                    raise
                bundles[module["id"]] = {"error": {"type": error.kind, "message": error.message}}
                resumed = self.handle_error(module, bundles, outcome)
                if resumed is None:
                    return STOP
                bundles[module["id"]] = outcome.outputs[module["id"]] = resumed
        return None

    def handle_error(
        self, module: Mapping[str, Any], bundles: dict[int, Any], outcome: Outcome
    ) -> dict[str, Any] | None:
        """Run a module's error route; returns the substitute output when it ends in Resume."""
        scope = dict(bundles)
        resume: list[dict[str, Any]] = []

        def capture(flow: list[Mapping[str, Any]]) -> None:
            for step in flow:
                if not filter_passes(step.get("filter"), scope):
                    return
                if step["module"] == "builtin:Resume":
                    outcome.ran.append(step["id"])
                    resume.append(resolve(step.get("mapper") or {}, scope))
                    return
                if step["module"] == "builtin:BasicRouter":
                    outcome.ran.append(step["id"])
                    for route in step["routes"]:
                        capture(route["flow"])
                    return
                signal = self.run_flow([step], scope, outcome)
                if signal == STOP:
                    return

        capture(module["onerror"])
        return resume[0] if resume else None

    def execute(self, module: Mapping[str, Any], bundles: dict[int, Any], outcome: Outcome) -> Any:
        """Run one module and return its output bundle."""
        name, module_id = module["module"], module["id"]
        mapper = module.get("mapper") or {}
        if name == "json:TransformToJSON":
            value = resolve(mapper.get("object"), bundles)
            return {"json": json.dumps(value, ensure_ascii=False, separators=(",", ":"))}
        if name == "gateway:WebhookRespond":
            headers = {item["key"]: text_of(resolve(item["value"], bundles)) for item in mapper.get("headers") or []}
            raw = resolve(mapper.get("body"), bundles)
            content_type = next((value for key, value in headers.items() if key.lower() == "content-type"), "")
            body = json.loads(raw) if "json" in content_type and isinstance(raw, str) else raw
            outcome.answers.append(Answer(module_id, int(text_of(resolve(mapper["status"], bundles))), headers, body))
            return {}
        if name == "http:ActionSendData" and module.get("version") == 3:
            return self.http(module, bundles, outcome)
        raise Unsupported(f"module {name}@{module.get('version')}")

    def http(self, module: Mapping[str, Any], bundles: dict[int, Any], outcome: Outcome) -> dict[str, Any]:
        """``http:ActionSendData`` v3 with a raw body."""
        mapper = module["mapper"]
        if mapper.get("bodyType") != "raw" or mapper.get("qs"):
            raise Unsupported("only raw bodies without a query string")
        headers = {
            text_of(resolve(h["name"], bundles)): text_of(resolve(h["value"], bundles)) for h in mapper["headers"]
        }
        body = resolve(mapper.get("data") or "", bundles)
        if not isinstance(body, str):
            raise Unsupported("a request body that is not text")
        request = Request(
            module["id"], mapper["method"].upper(), text_of(resolve(mapper["url"], bundles)), headers, body
        )
        reply = self.transport(request)
        outcome.exchanges.append((request, reply))
        content_type = reply.headers.get("content-type", "")
        data: Any = reply.body
        if mapper.get("parseResponse") and "json" in content_type:
            data = json.loads(reply.body)
        if (module.get("parameters") or {}).get("handleErrors") and not 200 <= reply.status < 400:
            raise ModuleError(module["id"], "RuntimeError", f"[{reply.status}] {reply.body}")
        return {"data": data, "statusCode": reply.status, "headers": reply.headers}


SERVICE_PLACEHOLDER = "https://tierwise.example.com"
KEY_PLACEHOLDER = "REPLACE_WITH_YOUR_TIERWISE_API_KEY"
FALLBACK_PLACEHOLDER = "https://hook.eu1.make.com/REPLACE_WITH_YOUR_MINI_FALLBACK_WEBHOOK"


class Endpoints:
    """Answers the templates' requests the way the attached accounts would after import.

    * the service placeholder URL goes to the running service (``http`` must hold no key of its own, so
      the template's ``X-Api-Key`` header is what authenticates it), with the key placeholder replaced by
      ``key``;
    * the mini-fallback webhook placeholder runs the ``fallback`` blueprint in-process and answers with its
      webhook response (Make answers ``Accepted`` when a scenario sends none);
    * anything else is a caller's ``callback_url``: recorded and answered 200.
    """

    def __init__(self, http: Any, key: str, fallback: Mapping[str, Any] | None = None) -> None:
        self.http = http
        self.key = key
        self.fallback = fallback
        self.callbacks: list[Request] = []
        self.fallback_runs: list[Outcome] = []

    def __call__(self, request: Request) -> Reply:
        if request.url.startswith(SERVICE_PLACEHOLDER + "/"):
            headers = {name: self.key if value == KEY_PLACEHOLDER else value for name, value in request.headers.items()}
            response = self.http.request(
                request.method,
                request.url.removeprefix(SERVICE_PLACEHOLDER),
                content=request.body.encode(),
                headers=headers,
            )
            return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.text)
        if request.url == FALLBACK_PLACEHOLDER:
            if self.fallback is None:
                raise Unsupported("no mini-fallback blueprint was given")
            outcome = Runner(self.fallback, self).run(json.loads(request.body))
            self.fallback_runs.append(outcome)
            if not outcome.answers:
                return Reply(200, {"content-type": "text/plain"}, "Accepted")
            answer = outcome.answers[0]
            text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
            return Reply(answer.status, {k.lower(): v for k, v in answer.headers.items()}, text)
        self.callbacks.append(request)
        return Reply(200, {"content-type": "text/plain"}, "ok")
