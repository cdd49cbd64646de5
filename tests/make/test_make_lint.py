"""nodes.tools.make_lint against real Make exports (ground truth) and against planted mistakes."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from nodes.tools import make_lint
from nodes.tools.make_lint import Finding, iml_references, lint_blueprint, lint_file, main

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "make-blueprints"
TEMPLATES = ROOT / "templates" / "make"

DEVOPS = FIXTURES / "real-export-mrlmbrown-devops-webhook-http-routers.blueprint.json"
INSTAGRAM = FIXTURES / "real-export-paoloronco-instagramreel-http-v3-json.blueprint.json"
AGENT = FIXTURES / "real-export-make-skills-ai-agent-webhook-respond.blueprint.json"
OFFICIAL = FIXTURES / "official-make-blueprints-webhook-router-error-handler.blueprint.json"
EXPORTS = [DEVOPS, INSTAGRAM, AGENT, OFFICIAL]

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
    assert summary(lint_file(OFFICIAL)) == [
        ("warning", 3, "http:MakeRequest@4", f"mapper.jsonStringBodyContent maps {{{{1.email}}}} (and 1 more) {QUOTED}")
    ]


def test_real_exports_pass_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(path) for path in EXPORTS]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 6 and all(": warning: module " in line for line in lines)
    assert lines[1] == (
        f"{DEVOPS}: warning: module 5 (google-sheets:updateRow@2): "
        + literal("Pipeline Failed", "conditions[0][0]", "1.workflow_run.status")
    )
    assert err == "4 files checked: 0 errors, 6 warnings\n"
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
    assert make_lint.MODULE_SPECS == fixture


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
        lambda b: module(b, 6).update(module="HTTP:ActionSendData"),
        [("error", 6, "'module' must look like app:ModuleName, not 'HTTP:ActionSendData'")],
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
        edit(6, "data", "{{2.json}}", "{{12.json}}"),
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
        edit(3, "data", "{{2.json}}", "{{4.json}}"),
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
        "body type outside the enum",
        "support-triage",
        lambda b: module(b, 3)["mapper"].update(bodyType="json"),
        [("error", 3, "mapper.bodyType is 'json', not one of raw, x_www_form_urlencoded, multipart_form_data")],
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
        lambda b: header(b, 3, 2).update(key=header(b, 3, 2).pop("name")),
        [("error", 3, "mapper.headers[3] has key but its fields are name/value (name required)")],
    ),
    (
        "required boolean missing",
        "support-triage",
        lambda b: module(b, 3)["mapper"].pop("parseResponse"),
        [("error", 3, "mapper.parseResponse is required (Parse response)")],
    ),
    (
        "boolean written as text",
        "support-triage",
        lambda b: module(b, 3)["mapper"].update(gzip="true"),
        [("error", 3, "mapper.gzip must be true or false, not 'true'")],
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
        edit(6, "data", '",\n  "max_words"', '"\n  "max_words"'),
        [("error", 6, "mapper.data is not valid JSON once its mappings are filled in: "
          "Expecting ',' delimiter: line 4 column 3 (char 213)")],
    ),
    (
        "mapped value inside a JSON string",
        "support-triage",
        edit(6, "data", "{{2.json}}", '"Ticket: {{1.body}}"'),
        [("warning", 6, f"mapper.data maps {{{{1.body}}}} {QUOTED}")],
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
        [("error", n, NEEDS_DLQ) for n in (31, 35, 61, 62)],
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
        [("error", n, NOT_A_WEBHOOK_SCENARIO) for n in (8, 9, 10)],
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


def test_account_ids_are_refused_only_when_publishing() -> None:
    def attach(blueprint: dict[str, Any]) -> None:
        blueprint["flow"][0]["parameters"]["hook"] = 1577631
        blueprint["flow"][0]["metadata"]["restore"] = {"parameters": {"hook": {"label": "my hook"}}}

    assert plant("support-triage", attach) == []
    assert plant("support-triage", attach, publishable=True) == [
        ("error", 1, held("parameters.hook", 1577631)),
        ("error", 1, labelled("hook")),
    ]


# -- command line -----------------------------------------------------------------------------------------


def test_command_line_exit_status_and_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = copy.deepcopy(template("support-triage"))
    module(broken, 3)["mapper"]["timeout"] = "500"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken), encoding="utf-8")
    assert main([str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == f"{path}: error: module 3 (http:ActionSendData@3): " + TIMEOUT_500 + "\n"
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
    specs = {
        "http:MakeRequest@4": {
            "parameters": [],
            "expect": [{"name": "method", "type": "select", "validate": {"enum": ["get", "post"]}}],
        }
    }
    (tmp_path / "specs.json").write_text(json.dumps(specs), encoding="utf-8")
    official = json.loads(OFFICIAL.read_text(encoding="utf-8"))
    official["flow"][1]["routes"][0]["flow"][0]["mapper"]["method"] = "PATCH"
    (tmp_path / "official.json").write_text(json.dumps(official), encoding="utf-8")
    assert main([str(tmp_path / "official.json")]) == 0
    assert main([str(tmp_path / "official.json"), "--specs", str(tmp_path / "specs.json")]) == 1
    assert "module 3 (http:MakeRequest@4): mapper.method is 'PATCH', not one of get, post" in capsys.readouterr().out
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
