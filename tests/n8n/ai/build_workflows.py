"""Writes the n8n AI workflow fixtures in this folder (run: python tests/n8n/ai/build_workflows.py).

Every workflow uses the OpenAI credential CREDENTIAL (type openAiApi); a test imports it with
data {"apiKey": ..., "url": "<service>/v1"} so the workflows themselves hold no URL. Each workflow exists twice:
``<name>.json`` with the OpenAI Chat Model's "Use Responses API" on (POST {url}/responses, the default of
lmChatOpenAi 1.3) and ``<name>_chat.json`` with it off (POST {url}/chat/completions).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CREDENTIAL = {"id": "TierwiseOpenAi01", "name": "Tierwise OpenAI"}
MODEL = "gpt-5.4-mini"
LC = "@n8n/n8n-nodes-langchain."


def node(
    n: int, name: str, type_: str, version: float, pos: tuple[int, int], parameters: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "id": f"7a1e0000-0000-4000-8000-{n:012d}",
        "name": name,
        "type": type_,
        "typeVersion": version,
        "position": list(pos),
        "parameters": parameters,
        **extra,
    }


def manual(n: int = 1) -> dict[str, Any]:
    return node(n, "Start", "n8n-nodes-base.manualTrigger", 1, (0, 0), {})


def sample(n: int, fields: dict[str, str], pos: tuple[int, int] = (220, 0)) -> dict[str, Any]:
    assignments = [{"id": f"s{i}", "name": k, "value": v, "type": "string"} for i, (k, v) in enumerate(fields.items())]
    return node(
        n, "Sample Input", "n8n-nodes-base.set", 3.4, pos, {"assignments": {"assignments": assignments}, "options": {}}
    )


def chat_model(n: int, responses_api: bool, pos: tuple[int, int], model: str = MODEL) -> dict[str, Any]:
    return node(
        n,
        "OpenAI Chat Model",
        LC + "lmChatOpenAi",
        1.3,
        pos,
        {
            "model": {"__rl": True, "mode": "id", "value": model},
            "responsesApiEnabled": responses_api,
            "options": {},
        },
        credentials={"openAiApi": dict(CREDENTIAL)},
    )


def main_link(target: str) -> dict[str, Any]:
    return {"main": [[{"node": target, "type": "main", "index": 0}]]}


def workflow(wid: str, name: str, nodes: list[dict[str, Any]], connections: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": wid,
        "name": name,
        "nodes": nodes,
        "connections": connections,
        "settings": {"executionOrder": "v1"},
        "pinData": {},
        "active": False,
        "tags": [],
    }


def basic_llm_chain(responses_api: bool) -> dict[str, Any]:
    nodes = [
        manual(),
        sample(2, {"question": "In one sentence: why do small models save money?"}),
        node(
            3,
            "Basic LLM Chain",
            LC + "chainLlm",
            1.9,
            (440, 0),
            {
                "promptType": "define",
                "text": "={{ $json.question }}",
                "messages": {
                    "messageValues": [
                        {"type": "SystemMessagePromptTemplate", "message": "You are a concise assistant."}
                    ]
                },
            },
        ),
        chat_model(4, responses_api, (440, 220)),
    ]
    connections = {
        "Start": main_link("Sample Input"),
        "Sample Input": main_link("Basic LLM Chain"),
        "OpenAI Chat Model": {
            "ai_languageModel": [[{"node": "Basic LLM Chain", "type": "ai_languageModel", "index": 0}]]
        },
    }
    return workflow("aiBasicChain", "ai: basic llm chain", nodes, connections)


def text_classifier(responses_api: bool) -> dict[str, Any]:
    nodes = [
        manual(),
        sample(2, {"ticket": "I was charged twice for my subscription this month, please refund one payment."}),
        node(
            3,
            "Text Classifier",
            LC + "textClassifier",
            1.1,
            (440, 0),
            {
                "inputText": "={{ $json.ticket }}",
                "categories": {
                    "categories": [
                        {"category": "billing", "description": "Payments, invoices, refunds, charges"},
                        {"category": "bug", "description": "Something in the product is broken"},
                        {"category": "how_to", "description": "A question about how to use the product"},
                    ]
                },
                "options": {},
            },
        ),
        chat_model(4, responses_api, (440, 220)),
        node(5, "Billing", "n8n-nodes-base.noOp", 1, (700, -160), {}),
        node(6, "Bug", "n8n-nodes-base.noOp", 1, (700, 0), {}),
        node(7, "How To", "n8n-nodes-base.noOp", 1, (700, 160), {}),
    ]
    connections = {
        "Start": main_link("Sample Input"),
        "Sample Input": main_link("Text Classifier"),
        "Text Classifier": {
            "main": [
                [{"node": "Billing", "type": "main", "index": 0}],
                [{"node": "Bug", "type": "main", "index": 0}],
                [{"node": "How To", "type": "main", "index": 0}],
            ]
        },
        "OpenAI Chat Model": {
            "ai_languageModel": [[{"node": "Text Classifier", "type": "ai_languageModel", "index": 0}]]
        },
    }
    return workflow("aiTextClassifier", "ai: text classifier", nodes, connections)


def text_classifier_autofix(responses_api: bool) -> dict[str, Any]:
    """The Text Classifier with options.enableAutoFixing on.

    The editor shows the option as on, but an untouched node sends ``options: {}``, which leaves it off.
    """
    wf = text_classifier(responses_api)
    next(n for n in wf["nodes"] if n["name"] == "Text Classifier")["parameters"]["options"] = {"enableAutoFixing": True}
    wf["id"], wf["name"] = "aiTextClassFix", "ai: text classifier, auto-fixing"
    return wf


EXTRACT_SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "The customer's full name"},
        "email": {"type": "string", "description": "The customer's email address"},
        "city": {"type": "string"},
        "order_count": {"type": "number", "description": "How many orders are mentioned"},
    },
    "required": ["name", "email"],
}


def information_extractor(responses_api: bool) -> dict[str, Any]:
    nodes = [
        manual(),
        sample(2, {"text": "Hi, this is Ada Lovelace (ada@example.com) from London. My 84 orders never arrived."}),
        node(
            3,
            "Information Extractor",
            LC + "informationExtractor",
            1.2,
            (440, 0),
            {
                "text": "={{ $json.text }}",
                "schemaType": "manual",
                "inputSchema": json.dumps(EXTRACT_SCHEMA, indent=2),
                "options": {},
            },
        ),
        chat_model(4, responses_api, (440, 220)),
    ]
    connections = {
        "Start": main_link("Sample Input"),
        "Sample Input": main_link("Information Extractor"),
        "OpenAI Chat Model": {
            "ai_languageModel": [[{"node": "Information Extractor", "type": "ai_languageModel", "index": 0}]]
        },
    }
    return workflow("aiInfoExtractor", "ai: information extractor", nodes, connections)


def information_extractor_enforced(responses_api: bool) -> dict[str, Any]:
    """The extractor with the model's own output format set, so the schema reaches Tierwise and is enforced.

    Responses API: the OpenAI Chat Model's Response Format option as JSON Schema (text.format json_schema);
    Chat Completions: its Response Format option JSON (response_format json_object), the only one it has.
    """
    built = information_extractor(responses_api)
    model = next(node for node in built["nodes"] if node["name"] == "OpenAI Chat Model")
    if responses_api:
        options = {
            "textFormat": {
                "textOptions": {"type": "json_schema", "name": "contact", "schema": json.dumps(EXTRACT_SCHEMA)}
            }
        }
    else:
        options = {"responseFormat": "json_object"}
    model["parameters"]["options"] = options
    return workflow(
        "aiInfoEnforced", "ai: information extractor, format enforced", built["nodes"], built["connections"]
    )


AGENT_SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "number", "description": "The numeric result"},
        "explanation": {"type": "string"},
    },
    "required": ["answer", "explanation"],
}


def agent_nodes(
    responses_api: bool, first: dict[str, Any], agent_text: str, parser: bool = True
) -> list[dict[str, Any]]:
    nodes = [
        first,
        node(
            3,
            "AI Agent",
            LC + "agent",
            3.1,
            (440, 0),
            {
                "promptType": "define",
                "text": agent_text,
                "hasOutputParser": parser,
                "options": {"systemMessage": "You are a careful assistant. Use the calculator tool for arithmetic."},
            },
        ),
        chat_model(4, responses_api, (300, 220)),
        node(
            5,
            "Calculator",
            LC + "toolCode",
            1.3,
            (460, 220),
            {
                "name": "calculator",
                "description": "Evaluates an arithmetic expression such as 12*7 and returns the result.",
                "language": "javaScript",
                "jsCode": (
                    "const expr = String(query).replace(/[^0-9+\\-*/(). ]/g, '').trim();\n"
                    "if (!/[0-9]/.test(expr)) return 'Not an arithmetic expression: send digits and + - * / ( ).';\n"
                    "try { return String(Function('return (' + expr + ')')()); }\n"
                    "catch (error) { return 'Could not evaluate ' + expr + ': ' + error.message; }"
                ),
            },
        ),
        node(
            6,
            "Structured Output Parser",
            LC + "outputParserStructured",
            1.3,
            (620, 220),
            {
                "schemaType": "manual",
                "inputSchema": json.dumps(AGENT_SCHEMA, indent=2),
            },
        ),
    ]
    return nodes if parser else nodes[:-1]


AGENT_AI_CONNECTIONS = {
    "OpenAI Chat Model": {"ai_languageModel": [[{"node": "AI Agent", "type": "ai_languageModel", "index": 0}]]},
    "Calculator": {"ai_tool": [[{"node": "AI Agent", "type": "ai_tool", "index": 0}]]},
    "Structured Output Parser": {"ai_outputParser": [[{"node": "AI Agent", "type": "ai_outputParser", "index": 0}]]},
}


def ai_agent(responses_api: bool) -> dict[str, Any]:
    nodes = agent_nodes(responses_api, manual(), "={{ $json.question }}")
    nodes.insert(1, sample(2, {"question": "What is 12 times 7? Use the calculator."}))
    connections = {"Start": main_link("Sample Input"), "Sample Input": main_link("AI Agent"), **AGENT_AI_CONNECTIONS}
    return workflow("aiAgent", "ai: agent with tool and parser", nodes, connections)


def streaming_webhook(path: str, hook: int) -> dict[str, Any]:
    return node(
        1,
        "Webhook",
        "n8n-nodes-base.webhook",
        2.1,
        (0, 0),
        {
            "httpMethod": "POST",
            "path": path,
            "responseMode": "streaming",
            "options": {},
        },
        webhookId=f"5f0c0000-0000-4000-8000-{hook:012d}",
    )


def ai_agent_streaming(responses_api: bool) -> dict[str, Any]:
    """Webhook (responseMode "streaming") -> AI Agent with tool + Structured Output Parser: n8n streams the answer."""
    webhook = streaming_webhook("tierwise-ai-agent" + ("" if responses_api else "-chat"), 1 if responses_api else 2)
    nodes = agent_nodes(responses_api, webhook, "={{ $json.body.question }}")
    connections = {"Webhook": main_link("AI Agent"), **AGENT_AI_CONNECTIONS}
    return workflow("aiAgentStream", "ai: streaming agent", nodes, connections)


def ai_agent_streaming_plain(responses_api: bool) -> dict[str, Any]:
    """The same streaming agent without an output parser (hasOutputParser off): the common streaming case."""
    webhook = streaming_webhook(
        "tierwise-ai-agent-plain" + ("" if responses_api else "-chat"), 3 if responses_api else 4
    )
    nodes = agent_nodes(responses_api, webhook, "={{ $json.body.question }}", parser=False)
    ai = {k: v for k, v in AGENT_AI_CONNECTIONS.items() if k != "Structured Output Parser"}
    connections = {"Webhook": main_link("AI Agent"), **ai}
    return workflow("aiAgentPlain", "ai: streaming agent, no parser", nodes, connections)


BUILDERS = {
    "basic_llm_chain": basic_llm_chain,
    "text_classifier": text_classifier,
    "text_classifier_autofix": text_classifier_autofix,
    "information_extractor": information_extractor,
    "information_extractor_enforced": information_extractor_enforced,
    "ai_agent": ai_agent,
    "ai_agent_streaming": ai_agent_streaming,
    "ai_agent_streaming_plain": ai_agent_streaming_plain,
}


def build() -> dict[str, dict[str, Any]]:
    out = {}
    for name, builder in BUILDERS.items():
        for suffix, responses_api in (("", True), ("_chat", False)):
            wf = copy.deepcopy(builder(responses_api))
            wf["id"] = wf["id"] + ("Resp" if responses_api else "Chat")
            assert len(wf["id"]) <= 21, wf["id"]
            wf["name"] += " (Responses API)" if responses_api else " (Chat Completions)"
            out[name + suffix] = wf
    return out


if __name__ == "__main__":
    for name, wf in build().items():
        (HERE / f"{name}.json").write_text(json.dumps(wf, indent=2) + "\n", encoding="utf-8")
        print(name, wf["id"])
