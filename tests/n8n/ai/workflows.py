"""Helpers for running the n8n AI workflows in this folder against an OpenAI-compatible server.

    from n8n.ai.workflows import credential, load, execute, run_streaming
    n8n = N8n(BINARY, tmp)                        # tests/n8n/harness.py
    n8n.import_credentials([credential(f"{service.url}/v1", CLIENT_KEY)])
    run = execute(n8n, "basic_llm_chain")          # Manual Trigger workflows, via `n8n execute`
    run.output("Basic LLM Chain")                  # [{"text": "..."}]

    lines = run_streaming(n8n, ["ai_agent_streaming_plain"])["ai_agent_streaming_plain"]   # via `n8n start`

Which node holds each workflow's answer is in ANSWER_NODE (see README.md in this folder).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from n8n.harness import N8n, N8nServer, Run

HERE = Path(__file__).resolve().parent
CREDENTIAL_ID = "TierwiseOpenAi01"
CREDENTIAL_NAME = "Tierwise OpenAI"

# workflow file stem (without _chat) -> the node whose output item holds the answer, and where
ANSWER_NODE = {
    "basic_llm_chain": "Basic LLM Chain",  # [{"text": "<answer>"}]
    "text_classifier": "Billing",  # the category branch that ran gets the input item; others do not run
    "text_classifier_autofix": "Billing",
    "information_extractor": "Information Extractor",  # [{"output": {...schema fields...}}]
    "ai_agent": "AI Agent",  # [{"output": {"answer": 84, "explanation": "..."}}]
    "ai_agent_streaming": "AI Agent",  # [{"output": "<the JSON text>"}] (string when streamed)
    "ai_agent_streaming_plain": "AI Agent",  # [{"output": "<answer text>"}]
}


def credential(base_url: str, api_key: str) -> dict[str, Any]:
    """The openAiApi credential every workflow here references; ``base_url`` ends in /v1 (n8n appends /responses…)."""
    return {
        "id": CREDENTIAL_ID,
        "name": CREDENTIAL_NAME,
        "type": "openAiApi",
        "data": {"apiKey": api_key, "url": base_url},
    }


def load(name: str, model: str | None = None) -> dict[str, Any]:
    """A workflow file of this folder, optionally with another model id on its OpenAI Chat Model."""
    workflow: dict[str, Any] = json.loads((HERE / f"{name}.json").read_text(encoding="utf-8"))
    if model is not None:
        for node in workflow["nodes"]:
            if node["type"] == "@n8n/n8n-nodes-langchain.lmChatOpenAi":
                node["parameters"]["model"]["value"] = model
    return workflow


def execute(n8n: N8n, name: str, model: str | None = None) -> Run:
    """Import and run a Manual Trigger workflow with ``n8n execute``."""
    workflow = load(name, model)
    n8n.import_workflow(workflow)
    return n8n.execute(workflow["id"])


def webhook_path(workflow: dict[str, Any]) -> str:
    hook = next(node for node in workflow["nodes"] if node["type"] == "n8n-nodes-base.webhook")
    return str(hook["parameters"]["path"])


def run_streaming(
    n8n: N8n, names: list[str], body: dict[str, Any] | None = None, model: str | None = None, timeout_s: float = 60
) -> dict[str, dict[str, Any]]:
    """Import + publish the streaming workflows, start n8n, POST each webhook once and read the streamed reply.

    Returns, per workflow name: {"status", "content_type", "lines": [parsed NDJSON objects], "text": joined
    "item" contents}. n8n answers 200 with chunked ``application/json`` NDJSON lines
    {"type": "begin"|"item"|"end"|"error", "content"?, "metadata": {"nodeName", "nodeId", "itemIndex", ...}}.
    """
    workflows = {}
    for name in names:
        workflow = load(name, model)
        n8n.import_workflow(workflow)
        result = n8n.cli("publish:workflow", f"--id={workflow['id']}")
        assert result.returncode == 0, result.stdout + result.stderr
        workflows[name] = workflow
    out: dict[str, dict[str, Any]] = {}
    payload = body or {"question": "What is 12 times 7? Use the calculator."}
    with N8nServer(n8n) as server:
        for name, workflow in workflows.items():
            url = f"{server.url}/webhook/{webhook_path(workflow)}"
            deadline = time.monotonic() + timeout_s
            while True:  # the webhook answers 404 until n8n has activated the published workflow
                with httpx.stream("POST", url, json=payload, timeout=120) as response:
                    raw = b"".join(response.iter_bytes())
                    status, content_type = response.status_code, response.headers.get("content-type")
                if status != 404 or time.monotonic() > deadline:
                    break
                time.sleep(0.25)
            lines = [json.loads(line) for line in raw.decode().splitlines() if line.strip().startswith("{")]
            text = "".join(str(line.get("content", "")) for line in lines if line.get("type") == "item")
            out[name] = {
                "status": status,
                "content_type": content_type,
                "lines": lines,
                "text": text,
                "raw": raw.decode(),
            }
    return out
