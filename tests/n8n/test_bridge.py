"""The n8n-bridge community node (n8n-nodes-tierwise): its package, its fields, and real runs in n8n 2.41.3 and 2.8.4.

The offline tests read the package's files and compare the node's request fields with the service's
own catalogue (``GET /v1/nodes``), so a field added to the protocol and not to the node fails here.
The ``n8n`` tests build the package, install its ``npm pack`` tarball into a fresh n8n user folder the
way n8n's community-package installer lays it out, and run workflows against a live service.
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
from harness import N8N_VERSION, RELEASES, N8n, N8nServer, Release, Run, release_params
from support import CLIENT_KEY, Sandbox, Service

from nodes.keys import hash_key, key_id_of

BRIDGE = Path(__file__).resolve().parents[2] / "n8n-bridge"
NODE_TS = BRIDGE / "nodes" / "Tierwise" / "Tierwise.node.ts"
CREDENTIAL_TS = BRIDGE / "credentials" / "TierwiseApi.credentials.ts"
BUILT = (
    BRIDGE / "dist" / "nodes" / "Tierwise" / "Tierwise.node.js",
    BRIDGE / "dist" / "credentials" / "TierwiseApi.credentials.js",
)
SOURCES = ("package.json", "package-lock.json", "tsconfig.json", "nodes", "credentials", "icons")
NODE_TYPE = "n8n-nodes-tierwise.tierwise"
N8N_WORKFLOW_VERSION = "2.8.0"  # the n8n-workflow that n8n 2.8.4 itself runs
# Protocol fields the node deliberately does not offer: it answers synchronously, item by item.
NOT_OFFERED = {"callback_url"}


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def catalogue(service: Service) -> dict[str, dict[str, Any]]:
    response = service.http.get("/v1/nodes")
    assert response.status_code == 200, response.text
    return {node["name"]: node for node in response.json()["nodes"]}


def block(source: str, start: str, end: str) -> str:
    """The text between the first ``start`` and the next ``end`` after it."""
    head = source.index(start)
    return source[head : source.index(end, head + len(start))]


def sent_fields(source: str) -> dict[str, set[str]]:
    """The body fields ``requestBody`` sets, for each operation, read from the TypeScript source."""
    body = block(source, "function requestBody(", "\treturn body;\n}")
    common, _, branches = body.partition("if (operation === 'classify')")
    # Only the function's own branches, one tab deep; the judge branch has an if/else of its own.
    parts = re.split(r"\n\t\} else if \(operation === '(\w+)'\) \{|\n\t\} else \{", branches)
    names = ["classify", *(name or "judge" for name in parts[1::2])]
    chunks = parts[0::2]
    assert len(names) == len(chunks) == 4, names

    def assigned(text: str) -> set[str]:
        return set(re.findall(r"body\.(\w+) =", text))

    return {name: assigned(common) | assigned(chunk) for name, chunk in zip(names, chunks, strict=True)}


def lock_resolves(packages: dict[str, Any], path: str, dep: str) -> bool:
    """Whether ``dep`` required from the lock entry at ``path`` is in the lock (Node's lookup order)."""
    base = path
    while True:
        if (f"{base}/node_modules/{dep}" if base else f"node_modules/{dep}") in packages:
            return True
        if not base:
            return False
        cut = base.rfind("/node_modules/")
        base = base[:cut] if cut >= 0 else ""


def option_values(source: str, name: str) -> list[str]:
    """The ``value``s of an options property, in order."""
    prop = block(source, f"name: '{name}',", "default:")
    return re.findall(r"value: '(\w+)'", prop)


# --- offline: the package ---------------------------------------------------------------------------------


def test_package_json_follows_the_starter() -> None:
    package = read_json(BRIDGE / "package.json")
    assert package["name"] == "n8n-nodes-tierwise"
    assert "n8n-community-node-package" in package["keywords"]
    assert package["files"] == ["dist"]
    assert package["n8n"] == {
        "n8nNodesApiVersion": 1,
        "strict": True,
        "credentials": ["dist/credentials/TierwiseApi.credentials.js"],
        "nodes": ["dist/nodes/Tierwise/Tierwise.node.js"],
    }
    assert package["peerDependencies"] == {"n8n-workflow": "*"}
    assert "dependencies" not in package, "community nodes may not have runtime dependencies"
    assert package["scripts"]["build"] == "n8n-node build"
    assert package["scripts"]["lint"] == "n8n-node lint"
    dev = package["devDependencies"]
    assert dev["n8n-workflow"] == N8N_WORKFLOW_VERSION
    assert "@n8n/node-cli" in dev and "typescript" in dev
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", version) for version in dev.values()), dev

    lock = read_json(BRIDGE / "package-lock.json")
    assert lock["name"] == package["name"] and lock["lockfileVersion"] >= 3
    assert lock["packages"][""]["devDependencies"] == dev
    assert lock["packages"]["node_modules/n8n-workflow"]["version"] == N8N_WORKFLOW_VERSION
    # npm ci refuses a lock that lacks any optional dependency, even one for another platform. Mirrors
    # without those packages make npm install leave them out, so they were added by hand; keep them.
    packages = lock["packages"]
    unlocked = [
        (path, dep)
        for path, entry in packages.items()
        for dep in entry.get("optionalDependencies", {})
        if not lock_resolves(packages, path, dep)
    ]
    assert unlocked == [], "package-lock.json is missing optional packages; npm ci will refuse it"

    assert NODE_TS.is_file() and CREDENTIAL_TS.is_file(), "the sources of the n8n block's dist files"

    tsconfig = read_json(BRIDGE / "tsconfig.json")["compilerOptions"]
    assert tsconfig["strict"] is True and tsconfig["noImplicitAny"] is True and tsconfig["outDir"] == "./dist/"
    assert (BRIDGE / "eslint.config.mjs").read_text().split() == [
        "import",
        "{",
        "config",
        "}",
        "from",
        "'@n8n/node-cli/eslint';",
        "export",
        "default",
        "config;",
    ], "n8n-node lint in strict mode refuses a modified eslint.config.mjs"
    assert "ignore-scripts=true" in (BRIDGE / ".npmrc").read_text().split(), "npm ci needs it (see README)"
    ignored = (BRIDGE / ".gitignore").read_text().split()
    assert "node_modules" in ignored and "dist" in ignored

    codex = read_json(BRIDGE / "nodes" / "Tierwise" / "Tierwise.node.json")
    assert codex["node"] == NODE_TYPE
    for icon in ("tierwise.svg", "tierwise.dark.svg"):
        assert (BRIDGE / "icons" / icon).read_text().startswith("<svg")


def test_credential_sends_the_key_and_is_tested_on_an_endpoint_that_needs_it(service: Service) -> None:
    source = CREDENTIAL_TS.read_text()
    assert "name = 'tierwiseApi';" in source
    base_url = block(source, "name: 'baseUrl',", "\n\t\t},")
    assert "default: 'http://127.0.0.1:8080'," in base_url
    api_key = block(source, "name: 'apiKey',", "\n\t\t},")
    assert "typeOptions: { password: true }," in api_key
    assert "Authorization: '=Bearer {{$credentials.apiKey}}'," in source
    test = block(source, "test: ICredentialTestRequest = {", "};")
    assert "baseURL: '={{$credentials.baseUrl}}'," in test and "url: '/v1/nodes'," in test

    # The credential test only means something because /v1/nodes refuses a wrong key (/healthz would not).
    assert service.anonymous.get("/healthz").status_code == 200
    assert service.anonymous.get("/v1/nodes").status_code == 401
    assert service.anonymous.get("/v1/nodes", headers={"Authorization": "Bearer wrong-key-0000"}).status_code == 401
    assert service.anonymous.get("/v1/nodes", headers={"Authorization": f"Bearer {CLIENT_KEY}"}).status_code == 200


def test_node_fields_match_the_service_catalogue(service: Service) -> None:
    nodes = catalogue(service)
    source = NODE_TS.read_text()

    assert option_values(source, "operation") == sorted(nodes)  # n8n lint wants options in alphabetical order
    sent = sent_fields(source)
    for name, node in nodes.items():
        schema = node["input_schema"]
        offered = set(schema["properties"]) - NOT_OFFERED
        assert sent[name] == offered, (
            f"{name}: the node sends {sorted(sent[name])}, the service takes {sorted(offered)}"
        )
        assert set(schema.get("required", [])) <= sent[name]

    tier_enum = nodes["classify"]["input_schema"]["properties"]["tier"]["anyOf"][0]["enum"]
    assert option_values(source, "tier") == ["default", *tier_enum]
    assert option_values(source, "maxTier") == nodes["classify"]["input_schema"]["properties"]["max_tier"]["enum"]
    assert "default: 'full'," in block(source, "name: 'maxTier',", "description:")
    # What the UI says about default tiers is what the service does.
    operations = block(source, "name: 'operation',", "default:")
    node_default = block(source, "name: 'Node Default',", "},")
    for name, node in nodes.items():
        entry = block(operations, f"value: '{name}',", "},")
        assert f"starts on {node['default_tier']}" in entry
        assert re.search(rf"\b{name}\b[^,]* on {node['default_tier']}", node_default, re.IGNORECASE), node_default

    # Labels, criteria and candidates may come from expressions as arrays; strings are split.
    assert "toList(fn.getNodeParameter('labels', itemIndex, ''), /,/)" in source
    assert "toList(fn.getNodeParameter('criteria', itemIndex, ''), /\\r?\\n/)" in source


# --- real n8n ----------------------------------------------------------------------------------------------


def newest_source_mtime() -> float:
    paths = [BRIDGE / name for name in SOURCES]
    files = [p for path in paths for p in ([path] if path.is_file() else path.rglob("*")) if p.is_file()]
    return max(p.stat().st_mtime for p in files)


def dist_is_fresh() -> bool:
    return all(path.is_file() for path in BUILT) and min(p.stat().st_mtime for p in BUILT) >= newest_source_mtime()


def npm(*args: str, cwd: Path, timeout_s: float = 600) -> str:
    result = subprocess.run(["npm", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout_s, check=False)
    assert result.returncode == 0, (
        f"npm {' '.join(args)} failed in {cwd}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def bridge_tarball(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The package as npm would publish it: built if its sources are newer than dist, then packed."""
    if all(release.binary is None for release in RELEASES):
        pytest.skip("no n8n is installed: run .ci/install-n8n-latest.sh or .ci/install-n8n.sh")
    if shutil.which("npm") is None:
        pytest.skip("npm is not on PATH: it is needed to build, pack and install n8n-bridge")
    destination = tmp_path_factory.mktemp("bridge")
    # Several test processes may share this checkout: one builds, the others wait and then pack.
    with (Path(tempfile.gettempdir()) / "tierwise-n8n-bridge-build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not dist_is_fresh():
            if not (BRIDGE / "node_modules").is_dir():
                npm("ci", "--prefer-offline", cwd=BRIDGE)
            npm("run", "build", cwd=BRIDGE)
        assert dist_is_fresh(), "npm run build did not produce dist/"
        name = npm("pack", "--pack-destination", str(destination), cwd=BRIDGE).strip().splitlines()[-1]
    yield destination / name


def install_bridge(n8n: N8n, tarball: Path) -> None:
    """Install the tarball into the user folder's community-package directory, as n8n's installer does.

    n8n extracts a community package into ``~/.n8n/nodes/node_modules/<name>`` without its peer
    dependencies; ``n8n-workflow`` then resolves to n8n's own copy.
    """
    nodes_dir = n8n.folder / ".n8n" / "nodes"
    nodes_dir.mkdir(parents=True, exist_ok=True)
    (nodes_dir / "package.json").write_text('{"name": "installed-nodes", "private": true}')
    npm("install", "--offline", "--legacy-peer-deps", "--no-audit", "--no-fund", str(tarball), cwd=nodes_dir)
    assert (nodes_dir / "node_modules" / "n8n-nodes-tierwise" / BUILT[0].relative_to(BRIDGE)).is_file()
    assert not (nodes_dir / "node_modules" / "n8n-workflow").exists()


@pytest.fixture(params=release_params())
def release(request: pytest.FixtureRequest) -> Release:
    """Each tested n8n release in turn: the newest and the oldest supported."""
    chosen: Release = request.param
    return chosen


@pytest.fixture
def n8n(tmp_path: Path, bridge_tarball: Path, service: Service, release: Release) -> Iterator[N8n]:
    """A fresh n8n of ``release`` with the package installed and a Tierwise credential pointing at ``service``."""
    binary = release.binary
    assert binary is not None
    # The package loads from .n8n/nodes either way; this only stops n8n asking api.n8n.io for its vetted list.
    instance = N8n(binary, tmp_path / "n8n", extra_env={"N8N_VERIFIED_PACKAGES_ENABLED": "false"})
    install_bridge(instance, bridge_tarball)
    data = {"baseUrl": service.url, "apiKey": CLIENT_KEY}
    instance.import_credentials([{**CREDENTIAL, "type": "tierwiseApi", "data": data}])
    yield instance
    instance.remove()


CREDENTIAL = {"id": "twCredential0001", "name": "Tierwise (tests)"}
WRONG_KEY_MESSAGE = {N8N_VERSION: "Authorization failed - please check your credentials", "2.41.3": "Unauthorized"}
"""What n8n's credential test says of a key the service refuses (n8n 2.41 shortened it)."""
TICKETS = [
    {"id": "T-1", "text": "I was charged twice for order 4417 this month, please refund 19.99 EUR."},
    {"id": "T-2", "text": "The export button crashes the app when I pick CSV (order 5120)."},
]
LABELS = ["billing", "bug", "feature_request"]
EXTRACT_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
    "required": ["order_id"],
}
CRITERIA = ["Is polite", "Addresses the customer's problem"]


def node(name: str, index: int, parameters: dict[str, Any], **settings: Any) -> dict[str, Any]:
    return {
        "id": f"7a1e0000-0000-4000-8000-{index:012d}",
        "name": name,
        "type": NODE_TYPE,
        "typeVersion": 1,
        "position": [220 * index, 0],
        "credentials": {"tierwiseApi": CREDENTIAL},
        "parameters": parameters,
        **settings,
    }


def workflow(workflow_id: str, nodes: list[dict[str, Any]], chain: list[str]) -> dict[str, Any]:
    start = {
        "id": "7a1e0000-0000-4000-8000-100000000000",
        "name": "Start",
        "type": "n8n-nodes-base.manualTrigger",
        "typeVersion": 1,
        "position": [-220, 0],
        "parameters": {},
    }
    names = ["Start", *chain]
    return {
        "id": workflow_id,
        "name": workflow_id,
        "nodes": [start, *nodes],
        "connections": {
            a: {"main": [[{"node": b, "type": "main", "index": 0}]]} for a, b in zip(names, names[1:], strict=False)
        },
        "settings": {"executionOrder": "v1"},
        "pinData": {},
        "active": False,
    }


def db_rows(service: Service, sql: str) -> list[sqlite3.Row]:
    conn = sqlite3.connect(service.settings.db)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def node_error(run: Run, name: str) -> dict[str, Any]:
    assert run.record is not None, run.stdout + run.stderr
    error = run.record["data"]["resultData"]["runData"][name][0].get("error")
    assert error is not None, f"{name} did not fail"
    return dict(error)


@pytest.mark.n8n
@pytest.mark.timeout(600)
def test_four_operations_run_in_n8n(n8n: N8n, service: Service, sandbox: Sandbox) -> None:
    tickets = {
        "id": "7a1e0000-0000-4000-8000-000000000000",
        "name": "Tickets",
        "type": "n8n-nodes-base.code",
        "typeVersion": 2,
        "position": [0, 0],
        "parameters": {"jsCode": f"return {json.dumps(TICKETS)}.map((json) => ({{ json }}));"},
    }
    nodes = [
        tickets,
        node("Classify", 1, {"operation": "classify", "input": "={{ $json.text }}", "labels": ", ".join(LABELS)}),
        node(
            "Extract",
            2,
            {
                "operation": "extract",
                "input": "={{ $('Tickets').item.json.text }}",
                "schema": json.dumps(EXTRACT_SCHEMA),
                "tier": "mini",
            },
        ),
        node(
            "Draft",
            3,
            {
                "operation": "draft",
                "input": "={{ 'Answer this ' + $('Classify').item.json.output.label + ' ticket: '"
                " + $('Tickets').item.json.text }}",
                "instructions": "Sign as the support team.",
                "options": {"maxWords": 80, "metadata": "={{ { ticket: $('Tickets').item.json.id } }}"},
            },
        ),
        node(
            "Judge",
            4,
            {
                "operation": "judge",
                "input": "={{ $('Tickets').item.json.text }}",
                "candidate": "={{ $json.output.text }}",
                "criteria": "\n".join(CRITERIA),
                "maxTier": "full",
            },
        ),
    ]
    chain = ["Tickets", "Classify", "Extract", "Draft", "Judge"]
    run = n8n.execute(n8n.import_workflow(workflow("twBridgeFour0001", nodes, chain)))
    assert run.returncode == 0 and run.status == "success", run.stdout[-3000:] + run.stderr[-3000:]

    classified, extracted, drafted, judged = (run.output(name) for name in chain[1:])
    assert [item["node"] for item in classified + extracted + drafted + judged] == [
        n for n in ("classify", "extract", "draft", "judge") for _ in TICKETS
    ]
    for item in classified:
        assert item["output"]["label"] in LABELS and 0 <= item["output"]["confidence"] <= 1
        assert (item["tier"], item["routing"]["reason"]) == ("nano", "node default (nano)")
    for item in extracted:
        jsonschema.validate(item["output"], EXTRACT_SCHEMA)
        assert (item["tier"], item["routing"]["reason"]) == ("mini", "requested tier mini")
    for item, ticket in zip(drafted, TICKETS, strict=True):
        text = item["output"]["text"]
        assert isinstance(text, str) and 0 < len(text.split()) <= 80
        assert (item["tier"], item["metadata"]) == ("mini", {"ticket": ticket["id"]})
    for item in judged:
        output = item["output"]
        assert output["verdict"] in ("pass", "fail") and 0 <= output["score"] <= 1 and output["reasons"]
        assert item["tier"] == "full" and item["usage"]["cost_usd"] > 0
    assert not any(item["escalated"] for item in classified + extracted + drafted + judged)

    # The service saw exactly these requests, with the protocol's field names, one per item and node.
    runs = db_rows(service, "SELECT node, final_tier, key_id, request, response FROM runs ORDER BY created_at")
    assert [(row["node"], row["final_tier"]) for row in runs] == [
        (name, tier)
        for name, tier in [("classify", "nano"), ("extract", "mini"), ("draft", "mini"), ("judge", "full")]
        for _ in TICKETS
    ]
    expected_requests = [
        *[{"input": t["text"], "labels": LABELS, "multi_label": False, "max_tier": "full"} for t in TICKETS],
        *[{"input": t["text"], "schema": EXTRACT_SCHEMA, "tier": "mini", "max_tier": "full"} for t in TICKETS],
        *[
            {
                "input": f"Answer this {c['output']['label']} ticket: {t['text']}",
                "instructions": "Sign as the support team.",
                "format": "text",
                "max_words": 80,
                "metadata": {"ticket": t["id"]},
                "max_tier": "full",
            }
            for t, c in zip(TICKETS, classified, strict=True)
        ],
        *[
            {"input": t["text"], "candidate": d["output"]["text"], "criteria": CRITERIA, "max_tier": "full"}
            for t, d in zip(TICKETS, drafted, strict=True)
        ],
    ]
    assert [json.loads(row["request"]) for row in runs] == expected_requests
    assert [json.loads(row["response"]) for row in runs] == classified + extracted + drafted + judged
    assert {row["key_id"] for row in runs} == {key_id_of(hash_key(service.key))}
    models = [request["model"] for request in sandbox.requests()]
    assert models == [*["gpt-5.4-nano"] * 2, *["gpt-5.4-mini"] * 4, *["gpt-5.4"] * 2]

    # Every item of every node carried its own Idempotency-Key:
    # instance, workflow, execution id and start time, node, run, item.
    keys = [row["idempotency_key"] for row in db_rows(service, "SELECT idempotency_key FROM idempotency")]
    pattern = re.compile(
        r"n8n:[0-9a-f]{64}:twBridgeFour0001:(\d+:\d{13}):7a1e0000-0000-4000-8000-0000000000(\d\d):0:(\d)"
    )
    matches = [match for match in map(pattern.fullmatch, keys) if match]
    assert len(matches) == len(keys), keys
    assert sorted((m[2], m[3]) for m in matches) == [(f"{n:02d}", str(i)) for n in range(1, 5) for i in (0, 1)]
    assert len({m[1] for m in matches}) == 1, "one execution"


@pytest.mark.n8n
@pytest.mark.timeout(600)
def test_problem_detail_is_the_node_error(n8n: N8n, service: Service, sandbox: Sandbox) -> None:
    detail = "labels: must contain at least one label"
    nodes = [
        node(
            "No Labels (continue)",
            1,
            {"operation": "classify", "input": "Refund please", "labels": "={{ [] }}"},
            onError="continueRegularOutput",
        ),
        node("No Labels", 2, {"operation": "classify", "input": "Refund please", "labels": " , "}),
    ]
    chain = ["No Labels (continue)", "No Labels"]
    run = n8n.execute(n8n.import_workflow(workflow("twBridgeError0001", nodes, chain)))

    assert run.returncode == 1 and run.status == "error"
    assert run.error == detail
    error = node_error(run, "No Labels")
    assert error["message"] == detail
    assert error["httpCode"] == "422"
    assert error["description"] == "Invalid request (/problems/invalid-request)"

    [continued] = run.output("No Labels (continue)")
    assert continued["error"] == detail and continued["httpCode"] == "422"
    assert continued["problem"] == {
        "type": "/problems/invalid-request",
        "title": "Invalid request",
        "status": 422,
        "detail": detail,
        "errors": [{"loc": ["labels"], "msg": "must contain at least one label"}],
        "run_id": None,
    }
    assert sandbox.requests() == [] and db_rows(service, "SELECT run_id FROM runs") == []


@pytest.mark.n8n
@pytest.mark.timeout(600)
def test_retry_on_fail_does_not_pay_twice(n8n: N8n, service: Service, sandbox: Sandbox) -> None:
    # Every model refuses, so each run ends as a 502 after one billed attempt on nano.
    sandbox.configure(faults=[{"kind": "refusal"}])
    retry = {"retryOnFail": True, "maxTries": 3, "waitBetweenTries": 100}
    parameters = {"operation": "classify", "input": "Refund please", "labels": "billing, bug", "maxTier": "nano"}

    keyed = n8n.execute(
        n8n.import_workflow(workflow("twBridgeKeyed0001", [node("Keyed", 1, parameters, **retry)], ["Keyed"]))
    )
    assert keyed.returncode == 1 and keyed.status == "error"
    [stored] = db_rows(service, "SELECT status, body FROM idempotency")
    assert stored["status"] == 502
    assert keyed.error == json.loads(stored["body"])["detail"]
    assert node_error(keyed, "Keyed")["httpCode"] == "502"
    # Three tries by n8n, one run and one paid model call: the repeats were answered from the stored 502.
    assert len(sandbox.requests()) == 1
    assert len(db_rows(service, "SELECT run_id FROM runs")) == 1

    unkeyed_parameters = {**parameters, "options": {"idempotency": False}}
    unkeyed = n8n.execute(
        n8n.import_workflow(
            workflow("twBridgeUnkeyed001", [node("Unkeyed", 1, unkeyed_parameters, **retry)], ["Unkeyed"])
        )
    )
    assert unkeyed.returncode == 1 and unkeyed.error == keyed.error
    # Without the key, each of n8n's three tries is a new run that pays again.
    assert len(sandbox.requests()) == 1 + 3
    assert len(db_rows(service, "SELECT run_id FROM runs")) == 1 + 3


@pytest.mark.n8n
@pytest.mark.timeout(600)
def test_credential_test_in_n8n_tells_a_wrong_key(n8n: N8n, service: Service, release: Release) -> None:
    with N8nServer(n8n) as server, httpx.Client(base_url=server.url, timeout=30) as ui:
        # /healthz/readiness answers before the REST routes are mounted; wait for them too.
        deadline = time.monotonic() + 60
        while ui.get("/rest/settings").status_code != 200:
            assert time.monotonic() < deadline, "n8n's REST API did not come up"
            time.sleep(0.2)
        owner = {"email": "owner@example.com", "firstName": "T", "lastName": "O", "password": "Passw0rd-Test-123"}
        assert ui.post("/rest/owner/setup", json=owner).status_code == 200

        def check(base_url: str, api_key: str) -> dict[str, Any]:
            credential = {"name": api_key, "type": "tierwiseApi", "data": {"baseUrl": base_url, "apiKey": api_key}}
            created = ui.post("/rest/credentials", json=credential)
            assert created.status_code == 200, created.text
            tested = ui.post(
                "/rest/credentials/test", json={"credentials": {**credential, "id": created.json()["data"]["id"]}}
            )
            assert tested.status_code == 200, tested.text
            return dict(tested.json()["data"])

        assert check(service.url, CLIENT_KEY) == {"status": "OK", "message": "Connection successful!"}
        assert check(service.url, "wrong-key-0000") == {
            "status": "Error",
            "message": WRONG_KEY_MESSAGE[release.version],
        }
        assert check(service.url.rsplit(":", 1)[0] + ":1", CLIENT_KEY)["status"] == "Error"
