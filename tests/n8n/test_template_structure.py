"""The n8n templates, checked offline: n8n's workflow structure rules, the node types of n8n 2.8.4, our own rules.

Three layers, none needing n8n:

* ``structure_problems``: the zod rules of n8n's ``workflow-structure-validation.ts`` (names and types
  non-empty, ``[x, y]`` positions, parameter records, unique names and ids, connections only between
  existing nodes) plus the public API's node schema (no unknown node keys), valid output indexes and
  inputs (nothing connects into a trigger).
* ``node_type_problems``: every node against ``tests/fixtures/n8n-nodes-2.8.4.json``, a trimmed
  ``n8n export:nodes`` of 2.8.4 (see ``test_node_fixture_is_the_trimmed_export`` in test_templates.py for
  how it is made): the type exists in that typeVersion, every parameter is one the node shows with
  these settings, literal option values are allowed, collections hold known keys, credentials are ones
  the node takes.
* the templates' own contract: Config holds the URL once, the key only through the credential, every
  service call has a timeout, ``Prefer: wait=60``, an Idempotency-Key and Retry On Fail; every LLM step
  is two nodes, its error output leading to a mini fallback with the same body on mini, no Wait loop,
  edges only left to right; sticky notes say what the template does, what to set up, how to run the
  sample and where the cost summary is, one note per step; the Manual Trigger is the default run (the
  Webhook ships disabled); both triggers reach the Summary.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / "templates" / "n8n"
FIXTURES = {version: ROOT / "tests" / "fixtures" / f"n8n-nodes-{version}.json" for version in ("2.41.3", "2.8.4")}
"""The trimmed node catalogue of each tested n8n release: the newest, then the oldest supported."""
FIXTURE = FIXTURES["2.8.4"]
TEMPLATE_NAMES = [
    "support-triage.json",
    "document-extraction.json",
    "pr-review.json",
    "research-synthesis.json",
    "content-pipeline.json",
]
CREDENTIAL = {"httpBearerAuth": {"id": "TierwiseApiKey01", "name": "Tierwise API key"}}

#: Node keys the public API's node schema allows (packages/cli/.../spec/schemas/node.yml, additionalProperties: false).
NODE_KEYS = {
    "id", "name", "webhookId", "disabled", "notesInFlow", "notes", "type", "typeVersion", "executeOnce",
    "alwaysOutputData", "retryOnFail", "maxTries", "waitBetweenTries", "continueOnFail", "onError", "position",
    "parameters", "credentials", "customTelemetryTags", "createdAt", "updatedAt",
}  # fmt: skip
WORKFLOW_KEYS = {
    "id", "name", "nodes", "connections", "settings", "pinData", "staticData", "meta", "tags", "active",
    "versionId", "description",
}  # fmt: skip
#: Property-level keys of ``export:nodes`` that only the editor uses; the fixture leaves them out.
EDITOR_ONLY_KEYS = {"description", "hint", "placeholder", "displayName", "action", "routing", "builderHint"}
NODE_DESCRIPTION_KEYS = ("name", "displayName", "version", "defaultVersion", "inputs", "outputs", "credentials")


def load_build() -> ModuleType:
    """templates/n8n/build.py, freshly loaded (it is a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("tierwise_n8n_build", TEMPLATE_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    return module


def load_templates() -> dict[str, dict[str, Any]]:
    return {name: json.loads((TEMPLATE_DIR / name).read_text(encoding="utf-8")) for name in TEMPLATE_NAMES}


def used_types() -> set[str]:
    return {node["type"] for workflow in load_templates().values() for node in workflow["nodes"]}


# -- the fixture ----------------------------------------------------------------------------------------


def _strip_editor_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _strip_editor_keys(item) for key, item in value.items() if key not in EDITOR_ONLY_KEYS}
    if isinstance(value, list):
        return [_strip_editor_keys(item) for item in value]
    return value


def trim_export(exported: list[dict[str, Any]], types: set[str]) -> list[dict[str, Any]]:
    """The part of an ``n8n export:nodes`` dump the validator needs: the given node types, every version entry.

    Each entry keeps its name, display name, versions, inputs, outputs, credentials and properties; the
    properties lose their editor-only texts (descriptions, hints, placeholders, display names).
    """
    trimmed = []
    for entry in exported:
        if entry["name"] not in types:
            continue
        kept: dict[str, Any] = {key: entry[key] for key in NODE_DESCRIPTION_KEYS if key in entry}
        kept["credentials"] = [{"name": cred["name"]} for cred in entry.get("credentials") or []]
        kept["properties"] = _strip_editor_keys(entry["properties"])
        trimmed.append(kept)
    trimmed.sort(key=lambda entry: (entry["name"], json.dumps(entry["version"])))
    return trimmed


def fixture_text(trimmed: list[dict[str, Any]]) -> str:
    return json.dumps(trimmed, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


class Catalog:
    """Node descriptions by type and version, from the trimmed export."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries

    def find(self, node_type: str, version: Any) -> dict[str, Any] | None:
        for entry in self.entries:
            versions = entry["version"] if isinstance(entry["version"], list) else [entry["version"]]
            if entry["name"] == node_type and version in versions:
                return entry
        return None

    def versions(self, node_type: str) -> list[Any]:
        found: list[Any] = []
        for entry in self.entries:
            if entry["name"] == node_type:
                found += entry["version"] if isinstance(entry["version"], list) else [entry["version"]]
        return sorted(found)


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog(json.loads(FIXTURE.read_text(encoding="utf-8")))


# -- layer 1: workflow structure (workflow-structure-validation.ts, public API node schema) -----------------


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def structure_problems(workflow: Any) -> list[str]:
    if not isinstance(workflow, dict):
        return ["the workflow is not an object"]
    problems = [f"unknown workflow key {key!r}" for key in workflow if key not in WORKFLOW_KEYS]
    if not isinstance(workflow.get("name"), str) or not workflow["name"]:
        problems.append("name must be a non-empty string")
    if not isinstance(workflow.get("settings"), dict):
        problems.append("settings must be an object")
    nodes = workflow.get("nodes")
    connections = workflow.get("connections")
    if not isinstance(nodes, list) or not isinstance(connections, dict):
        return [*problems, "nodes must be a list and connections an object"]
    names: set[str] = set()
    ids: set[str] = set()
    for index, node in enumerate(nodes):
        where = f"nodes[{index}]"
        if not isinstance(node, dict):
            problems.append(f"{where} is not an object")
            continue
        problems += [f"{where}: unknown node key {key!r}" for key in node if key not in NODE_KEYS]
        for key in ("name", "type"):
            if not isinstance(node.get(key), str) or not node[key]:
                problems.append(f"{where}.{key} must be a non-empty string")
        position = node.get("position")
        if not (isinstance(position, list) and len(position) == 2 and all(is_number(v) for v in position)):
            problems.append(f"{where}.position must be a [number, number] tuple")
        if not isinstance(node.get("parameters"), dict):
            problems.append(f"{where}.parameters must be a record")
        if "id" in node and not isinstance(node["id"], str):
            problems.append(f"{where}.id must be a string")
        if "typeVersion" in node and not is_number(node["typeVersion"]):
            problems.append(f"{where}.typeVersion must be a number")
        if "disabled" in node and not isinstance(node["disabled"], bool):
            problems.append(f"{where}.disabled must be a boolean")
        name = node.get("name")
        if name in names:
            problems.append(f"{where}.name: duplicate node name {name!r}")
        names.add(name)
        if node.get("id") in ids:
            problems.append(f"{where}.id: duplicate node id {node['id']!r}")
        ids.add(node.get("id"))
    for source, by_type in connections.items():
        if source not in names:
            problems.append(f"connections: unknown source node {source!r}")
        if not isinstance(by_type, dict):
            problems.append(f"connections[{source!r}] must be an object")
            continue
        for kind, outputs in by_type.items():
            if not isinstance(outputs, list):
                problems.append(f"connections[{source!r}][{kind!r}] must be a list")
                continue
            for output, targets in enumerate(outputs):
                if targets is None:
                    continue
                if not isinstance(targets, list):
                    problems.append(f"connections[{source!r}][{kind!r}][{output}] must be a list or null")
                    continue
                for target in targets:
                    if not isinstance(target, dict) or set(target) != {"node", "type", "index"}:
                        problems.append(f"connections[{source!r}]: a connection must be {{node, type, index}}")
                        continue
                    if target["node"] not in names:
                        problems.append(f"connections[{source!r}]: unknown target node {target['node']!r}")
                    if not isinstance(target["type"], str):
                        problems.append(f"connections[{source!r}]: connection type must be a string")
                    if not isinstance(target["index"], int) or isinstance(target["index"], bool) or target["index"] < 0:
                        problems.append(f"connections[{source!r}]: connection index must be an integer >= 0")
    return problems


# -- layer 2: node types, versions, parameters (trimmed export:nodes of 2.8.4) -----------------------------


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("=")


def condition_matches(expected: list[Any], actual: Any) -> bool:
    """n8n's displayOptions check of one key: any listed value (or ``_cnd`` condition) matches."""
    for wanted in expected:
        if isinstance(wanted, dict) and "_cnd" in wanted:
            ((operator, reference),) = wanted["_cnd"].items()
            if operator == "eq" and actual == reference:
                return True
            if operator == "not" and actual != reference:
                return True
            if is_number(actual) and operator in ("gte", "lte", "gt", "lt"):
                if {"gte": actual >= reference, "lte": actual <= reference, "gt": actual > reference}.get(
                    operator, actual < reference
                ):
                    return True
            if operator == "between" and is_number(actual) and reference["from"] <= actual <= reference["to"]:
                return True
            if operator == "exists" and actual is not None:
                return True
        elif actual == wanted:
            return True
    return False


def visible(prop: dict[str, Any], version: Any, scope: dict[str, Any], root: dict[str, Any]) -> bool:
    """Whether n8n shows ``prop`` for a node of ``version`` whose values are ``scope`` (``root``: the node's)."""
    display = prop.get("displayOptions") or {}

    def lookup(key: str) -> Any:
        if key == "@version":
            return version
        if key == "@tool":
            return False
        return root.get(key[1:]) if key.startswith("/") else scope.get(key)

    for key, expected in (display.get("show") or {}).items():
        actual = lookup(key)
        if is_expression(actual):
            continue
        if not condition_matches(expected, actual):
            return False
    return not any(condition_matches(expected, lookup(key)) for key, expected in (display.get("hide") or {}).items())


def with_defaults(
    props: list[dict[str, Any]], given: dict[str, Any], version: Any, root: dict[str, Any] | None
) -> dict[str, Any]:
    """The values n8n works with: the given ones, then the default of every property shown so far."""
    values = dict(given)
    for prop in props:
        if prop["name"] not in values and visible(prop, version, values, values if root is None else root):
            values[prop["name"]] = prop.get("default")
    return values


def value_problems(prop: dict[str, Any], value: Any, version: Any, root: dict[str, Any], where: str) -> list[str]:
    """Problems of one literal parameter value against its property description."""
    kind = prop.get("type")
    if is_expression(value):
        if prop.get("noDataExpression") or (prop.get("typeOptions") or {}).get("noDataExpression"):
            return [f"{where}: takes no expression"]
        return []
    if kind == "options":
        allowed = [option.get("value") for option in prop.get("options") or []]
        if allowed and value not in allowed:
            return [f"{where}: {value!r} is not one of {allowed}"]
    elif kind == "multiOptions":
        allowed = [option.get("value") for option in prop.get("options") or []]
        if not isinstance(value, list) or (allowed and any(item not in allowed for item in value)):
            return [f"{where}: {value!r} must be a list of {allowed}"]
    elif kind == "boolean":
        if not isinstance(value, bool):
            return [f"{where}: {value!r} is not a boolean"]
    elif kind == "number":
        if not is_number(value):
            return [f"{where}: {value!r} is not a number"]
        bounds = prop.get("typeOptions") or {}
        if "minValue" in bounds and value < bounds["minValue"] or "maxValue" in bounds and value > bounds["maxValue"]:
            return [f"{where}: {value!r} is out of range"]
    elif kind in ("string", "credentialsSelect", "dateTime"):
        if not isinstance(value, str):
            return [f"{where}: {value!r} is not a string"]
    elif kind == "json":
        if not isinstance(value, str | dict | list):
            return [f"{where}: {value!r} is not JSON"]
    elif kind == "collection":
        if not isinstance(value, dict):
            return [f"{where}: must be an object"]
        return params_problems(prop.get("options") or [], value, version, root, where)
    elif kind == "fixedCollection":
        return fixed_collection_problems(prop, value, version, root, where)
    elif kind == "filter":
        return filter_problems(value, where)
    elif kind == "assignmentCollection":
        return assignment_problems(value, where)
    return []


def fixed_collection_problems(
    prop: dict[str, Any], value: Any, version: Any, root: dict[str, Any], where: str
) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: must be an object"]
    problems = []
    groups = {option["name"]: option for option in prop.get("options") or []}
    multiple = bool((prop.get("typeOptions") or {}).get("multipleValues"))
    for key, entries in value.items():
        if key not in groups:
            problems.append(f"{where}.{key}: unknown; expected one of {sorted(groups)}")
            continue
        if multiple != isinstance(entries, list):
            problems.append(f"{where}.{key}: must be {'a list' if multiple else 'an object'}")
            continue
        for index, entry in enumerate(entries if multiple else [entries]):
            if not isinstance(entry, dict):
                problems.append(f"{where}.{key}[{index}]: must be an object")
                continue
            problems += params_problems(
                groups[key].get("values") or [], entry, version, root, f"{where}.{key}[{index}]"
            )
    return problems


def filter_problems(value: Any, where: str) -> list[str]:
    if not isinstance(value, dict) or not isinstance(value.get("conditions"), list):
        return [f"{where}: a filter needs a conditions list"]
    problems = []
    if value.get("combinator") not in ("and", "or"):
        problems.append(f"{where}.combinator: must be 'and' or 'or'")
    for index, item in enumerate(value["conditions"]):
        operator = item.get("operator") if isinstance(item, dict) else None
        if not isinstance(operator, dict) or not {"type", "operation"} <= set(operator) or "leftValue" not in item:
            problems.append(f"{where}.conditions[{index}]: needs leftValue and operator {{type, operation}}")
    return problems


def assignment_problems(value: Any, where: str) -> list[str]:
    if not isinstance(value, dict) or not isinstance(value.get("assignments"), list):
        return [f"{where}: needs an assignments list"]
    problems = []
    for index, item in enumerate(value["assignments"]):
        if not isinstance(item, dict) or not {"id", "name", "value", "type"} <= set(item):
            problems.append(f"{where}.assignments[{index}]: needs id, name, value and type")
        elif item["type"] not in ("string", "number", "boolean", "array", "object"):
            problems.append(f"{where}.assignments[{index}].type: unknown type {item['type']!r}")
    return problems


def params_problems(
    props: list[dict[str, Any]], given: dict[str, Any], version: Any, root: dict[str, Any] | None, where: str
) -> list[str]:
    """Every given value must belong to a property shown with these values, and be valid for it."""
    values = with_defaults(props, given, version, root)
    node_values = values if root is None else root
    problems = []
    for key, value in given.items():
        shown = [prop for prop in props if prop["name"] == key and visible(prop, version, values, node_values)]
        if not shown:
            known = any(prop["name"] == key for prop in props)
            reason = "is not shown with these settings" if known else "is not a parameter of this node"
            problems.append(f"{where}.{key}: {reason}")
            continue
        problems += value_problems(shown[0], value, version, node_values, f"{where}.{key}")
    return problems


def output_count(node: dict[str, Any], description: dict[str, Any]) -> int:
    outputs = description.get("outputs")
    if isinstance(outputs, list):
        count = len(outputs)
    else:
        parameters = node["parameters"]
        short = node["type"].removeprefix("n8n-nodes-base.")
        if short == "switch" and parameters.get("mode", "rules") == "rules":
            extra = (parameters.get("options") or {}).get("fallbackOutput") == "extra"
            count = len(parameters.get("rules", {}).get("values", [])) + int(extra)
        elif short == "switch":
            count = int(parameters.get("numberOutputs", 4))
        elif short == "webhook":
            methods = parameters.get("httpMethod")
            count = len(methods) if isinstance(methods, list) else 1
        elif short == "respondToWebhook":
            version = node["typeVersion"]
            count = 2 if version == 1.3 or (version >= 1.4 and parameters.get("enableResponseOutput")) else 1
        else:
            raise AssertionError(f"no rule for the outputs of {node['type']}")
    return count + int(node.get("onError") == "continueErrorOutput")


def node_type_problems(workflow: dict[str, Any], catalog: Catalog) -> list[str]:
    problems = []
    nodes = {node["name"]: node for node in workflow["nodes"]}
    descriptions: dict[str, dict[str, Any]] = {}
    for node in workflow["nodes"]:
        where = f"{node['name']!r} ({node['type']}@{node.get('typeVersion')})"
        description = catalog.find(node["type"], node.get("typeVersion"))
        if description is None:
            versions = catalog.versions(node["type"])
            problems.append(
                f"{where}: unknown typeVersion; n8n 2.8.4 has {versions}" if versions else f"{where}: unknown node type"
            )
            continue
        descriptions[node["name"]] = description
        problems += params_problems(description["properties"], node["parameters"], node["typeVersion"], None, where)
        selected = {
            value
            for prop in description["properties"]
            if prop["type"] == "credentialsSelect"
            for key, value in node["parameters"].items()
            if key == prop["name"]
        }
        allowed = {cred["name"] for cred in description.get("credentials") or []} | selected
        for credential_type in node.get("credentials") or {}:
            if credential_type not in allowed:
                problems.append(f"{where}: takes no {credential_type!r} credential")
    for source, by_type in workflow["connections"].items():
        for kind, outputs in by_type.items():
            if source in descriptions and kind == "main":
                count = output_count(nodes[source], descriptions[source])
                if len(outputs) > count:
                    problems.append(f"connections[{source!r}]: output {len(outputs) - 1} used, the node has {count}")
            for targets in outputs:
                for target in targets or []:
                    description = descriptions.get(target["node"])
                    if description is not None and target["index"] >= len(description.get("inputs") or []):
                        problems.append(f"connections[{source!r}]: {target['node']!r} has no input {target['index']}")
    return problems


def all_problems(workflow: Any, catalog: Catalog) -> list[str]:
    problems = structure_problems(workflow)
    return problems or node_type_problems(workflow, catalog)


# -- layer 3: the templates' contract -------------------------------------------------------------------


def targets(workflow: dict[str, Any], source: str, output: int = 0) -> list[str]:
    outputs = workflow["connections"].get(source, {}).get("main", [])
    return [target["node"] for target in (outputs[output] or [])] if output < len(outputs) else []


def reachable(workflow: dict[str, Any], start: str) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for outputs in workflow["connections"].get(todo.pop(), {}).get("main", []):
            for target in outputs or []:
                if target["node"] not in seen:
                    seen.add(target["node"])
                    todo.append(target["node"])
    return seen


def service_calls(workflow: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from (node for node in workflow["nodes"] if node["type"] == "n8n-nodes-base.httpRequest")


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    return load_templates()


def test_the_generator_wrote_the_committed_files() -> None:
    built = load_build().build()
    assert sorted(built) == sorted(TEMPLATE_NAMES)
    assert sorted(path.name for path in TEMPLATE_DIR.glob("*.json")) == sorted(TEMPLATE_NAMES)
    for name, text in built.items():
        assert (TEMPLATE_DIR / name).read_text(encoding="utf-8") == text, f"{name} is stale: run templates/n8n/build.py"


def test_the_generator_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build = load_build()
    for name, text in build.build().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    monkeypatch.setattr(build, "HERE", tmp_path)
    assert build.main(["--check"]) == 0
    (tmp_path / "pr-review.json").write_text("{}", encoding="utf-8")
    assert build.main(["--check"]) == 1


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_passes_n8n_structure_and_node_rules(name: str, templates: dict[str, Any], catalog: Catalog) -> None:
    assert all_problems(templates[name], catalog) == []


@pytest.mark.parametrize("version", list(FIXTURES))
@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_template_passes_the_node_rules_of_every_tested_release(
    name: str, version: str, templates: dict[str, Any]
) -> None:
    release = Catalog(json.loads(FIXTURES[version].read_text(encoding="utf-8")))
    assert node_type_problems(templates[name], release) == []


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_node_is_on_the_newest_version_both_releases_have(name: str, templates: dict[str, Any]) -> None:
    releases = [Catalog(json.loads(path.read_text(encoding="utf-8"))) for path in FIXTURES.values()]
    for node in templates[name]["nodes"]:
        shared = set.intersection(*(set(release.versions(node["type"])) for release in releases))
        assert node["typeVersion"] == max(shared), (node["name"], node["type"], sorted(shared))


def test_fixture_covers_exactly_the_node_types_used(catalog: Catalog) -> None:
    assert {entry["name"] for entry in catalog.entries} == used_types()
    assert catalog.versions("n8n-nodes-base.httpRequest") == [1, 2, 3, 4, 4.1, 4.2, 4.3, 4.4]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_workflow_ids_settings_and_node_ids(name: str, templates: dict[str, Any]) -> None:
    workflow = templates[name]
    assert re.fullmatch(r"[A-Za-z0-9]{1,21}", workflow["id"])
    assert workflow["settings"] == {"executionOrder": "v1"}
    assert workflow["active"] is False
    for node in workflow["nodes"]:
        assert str(uuid.UUID(node["id"])) == node["id"]
    assert len({t["id"] for t in templates.values()}) == len(templates)
    assert len({n["webhookId"] for t in templates.values() for n in t["nodes"] if "webhookId" in n}) == sum(
        1 for t in templates.values() for n in t["nodes"] if "webhookId" in n
    )


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_no_key_in_any_file(name: str) -> None:
    text = (TEMPLATE_DIR / name).read_text(encoding="utf-8")
    assert not re.search(r"(?i)bearer\s+(?!auth\b)[A-Za-z0-9._~+/-]", text)  # "Bearer Auth" is n8n's credential type
    assert not re.search(r"(?i)authorization|x-api-key|sk-[A-Za-z0-9]|\"token\"|\"apiKey\"", text)
    assert "test-client-key" not in text


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_config_holds_the_service_url_once(name: str, templates: dict[str, Any]) -> None:
    workflow = templates[name]
    text = json.dumps(workflow)
    assert text.count("http://127.0.0.1:8080") == 1
    (config,) = [node for node in workflow["nodes"] if node["name"] == "Config"]
    assert (config["type"], config["typeVersion"]) == ("n8n-nodes-base.set", 3.4)
    assert [(a["name"], a["value"]) for a in config["parameters"]["assignments"]["assignments"]] == [
        ("service_url", "http://127.0.0.1:8080")
    ]
    calls = list(service_calls(workflow))
    assert calls
    for node in calls:
        assert node["parameters"]["url"].startswith("={{ $('Config').item.json.service_url }}/v1/nodes/")


def json_body_text(node: dict[str, Any]) -> str:
    """A JSON body with each ``{{ ... }}`` expression replaced by ``null``: what must be valid JSON around them."""
    body = node["parameters"]["jsonBody"]
    assert body.startswith("={")
    return re.sub(r"\{\{ JSON\.stringify\((?:(?!\}\}).)*\) \}\}", "null", body[1:], flags=re.DOTALL)


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_service_call_waits_for_its_window_is_safe_to_retry_and_fails_to_an_error_output(
    name: str, templates: dict[str, Any]
) -> None:
    for node in service_calls(templates[name]):
        parameters = node["parameters"]
        assert node["typeVersion"] == 4.4
        assert node["credentials"] == CREDENTIAL
        assert (parameters["authentication"], parameters["genericAuthType"]) == (
            "genericCredentialType",
            "httpBearerAuth",
        )
        batch = parameters["url"].endswith("/batch")
        # Prefer: wait may hold a call 60 s before its run (120 s, or the batch's) starts.
        assert parameters["options"]["timeout"] == (660_000 if batch else 190_000)
        response = parameters["options"]["response"]["response"]
        assert response == {"fullResponse": True, "responseFormat": "json"}  # a non-2xx status is an error
        key, prefer = parameters["headerParameters"]["parameters"]
        assert prefer == {"name": "Prefer", "value": "wait=60"}
        assert key["name"] == "Idempotency-Key"
        assert key["value"].startswith("={{ $execution.id }}-{{ $itemIndex }}-")
        assert key["value"].endswith("-{{ $('Read input').first().json.nonce }}")
        assert (node["retryOnFail"], node["maxTries"], node["waitBetweenTries"]) == (True, 3, 5000)
        assert parameters["method"] == "POST"
        json.loads(json_body_text(node))
    keys = [node["parameters"]["headerParameters"]["parameters"][0]["value"] for node in service_calls(templates[name])]
    assert len(set(keys)) == len(keys)


def llm_steps(workflow: dict[str, Any]) -> list[str]:
    """The HTTP node of every LLM step, in node order."""
    return [node["name"] for node in service_calls(workflow) if not node["name"].endswith(": mini fallback")]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_every_llm_step_is_two_nodes_its_error_output_leading_to_the_mini_fallback(
    name: str, templates: dict[str, Any]
) -> None:
    workflow = templates[name]
    nodes = {node["name"]: node for node in workflow["nodes"]}
    primaries = llm_steps(workflow)
    fallbacks = [node["name"] for node in service_calls(workflow) if node["name"].endswith(": mini fallback")]
    assert primaries and len(primaries) == len(fallbacks)
    assert not [node for node in workflow["nodes"] if node["type"] in ("n8n-nodes-base.wait", "n8n-nodes-base.switch")
                and node["name"].startswith(tuple(primaries))]  # fmt: skip
    assert "n8n-nodes-base.wait" not in {node["type"] for node in workflow["nodes"]}
    for primary in primaries:
        fallback = f"{primary}: mini fallback"
        assert nodes[primary]["onError"] == "continueErrorOutput"
        assert nodes[fallback]["onError"] == "continueRegularOutput"
        # Output 0 (success) goes on, output 1 (error) to the fallback only; the fallback goes where success goes.
        assert targets(workflow, primary, 1) == [fallback]
        assert len(workflow["connections"][primary]["main"]) == 2
        assert targets(workflow, fallback) == targets(workflow, primary, 0) != []
        assert nodes[fallback]["parameters"]["url"] == nodes[primary]["parameters"]["url"]
        # The fallback sends the very request of its step, on mini.
        sent, again = (json.loads(json_body_text(nodes[n])) for n in (primary, fallback))
        tiers = again["defaults"] if "defaults" in again else again
        assert (tiers["tier"], tiers["max_tier"]) == ("mini", "mini")
        original = sent["defaults"] if "defaults" in sent else sent
        assert {**original, "tier": "mini", "max_tier": "mini"} == tiers
        stripped = re.sub(r'"(max_)?tier": "[a-z]+"', "", nodes[primary]["parameters"]["jsonBody"])
        assert stripped == re.sub(r'"(max_)?tier": "[a-z]+"', "", nodes[fallback]["parameters"]["jsonBody"])
        key = nodes[primary]["parameters"]["headerParameters"]["parameters"][0]["value"]
        step = key.split("-{{ $itemIndex }}-")[1].split("-{{")[0]
        assert nodes[fallback]["parameters"]["headerParameters"]["parameters"][0]["value"] == key.replace(
            f"-{step}-", f"-{step}-mini-fallback-"
        )
        # The Summary reads both.
        assert f"recordsOf('{primary}', '{step}', " in nodes["Summary"]["parameters"]["jsCode"]


def box(node: dict[str, Any]) -> tuple[float, float, float, float]:
    x, y = node["position"]
    if node["type"] == "n8n-nodes-base.stickyNote":
        return x, y, x + node["parameters"]["width"], y + node["parameters"]["height"]
    return x, y, x + 100, y + 100


def inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_sticky_notes_say_what_it_does_what_to_set_up_how_to_run_and_where_the_cost_is(
    name: str, templates: dict[str, Any], catalog: Catalog
) -> None:
    workflow = templates[name]
    notes = [node for node in workflow["nodes"] if node["type"] == "n8n-nodes-base.stickyNote"]
    assert {(note["typeVersion"], tuple(sorted(note["parameters"]))) for note in notes} == {
        (1, ("color", "content", "height", "width"))
    }
    assert workflow["nodes"][-len(notes) :] == notes  # behind everything, after the nodes, as n8n exports them
    text = "\n".join(note["parameters"]["content"] for note in notes)
    main = notes[0]["parameters"]["content"]
    assert main.startswith("# ") and "## Set up" in main and "## Run" in main
    assert "**Tierwise API key**" in main and "*Bearer Auth*" in main  # the credential
    assert "`service_url`" in main and "**Config**" in main  # the base URL
    assert "**Execute workflow**" in main and "sample" in main  # how to run the sample
    assert "**Summary**" in main and "## Cost summary" in text and "`total_cost_usd`" in text
    assert "enable the **Webhook**" in text
    nodes = [node for node in workflow["nodes"] if node["type"] != "n8n-nodes-base.stickyNote"]
    by_name = {node["name"]: node for node in nodes}
    # Every LLM step sits on a note of its own with its number, name and tier; no other node is on it.
    for primary in llm_steps(workflow):
        members = [by_name[primary], by_name[f"{primary}: mini fallback"]]
        holding = [note for note in notes if all(inside(box(member), box(note)) for member in members)]
        assert len(holding) == 1, primary
        (note,) = holding
        heading = note["parameters"]["content"].splitlines()[0]
        assert re.fullmatch(r"## \d\. .+ · (nano|mini|full)(, batch)?", heading), heading
        assert [node["name"] for node in nodes if overlap(box(node), box(note))] == [m["name"] for m in members]
    # Notes never overlap one another, so each group reads on its own.
    for index, note in enumerate(notes):
        for other in notes[index + 1 :]:
            assert not overlap(box(note), box(other)), (note["name"], other["name"])
    # Nodes never overlap one another.
    for index, node in enumerate(nodes):
        for other in nodes[index + 1 :]:
            assert not overlap(box(node), box(other)), (node["name"], other["name"])


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_the_manual_trigger_with_the_sample_is_the_default_run(name: str, templates: dict[str, Any]) -> None:
    """n8n's Execute workflow button runs the first enabled trigger by type priority, and a Webhook beats a
    Manual Trigger; so the Webhook ships disabled (enable it for production) and the Manual Trigger comes first."""
    workflow = templates[name]
    triggers = [node for node in workflow["nodes"] if node["type"].endswith(("Trigger", ".webhook"))]
    assert [node["type"] for node in triggers] == ["n8n-nodes-base.manualTrigger", "n8n-nodes-base.webhook"]
    manual, webhook = triggers
    assert workflow["nodes"][0] is manual and manual["name"] == "When clicking ‘Execute workflow’"
    assert manual["position"] == [0, 0] and webhook["position"][1] > 0
    assert all(node["position"][0] >= 0 for node in workflow["nodes"] if node["type"] != "n8n-nodes-base.stickyNote")
    assert webhook.get("disabled") is True and not manual.get("disabled")
    assert targets(workflow, manual["name"]) == ["Sample input"]


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_edges_run_left_to_right_without_loops(name: str, templates: dict[str, Any]) -> None:
    workflow = templates[name]
    nodes = {node["name"]: node for node in workflow["nodes"]}
    for source, by_type in workflow["connections"].items():
        for outputs in by_type["main"]:
            for target in outputs or []:
                assert nodes[target["node"]]["position"][0] > nodes[source]["position"][0], (source, target["node"])


@pytest.mark.parametrize("name", TEMPLATE_NAMES)
def test_both_entry_points_reach_the_summary_and_the_webhook_response(name: str, templates: dict[str, Any]) -> None:
    workflow = templates[name]
    nodes = {node["name"]: node for node in workflow["nodes"]}
    (webhook,) = [n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.webhook"]
    (manual,) = [n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.manualTrigger"]
    assert webhook["typeVersion"] == 2.1
    assert webhook["parameters"]["responseMode"] == "responseNode"
    assert webhook["parameters"]["httpMethod"] == "POST"
    assert webhook["parameters"]["path"] == "tierwise-" + name.removesuffix(".json")
    assert targets(workflow, manual["name"]) == ["Sample input"]
    assert targets(workflow, webhook["name"]) == targets(workflow, "Sample input") == ["Config"]
    json.loads(nodes["Sample input"]["parameters"]["jsonOutput"])
    for trigger in (webhook["name"], manual["name"]):
        assert {"Summary", "Respond to Webhook"} <= reachable(workflow, trigger)
    assert nodes["Summary"]["type"] == "n8n-nodes-base.code"
    assert targets(workflow, "Summary") == ["Respond to Webhook"]
    assert "total_cost_usd" in nodes["Summary"]["parameters"]["jsCode"]
    assert not workflow["connections"].get("Respond to Webhook")
    every = {name for name, node in nodes.items() if node["type"] != "n8n-nodes-base.stickyNote"}
    assert reachable(workflow, webhook["name"]) | reachable(workflow, manual["name"]) == every


# -- the validator catches planted mistakes -------------------------------------------------------------


def planted(name: str) -> dict[str, Any]:
    return copy.deepcopy(load_templates()[name])


def test_validator_rejects_a_bad_type_version(catalog: Catalog) -> None:
    workflow = planted("support-triage.json")
    node = next(n for n in workflow["nodes"] if n["name"] == "Classify Intent")
    node["typeVersion"] = 9
    assert all_problems(workflow, catalog) == [
        "'Classify Intent' (n8n-nodes-base.httpRequest@9): unknown typeVersion; "
        "n8n 2.8.4 has [1, 2, 3, 4, 4.1, 4.2, 4.3, 4.4]"
    ]


def test_validator_rejects_an_unknown_parameter(catalog: Catalog) -> None:
    workflow = planted("pr-review.json")
    node = next(n for n in workflow["nodes"] if n["name"] == "Judge Review")
    node["parameters"]["retries"] = 3
    node["parameters"]["options"]["followRedirect"] = True
    assert all_problems(workflow, catalog) == [
        "'Judge Review' (n8n-nodes-base.httpRequest@4.4).options.followRedirect: is not a parameter of this node",
        "'Judge Review' (n8n-nodes-base.httpRequest@4.4).retries: is not a parameter of this node",
    ]


def test_validator_rejects_a_hidden_parameter_and_a_bad_option_value(catalog: Catalog) -> None:
    workflow = planted("content-pipeline.json")
    node = next(n for n in workflow["nodes"] if n["name"] == "Draft Content")
    node["parameters"]["method"] = "FETCH"
    node["parameters"]["jsonQuery"] = "{}"
    node["parameters"]["options"]["response"]["response"]["responseFormat"] = "xml"
    note = next(n for n in workflow["nodes"] if n["type"] == "n8n-nodes-base.stickyNote")
    note["parameters"]["color"] = "yellow"
    assert all_problems(workflow, catalog) == [
        "'Draft Content' (n8n-nodes-base.httpRequest@4.4).method: 'FETCH' is not one of "
        "['DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT']",
        "'Draft Content' (n8n-nodes-base.httpRequest@4.4).options.response.response[0].responseFormat: 'xml' is not "
        "one of ['autodetect', 'file', 'json', 'text']",
        "'Draft Content' (n8n-nodes-base.httpRequest@4.4).jsonQuery: is not shown with these settings",
        "'Sticky Note' (n8n-nodes-base.stickyNote@1).color: 'yellow' is not a number",
    ]


def test_validator_rejects_a_dangling_connection_and_duplicates(catalog: Catalog) -> None:
    workflow = planted("research-synthesis.json")
    workflow["connections"]["Summary"]["main"][0].append({"node": "Slack", "type": "main", "index": 0})
    assert all_problems(workflow, catalog) == ["connections['Summary']: unknown target node 'Slack'"]
    workflow = planted("research-synthesis.json")
    workflow["connections"]["Ghost"] = {"main": [[{"node": "Summary", "type": "main", "index": 0}]]}
    names = [node["name"] for node in workflow["nodes"]]
    twin = copy.deepcopy(workflow["nodes"][names.index("Draft Synthesis")])
    workflow["nodes"].append(twin)
    del workflow["nodes"][names.index("Summary")]["position"]
    assert all_problems(workflow, catalog) == [
        f"nodes[{names.index('Summary')}].position must be a [number, number] tuple",
        f"nodes[{len(names)}].name: duplicate node name 'Draft Synthesis'",
        f"nodes[{len(names)}].id: duplicate node id {twin['id']!r}",
        "connections: unknown source node 'Ghost'",
    ]


def test_validator_rejects_bad_output_and_input_indexes(catalog: Catalog) -> None:
    workflow = planted("support-triage.json")
    workflow["connections"]["Classify Intent: mini fallback"]["main"].append(
        [{"node": "Summary", "type": "main", "index": 0}]
    )
    workflow["connections"]["Summary"]["main"][0][0]["index"] = 1
    workflow["connections"]["Close Spam"] = {"main": [[{"node": "Webhook", "type": "main", "index": 0}]]}
    workflow["nodes"].append({**workflow["nodes"][0], "id": str(uuid.uuid4()), "name": "Extra", "foo": 1})
    assert all_problems(workflow, catalog) == [f"nodes[{len(workflow['nodes']) - 1}]: unknown node key 'foo'"]
    workflow["nodes"].pop()
    assert all_problems(workflow, catalog) == [
        "connections['Classify Intent: mini fallback']: output 1 used, the node has 1",
        "connections['Close Spam']: 'Webhook' has no input 0",
        "connections['Summary']: 'Respond to Webhook' has no input 1",
    ]


def test_validator_rejects_a_credential_the_node_does_not_take_and_an_expression_where_none_is_allowed(
    catalog: Catalog,
) -> None:
    workflow = planted("document-extraction.json")
    node = next(n for n in workflow["nodes"] if n["name"] == "Extract Fields")
    node["credentials"] = {"slackApi": {"id": "1", "name": "Slack"}}
    code = next(n for n in workflow["nodes"] if n["name"] == "Summary")
    code["parameters"]["mode"] = "={{ 'runOnceForEachItem' }}"
    assert all_problems(workflow, catalog) == [
        "'Extract Fields' (n8n-nodes-base.httpRequest@4.4): takes no 'slackApi' credential",
        "'Summary' (n8n-nodes-base.code@2).mode: takes no expression",
    ]
