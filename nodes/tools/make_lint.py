"""Lint Make (make.com) scenario blueprints before they are imported or published.

This module is in charge of checking a blueprint file the way Make's importer and editor would, offline:

* **structure** — the top level (``name``, ``flow``, ``metadata`` with ``version`` 1, ``scenario`` settings and
  ``designer.orphans``), every module's ``id`` (an integer, unique across routes, error routes and agent tools),
  its ``module`` name (``app:Module``), ``version`` and canvas position, routers and their routes, error routes
  and the directives (``builtin:Break``, ``Resume``, ``Ignore``, ``Commit``, ``Rollback``) that may end them, and
  the scenario settings a directive needs (Break only works with incomplete executions on: ``dlq``);
* **filters** — the OR-of-AND shape of ``conditions``, operators from Make's own list (``IML_FILTER_OPERATORS``
  in ``@makehq/forman-schema``), and left operands typed as literal text instead of a mapped ``{{…}}`` value
  (reported as warnings: Make accepts them and silently compares the text);
* **mappings** — every ``{{N.…}}`` reference must name a module that exists and runs before the one using it
  on the same path; JSON request and response bodies must stay valid JSON once mapped, and mapped values placed
  inside JSON string literals are reported (a quote or a newline in the value would break the body);
* **module values** — checked against the field specs Make exports with its modules (the Forman format:
  ``parameters``/``expect`` with types, ``required``, ``validate.enum``, ``min``/``max``, ``pattern``,
  ``maxItems`` and the item specs that tell request headers ``{name, value}`` from response headers
  ``{key, value}``), from ``nodes.tools.make_specs``: copied from real exports, the HTTP app v3 and v4 among
  them; ``--specs`` adds more. A field Make shows only for some choices (``jsonStringBodyContent`` once
  ``contentType`` is ``json`` and ``inputMethod`` ``jsonString``) is required only then, and set without them
  it is an error: the module ignores it. A field in the wrong section, or a v3 field in an
  ``http:MakeRequest`` v4 module, is named with what to write instead; a switch Make's own published
  blueprints leave out (they import on Make's default) is a warning;
* **credentials** — an HTTP v4 header or query parameter that carries a key (``Authorization``,
  ``X-Api-Key``, ``access_token``…) written into the blueprint is a warning, an error with ``--publishable``:
  v4 keeps keys in a keychain (``authenticationType: apiKey``);
* **publishing** (``--publishable``) — no account-specific ids (webhooks, connections, keychains, data
  structures, data stores) and no labels of the exporting account's connections (Make's own "Choose a key"
  for an empty field is not one), so a blueprint can be shared and attached to another account after import.

Findings print as ``path: level: module <id> (<module@version>): message``; the exit status is 1 when any
finding is an error (or, with ``--strict``, a warning).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, TypeGuard

from nodes.tools.make_specs import HTTP_V4, MODULE_SPECS

__all__ = [
    "ACCOUNT_KEYS",
    "DIRECTIVES",
    "MODULE_SPECS",
    "OPERATORS",
    "Finding",
    "iml_references",
    "lint_blueprint",
    "lint_file",
    "main",
]

Level = Literal["error", "warning"]

#: Make's filter operators (``IML_FILTER_OPERATORS``, integromat/make-forman-schema ``src/utils.ts``).
UNARY_OPERATORS: Final = frozenset({"exist", "notexist"})
_TEXT_OPERATORS: Final = tuple(
    f"text:{name}"
    for name in (
        "equal",
        "notequal",
        "contain",
        "notcontain",
        "startwith",
        "notstartwith",
        "endwith",
        "notendwith",
        "pattern",
        "notpattern",
    )
)
_COMPARISONS: Final = ("equal", "notequal", "greater", "less", "greaterorequal", "lessorequal")
OPERATORS: Final = frozenset(
    {
        *UNARY_OPERATORS,
        *_TEXT_OPERATORS,
        *(f"{op}:ci" for op in _TEXT_OPERATORS),
        *(f"{kind}:{op}" for kind in ("number", "date", "time", "semver") for op in _COMPARISONS),
        "array:contain",
        "array:contain:ci",
        "array:notcontain",
        "array:notcontain:ci",
        *(f"array:{op}" for op in ("equal", "notequal", "greater", "less", "greaterorequal", "lessorequal")),
        "boolean:equal",
        "boolean:notequal",
    }
)

#: Error-handler directives: they may only end an error route (``onerror``).
DIRECTIVES: Final = frozenset(
    {"builtin:Break", "builtin:Resume", "builtin:Ignore", "builtin:Commit", "builtin:Rollback"}
)
ROUTER: Final = "builtin:BasicRouter"
WEBHOOK_TRIGGER: Final = "gateway:CustomWebHook"
WEBHOOK_RESPOND: Final = "gateway:WebhookRespond"

MODULE_NAME: Final = re.compile(r"^[a-z][a-z0-9-]*:[A-Za-z0-9]+$")
TOP_LEVEL_KEYS: Final = frozenset({"name", "description", "flow", "metadata", "io", "scheduling", "interface"})
SCENARIO_BOOLEANS: Final = (
    "autoCommit",
    "autoCommitTriggerLast",
    "sequential",
    "confidential",
    "dataloss",
    "dlq",
    "freshVariables",
)

#: Keys that hold ids of the exporting account (Make's publishing sanitiser removes them: ``sanitize.mjs``).
ACCOUNT_KEYS: Final = frozenset(
    {
        "__IMTCONN__",
        "__IMTKEY__",
        "hook",
        "datastore",
        "agent",
        "apiKeyKeychain",
        "basicAuthKeychain",
        "oAuthAccount",
        "proxyKeychain",
        "bodyDataStructure",
    }
)
_ACCOUNT_TYPE_PREFIXES: Final = ("account:", "hook:", "keychain:", "datastore", "udt", "aiagent")
#: What an export's ``metadata.restore`` labels an account field with when nothing is chosen (not an account's name).
_NOTHING_CHOSEN: Final = frozenset({"Choose a key", "Choose a data structure"})

_SECTIONS: Final = (("parameters", "parameters"), ("mapper", "expect"))

#: Fields of ``http:ActionSendData`` v3 found in an ``http:MakeRequest`` v4 module, and what v4 has instead.
_HTTP_V3_FIELDS: Final = {
    (where, name): f" (an http:ActionSendData v3 field; v4 {instead})"
    for where, name, instead in (
        ("parameters", "handleErrors", "has mapper.stopOnHttpError"),
        ("parameters", "useNewZLibDeCompress", "has no such setting"),
        ("mapper", "data", "sends jsonStringBodyContent, with contentType json and inputMethod jsonString"),
        ("mapper", "bodyType", "chooses the body with contentType and inputMethod"),
        ("mapper", "qs", "has queryParameters"),
        ("mapper", "followRedirect", "has allowRedirects"),
        ("mapper", "followAllRedirects", "has allowRedirects"),
        ("mapper", "gzip", "has requestCompressedContent"),
        ("mapper", "authUser", "keeps credentials in a keychain: parameters.authenticationType basicAuth"),
        ("mapper", "authPass", "keeps credentials in a keychain: parameters.authenticationType basicAuth"),
        ("mapper", "useMtls", "has parameters.tlsType"),
        ("mapper", "ca", "has parameters.tlsType"),
        ("mapper", "serializeUrl", "has no such setting"),
        ("mapper", "useQuerystring", "has no such setting"),
        ("mapper", "rejectUnauthorized", "has no such setting"),
    )
}

#: Header and query-parameter names that carry a credential (``Authorization``, ``X-Api-Key``, ``access_token``…).
_CREDENTIAL_NAME: Final = re.compile(
    r"^(?:proxy-)?authorization$|(?:^|[-_])(?:api[-_]?key|token|secret)$", re.IGNORECASE
)


_IML_BLOCK: Final = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_IML_STRING: Final = re.compile(r"\"[^\"]*\"|'[^']*'")
_MODULE_REF: Final = re.compile(r"(?<![\w.`$\]])(\d+)(?=\.[A-Za-z_`]|\[)")
_BUNDLE_REF: Final = re.compile(r"(?<![\w.`])`(\d+)`(?![\w`])")
_BARE_REF: Final = re.compile(r"^\s*\d+\s*$")
_PLAIN_REF: Final = re.compile(r"^\s*\d+(?:\.(?:`[^`]*`|[\w-]+)(?:\[\d*\])?)+\s*$")


@dataclass(frozen=True)
class Finding:
    """One problem in one blueprint: where it is, how bad, and what to do."""

    path: str
    level: Level
    message: str
    module_id: int | None = None
    module: str | None = None
    location: str | None = None

    def __str__(self) -> str:
        if self.module is None and self.location is None:
            where = "blueprint"
        else:
            ident = str(self.module_id) if self.module_id is not None else (self.location or "?")
            where = f"module {ident} ({self.module or '?'})"
        return f"{self.path}: {self.level}: {where}: {self.message}"


def iml_references(text: str) -> list[int]:
    """Return the module ids that the ``{{…}}`` mappings in ``text`` read, in order of appearance.

    ``{{3.data.label}}``, ``{{1.`0`}}``, ``{{5.items[1].title}}``, the whole bundle ``{{`1`}}`` and
    references inside function calls (``{{substring(1.sha; 0; 7)}}``) count; numbers such as ``1.5`` and
    anything inside quoted IML strings do not.
    """
    found: list[int] = []
    for block in _IML_BLOCK.findall(text):
        expression = _IML_STRING.sub('""', block)
        hits = [(m.start(), int(m.group(1))) for m in _MODULE_REF.finditer(expression)]
        hits += [(m.start(), int(m.group(1))) for m in _BUNDLE_REF.finditer(expression)]
        found.extend(module_id for _, module_id in sorted(hits))
    return found


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _dynamic(value: Any) -> bool:
    return isinstance(value, str) and "{{" in value


def _unset(value: Any) -> bool:
    """Whether a field counts as not filled in (exports write ``""`` for empty fields)."""
    return value is None or (isinstance(value, str) and value == "")


def _name(module: Mapping[str, Any]) -> str | None:
    name = module.get("module")
    return name if isinstance(name, str) else None


def _label(module: Mapping[str, Any]) -> str:
    name = _name(module) or "?"
    version = module.get("version")
    return f"{name}@{version if _is_int(version) else '?'}"


def _json_template(text: str) -> tuple[list[str], str | None]:
    """Scan a JSON body that contains ``{{…}}`` mappings.

    Returns the mappings that read a module and sit inside a JSON string literal, and the JSON error of
    the body once every mapping is replaced by a value of its position (``null`` outside strings, padded so
    that lines and columns in the error are those of the original text), if any.
    """
    quoted: list[str] = []
    out: list[str] = []
    in_string = False
    index = 0
    while index < len(text):
        if text.startswith("{{", index):
            end = text.find("}}", index + 2)
            end = len(text) if end < 0 else end
            mapping = text[index : end + 2]
            if in_string:
                out.append("x" * len(mapping))
                if iml_references(mapping):
                    quoted.append(mapping)
            else:
                out.append("null" + re.sub(r"[^\n]", " ", mapping[4:]))
            index = end + 2
            continue
        char = text[index]
        if in_string and char == "\\":
            out.append(text[index : index + 2])
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        out.append(char)
        index += 1
    try:
        json.loads("".join(out))
    except ValueError as exc:
        return quoted, str(exc)
    return quoted, None


@dataclass
class _Node:
    module: Mapping[str, Any]
    location: str

    @property
    def id(self) -> int | None:
        value = self.module.get("id")
        return value if _is_int(value) else None


@dataclass
class _Linter:
    path: str
    blueprint: Mapping[str, Any]
    publishable: bool
    specs: Mapping[str, Mapping[str, Any]]
    findings: list[Finding] = field(default_factory=list)
    nodes: list[_Node] = field(default_factory=list)
    first_location: dict[int, str] = field(default_factory=dict)

    # -- reporting --------------------------------------------------------------------------------------

    def blueprint_finding(self, level: Level, message: str) -> None:
        self.findings.append(Finding(self.path, level, message))

    def report(self, node: _Node, level: Level, message: str) -> None:
        self.findings.append(
            Finding(self.path, level, message, module_id=node.id, module=_label(node.module), location=node.location)
        )

    # -- entry point ------------------------------------------------------------------------------------

    def run(self) -> list[Finding]:
        flow = self.blueprint.get("flow")
        self.check_top_level(flow)
        if isinstance(flow, list) and flow:
            self.collect(flow, "flow")
            self.walk(flow, "flow", available=(), in_error_route=False, top=True)
            self.check_scenario_needs(flow)
        return self.findings

    # -- top level --------------------------------------------------------------------------------------

    def check_top_level(self, flow: Any) -> None:
        blueprint = self.blueprint
        for key in sorted(set(blueprint) - TOP_LEVEL_KEYS):
            self.blueprint_finding(
                "warning", f"unknown top-level key {key!r}; Make exports only {_names(TOP_LEVEL_KEYS)}"
            )
        name = blueprint.get("name")
        if not isinstance(name, str) or not name.strip():
            self.blueprint_finding("error", "'name' must be a non-empty string (the scenario's name)")
        if not isinstance(flow, list) or not flow:
            self.blueprint_finding("error", "'flow' must be a non-empty list of modules")
        metadata = blueprint.get("metadata")
        if not isinstance(metadata, Mapping):
            self.blueprint_finding("error", "'metadata' must be an object with version, scenario and designer")
            return
        if metadata.get("version") != 1:
            self.blueprint_finding("error", f"metadata.version must be 1, not {metadata.get('version')!r}")
        scenario = metadata.get("scenario")
        if not isinstance(scenario, Mapping):
            self.blueprint_finding("error", "metadata.scenario must be an object (the scenario settings)")
        else:
            for key in SCENARIO_BOOLEANS:
                if key in scenario and not isinstance(scenario[key], bool):
                    self.blueprint_finding("error", f"metadata.scenario.{key} must be true or false")
            for key, low in (("roundtrips", 1), ("maxErrors", 0)):
                if key in scenario and not (_is_int(scenario[key]) and scenario[key] >= low):
                    self.blueprint_finding("error", f"metadata.scenario.{key} must be an integer >= {low}")
        designer = metadata.get("designer")
        if not isinstance(designer, Mapping) or not isinstance(designer.get("orphans"), list):
            self.blueprint_finding("error", "metadata.designer.orphans must be a list (use [])")
        if (
            metadata.get("instant") is False
            and isinstance(flow, list)
            and flow
            and isinstance(flow[0], Mapping)
            and flow[0].get("module") == WEBHOOK_TRIGGER
        ):
            self.blueprint_finding("warning", "metadata.instant is false but the scenario starts with a webhook")

    def check_scenario_needs(self, flow: list[Any]) -> None:
        metadata = self.blueprint.get("metadata")
        scenario = metadata.get("scenario") if isinstance(metadata, Mapping) else None
        dlq = isinstance(scenario, Mapping) and scenario.get("dlq") is True
        starts_with_webhook = isinstance(flow[0], Mapping) and flow[0].get("module") == WEBHOOK_TRIGGER
        ids = set(self.first_location)
        for node in self.nodes:
            name = _name(node.module)
            if name == "builtin:Break" and not dlq:
                self.report(
                    node,
                    "error",
                    "builtin:Break needs incomplete executions: set metadata.scenario.dlq to true "
                    "(scenario settings: Allow storing of incomplete executions)",
                )
            if name == WEBHOOK_RESPOND and not starts_with_webhook:
                self.report(
                    node, "error", "a webhook response only answers a scenario started by gateway:CustomWebHook"
                )
        notes = metadata.get("notes") if isinstance(metadata, Mapping) else None
        for note in notes if isinstance(notes, list) else []:
            module_ids = note.get("moduleIds") if isinstance(note, Mapping) else None
            for module_id in module_ids if isinstance(module_ids, list) else []:
                if not _is_int(module_id) or module_id not in ids:
                    self.blueprint_finding(
                        "warning", f"metadata.notes points at module {module_id}, which does not exist"
                    )

    # -- pass 1: every module and its id ----------------------------------------------------------------

    def collect(self, flow: list[Any], location: str) -> None:
        for index, module in enumerate(flow):
            where = f"{location}[{index}]"
            if not isinstance(module, Mapping):
                continue
            node = _Node(module, where)
            self.nodes.append(node)
            if node.id is not None and node.id not in self.first_location:
                self.first_location[node.id] = where
            for branch, sub in _branches(module, where):
                self.collect(sub, branch)

    # -- pass 2: each module on its path ----------------------------------------------------------------

    def walk(
        self, flow: list[Any], location: str, *, available: tuple[int, ...], in_error_route: bool, top: bool = False
    ) -> None:
        seen = available
        for index, module in enumerate(flow):
            where = f"{location}[{index}]"
            if not isinstance(module, Mapping):
                self.blueprint_finding("error", f"{where} must be a module object, not {type(module).__name__}")
                continue
            node = _Node(module, where)
            self.check_module(node)
            self.check_position(node, flow, index, top=top, in_error_route=in_error_route)
            self.check_references(node, seen)
            if "filter" in module:
                self.check_filter(node, module["filter"])
            self.check_values(node)
            if self.publishable:
                self.check_account_ids(node)
            own = (node.id,) if node.id is not None else ()
            onerror = module.get("onerror")
            if onerror is not None:
                if not isinstance(onerror, list) or not onerror:
                    self.report(node, "error", "'onerror' must be a non-empty list of modules (the error route)")
                else:
                    self.walk(onerror, f"{where}.onerror", available=seen + own, in_error_route=True)
            for branch, sub in _branches(module, where, include_onerror=False):
                self.walk(sub, branch, available=seen + own, in_error_route=in_error_route)
            seen = seen + own

    def check_module(self, node: _Node) -> None:
        module = node.module
        raw_id = module.get("id")
        if not _is_int(raw_id) or raw_id < 1:
            self.report(node, "error", f"'id' must be an integer >= 1, not {raw_id!r}")
        elif self.first_location.get(raw_id) != node.location:
            self.report(
                node,
                "error",
                f"id {raw_id} is already used by the module at {self.first_location[raw_id]}; "
                "ids must be unique across routes and error routes",
            )
        name = _name(module)
        if name is None or not MODULE_NAME.match(name):
            self.report(node, "error", f"'module' must look like app:ModuleName, not {module.get('module')!r}")
        version = module.get("version")
        if not _is_int(version) or version < 0:
            self.report(node, "error", f"'version' must be the module's version number, not {version!r}")
        for key in ("parameters", "mapper"):
            if key in module and module[key] is not None and not isinstance(module[key], Mapping):
                self.report(node, "error", f"'{key}' must be an object or null")
        metadata = module.get("metadata")
        designer = metadata.get("designer") if isinstance(metadata, Mapping) else None
        if not isinstance(designer, Mapping) or not (_is_number(designer.get("x")) and _is_number(designer.get("y"))):
            self.report(node, "error", "metadata.designer needs numeric x and y (the module's place on the canvas)")
        if name == ROUTER:
            self.check_router(node)
        elif "routes" in module:
            self.report(node, "error", "only builtin:BasicRouter has 'routes'")
        if "onerror" in module and (name == ROUTER or name in DIRECTIVES):
            self.report(node, "error", f"{name} cannot have an error route")

    def check_router(self, node: _Node) -> None:
        routes = node.module.get("routes")
        if not isinstance(routes, list) or not routes:
            self.report(node, "error", "a router needs 'routes': a non-empty list of {flow: [...]}")
            return
        for index, route in enumerate(routes):
            flow = route.get("flow") if isinstance(route, Mapping) else None
            if not isinstance(flow, list) or not flow:
                self.report(node, "error", f"routes[{index}] must be an object whose 'flow' lists at least one module")
        parameters = node.module.get("parameters")
        fallback = parameters.get("else") if isinstance(parameters, Mapping) else None
        if fallback is not None and not (_is_int(fallback) and 0 <= fallback < len(routes)):
            self.report(node, "error", f"parameters.else must be the index of a route (0 to {len(routes) - 1})")

    def check_position(self, node: _Node, flow: list[Any], index: int, *, top: bool, in_error_route: bool) -> None:
        name = _name(node.module)
        if top and index == 0 and "filter" in node.module:
            self.report(node, "error", "the first module of a scenario cannot have a filter")
        if name in DIRECTIVES:
            if not in_error_route:
                self.report(
                    node, "error", f"{name} is an error handler: it can only be used in an error route (onerror)"
                )
            elif index != len(flow) - 1:
                self.report(node, "error", f"{name} ends its route; the modules after it never run")

    # -- mappings ---------------------------------------------------------------------------------------

    def check_references(self, node: _Node, available: tuple[int, ...]) -> None:
        module = node.module
        texts: list[str] = []
        for key in ("parameters", "mapper"):
            texts.extend(_strings(module.get(key)))
        condition_filter = module.get("filter")
        if isinstance(condition_filter, Mapping):
            texts.extend(_strings(condition_filter.get("conditions")))
        reported: set[int] = set()
        for text in texts:
            for block in _IML_BLOCK.findall(text):
                if _BARE_REF.match(block):
                    self.report(
                        node,
                        "warning",
                        f"{{{{{block.strip()}}}}} maps nothing; the whole bundle is {{{{`{block.strip()}`}}}}",
                    )
            if text.count("{{") > text.count("}}"):
                self.report(node, "warning", f"unclosed '{{{{' in {_short(text)!r}")
            for module_id in iml_references(text):
                if module_id in reported:
                    continue
                if module_id not in self.first_location:
                    reported.add(module_id)
                    self.report(node, "error", f"maps {{{{{module_id}.…}}}} but there is no module {module_id}")
                elif module_id not in available:
                    reported.add(module_id)
                    self.report(
                        node,
                        "error",
                        f"maps {{{{{module_id}.…}}}} but module {module_id} does not run before this module "
                        "on its path",
                    )
        self.check_json_bodies(node)

    def check_json_bodies(self, node: _Node) -> None:
        module = node.module
        mapper = module.get("mapper")
        if not isinstance(mapper, Mapping):
            return
        name = _name(module)
        bodies: list[tuple[str, Any]] = []
        if name == "http:ActionSendData" and mapper.get("contentType") == "application/json":
            bodies.append(("mapper.data", mapper.get("data")))
        elif name == "http:MakeRequest" and mapper.get("inputMethod") == "jsonString":
            bodies.append(("mapper.jsonStringBodyContent", mapper.get("jsonStringBodyContent")))
        elif name == WEBHOOK_RESPOND and _json_content_type(mapper.get("headers"), key="key"):
            bodies.append(("mapper.body", mapper.get("body")))
        for where, body in bodies:
            if not isinstance(body, str) or not body.strip():
                continue
            quoted, error = _json_template(body)
            if error is not None:
                self.report(node, "error", f"{where} is not valid JSON once its mappings are filled in: {error}")
            if quoted:
                more = f" (and {len(quoted) - 1} more)" if len(quoted) > 1 else ""
                self.report(
                    node,
                    "warning",
                    f"{where} maps {quoted[0]}{more} inside a JSON string; a value with a quote, backslash or newline "
                    "breaks the body: serialise it with json:TransformToJSON and map {{N.json}} without quotes",
                )

    # -- filters ----------------------------------------------------------------------------------------

    def check_filter(self, node: _Node, condition_filter: Any) -> None:
        if not isinstance(condition_filter, Mapping):
            self.report(node, "error", "'filter' must be an object {name, conditions}")
            return
        name = condition_filter.get("name")
        if name is not None and not isinstance(name, str):
            self.report(node, "error", "filter name must be a string")
        label = f"filter {name!r}" if isinstance(name, str) and name else "filter"
        groups = condition_filter.get("conditions")
        if not isinstance(groups, list):
            self.report(node, "error", f"{label}: 'conditions' must be a list of AND-groups (lists of {{a, o, b}})")
            return
        for group_index, group in enumerate(groups):
            if not isinstance(group, list) or not group:
                self.report(
                    node, "error", f"{label}: conditions[{group_index}] must be a non-empty list of {{a, o, b}} (AND)"
                )
                continue
            for condition_index, condition in enumerate(group):
                self.check_condition(node, label, f"conditions[{group_index}][{condition_index}]", condition)

    def check_condition(self, node: _Node, label: str, where: str, condition: Any) -> None:
        if not isinstance(condition, Mapping):
            self.report(node, "error", f"{label}: {where} must be an object {{a, o, b}}")
            return
        operator = condition.get("o")
        if not isinstance(operator, str) or operator not in OPERATORS:
            close = difflib.get_close_matches(str(operator), sorted(OPERATORS), n=1, cutoff=0.75)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.report(node, "error", f"{label}: {where} has unknown operator {operator!r}{hint}")
        elif operator not in UNARY_OPERATORS and "b" not in condition:
            self.report(node, "error", f"{label}: {where} uses {operator}, which compares a with b, but has no b")
        elif operator in UNARY_OPERATORS and not _unset(condition.get("b")):
            self.report(node, "warning", f"{label}: {where} uses {operator}, which ignores b")
        if "a" not in condition:
            self.report(node, "error", f"{label}: {where} has no operand a")
            return
        operand = condition.get("a")
        if isinstance(operand, str) and "{{" not in operand:
            text = operand.strip()
            if _PLAIN_REF.match(text):
                hint = f"; to compare the mapped value write {{{{{text}}}}}"
            else:
                hint = "; map a value with {{…}}"
            self.report(
                node,
                "warning",
                f"{label}: {where} operand a is the literal text {operand!r}, not a mapped value, "
                f"so the condition compares fixed text{hint}",
            )
        elif not isinstance(operand, str):
            self.report(node, "warning", f"{label}: {where} operand a is {operand!r}, not a mapped value")

    # -- module values ----------------------------------------------------------------------------------

    def check_values(self, node: _Node) -> None:
        label = _label(node.module)
        spec = self.specs.get(label)
        if spec is None:
            return
        sections = {key: node.module.get(key) for key in ("parameters", "mapper")}
        values = {key: value if isinstance(value, Mapping) else {} for key, value in sections.items()}
        settings = {**values["parameters"], **values["mapper"]}
        shown_when = spec.get("shown_when") if isinstance(spec.get("shown_when"), Mapping) else {}
        assert isinstance(shown_when, Mapping)
        names = {key: set(_spec_names(spec.get(spec_key) or [])) for key, spec_key in _SECTIONS}
        for key, spec_key in _SECTIONS:
            fields = spec.get(spec_key)
            if not isinstance(fields, list):
                continue
            other = "mapper" if key == "parameters" else "parameters"
            hints = {name: f"; it belongs in {other}" for name in names[other]}
            if label == HTTP_V4:
                hints |= {name: hint for (where, name), hint in _HTTP_V3_FIELDS.items() if where == key}
            shown: list[Any] = []  # the fields Make shows for this module's choices
            for field_spec in fields:
                name = field_spec.get("name") if isinstance(field_spec, Mapping) else None
                condition = shown_when.get(name) if isinstance(name, str) else None
                if not isinstance(condition, Mapping) or _holds(condition, settings):
                    shown.append(field_spec)
                elif not _unset(values[key].get(str(name))):
                    self.report(
                        node, "error", f"{key}.{name} is set, but the module ignores it unless {_condition(condition)}"
                    )
            hidden = names[key] - set(_spec_names(shown))
            present = {name: value for name, value in values[key].items() if name not in hidden}
            self.check_fields(node, present, shown, key, item=False, hints=hints)
        if label == HTTP_V4:
            self.check_credentials(node, values["mapper"])

    def check_fields(
        self,
        node: _Node,
        values: Mapping[str, Any],
        fields: Sequence[Any],
        where: str,
        *,
        item: bool,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        specs = [spec for spec in fields if isinstance(spec, Mapping) and isinstance(spec.get("name"), str)]
        names = [str(spec["name"]) for spec in specs]
        unknown = [key for key in values if key not in names]
        missing = [
            str(spec["name"])
            for spec in specs
            if spec.get("required") and _unset(values.get(str(spec["name"]))) and not _account_field(spec)
        ]
        if item and unknown and missing:
            self.report(
                node,
                "error",
                f"{where} has {'/'.join(unknown)} but its fields are {'/'.join(names)} ({'/'.join(missing)} required)",
            )
            return
        for name in missing:
            if _spec_type(specs, name) == "boolean" and name not in values:
                # Make's own published blueprints leave such switches out and import: Make fills in its default.
                self.report(
                    node,
                    "warning",
                    f"{where}.{name} is required ({_spec_label(specs, name)}); without it the module runs on "
                    "Make's default: set it",
                )
            else:
                self.report(node, "error", f"{where}.{name} is required ({_spec_label(specs, name)})")
        for key in unknown:
            hint = (hints or {}).get(key, "")
            self.report(node, "error" if item else "warning", f"{where}.{key} is not a field of this module{hint}")
        for spec in specs:
            name = str(spec["name"])
            value = values.get(name)
            if not _unset(value) and not _account_field(spec):
                self.check_value(node, value, spec, f"{where}.{name}")

    def check_credentials(self, node: _Node, mapper: Mapping[str, Any]) -> None:
        """A key typed into a header or query parameter travels with the blueprint; v4 keeps it in a keychain."""
        for key in ("headers", "queryParameters"):
            items = mapper.get(key)
            for index, entry in enumerate(items if isinstance(items, list) else [], start=1):
                if not isinstance(entry, Mapping):
                    continue
                name, value = entry.get("name"), entry.get("value")
                if not (isinstance(name, str) and _CREDENTIAL_NAME.search(name.strip())):
                    continue
                if isinstance(value, str) and value.strip() and not _dynamic(value):
                    self.report(
                        node,
                        "error" if self.publishable else "warning",
                        f"mapper.{key}[{index}] writes the credential {name} into the blueprint; put the key "
                        "in a keychain instead (parameters.authenticationType apiKey, the key under Credentials)",
                    )

    def check_value(self, node: _Node, value: Any, spec: Mapping[str, Any], where: str) -> None:
        if _dynamic(value):
            return
        kind = spec.get("type")
        validate = spec.get("validate") if isinstance(spec.get("validate"), Mapping) else {}
        assert isinstance(validate, Mapping)
        if kind == "boolean":
            if not isinstance(value, bool):
                self.report(node, "error", f"{where} must be true or false, not {value!r}")
        elif kind in ("number", "integer", "uinteger"):
            self.check_number(node, value, str(kind), validate, where)
        elif kind == "select":
            allowed = _allowed(spec)
            if allowed and value not in allowed:
                hint = ""
                if isinstance(value, str):
                    same = [item for item in allowed if isinstance(item, str) and item.lower() == value.lower()]
                    hint = f" (values are case-sensitive: {same[0]!r})" if same else ""
                self.report(node, "error", f"{where} is {value!r}, not one of {', '.join(map(str, allowed))}{hint}")
        elif kind in ("text", "password", "cert", "url", "buffer", "filename", "email"):
            if not isinstance(value, str):
                self.report(node, "error", f"{where} must be text, not {value!r}")
                return
            limit = validate.get("max")
            if _is_number(limit) and len(value) > limit:
                self.report(node, "error", f"{where} is {len(value)} characters long; at most {limit} are allowed")
            if kind == "url" and not re.match(r"^https?://", value):
                self.report(node, "error", f"{where} must be an http(s) URL, not {value!r}")
            pattern = validate.get("pattern")
            if isinstance(pattern, str) and not _matches(pattern, value):
                self.report(node, "error", f"{where} is {value!r}, which does not match {pattern}")
        elif kind == "array":
            self.check_array(node, value, spec, validate, where)
        elif kind == "collection":
            if not isinstance(value, Mapping):
                self.report(node, "error", f"{where} must be an object, not {value!r}")
            elif isinstance(spec.get("spec"), list):
                self.check_fields(node, value, spec["spec"], where, item=False)

    def check_number(self, node: _Node, value: Any, kind: str, validate: Mapping[str, Any], where: str) -> None:
        number: float | None = None
        if _is_number(value):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None:
            self.report(node, "error", f"{where} must be a number, not {value!r}")
            return
        if kind in ("integer", "uinteger") and not number.is_integer():
            self.report(node, "error", f"{where} must be a whole number, not {value!r}")
        if kind == "uinteger" and number < 0:
            self.report(node, "error", f"{where} must not be negative, not {value!r}")
        low, high = validate.get("min"), validate.get("max")
        if (_is_number(low) and number < low) or (_is_number(high) and number > high):
            bounds = f"{low if _is_number(low) else '…'}–{high if _is_number(high) else '…'}"
            self.report(node, "error", f"{where} is {value!r}, outside the allowed range {bounds}")

    def check_array(
        self, node: _Node, value: Any, spec: Mapping[str, Any], validate: Mapping[str, Any], where: str
    ) -> None:
        if not isinstance(value, list):
            self.report(node, "error", f"{where} must be a list, not {value!r}")
            return
        low, high = validate.get("minItems"), validate.get("maxItems")
        if _is_int(low) and len(value) < low:
            self.report(node, "error", f"{where} has {len(value)} items; at least {low} are needed")
        if _is_int(high) and len(value) > high:
            self.report(node, "error", f"{where} has {len(value)} items; at most {high} are allowed")
        item_spec = spec.get("spec")
        if isinstance(item_spec, Mapping):  # Forman: spec of one item, a collection or a plain value
            if item_spec.get("type") != "collection" or not isinstance(item_spec.get("spec"), list):
                for index, item in enumerate(value, start=1):
                    if not _unset(item):
                        self.check_value(node, item, item_spec, f"{where}[{index}]")
                return
            item_spec = item_spec["spec"]
        if not isinstance(item_spec, list):
            return
        for index, item in enumerate(value, start=1):
            if isinstance(item, Mapping):
                self.check_fields(node, item, item_spec, f"{where}[{index}]", item=True)
            elif not _dynamic(item):
                self.report(node, "error", f"{where}[{index}] must be an object with {_names(_spec_names(item_spec))}")

    # -- publishing -------------------------------------------------------------------------------------

    def check_account_ids(self, node: _Node) -> None:
        module = node.module
        metadata = module.get("metadata") if isinstance(module.get("metadata"), Mapping) else {}
        assert isinstance(metadata, Mapping)
        account_fields = set(ACCOUNT_KEYS)
        for specs in (metadata.get("parameters"), metadata.get("expect"), self.spec_fields(module)):
            for spec in specs if isinstance(specs, list) else []:
                if isinstance(spec, Mapping) and _account_field(spec):
                    account_fields.add(str(spec.get("name")))
        for key in ("parameters", "mapper"):
            values = module.get(key)
            if not isinstance(values, Mapping):
                continue
            for name in sorted(account_fields & set(values)):
                if not _unset(values[name]):
                    self.report(
                        node,
                        "error",
                        f"{key}.{name} holds an id of the exporting account ({values[name]!r}); leave it out "
                        "and attach your own after import",
                    )
        restore = metadata.get("restore")
        for section in ("parameters", "expect"):
            labels = restore.get(section) if isinstance(restore, Mapping) else None
            if not isinstance(labels, Mapping):
                continue
            chosen = module.get("parameters" if section == "parameters" else "mapper")
            for name in sorted(account_fields & set(labels)):
                label = labels[name].get("label") if isinstance(labels[name], Mapping) else None
                value = chosen.get(name) if isinstance(chosen, Mapping) else None
                if label in _NOTHING_CHOSEN and _unset(value):
                    continue
                self.report(
                    node,
                    "error",
                    f"metadata.restore.{section}.{name} carries the exporting account's label; remove it",
                )

    def spec_fields(self, module: Mapping[str, Any]) -> list[Any]:
        spec = self.specs.get(_label(module)) or {}
        return [*(spec.get("parameters") or []), *(spec.get("expect") or [])]


def _branches(
    module: Mapping[str, Any], where: str, *, include_onerror: bool = True
) -> Iterator[tuple[str, list[Any]]]:
    """The nested flows of a module: router routes, agent tools and (optionally) its error route."""
    for key in ("routes", "tools"):
        branches = module.get(key)
        for index, branch in enumerate(branches if isinstance(branches, list) else []):
            flow = branch.get("flow") if isinstance(branch, Mapping) else None
            if isinstance(flow, list):
                yield f"{where}.{key}[{index}].flow", flow
    onerror = module.get("onerror")
    if include_onerror and isinstance(onerror, list):
        yield f"{where}.onerror", onerror


def _holds(condition: Mapping[str, Any], settings: Mapping[str, Any]) -> bool:
    """Whether a ``shown_when`` condition ({field: allowed values}) holds for a module's settings."""
    return all(isinstance(allowed, list) and settings.get(name) in allowed for name, allowed in condition.items())


def _condition(condition: Mapping[str, Any]) -> str:
    parts = []
    for name, allowed in condition.items():
        values = " or ".join(map(str, allowed)) if isinstance(allowed, list) else str(allowed)
        parts.append(f"{name} is {values}")
    return " and ".join(parts)


def _matches(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:  # a pattern Python cannot read is not the blueprint's fault
        return True


def _account_field(spec: Mapping[str, Any]) -> bool:
    kind = spec.get("type")
    name = spec.get("name")
    return (isinstance(name, str) and name in ACCOUNT_KEYS) or (
        isinstance(kind, str) and kind.startswith(_ACCOUNT_TYPE_PREFIXES)
    )


def _allowed(spec: Mapping[str, Any]) -> list[Any]:
    validate = spec.get("validate")
    if isinstance(validate, Mapping) and isinstance(validate.get("enum"), list):
        return list(validate["enum"])
    options = spec.get("options")
    if isinstance(options, list):
        return [option.get("value") for option in options if isinstance(option, Mapping)]
    return []


def _spec_label(specs: Iterable[Mapping[str, Any]], name: str) -> str:
    for spec in specs:
        if spec.get("name") == name:
            return str(spec.get("label") or name)
    return name


def _spec_type(specs: Iterable[Mapping[str, Any]], name: str) -> Any:
    return next((spec.get("type") for spec in specs if spec.get("name") == name), None)


def _spec_names(specs: Iterable[Any]) -> list[str]:
    return [str(spec["name"]) for spec in specs if isinstance(spec, Mapping) and "name" in spec]


def _names(names: Iterable[str]) -> str:
    return ", ".join(sorted(names))


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_content_type(headers: Any, *, key: str) -> bool:
    for header in headers if isinstance(headers, list) else []:
        if (
            isinstance(header, Mapping)
            and str(header.get(key, "")).lower() == "content-type"
            and "json" in str(header.get("value", "")).lower()
        ):
            return True
    return False


def _unwrap(data: Any) -> Any:
    """Accept a bare blueprint, ``{"blueprint": …}`` (template API) or ``{"response": {"blueprint": …}}``."""
    if isinstance(data, Mapping) and "flow" not in data:
        inner = data.get("response") if isinstance(data.get("response"), Mapping) else data
        if isinstance(inner, Mapping) and isinstance(inner.get("blueprint"), Mapping):
            return inner["blueprint"]
    return data


def lint_blueprint(
    blueprint: Any,
    path: str = "<blueprint>",
    *,
    publishable: bool = False,
    specs: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Finding]:
    """Lint one parsed blueprint and return its findings in the order of the flow.

    ``publishable`` also refuses account-specific ids; ``specs`` replaces the built-in field specs
    (``MODULE_SPECS``), keyed ``module@version``.
    """
    data = _unwrap(blueprint)
    if not isinstance(data, Mapping):
        return [Finding(path, "error", f"a blueprint is a JSON object, not {type(data).__name__}")]
    return _Linter(path, data, publishable, MODULE_SPECS if specs is None else specs).run()


def lint_file(
    path: str | Path, *, publishable: bool = False, specs: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Finding]:
    """Read and lint one blueprint file; a file that cannot be read or parsed is one error finding."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [Finding(name, "error", f"cannot read the file: {exc}")]
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return [Finding(name, "error", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
    return lint_blueprint(data, name, publishable=publishable, specs=specs)


def _load_specs(paths: Sequence[str]) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = dict(MODULE_SPECS)
    for path in paths:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(isinstance(value, dict) for value in data.values()):
            raise ValueError(f"{path}: expected an object of module@version -> {{parameters, expect}}")
        merged.update(data)
    return merged


def main(argv: list[str] | None = None) -> int:
    """Run the linter from the command line: ``tierwise lint-make FILE...``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="tierwise lint-make",
        description="Check Make scenario blueprints (exported or hand-written) before importing or publishing them.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="blueprint JSON files")
    parser.add_argument(
        "--publishable",
        action="store_true",
        help="also refuse account-specific ids (webhooks, connections, keychains, data structures) and their labels",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 on warnings too")
    parser.add_argument(
        "--specs",
        action="append",
        default=[],
        metavar="FILE",
        help="extra module field specs (module@version -> {parameters, expect}), merged over the built-in ones",
    )
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        specs = _load_specs(args.specs)
    except (OSError, ValueError) as exc:
        print(f"tierwise lint-make: cannot load specs: {exc}", file=sys.stderr)
        return 2
    errors = warnings = 0
    for path in args.files:
        for finding in lint_file(path, publishable=args.publishable, specs=specs):
            print(finding)
            errors += finding.level == "error"
            warnings += finding.level == "warning"
    files = len(args.files)
    print(
        f"{files} file{'s' if files != 1 else ''} checked: {errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}",
        file=sys.stderr,
    )
    return 1 if errors or (args.strict and warnings) else 0


if __name__ == "__main__":
    raise SystemExit(main())
