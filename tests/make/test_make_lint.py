"""nodes.tools.make_lint against real Make exports (ground truth) and against planted mistakes."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nodes.tools import make_lint, make_specs
from nodes.tools.make_lint import Finding, iml_references, lint_blueprint, lint_file, main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "make-blueprints"
V4_FIXTURES = ROOT / "tests" / "fixtures" / "make-blueprints-v4"
TEMPLATES = ROOT / "templates" / "make"

DEVOPS = FIXTURES / "real-export-mrlmbrown-devops-webhook-http-routers.blueprint.json"
INSTAGRAM = FIXTURES / "real-export-paoloronco-instagramreel-http-v3-json.blueprint.json"
AGENT = FIXTURES / "real-export-make-skills-ai-agent-webhook-respond.blueprint.json"
OFFICIAL = FIXTURES / "official-make-blueprints-webhook-router-error-handler.blueprint.json"
EXPORTS = [DEVOPS, INSTAGRAM, AGENT, OFFICIAL]

RSS = V4_FIXTURES / "rss-azure-openai-jsonstring-noauth-timeout-resume.blueprint.json"
NEWSAPI = V4_FIXTURES / "newsapi-apikey-keychain-get-plus-noauth-jsonstring-post.blueprint.json"
EXCHANGE = V4_FIXTURES / "exchange-rate-apikey-keychain-get-sheets.blueprint.json"
ELEVENLABS = V4_FIXTURES / "sheets-openai-elevenlabs-datastructure-noauth.blueprint.json"
GROQ = V4_FIXTURES / "webhook-groq-jsonstring-parsejson-router-airtable.blueprint.json"
V4_EXPORTS = [RSS, NEWSAPI, EXCHANGE, ELEVENLABS, GROQ]
V4_SPEC = V4_FIXTURES / "http-makerequest-v4-spec.json"

QUOTED = (
    "inside a JSON string; a value with a quote, backslash or newline breaks the body: serialise it with "
    "json:TransformToJSON and map {{N.json}} without quotes"
)


def literal(name: str, where: str, text: str) -> str:
    return (
        f"filter {name!r}: {where} operand a is the literal text {text!r}, not a mapped value, so the condition "
        f"compares fixed text; to compare the mapped value write {{{{{text}}}}}"
    )


def held(where: str, value: Any) -> str:
    return f"{where} holds an id of the exporting account ({value!r}); leave it out and attach your own after import"


def labelled(key: str) -> str:
    return f"metadata.restore.parameters.{key} carries the exporting account's label; remove it"


def unset(name: str, label: str) -> str:
    return f"mapper.{name} is required ({label}); without it the module runs on Make's default: set it"


def credential(where: str, name: str) -> str:
    return (
        f"mapper.{where} writes the credential {name} into the blueprint; put the key in a keychain instead "
        "(parameters.authenticationType apiKey, the key under Credentials)"
    )


def ignored(where: str, condition: str) -> str:
    return f"{where} is set, but the module ignores it unless {condition}"


def v3_field(where: str, instead: str) -> str:
    return f"{where} is not a field of this module (an http:ActionSendData v3 field; v4 {instead})"


JSON_STRING = "contentType is json and inputMethod is jsonString"

NEEDS_DLQ = (
    "builtin:Break needs incomplete executions: set metadata.scenario.dlq to true "
    "(scenario settings: Allow storing of incomplete executions)"
)
NOT_BEFORE = "maps {{{{{0}.…}}}} but module {0} does not run before this module on its path"
NOT_A_WEBHOOK_SCENARIO = "a webhook response only answers a scenario started by gateway:CustomWebHook"


def summary(findings: list[Finding]) -> list[tuple[str, int | None, str | None, str]]:
    return [(f.level, f.module_id, f.module, f.message) for f in findings]


# -- real exports -----------------------------------------------------------------------------------------


def test_devops_export_broken_filter_operands_are_warnings() -> None:
    failed, succeeded, first = "Pipeline Failed", "Pipeline Succeeded", "conditions[0][0]"
    status, conclusion = "1.workflow_run.status", "1.workflow_run.conclusion"
    assert summary(lint_file(DEVOPS)) == [
        (
            "warning",
            19,
            "http:ActionSendData@3",
            f"mapper.data maps {{{{1.repository.full_name}}}} (and 3 more) {QUOTED}",
        ),
        ("warning", 5, "google-sheets:updateRow@2", literal(failed, first, status)),
        ("warning", 5, "google-sheets:updateRow@2", literal(failed, "conditions[0][1]", conclusion)),
        ("warning", 21, "google-sheets:addRow@2", literal(succeeded, first, conclusion)),
        ("warning", 8, "github:createIssue@4", literal(succeeded, first, conclusion)),
    ]


def test_other_real_exports_pass_without_findings_but_the_quoted_mappings() -> None:
    assert lint_file(INSTAGRAM) == []
    assert lint_file(AGENT) == []
    v4 = "http:MakeRequest@4"
    assert summary(lint_file(OFFICIAL)) == [
        ("warning", 3, v4, f"mapper.jsonStringBodyContent maps {{{{1.email}}}} (and 1 more) {QUOTED}"),
        ("warning", 3, v4, unset("stopOnHttpError", "Return error if HTTP request fails")),
        ("warning", 3, v4, unset("allowRedirects", "Allow redirects")),
        ("warning", 3, v4, unset("shareCookies", "Share cookies with other HTTP modules")),
        ("warning", 3, v4, unset("requestCompressedContent", "Request compressed content")),
    ]


def test_real_exports_pass_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(path) for path in EXPORTS]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 10 and all(": warning: module " in line for line in lines)
    assert lines[1] == (
        f"{DEVOPS}: warning: module 5 (google-sheets:updateRow@2): "
        + literal("Pipeline Failed", "conditions[0][0]", "1.workflow_run.status")
    )
    assert err == "4 files checked: 0 errors, 10 warnings\n"
    assert main(["--strict", str(DEVOPS)]) == 1


def test_real_exports_are_not_publishable_as_they_are() -> None:
    errors = [f for f in lint_file(DEVOPS, publishable=True) if f.level == "error"]
    assert [(f.module_id, f.message) for f in errors] == [
        (1, held("parameters.hook", 1577631)),
        (1, labelled("hook")),
        (5, held("parameters.__IMTCONN__", 6285186)),
        (5, labelled("__IMTCONN__")),
        (21, held("parameters.__IMTCONN__", 6285186)),
        (21, labelled("__IMTCONN__")),
    ]
    agent = {
        (f.module_id, f.message.split(" holds")[0]) for f in lint_file(AGENT, publishable=True) if "holds" in f.message
    }
    assert agent == {(1, "parameters.hook"), (2, "parameters.makeConnectionId"), (4, "parameters.__IMTCONN__")}
    assert lint_file(OFFICIAL, publishable=True) == lint_file(OFFICIAL)


def test_built_in_specs_are_the_ones_copied_from_real_exports() -> None:
    fixture = json.loads((FIXTURES / "module-specs-from-real-exports.json").read_text(encoding="utf-8"))
    assert make_specs.LEGACY_SPECS == fixture
    assert make_lint.MODULE_SPECS == {**fixture, "http:MakeRequest@4": make_specs.HTTP_V4_SPEC}


# -- real exports of the HTTP app v4 ----------------------------------------------------------------------


def http_v4_modules(path: Path) -> list[dict[str, Any]]:
    def walk(flow: list[dict[str, Any]]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for item in flow:
            found.append(item)
            for nested in [route["flow"] for route in item.get("routes", [])] + [item.get("onerror", [])]:
                found.extend(walk(nested))
        return found

    flow = json.loads(path.read_text(encoding="utf-8"))["flow"]
    return [item for item in walk(flow) if item["module"] == "http:MakeRequest" and item["version"] == 4]


def shown_when(text: str) -> dict[str, list[str]]:
    """The spec file's prose condition ("contentType == 'json' and inputMethod == 'jsonString'") as data."""
    condition = text.split(" (")[0]
    return {name: [value.strip("'")] for name, value in (part.split(" == ") for part in condition.split(" and "))}


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def test_http_v4_spec_is_the_field_spec_of_the_real_v4_exports() -> None:
    fixture = json.loads(V4_SPEC.read_text(encoding="utf-8"))
    spec = make_specs.HTTP_V4_SPEC
    documented = [entry for entry in fixture["not_in_any_observed_expect"] if entry["name"].isidentifier()]
    assert spec["parameters"] == [field["definition"] for field in fixture["parameters"]] + [
        {"name": entry["name"], "type": entry["type_claimed"]} for entry in documented if entry["where"] == "parameters"
    ]
    observed = [
        field["definition"]
        if field["definitions_identical_across_sources"]
        else {key: value for key, value in field["definition"].items() if key != "spec"}  # it mirrors a data structure
        for field in fixture["expect"]
    ]
    assert spec["expect"] == observed + [
        {"name": entry["name"], "type": "array"} for entry in documented if entry["where"] == "mapper"
    ]
    conditions = [*fixture["parameters"], *fixture["expect"], *documented]
    assert spec["shown_when"] == {
        entry["name"]: shown_when(entry["shown_when"]) for entry in conditions if "shown_when" in entry
    }


def test_http_v4_spec_matches_every_definition_the_exports_carry() -> None:
    built_in = {
        field["name"]: canonical(field)
        for field in [*make_specs.HTTP_V4_SPEC["parameters"], *make_specs.HTTP_V4_SPEC["expect"]]
    }
    seen = 0
    for path in V4_EXPORTS:
        for item in http_v4_modules(path):
            for field in [*item["metadata"].get("parameters", []), *item["metadata"].get("expect", [])]:
                if field["name"] == "dataStructureBodyContent":
                    field = {key: value for key, value in field.items() if key != "spec"}
                assert canonical(field) == built_in[field["name"]], (path.name, item["id"], field["name"])
                seen += 1
    # 13 JSON-string POSTs (S1's 11, S2 #6, S5 #2), 2 GETs with a keychain (S2 #1, S3 #1), 2 data-structure POSTs (S4)
    assert seen == 13 * (3 + 14) + 2 * (4 + 12) + 2 * (3 + 15)


def test_real_v4_exports_pass_with_warnings_only_for_keys_and_hand_built_bodies() -> None:
    v4 = "http:MakeRequest@4"
    rss = [50, 51, 52, 53, 55, 56, 57, 58, 60, 61]
    assert summary(lint_file(RSS)) == [
        *[("warning", n, v4, f"mapper.jsonStringBodyContent maps {{{{escapeJSON({m}.text)}}}} {QUOTED}") for n, m in
          zip(rss, [7, 23, 24, 25, 27, 28, 29, 30, 32, 33], strict=True)],
        ("warning", 8, v4, f"mapper.jsonStringBodyContent maps {{{{escapeJSON(50.data.choices[].message.content)}}}} "
         f"(and 9 more) {QUOTED}"),
    ]  # fmt: skip
    assert summary(lint_file(NEWSAPI)) == [
        ("warning", 6, v4, f"mapper.jsonStringBodyContent maps {{{{5.title}}}} (and 5 more) {QUOTED}")
    ]
    assert lint_file(EXCHANGE) == []
    assert summary(lint_file(ELEVENLABS)) == [("warning", 9, v4, credential("headers[1]", "xi-api-key"))]
    assert summary(lint_file(GROQ)) == [
        ("warning", 2, v4, f"mapper.jsonStringBodyContent maps {{{{24.message}}}} {QUOTED}"),
        ("warning", 2, v4, credential("headers[1]", "Authorization")),
    ]
    assert main([str(path) for path in V4_EXPORTS]) == 0


def test_real_v4_exports_are_not_publishable_with_their_keychains_and_keys() -> None:
    def errors(path: Path) -> list[tuple[int | None, str]]:
        return [(f.module_id, f.message) for f in lint_file(path, publishable=True) if f.level == "error"]

    keychain = [(1, held("parameters.apiKeyKeychain", 183702)), (1, labelled("apiKeyKeychain"))]
    assert errors(NEWSAPI) == keychain  # an empty proxyKeychain, labelled "Choose a key", is not an account's
    assert errors(EXCHANGE)[:2] == [(1, held("parameters.apiKeyKeychain", 135402)), (1, labelled("apiKeyKeychain"))]
    assert (9, credential("headers[1]", "xi-api-key")) in errors(ELEVENLABS)
    assert (2, credential("headers[1]", "Authorization")) in errors(GROQ)
    assert (9, held("mapper.bodyDataStructure", 299818)) in errors(ELEVENLABS)


def test_operators_are_makes_list() -> None:
    assert len(make_lint.OPERATORS) == 2 + 20 + 24 + 10 + 2
    assert {"text:startwith", "text:notpattern:ci", "semver:lessorequal", "array:notcontain:ci", "exist"} <= (
        make_lint.OPERATORS
    )
    assert "text:startswith" not in make_lint.OPERATORS and "array:equal:ci" not in make_lint.OPERATORS


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ("{{3.data.label}}", [3]),
        ("{{`1`}}", [1]),
        ("{{1.`0`}} and {{12.headers.`x-id`}}", [1, 12]),
        ("{{5.items[1].title}}", [5]),
        ("{{3.data[].url}}", [3]),
        ("{{substring(1.workflow_run.head_sha; 0; 7)}}", [1]),
        ('{{last(map(40.data.items; "mediaLink"))}}', [40]),
        ('{{formatDate(now; "YYYY-MM-DD 1.x")}}', []),
        ("{{3.total * 1.2}}", [3]),
        ("1.workflow_run.status", []),
        ("{{1}}", []),
        ("{{if(2.ok; 4.a; 5.b)}}", [2, 4, 5]),
    ],
)
def test_iml_references(text: str, ids: list[int]) -> None:
    assert iml_references(text) == ids


# -- planted mistakes -------------------------------------------------------------------------------------


def template(name: str) -> dict[str, Any]:
    return json.loads((TEMPLATES / f"{name}.json").read_text(encoding="utf-8"))


def module(blueprint: dict[str, Any], module_id: int) -> dict[str, Any]:
    def search(flow: list[dict[str, Any]]) -> dict[str, Any] | None:
        for item in flow:
            if item["id"] == module_id:
                return item
            for nested in [route["flow"] for route in item.get("routes", [])] + [item.get("onerror", [])]:
                found = search(nested)
                if found is not None:
                    return found
        return None

    found = search(blueprint["flow"])
    assert found is not None
    return found


def header(blueprint: dict[str, Any], module_id: int, index: int) -> dict[str, Any]:
    headers: list[dict[str, Any]] = module(blueprint, module_id)["mapper"]["headers"]
    return headers[index]


def plant(name: str, change: Callable[[dict[str, Any]], Any], **options: Any) -> list[tuple[str, int | None, str]]:
    blueprint = copy.deepcopy(template(name))
    assert lint_blueprint(blueprint, publishable=True) == []
    change(blueprint)
    return [(f.level, f.module_id, f.message) for f in lint_blueprint(blueprint, **options)]


def route_filter(blueprint: dict[str, Any]) -> dict[str, Any]:
    """support-triage: the filter of the first route after the label router."""
    result: dict[str, Any] = module(blueprint, 6)["filter"]
    return result


TIMEOUT_500 = "mapper.timeout is '500', outside the allowed range 1–300"
IGNORE = {"id": 91, "module": "builtin:Ignore", "version": 1, "metadata": {"designer": {"x": 0, "y": 0}}}


def edit(module_id: int, key: str, old: str, new: str) -> Callable[[dict[str, Any]], Any]:
    """A planted change: replace ``old`` with ``new`` in one module's mapper field."""

    def change(blueprint: dict[str, Any]) -> None:
        mapper = module(blueprint, module_id)["mapper"]
        assert old in mapper[key]
        mapper[key] = mapper[key].replace(old, new)

    return change


BREAK = {"retry": True, "count": "3", "interval": "5"}
MAIN_BREAK = {
    "id": 90,
    "module": "builtin:Break",
    "version": 1,
    "mapper": BREAK,
    "metadata": {"designer": {"x": 1, "y": 1}},
}

PLANTED: list[tuple[str, str, Callable[[dict[str, Any]], Any], list[tuple[str, int | None, str]]]] = [
    (
        "duplicate id across an error route and a route",
        "support-triage",
        lambda b: module(b, 21).update(id=9),
        [("error", 9, "id 9 is already used by the module at flow[2].onerror[1]; ids must be unique across routes "
          "and error routes")],
    ),
    (
        "id zero",
        "support-triage",
        lambda b: module(b, 9).update(id=0),
        [("error", 0, "'id' must be an integer >= 1, not 0")],
    ),
    (
        "id as text",
        "support-triage",
        lambda b: module(b, 9).update(id="9"),
        [("error", None, "'id' must be an integer >= 1, not '9'")],
    ),
    (
        "module name pattern",
        "support-triage",
        lambda b: module(b, 6).update(module="HTTP:MakeRequest"),
        [("error", 6, "'module' must look like app:ModuleName, not 'HTTP:MakeRequest'")],
    ),
    (
        "version missing",
        "support-triage",
        lambda b: module(b, 4).pop("version"),
        [("error", 4, "'version' must be the module's version number, not None")],
    ),
    (
        "designer position missing",
        "support-triage",
        lambda b: module(b, 4)["metadata"]["designer"].pop("x"),
        [("error", 4, "metadata.designer needs numeric x and y (the module's place on the canvas)")],
    ),
    (
        "reference to a module that does not exist",
        "support-triage",
        edit(6, "jsonStringBodyContent", "{{2.json}}", "{{12.json}}"),
        [("error", 6, "maps {{12.…}} but there is no module 12")],
    ),
    (
        "reference to a module on a sibling route",
        "support-triage",
        edit(9, "body", "{{4.json}}", "{{7.json}}"),
        [("error", 9, NOT_BEFORE.format(7))],
    ),
    (
        "reference to a module that runs later",
        "support-triage",
        edit(3, "jsonStringBodyContent", "{{2.json}}", "{{4.json}}"),
        [("error", 3, NOT_BEFORE.format(4))],
    ),
    (
        "reference from an error route to a module of the main path after the failing one",
        "support-triage",
        lambda b: module(b, 21)["mapper"].update(data="{{4.json}}"),
        [("error", 21, NOT_BEFORE.format(4))],
    ),
    (
        "unknown operator (the make-skills docs' spelling)",
        "support-triage",
        lambda b: route_filter(b)["conditions"][1][0].update(o="text:startswith"),
        [("error", 6, "filter 'billing or bug': conditions[1][0] has unknown operator 'text:startswith'; "
          "did you mean 'text:startwith'?")],
    ),
    (
        "binary operator without b",
        "support-triage",
        lambda b: route_filter(b)["conditions"][0][0].pop("b"),
        [("error", 6, "filter 'billing or bug': conditions[0][0] uses text:equal, which compares a with b, "
          "but has no b")],
    ),
    (
        "conditions not a list of AND-groups",
        "support-triage",
        lambda b: route_filter(b).update(conditions=[route_filter(b)["conditions"][0][0]]),
        [("error", 6, "filter 'billing or bug': conditions[0] must be a non-empty list of {a, o, b} (AND)")],
    ),
    (
        "operand typed as text instead of mapped",
        "support-triage",
        lambda b: module(b, 9)["filter"]["conditions"][0][0].update(a="3.data.output.label"),
        [("warning", 9, literal("feature_request or other", "conditions[0][0]", "3.data.output.label"))],
    ),
    (
        "filter on the trigger",
        "support-triage",
        lambda b: b["flow"][0].update(filter={"name": "x", "conditions": []}),
        [("error", 1, "the first module of a scenario cannot have a filter")],
    ),
    (
        "method in capitals",
        "support-triage",
        lambda b: module(b, 3)["mapper"].update(method="POST"),
        [("error", 3, "mapper.method is 'POST', not one of get, head, post, put, patch, delete, options "
          "(values are case-sensitive: 'post')")],
    ),
    (
        "body content type outside the enum (v3's value)",
        "support-triage",
        lambda b: module(b, 3)["mapper"].update(contentType="application/json"),
        [
            ("error", 3, ignored("mapper.inputMethod", "contentType is json")),
            ("error", 3, ignored("mapper.jsonStringBodyContent", JSON_STRING)),
            ("error", 3, "mapper.contentType is 'application/json', not one of json, multipart, urlEncoded, custom"),
        ],
    ),
    (
        "timeout over 300 s",
        "support-triage",
        lambda b: module(b, 3)["mapper"].update(timeout="500"),
        [("error", 3, TIMEOUT_500)],
    ),
    (
        "timeout not a number",
        "support-triage",
        lambda b: module(b, 3)["mapper"].update(timeout="2 min"),
        [("error", 3, "mapper.timeout must be a number, not '2 min'")],
    ),
    (
        "response headers written as name/value",
        "support-triage",
        lambda b: module(b, 8)["mapper"].update(headers=[{"name": "Content-Type", "value": "application/json"}]),
        [("error", 8, "mapper.headers[1] has name but its fields are key/value (key required)")],
    ),
    (
        "request headers written as key/value",
        "support-triage",
        lambda b: header(b, 3, 0).update(key=header(b, 3, 0).pop("name")),
        [("error", 3, "mapper.headers[1] has key but its fields are name/value (name required)")],
    ),
    (
        "required field missing",
        "support-triage",
        lambda b: module(b, 3)["mapper"].pop("url"),
        [("error", 3, "mapper.url is required (URL)")],
    ),
    (
        "required switch missing (imports, on Make's default)",
        "support-triage",
        lambda b: module(b, 3)["mapper"].pop("parseResponse"),
        [("warning", 3, unset("parseResponse", "Parse response"))],
    ),
    (
        "boolean written as text",
        "support-triage",
        lambda b: module(b, 3)["mapper"].update(stopOnHttpError="false"),
        [("error", 3, "mapper.stopOnHttpError must be true or false, not 'false'")],
    ),
    (
        "field the module does not have",
        "support-triage",
        lambda b: module(b, 3)["mapper"].update(bodyJson="{}"),
        [("warning", 3, "mapper.bodyJson is not a field of this module")],
    ),
    (
        "response status under 100",
        "support-triage",
        lambda b: module(b, 8)["mapper"].update(status="99"),
        [("error", 8, "mapper.status is '99', outside the allowed range 100–…")],
    ),
    (
        "request body that is not JSON",
        "support-triage",
        edit(6, "jsonStringBodyContent", '",\n  "max_words"', '"\n  "max_words"'),
        [("error", 6, "mapper.jsonStringBodyContent is not valid JSON once its mappings are filled in: "
          "Expecting ',' delimiter: line 4 column 3 (char 213)")],
    ),
    (
        "mapped value inside a JSON string",
        "support-triage",
        edit(6, "jsonStringBodyContent", "{{2.json}}", '"Ticket: {{1.body}}"'),
        [("warning", 6, f"mapper.jsonStringBodyContent maps {{{{1.body}}}} {QUOTED}")],
    ),
    (
        "directive on the main path",
        "support-triage",
        lambda b: b["flow"].insert(4, MAIN_BREAK),
        [
            ("error", 90, "builtin:Break is an error handler: it can only be used in an error route (onerror)"),
            ("error", 90, NEEDS_DLQ),
        ],
    ),
    (
        "directive before the end of its route",
        "support-triage",
        lambda b: module(b, 3)["onerror"].reverse(),
        [
            ("error", 21, "builtin:Resume ends its route; the modules after it never run"),
            ("error", 21, NOT_BEFORE.format(20)),
        ],
    ),
    (
        "router with an error route",
        "support-triage",
        lambda b: module(b, 5).update(onerror=[IGNORE]),
        [("error", 5, "builtin:BasicRouter cannot have an error route")],
    ),
    (
        "routes on a module that is not a router",
        "support-triage",
        lambda b: module(b, 4).update(routes=[]),
        [("error", 4, "only builtin:BasicRouter has 'routes'")],
    ),
    (
        "Break without incomplete executions",
        "research-synthesis",
        lambda b: b["metadata"]["scenario"].update(dlq=False),
        [("error", n, NEEDS_DLQ) for n in (31, 65, 35, 69, 61, 62)],
    ),
    (
        "Break retries out of range",
        "research-synthesis",
        lambda b: module(b, 31)["mapper"].update(count="0", interval="50000"),
        [
            ("error", 31, "mapper.count is '0', outside the allowed range 1–10000"),
            ("error", 31, "mapper.interval is '50000', outside the allowed range 1–44640"),
        ],
    ),
    (
        "webhook response in a scenario not started by a webhook",
        "support-triage",
        lambda b: b["flow"][0].update(module="gateway:CustomMailHook"),
        [("error", n, NOT_A_WEBHOOK_SCENARIO) for n in (25, 28, 8, 9, 10)],
    ),
    (
        "unclosed mapping",
        "support-triage",
        lambda b: module(b, 8)["mapper"].update(status="{{3.statusCode"),
        [("warning", 8, "unclosed '{{' in '{{3.statusCode'")],
    ),
    (
        "bare bundle reference",
        "support-triage",
        lambda b: module(b, 2)["mapper"].update(object="{{1}}"),
        [("warning", 2, "{{1}} maps nothing; the whole bundle is {{`1`}}")],
    ),
    (
        "metadata version",
        "support-triage",
        lambda b: b["metadata"].update(version=2),
        [("error", None, "metadata.version must be 1, not 2")],
    ),
    (
        "designer orphans missing",
        "support-triage",
        lambda b: b["metadata"]["designer"].pop("orphans"),
        [("error", None, "metadata.designer.orphans must be a list (use [])")],
    ),
    (
        "scenario setting of the wrong type",
        "support-triage",
        lambda b: b["metadata"]["scenario"].update(dlq="yes"),
        [("error", None, "metadata.scenario.dlq must be true or false")],
    ),
    (
        "note on a module that does not exist",
        "support-triage",
        lambda b: b["metadata"]["notes"][0].update(moduleIds=[77]),
        [("warning", None, "metadata.notes points at module 77, which does not exist")],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("case", "name", "change", "expected"), PLANTED, ids=[case[0] for case in PLANTED])
def test_planted_mistake_is_caught(
    case: str, name: str, change: Callable[[dict[str, Any]], Any], expected: list[tuple[str, int | None, str]]
) -> None:
    assert plant(name, change) == expected


def settings(blueprint: dict[str, Any], module_id: int) -> dict[str, Any]:
    result: dict[str, Any] = module(blueprint, module_id)["parameters"]
    return result


def mapper(blueprint: dict[str, Any], module_id: int) -> dict[str, Any]:
    result: dict[str, Any] = module(blueprint, module_id)["mapper"]
    return result


def move(
    source: Callable[[dict[str, Any]], dict[str, Any]],
    key: str,
    target: Callable[[dict[str, Any]], dict[str, Any]],
    new_key: str,
) -> Callable[[dict[str, Any]], None]:
    """A planted change: move one field (``source(b)[key]``) to ``target(b)[new_key]``."""

    def change(blueprint: dict[str, Any]) -> None:
        target(blueprint)[new_key] = source(blueprint).pop(key)

    return change


KEY_IN_HEADER = {"name": "X-Api-Key", "value": "tw_live_0123456789"}
HEADER_NAME = "^[-!#$%&'*+.^_`|~0-9A-Za-z]+$"

#: Mistakes in http:MakeRequest v4 modules: support-triage's module 3 calls Tierwise with the API-key keychain,
#: 20 asks the mini fallback (no authentication); research-synthesis's 5 also sends an Idempotency-Key.
PLANTED_V4: list[tuple[str, str, Callable[[dict[str, Any]], Any], list[tuple[str, int | None, str]]]] = [
    (
        "authentication type in the wrong case",
        "support-triage",
        lambda b: settings(b, 3).update(authenticationType="apikey"),
        [("error", 3, "parameters.authenticationType is 'apikey', not one of noAuth, apiKey, basicAuth, oAuth "
          "(values are case-sensitive: 'apiKey')")],
    ),
    (
        "authentication type missing",
        "support-triage",
        lambda b: settings(b, 3).pop("authenticationType"),
        [("error", 3, "parameters.authenticationType is required (Authentication type)")],
    ),
    (
        "authentication type in the mapper",
        "support-triage",
        move(lambda b: settings(b, 3), "authenticationType", lambda b: mapper(b, 3), "authenticationType"),
        [
            ("error", 3, "parameters.authenticationType is required (Authentication type)"),
            ("warning", 3, "mapper.authenticationType is not a field of this module; it belongs in parameters"),
        ],
    ),
    (
        "the API key typed into a header, the v3 way",
        "support-triage",
        lambda b: mapper(b, 3)["headers"].append(KEY_IN_HEADER),
        [("warning", 3, credential("headers[2]", "X-Api-Key"))],
    ),
    (
        "a token typed into a query parameter",
        "support-triage",
        lambda b: mapper(b, 20).update(queryParameters=[{"name": "access_token", "value": "tw_live_0123456789"}]),
        [("warning", 20, credential("queryParameters[1]", "access_token"))],
    ),
    (
        "a mapped credential is not a key in the file",
        "support-triage",
        lambda b: mapper(b, 20)["headers"].append({"name": "Authorization", "value": "Bearer {{1.token}}"}),
        [],
    ),
    (
        "a keychain on a module that does not authenticate with one",
        "support-triage",
        lambda b: settings(b, 20).update(apiKeyKeychain=183702),
        [("error", 20, ignored("parameters.apiKeyKeychain", "authenticationType is apiKey"))],
    ),
    (
        "JSON body without the json content type",
        "support-triage",
        lambda b: mapper(b, 3).pop("contentType"),
        [
            ("error", 3, ignored("mapper.inputMethod", "contentType is json")),
            ("error", 3, ignored("mapper.jsonStringBodyContent", JSON_STRING)),
        ],
    ),
    (
        "JSON text body with the data-structure input method",
        "support-triage",
        lambda b: mapper(b, 3).update(inputMethod="dataStructure"),
        [("error", 3, ignored("mapper.jsonStringBodyContent", JSON_STRING))],
    ),
    (
        "input method missing",
        "support-triage",
        lambda b: mapper(b, 3).pop("inputMethod"),
        [
            ("error", 3, ignored("mapper.jsonStringBodyContent", JSON_STRING)),
            ("error", 3, "mapper.inputMethod is required (Body input method)"),
        ],
    ),
    (
        "empty JSON body",
        "support-triage",
        lambda b: mapper(b, 3).update(jsonStringBodyContent=""),
        [("error", 3, "mapper.jsonStringBodyContent is required (Body content)")],
    ),
    (
        "timeout zero",
        "support-triage",
        lambda b: mapper(b, 3).update(timeout=0),
        [("error", 3, "mapper.timeout is 0, outside the allowed range 1–300")],
    ),
    (
        "timeout over 300 s as a number",
        "support-triage",
        lambda b: mapper(b, 20).update(timeout=301),
        [("error", 20, "mapper.timeout is 301, outside the allowed range 1–300")],
    ),
    (
        "header name that is not a token",
        "research-synthesis",
        lambda b: header(b, 5, 1).update(name="Idempotency Key"),
        [("error", 5, f"mapper.headers[2].name is 'Idempotency Key', which does not match {HEADER_NAME}")],
    ),
    (
        "v3 body field in a v4 module",
        "support-triage",
        move(lambda b: mapper(b, 3), "jsonStringBodyContent", lambda b: mapper(b, 3), "data"),
        [
            ("error", 3, "mapper.jsonStringBodyContent is required (Body content)"),
            ("warning", 3, v3_field("mapper.data", "sends jsonStringBodyContent, with contentType json and "
                                    "inputMethod jsonString")),
        ],
    ),
    (
        "v3 error switch in a v4 module",
        "support-triage",
        move(lambda b: mapper(b, 3), "stopOnHttpError", lambda b: settings(b, 3), "handleErrors"),
        [
            ("warning", 3, v3_field("parameters.handleErrors", "has mapper.stopOnHttpError")),
            ("warning", 3, unset("stopOnHttpError", "Return error if HTTP request fails")),
        ],
    ),
    (
        "v3 query string in a v4 module",
        "support-triage",
        lambda b: mapper(b, 3).update(qs=[]),
        [("warning", 3, v3_field("mapper.qs", "has queryParameters"))],
    ),
    (
        "query parameters written as key/value",
        "support-triage",
        lambda b: mapper(b, 3).update(queryParameters=[{"key": "a", "value": "b"}]),
        [("error", 3, "mapper.queryParameters[1] has key but its fields are name/value (name required)")],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("case", "name", "change", "expected"), PLANTED_V4, ids=[case[0] for case in PLANTED_V4])
def test_planted_v4_mistake_is_caught(
    case: str, name: str, change: Callable[[dict[str, Any]], Any], expected: list[tuple[str, int | None, str]]
) -> None:
    assert plant(name, change) == expected


def plant_in_export(path: Path, change: Callable[[dict[str, Any]], Any]) -> list[tuple[str, int | None, str]]:
    """The findings a change adds to a real export's."""
    blueprint = json.loads(path.read_text(encoding="utf-8"))
    before = [(f.level, f.module_id, f.message) for f in lint_blueprint(blueprint)]
    change(blueprint)
    return [
        (f.level, f.module_id, f.message)
        for f in lint_blueprint(blueprint)
        if (f.level, f.module_id, f.message) not in before
    ]


def test_planted_mistakes_in_real_v4_exports_are_caught() -> None:
    assert plant_in_export(NEWSAPI, lambda b: mapper(b, 1).update(method="GET")) == [
        ("error", 1, "mapper.method is 'GET', not one of get, head, post, put, patch, delete, options "
         "(values are case-sensitive: 'get')")
    ]  # fmt: skip
    assert plant_in_export(RSS, lambda b: mapper(b, 50).update(timeout="301")) == [
        ("error", 50, "mapper.timeout is '301', outside the allowed range 1–300")
    ]
    assert plant_in_export(EXCHANGE, lambda b: settings(b, 1).update(authenticationType="noAuth")) == [
        ("error", 1, ignored("parameters.apiKeyKeychain", "authenticationType is apiKey"))
    ]
    assert plant_in_export(GROQ, lambda b: header(b, 2, 1).update(name="Content Type")) == [
        ("error", 2, f"mapper.headers[2].name is 'Content Type', which does not match {HEADER_NAME}")
    ]


def test_a_key_in_a_header_is_an_error_when_publishing() -> None:
    def type_the_key(blueprint: dict[str, Any]) -> None:
        mapper(blueprint, 3)["headers"].append(KEY_IN_HEADER)

    assert plant("support-triage", type_the_key) == [("warning", 3, credential("headers[2]", "X-Api-Key"))]
    assert plant("support-triage", type_the_key, publishable=True) == [
        ("error", 3, credential("headers[2]", "X-Api-Key"))
    ]


def test_account_ids_are_refused_only_when_publishing() -> None:
    def attach(blueprint: dict[str, Any]) -> None:
        blueprint["flow"][0]["parameters"]["hook"] = 1577631
        blueprint["flow"][0]["metadata"]["restore"] = {"parameters": {"hook": {"label": "my hook"}}}

    assert plant("support-triage", attach) == []
    assert plant("support-triage", attach, publishable=True) == [
        ("error", 1, held("parameters.hook", 1577631)),
        ("error", 1, labelled("hook")),
    ]

    def pick_a_key(blueprint: dict[str, Any]) -> None:
        settings(blueprint, 3)["apiKeyKeychain"] = 183702
        module(blueprint, 3)["metadata"]["restore"]["parameters"]["apiKeyKeychain"] = {"label": "Tierwise prod"}

    assert plant("support-triage", pick_a_key) == []
    assert plant("support-triage", pick_a_key, publishable=True) == [
        ("error", 3, held("parameters.apiKeyKeychain", 183702)),
        ("error", 3, labelled("apiKeyKeychain")),
    ]


# -- command line -----------------------------------------------------------------------------------------


def test_command_line_exit_status_and_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = copy.deepcopy(template("support-triage"))
    module(broken, 3)["mapper"]["timeout"] = "500"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    assert main([str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{path}: error: module 3 (http:MakeRequest@4): " + TIMEOUT_500 + "\n"
    assert err == "1 file checked: 1 error, 0 warnings\n"
    assert main([str(TEMPLATES / "support-triage.json"), "--publishable", "--strict"]) == 0


def test_command_line_unreadable_and_invalid_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text('{"name": "x", "flow": [', encoding="utf-8")
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    assert main([str(tmp_path / "bad.json"), str(tmp_path / "missing.json"), str(tmp_path / "list.json")]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{tmp_path / 'bad.json'}: error: blueprint: not valid JSON: Expecting value at line 1 column 24"
    assert lines[1].startswith(f"{tmp_path / 'missing.json'}: error: blueprint: cannot read the file: ")
    assert lines[2] == f"{tmp_path / 'list.json'}: error: blueprint: a blueprint is a JSON object, not list"


def test_command_line_extra_specs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    narrow = copy.deepcopy(make_specs.HTTP_V4_SPEC)  # a spec file replaces the built-in spec of its module
    next(field for field in narrow["expect"] if field["name"] == "method")["validate"]["enum"] = ["get", "post"]
    (tmp_path / "specs.json").write_text(json.dumps({"http:MakeRequest@4": narrow}), encoding="utf-8")
    official = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    official["flow"][1]["routes"][0]["flow"][0]["mapper"]["method"] = "patch"
    (tmp_path / "official.json").write_text(json.dumps(official), encoding="utf-8")
    assert main([str(tmp_path / "official.json")]) == 0
    capsys.readouterr()
    assert main([str(tmp_path / "official.json"), "--specs", str(tmp_path / "specs.json")]) == 1
    errors = [line for line in capsys.readouterr().out.splitlines() if ": error: " in line]
    assert errors == [
        f"{tmp_path / 'official.json'}: error: module 3 (http:MakeRequest@4): mapper.method is 'patch', not one of "
        "get, post"
    ]
    assert main([str(OFFICIAL), "--specs", str(tmp_path / "missing.json")]) == 2


def test_template_api_wrapper_is_unwrapped() -> None:
    wrapped = {"blueprint": template("pr-review"), "scheduling": {"type": "immediately"}}
    assert lint_blueprint(wrapped, publishable=True) == []
    assert lint_blueprint({"response": {"blueprint": template("pr-review")}}) == []


def test_linter_reports_instead_of_raising_on_mangled_blueprints() -> None:
    documents = [json.loads(path.read_text(encoding="utf-8")) for path in [*EXPORTS, *TEMPLATES.glob("*.json")]]
    odd: list[Any] = [None, 0, -1, 1.5, True, "", "{{", "{{9999.a}}", "}}{{", [], {}, [[1]], [{"a": None}], {"flow": 3}]

    def places(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        children: list[tuple[Any, ...]] = []
        if isinstance(value, dict):
            children = [p for key, item in value.items() for p in places(item, (*path, key))]
        elif isinstance(value, list):
            children = [p for index, item in enumerate(value) for p in places(item, (*path, index))]
        return [path, *children]

    rng = random.Random(20250106)
    for _ in range(400):
        blueprint = copy.deepcopy(rng.choice(documents))
        for path in rng.sample(places(blueprint)[1:], 3):
            target = blueprint
            try:
                for key in path[:-1]:
                    target = target[key]
                target[path[-1]] = copy.deepcopy(rng.choice(odd))
            except (KeyError, IndexError, TypeError):
                continue
        for finding in lint_blueprint(blueprint, publishable=rng.random() < 0.5):
            assert finding.level in ("error", "warning") and str(finding).startswith("<blueprint>: ")
