"""make_sim's http:MakeRequest v4 against a scripted transport: the request it builds, timeouts, error routes."""

from __future__ import annotations

from typing import Any

import pytest
from make_sim import NO_REPLY, ApiKey, Reply, Request, Runner, Unsupported

WEBHOOK = {"id": 1, "module": "gateway:CustomWebHook", "version": 1, "parameters": {}, "mapper": {}}
JSON_REPLY = Reply(200, {"content-type": "application/json"}, '{"label": "billing"}', 2.5)


def call(module_id: int = 2, **mapper: Any) -> dict[str, Any]:
    """An HTTP v4 module posting ``{"text": <the webhook's text>}``, with ``mapper`` over those defaults."""
    defaults = {
        "url": "https://api.example.com/v1/items?dry=1",
        "method": "post",
        "headers": [{"name": "Accept", "value": "application/json"}],
        "queryParameters": [{"name": "lang", "value": "{{1.lang}}"}],
        "contentType": "json",
        "parseResponse": True,
        "stopOnHttpError": True,
        "timeout": 30,
        "allowRedirects": True,
        "shareCookies": False,
        "requestCompressedContent": True,
        "inputMethod": "jsonString",
        "jsonStringBodyContent": '{"text": "{{1.text}}"}',
    }
    parameters = {"authenticationType": "apiKey", "tlsType": "", "proxyKeychain": ""}
    return {
        "id": module_id,
        "module": "http:MakeRequest",
        "version": 4,
        "parameters": parameters,
        "mapper": defaults | mapper,
    }


def scenario(*flow: dict[str, Any]) -> dict[str, Any]:
    return {"name": "sim test", "flow": [WEBHOOK, *flow], "metadata": {}}


def respond(module_id: int, status: str, body: str) -> dict[str, Any]:
    mapper = {"status": status, "body": body, "headers": [{"key": "Content-Type", "value": "application/json"}]}
    return {"id": module_id, "module": "gateway:WebhookRespond", "version": 1, "mapper": mapper}


IGNORE = {"id": 90, "module": "builtin:Ignore", "version": 1}


class Script:
    """A transport that answers from a list and records what it was sent."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = list(replies)
        self.sent: list[Request] = []

    def __call__(self, request: Request) -> Reply:
        self.sent.append(request)
        return self.replies.pop(0)


def test_request_is_built_from_the_mapper_and_the_keychain() -> None:
    transport = Script(JSON_REPLY)
    keychain = ApiKey("Bearer tw_key", name="Authorization")
    outcome = Runner(scenario(call()), transport, keychain=keychain).run({"text": "hi", "lang": "en"})
    (request,) = transport.sent
    assert (request.method, request.url, request.body) == (
        "POST",
        "https://api.example.com/v1/items?dry=1&lang=en",
        '{"text": "hi"}',
    )
    assert request.headers == {
        "Accept": "application/json",
        "Authorization": "Bearer tw_key",
        "Content-Type": "application/json",
    }
    assert (request.timeout, request.scenario) == (30, "sim test")
    assert outcome.outputs[2] == {"data": {"label": "billing"}, "statusCode": 200, "headers": JSON_REPLY.headers}
    assert outcome.clock == 2.5


def test_keychain_in_a_query_parameter_and_no_authentication() -> None:
    transport = Script(JSON_REPLY, JSON_REPLY)
    anonymous = call(3)
    anonymous["parameters"]["authenticationType"] = "noAuth"
    keychain = ApiKey("k-123", name="api_key", placement="query")
    Runner(scenario(call(), anonymous), transport, keychain=keychain).run({"text": "hi", "lang": "en"})
    assert transport.sent[0].url == "https://api.example.com/v1/items?dry=1&lang=en&api_key=k-123"
    assert "Authorization" not in transport.sent[0].headers
    assert transport.sent[1].url == "https://api.example.com/v1/items?dry=1&lang=en"


def test_an_api_key_module_without_a_keychain_is_refused() -> None:
    with pytest.raises(Unsupported, match="module 2 authenticates with an API key, but no keychain is attached"):
        Runner(scenario(call()), Script(JSON_REPLY)).run({"text": "hi", "lang": "en"})


@pytest.mark.parametrize("stop", [True, False])
def test_an_error_status_is_an_error_only_with_stop_on_http_error(stop: bool) -> None:
    failing = Reply(502, {"content-type": "application/json"}, '{"status": 502}')
    outcome = Runner(scenario(call(stopOnHttpError=stop)), Script(failing), keychain=ApiKey("k")).run({})
    if stop:
        assert outcome.error is not None
        assert (outcome.error.kind, outcome.error.message) == ("RuntimeError", '[502] {"status": 502}')
    else:
        assert outcome.error is None and outcome.outputs[2]["statusCode"] == 502


@pytest.mark.parametrize("stop", [True, False])
def test_a_reply_slower_than_the_timeout_is_a_timeout_error(stop: bool) -> None:
    slow = Reply(200, {"content-type": "application/json"}, "{}", 30.5)
    for reply in (slow, NO_REPLY):
        outcome = Runner(scenario(call(stopOnHttpError=stop)), Script(reply), keychain=ApiKey("k")).run({})
        assert outcome.error is not None and outcome.error.kind == "ModuleTimeoutError"
        assert outcome.error.message == "The request timed out after 30 seconds"
        assert outcome.clock == 30 and 2 not in outcome.outputs


def test_an_empty_timeout_waits_40_seconds() -> None:
    outcome = Runner(scenario(call(timeout="")), Script(NO_REPLY), keychain=ApiKey("k")).run({})
    assert outcome.clock == 40 and outcome.exchanges[0][0].timeout == 40


def test_an_error_route_inside_an_error_route_answers_and_ends_the_run() -> None:
    """The call fails, the module on its error route fails too, and that module's own route answers."""
    inner = call(3, url="https://fallback.example.com/")
    inner["onerror"] = [respond(4, "502", '{"detail": "{{3.error.type}}"}'), IGNORE]
    outer = call(2)
    outer["onerror"] = [inner, {"id": 5, "module": "builtin:Resume", "version": 1, "mapper": {"data": "{{3.data}}"}}]
    after = respond(6, "200", '{"ok": true}')
    transport = Script(Reply(500, {}, "down", 1.0), NO_REPLY)
    outcome = Runner(scenario(outer, after), transport, keychain=ApiKey("k")).run({})
    assert outcome.error is None and outcome.ran == [1, 2, 3, 4, 90]
    (answer,) = outcome.answers
    assert (answer.status, answer.body, answer.at) == (502, {"detail": "ModuleTimeoutError"}, 31.0)
