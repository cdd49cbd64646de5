"""Capturing fake OpenAI server (scratch recon tool).

Logs every request to a JSONL file and answers in OpenAI's shapes:
GET /v1/models, POST /v1/chat/completions (stream / non-stream), POST /v1/responses (stream / non-stream).

Control endpoints: GET /__log (all captured), POST /__reset, POST /__mode {"minimal": bool}.
Decision logic (both APIs):
  tools offered, no tool result yet, a non-format tool exists -> call it
  tools offered and format_final_json_response exists -> call it with schema-shaped args
  tools offered otherwise -> final text
  no tools: a JSON schema in the prompt -> JSON matching it; else plain text
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
LOG: list[dict] = []
MODE = {"minimal": False, "json_fence": False, "agent_final": "tool", "minimal_stream": False}
LOGFILE = None


def sample_for(schema: dict, hint: str = "") -> object:
    t = schema.get("type")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "string")
    if "enum" in schema:
        return schema["enum"][0]
    if t == "object" or "properties" in schema:
        props = schema.get("properties", {})
        out = {}
        booleans = [k for k, v in props.items() if v.get("type") == "boolean"]
        for k, v in props.items():
            if v.get("type") == "boolean":
                out[k] = k == booleans[0]
            else:
                out[k] = sample_for(v, k)
        return out
    if t == "array":
        return [sample_for(schema.get("items", {"type": "string"}), hint)]
    if t in ("number", "integer"):
        return 84
    if t == "boolean":
        return True
    return {"name": "Ada Lovelace", "email": "ada@example.com", "city": "London"}.get(hint, f"sample {hint}".strip())


def find_schema(text: str) -> dict | None:
    dec = json.JSONDecoder()
    for m in re.finditer(r"\{", text):
        try:
            val, _ = dec.raw_decode(text, m.start())
        except json.JSONDecodeError:
            continue
        if isinstance(val, dict) and ("properties" in val or val.get("type") == "object"):
            return val
    return None


def flatten_text(content) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            flatten_text(c.get("text", c.get("content", ""))) if isinstance(c, dict) else str(c) for c in content
        )
    return ""


def analyse(path: str, body: dict) -> dict:
    """Normalise both APIs into: tools [(name, params)], has_tool_result, last tool result, all text."""
    tools = []
    has_result = False
    result_text = ""
    texts = []
    if path.endswith("/chat/completions"):
        for t in body.get("tools") or []:
            f = t.get("function", {})
            tools.append((f.get("name"), f.get("parameters") or {}))
        for m in body.get("messages") or []:
            if m.get("role") == "tool":
                has_result = True
                result_text = flatten_text(m.get("content"))
            else:
                texts.append(flatten_text(m.get("content")))
    else:
        for t in body.get("tools") or []:
            tools.append((t.get("name"), t.get("parameters") or {}))
        inp = body.get("input")
        if isinstance(inp, str):
            texts.append(inp)
        for item in inp if isinstance(inp, list) else []:
            if item.get("type") == "function_call_output":
                has_result = True
                result_text = str(item.get("output"))
            elif "content" in item:
                texts.append(flatten_text(item.get("content")))
        if body.get("instructions"):
            texts.append(body["instructions"])
    return {"tools": tools, "has_result": has_result, "result": result_text, "text": "\n".join(texts)}


def decide(path: str, body: dict) -> dict:
    """-> {"kind": "text", "text": ...} or {"kind": "tool", "name": ..., "arguments": json-str}"""
    a = analyse(path, body)
    names = [n for n, _ in a["tools"]]
    others = [(n, p) for n, p in a["tools"] if n != "format_final_json_response"]
    if a["tools"]:
        if others and not a["has_result"]:
            name, params = others[0]
            props = params.get("properties", {})
            args = {}
            for k, v in props.items():
                args[k] = "12*7" if v.get("type", "string") == "string" else sample_for(v, k)
            if not props:
                args = {"input": "12*7"}
            return {"kind": "tool", "name": name, "arguments": json.dumps(args)}
        if "format_final_json_response" in names and MODE["agent_final"] == "json":
            return {"kind": "text", "text": json.dumps({"answer": 84, "explanation": "12*7 via the calculator"})}
        if "format_final_json_response" in names and MODE["agent_final"] == "text":
            return {"kind": "text", "text": "The answer is 84."}
        if "format_final_json_response" in names:
            params = dict(a["tools"])["format_final_json_response"]
            args = sample_for(params)
            if isinstance(args, dict):
                for k, v in params.get("properties", {}).items():
                    if v.get("type") in ("number", "integer"):
                        try:
                            args[k] = float(a["result"]) if "." in a["result"] else int(a["result"])
                        except ValueError:
                            pass
            return {"kind": "tool", "name": "format_final_json_response", "arguments": json.dumps(args)}
        return {"kind": "text", "text": f"The result is {a['result'] or 84}."}
    fmt = (body.get("text") or {}).get("format") or {}
    schema = fmt.get("schema") if fmt.get("type") == "json_schema" else None
    schema = schema or find_schema(a["text"])
    if schema:
        out = json.dumps(sample_for(schema))
        if MODE["json_fence"]:
            out = "```json\n" + out + "\n```"
        return {"kind": "text", "text": out}
    if (body.get("response_format") or {}).get("type") == "json_object" or fmt.get("type") == "json_object":
        return {"kind": "text", "text": json.dumps({"message": "Hello from the fake OpenAI server."})}
    return {"kind": "text", "text": "Hello from the fake OpenAI server. Tierwise says hi."}


def usage_chat():
    return {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def usage_resp():
    return {
        "input_tokens": 11,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 7,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 18,
    }


def chunks(text: str, n: int = 3) -> list[str]:
    if not text:
        return [""]
    size = max(1, len(text) // n + 1)
    return [text[i : i + size] for i in range(0, len(text), size)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _record(self, body):
        entry = {
            "t": time.time(),
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body": body,
        }
        with LOCK:
            LOG.append(entry)
            if LOGFILE:
                with open(LOGFILE, "a") as f:
                    f.write(json.dumps(entry) + "\n")

    def _json(self, obj, status=200):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _sse_start(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, data, event=None):
        s = ""
        if event:
            s += f"event: {event}\n"
        s += "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"
        self.wfile.write(s.encode())
        self.wfile.flush()

    def do_GET(self):
        if self.path == "/__log":
            with LOCK:
                return self._json(LOG)
        self._record(None)
        if self.path.rstrip("/").endswith("/models"):
            models = ["gpt-5.4-nano", "gpt-5.4-mini", "gpt-5.4", "tierwise-auto"]
            return self._json(
                {
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 1700000000, "owned_by": "tierwise"} for m in models
                    ],
                }
            )
        self._json({"error": {"message": "not found", "type": "invalid_request_error"}}, 404)

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            body = {"_raw": raw.decode(errors="replace")}
        if self.path == "/__reset":
            with LOCK:
                LOG.clear()
            return self._json({"ok": True})
        if self.path == "/__mode":
            MODE.update(body or {})
            return self._json(MODE)
        self._record(body)
        if MODE.get("fail_status"):
            code = int(MODE["fail_status"])
            data = json.dumps(
                {"error": {"message": f"fake failure {code}", "type": "server_error", "code": None}}
            ).encode()
            self.send_response(code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            if code == 429:
                self.send_header("retry-after", "1")
            self.end_headers()
            self.wfile.write(data)
            return
        if self.path.endswith("/chat/completions"):
            return self.chat(body)
        if self.path.endswith("/responses"):
            return self.handle_responses(body)
        self._json({"error": {"message": "not found", "type": "invalid_request_error"}}, 404)

    # ---- chat completions ------------------------------------------------------------------------------
    def chat(self, body):
        d = decide(self.path, body)
        cid = "chatcmpl-" + uuid.uuid4().hex[:20]
        model = body.get("model", "fake")
        created = int(time.time())
        if d["kind"] == "tool":
            tc = {
                "id": "call_" + uuid.uuid4().hex[:16],
                "type": "function",
                "function": {"name": d["name"], "arguments": d["arguments"]},
            }
            message = {"role": "assistant", "content": None, "tool_calls": [tc]}
            finish = "tool_calls"
        else:
            message = {"role": "assistant", "content": d["text"]}
            finish = "stop"
        if not body.get("stream"):
            resp = {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": usage_chat(),
            }
            if MODE["minimal"]:
                resp = {"choices": [{"message": message}]}
            return self._json(resp)
        self._sse_start()
        base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
        if MODE["minimal_stream"]:
            base = {}
        self._sse(
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
        )
        if d["kind"] == "tool":
            tc = message["tool_calls"][0]
            self._sse(
                {
                    **base,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    {
                                        "index": 0,
                                        "id": tc["id"],
                                        "type": "function",
                                        "function": {"name": tc["function"]["name"], "arguments": ""},
                                    }
                                ]
                            },
                            "finish_reason": None,
                        }
                    ],
                }
            )
            for part in chunks(tc["function"]["arguments"]):
                self._sse(
                    {
                        **base,
                        "choices": [
                            {
                                "index": 0,
                                "delta": {"tool_calls": [{"index": 0, "function": {"arguments": part}}]},
                                "finish_reason": None,
                            }
                        ],
                    }
                )
        else:
            for part in chunks(d["text"]):
                self._sse({**base, "choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]})
        self._sse({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage") and not MODE["minimal_stream"]:
            self._sse({**base, "choices": [], "usage": usage_chat()})
        self._sse("[DONE]")

    # ---- responses ---------------------------------------------------------------------------------------
    def handle_responses(self, body):
        d = decide(self.path, body)
        rid = "resp_" + uuid.uuid4().hex[:24]
        model = body.get("model", "fake")
        created = int(time.time())
        if d["kind"] == "tool":
            item = {
                "type": "function_call",
                "id": "fc_" + uuid.uuid4().hex[:16],
                "call_id": "call_" + uuid.uuid4().hex[:16],
                "name": d["name"],
                "arguments": d["arguments"],
                "status": "completed",
            }
        else:
            item = {
                "type": "message",
                "id": "msg_" + uuid.uuid4().hex[:16],
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": d["text"], "annotations": []}],
            }
        full = {
            "id": rid,
            "object": "response",
            "created_at": created,
            "status": "completed",
            "error": None,
            "incomplete_details": None,
            "model": model,
            "output": [item],
            "parallel_tool_calls": True,
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools", []),
            "text": body.get("text") or {"format": {"type": "text"}},
            "usage": usage_resp(),
            "metadata": body.get("metadata") or {},
        }
        if not body.get("stream"):
            if MODE["minimal"]:
                full = {"output": [item]}
            return self._json(full)
        self._sse_start()
        seq = 0

        keep = {
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.output_text.delta",
            "response.completed",
        }

        def ev(typ, **kw):
            nonlocal seq
            if MODE["minimal_stream"]:
                if typ not in keep:
                    return
                if typ == "response.completed":
                    kw = {"response": {"output": kw["response"]["output"]}}
            self._sse({"type": typ, "sequence_number": seq, **kw}, event=typ)
            seq += 1

        start = {**full, "status": "in_progress", "output": [], "usage": None}
        ev("response.created", response=start)
        ev("response.in_progress", response=start)
        if item["type"] == "function_call":
            ev("response.output_item.added", output_index=0, item={**item, "arguments": "", "status": "in_progress"})
            for part in chunks(item["arguments"]):
                ev("response.function_call_arguments.delta", item_id=item["id"], output_index=0, delta=part)
            ev("response.function_call_arguments.done", item_id=item["id"], output_index=0, arguments=item["arguments"])
            ev("response.output_item.done", output_index=0, item=item)
        else:
            text = item["content"][0]["text"]
            ev("response.output_item.added", output_index=0, item={**item, "content": [], "status": "in_progress"})
            ev(
                "response.content_part.added",
                item_id=item["id"],
                output_index=0,
                content_index=0,
                part={"type": "output_text", "text": "", "annotations": []},
            )
            for part in chunks(text):
                ev(
                    "response.output_text.delta",
                    item_id=item["id"],
                    output_index=0,
                    content_index=0,
                    delta=part,
                    logprobs=[],
                )
            ev("response.output_text.done", item_id=item["id"], output_index=0, content_index=0, text=text, logprobs=[])
            ev(
                "response.content_part.done",
                item_id=item["id"],
                output_index=0,
                content_index=0,
                part=item["content"][0],
            )
            ev("response.output_item.done", output_index=0, item=item)
        ev("response.completed", response=full)


def main():
    global LOGFILE
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8765
    LOGFILE = sys.argv[2] if len(sys.argv) > 2 else None
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"fake openai on 127.0.0.1:{port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
