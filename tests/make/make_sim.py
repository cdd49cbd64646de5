"""A small Make scenario runner for the tests: runs our blueprints' modules against real HTTP endpoints.

It executes the subset of Make the templates use, the way Make documents it:

* ``gateway:CustomWebHook`` outputs the posted JSON; ``json:TransformToJSON`` outputs ``{"json": <text>}``;
* ``http:MakeRequest`` v4 (the HTTP app's "Make a request") builds its request from the mapper: ``url`` plus
  ``queryParameters``, the lowercase ``method``, ``headers`` (``{name, value}``), and with ``contentType``
  ``json`` and ``inputMethod`` ``jsonString`` the text of ``jsonStringBodyContent`` as the body, sent with
  ``Content-Type: application/json``. ``authenticationType`` ``apiKey`` adds the key of the attached API-key
  keychain (``ApiKey``: the key as written, prefix included, in the header or query parameter it names);
  ``noAuth`` adds nothing. The module outputs ``{data, statusCode, headers}`` (``data`` parsed when
  ``parseResponse`` is on and the answer is JSON). With ``stopOnHttpError`` ("Return error if HTTP request
  fails") a status outside 2xx/3xx is a module error whose ``message`` carries the status code and the body
  (how Make words it is not documented: the templates only test that the message contains ``429``);
  without it any status is an ordinary output;
* time is simulated: every reply says how long it took (``Reply.elapsed``) and the run's clock advances by it.
  A reply slower than the module's ``timeout`` (1–300 s; when empty 40 s, Make's documented default for app
  requests, which the HTTP app probably shares) is never seen: the module fails with a timeout error after
  ``timeout`` seconds, whatever ``stopOnHttpError`` says (Make's error type for it is not documented);
* ``builtin:BasicRouter`` runs every route in order; a module's ``filter`` (OR of AND conditions) must pass
  before it runs, otherwise its route stops;
* a failing module with ``onerror`` runs that route with ``{{N.error}}`` set (``type`` and ``message``), and
  a module inside an error route may have an error route of its own; ``builtin:Resume`` replaces the failed
  module's output with its mapper and the flow goes on, ``builtin:Break`` is recorded (an incomplete execution
  Make retries later) and ``builtin:Ignore`` stops the bundle. A failing module without ``onerror`` ends the
  run with that error;
* ``gateway:WebhookRespond`` records the answer to the webhook's caller, and when (on the run's clock).

Mappings are limited to what the templates use: ``{{`N`}}`` (a module's whole bundle) and ``{{N.path}}`` with
``.key``, ``.`key```` and 1-based ``[i]``. Anything else raises ``Unsupported``, so a template that grows a
mapping this runner cannot evaluate fails loudly instead of being skipped.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlencode

BLOCK = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
WHOLE_BUNDLE = re.compile(r"^`(\d+)`$")
PATH = re.compile(r"^(\d+)((?:\.(?:`[^`]+`|[A-Za-z_][\w-]*)|\[\d+\])*)$")
STEP = re.compile(r"\.`([^`]+)`|\.([A-Za-z_][\w-]*)|\[(\d+)\]")

#: Seconds an HTTP module waits when its ``timeout`` is empty (Make documents 40 s for app requests).
DEFAULT_TIMEOUT_S = 40.0


class Unsupported(Exception):
    """The blueprint uses something this runner does not implement."""


class ModuleError(Exception):
    """A module failed the way Make reports it: an error type and a message."""

    def __init__(self, module_id: int, kind: str, message: str) -> None:
        super().__init__(f"module {module_id}: {kind}: {message}")
        self.module_id = module_id
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class ApiKey:
    """An API-key keychain as the user creates it in Make (Keys → API Key Auth) and attaches to a module.

    ``key`` is sent exactly as written, so a bearer token is stored with its prefix (``Bearer <key>``);
    ``placement`` says whether ``name`` is a header or a query parameter.
    """

    key: str
    name: str = "Authorization"
    placement: Literal["header", "query"] = "header"


@dataclass
class Request:
    """One HTTP request an HTTP module sent, how long the module waits for its answer, and its scenario."""

    module_id: int
    method: str
    url: str
    headers: dict[str, str]
    body: str
    timeout: float = DEFAULT_TIMEOUT_S
    scenario: str = ""


@dataclass
class Reply:
    """What the other side answered, and after how many seconds (``math.inf``: never)."""

    status: int
    headers: dict[str, str]
    body: str
    elapsed: float = 0.0


#: A reply that never comes: a server that hangs, or a webhook whose scenario failed before it answered.
NO_REPLY = Reply(0, {}, "", math.inf)


@dataclass
class Answer:
    """One webhook response (``gateway:WebhookRespond``) and when it was sent (seconds on the run's clock)."""

    module_id: int
    status: int
    headers: dict[str, str]
    body: Any
    at: float = 0.0


@dataclass
class Outcome:
    """Everything one run did."""

    exchanges: list[tuple[Request, Reply]] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    breaks: list[int] = field(default_factory=list)
    ran: list[int] = field(default_factory=list)
    outputs: dict[int, Any] = field(default_factory=dict)
    error: ModuleError | None = None
    clock: float = 0.0

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

    ``keychain`` is the API key attached to the modules whose ``authenticationType`` is ``apiKey`` (the
    blueprint itself holds none). With ``all_routes`` every filter passes, so every route of every router
    runs: the way to reach every module of a template in one run.
    """

    def __init__(
        self,
        blueprint: Mapping[str, Any],
        transport: Transport,
        *,
        keychain: ApiKey | None = None,
        all_routes: bool = False,
    ) -> None:
        self.blueprint = blueprint
        self.transport = transport
        self.keychain = keychain
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
            status = int(text_of(resolve(mapper["status"], bundles)))
            outcome.answers.append(Answer(module_id, status, headers, body, outcome.clock))
            return {}
        if name == "http:MakeRequest" and module.get("version") == 4:
            return self.http(module, bundles, outcome)
        raise Unsupported(f"module {name}@{module.get('version')}")

    def http(self, module: Mapping[str, Any], bundles: dict[int, Any], outcome: Outcome) -> dict[str, Any]:
        """``http:MakeRequest`` v4: the request its mapper and keychain describe, and its answer or error."""
        module_id, parameters, mapper = module["id"], module.get("parameters") or {}, module["mapper"]
        if mapper.get("shareCookies") or mapper.get("paginationType"):
            raise Unsupported("shared cookies and pagination")
        if mapper["method"] not in ("get", "head", "post", "put", "patch", "delete", "options"):
            raise Unsupported(f"method {mapper['method']!r}")
        url = text_of(resolve(mapper["url"], bundles))
        query = [
            (text_of(resolve(item["name"], bundles)), text_of(resolve(item["value"], bundles)))
            for item in mapper.get("queryParameters") or []
        ]
        headers = {
            text_of(resolve(h["name"], bundles)): text_of(resolve(h["value"], bundles))
            for h in mapper.get("headers") or []
        }
        authentication = parameters.get("authenticationType")
        if authentication == "apiKey":
            if self.keychain is None:
                raise Unsupported(f"module {module_id} authenticates with an API key, but no keychain is attached")
            if self.keychain.placement == "header":
                headers[self.keychain.name] = self.keychain.key
            else:
                query.append((self.keychain.name, self.keychain.key))
        elif authentication != "noAuth":
            raise Unsupported(f"authenticationType {authentication!r}")
        if query:
            url += ("&" if "?" in url else "?") + urlencode(query)
        body = ""
        if mapper.get("contentType") == "json":
            if mapper.get("inputMethod") != "jsonString":
                raise Unsupported("a JSON body from a data structure")
            body = resolve(mapper.get("jsonStringBodyContent") or "", bundles)
            if not isinstance(body, str) or not body:
                raise Unsupported("a JSON body that is not text, or empty")
            if not any(name.lower() == "content-type" for name in headers):
                headers["Content-Type"] = "application/json"
        elif mapper.get("contentType"):
            raise Unsupported(f"contentType {mapper['contentType']!r}")
        timeout = float(mapper.get("timeout") or DEFAULT_TIMEOUT_S)
        if not 1 <= timeout <= 300:
            raise Unsupported(f"timeout {timeout}: Make allows 1 to 300 seconds")
        request = Request(module_id, mapper["method"].upper(), url, headers, body, timeout, self.blueprint["name"])
        reply = self.transport(request)
        outcome.exchanges.append((request, reply))
        outcome.clock += min(reply.elapsed, timeout)
        if reply.elapsed > timeout:
            raise ModuleError(module_id, "ModuleTimeoutError", f"The request timed out after {timeout:g} seconds")
        data: Any = reply.body
        if mapper.get("parseResponse") and "json" in reply.headers.get("content-type", ""):
            data = json.loads(reply.body)
        if mapper.get("stopOnHttpError") and not 200 <= reply.status < 400:
            raise ModuleError(module_id, "RuntimeError", f"[{reply.status}] {reply.body}")
        return {"data": data, "statusCode": reply.status, "headers": reply.headers}


SERVICE_PLACEHOLDER = "https://tierwise.example.com"
FALLBACK_PLACEHOLDER = "https://hook.eu1.make.com/REPLACE_WITH_YOUR_MINI_FALLBACK_WEBHOOK"


class Endpoints:
    """Answers the templates' requests the way the attached accounts would after import.

    * a request ``hangs`` picks is never answered (a server that hangs, a network that drops it);
    * the service placeholder URL goes to the running service; ``http`` must hold no key of its own, so the
      key the module's keychain added is what authenticates it;
    * the mini-fallback webhook placeholder runs the ``fallback`` blueprint in-process (with the same
      keychain) and answers with its webhook response when the run sends it (Make answers ``Accepted`` when
      a scenario ends without one). A run that fails before it answers leaves its caller waiting: what Make
      then answers, if anything, is not documented, so the caller's own timeout decides;
    * anything else is a caller's ``callback_url``: recorded and answered 200.
    """

    def __init__(
        self,
        http: Any,
        keychain: ApiKey,
        fallback: Mapping[str, Any] | None = None,
        *,
        hangs: Callable[[Request], bool] | None = None,
    ) -> None:
        self.http = http
        self.keychain = keychain
        self.fallback = fallback
        self.hangs = hangs or (lambda request: False)
        self.callbacks: list[Request] = []
        self.fallback_runs: list[Outcome] = []

    def run(self, blueprint: Mapping[str, Any], payload: Any, *, all_routes: bool = False) -> Outcome:
        """Run a blueprint whose HTTP modules these endpoints answer, with the keychain attached."""
        return Runner(blueprint, self, keychain=self.keychain, all_routes=all_routes).run(payload)

    def __call__(self, request: Request) -> Reply:
        if self.hangs(request):
            return NO_REPLY
        if request.url.startswith(SERVICE_PLACEHOLDER + "/"):
            response = self.http.request(
                request.method,
                request.url.removeprefix(SERVICE_PLACEHOLDER),
                content=request.body.encode(),
                headers=request.headers,
            )
            return Reply(response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.text)
        if request.url == FALLBACK_PLACEHOLDER:
            if self.fallback is None:
                raise Unsupported("no mini-fallback blueprint was given")
            outcome = self.run(self.fallback, json.loads(request.body))
            self.fallback_runs.append(outcome)
            if not outcome.answers:
                if outcome.error is not None:
                    return NO_REPLY
                return Reply(200, {"content-type": "text/plain"}, "Accepted", outcome.clock)
            answer = outcome.answers[0]
            text = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
            return Reply(answer.status, {k.lower(): v for k, v in answer.headers.items()}, text, answer.at)
        self.callbacks.append(request)
        return Reply(200, {"content-type": "text/plain"}, "ok")
