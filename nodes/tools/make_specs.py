"""The field specs of the Make modules the linter knows, copied from real exports.

Make exports every module with the Forman field specs of its settings (``metadata.parameters``) and of its
mappable fields (``metadata.expect``): types, ``required``, ``validate.enum``, ``min``/``max``, ``pattern``,
``maxItems`` and item specs. ``nodes.tools.make_lint`` checks module values against them. This module is in
charge of that catalogue, keyed ``module@version``:

* ``LEGACY_SPECS`` — the HTTP app v3 (``http:ActionSendData``), webhooks, webhook responses, Break, JSON and
  tools modules, each copied verbatim from one real export
  (``tests/fixtures/make-blueprints/module-specs-from-real-exports.json``; each entry names its source);
* ``HTTP_V4_SPEC`` — the current HTTP app, ``http:MakeRequest`` v4, whose definitions are identical in every
  real export that carries them (``tests/fixtures/make-blueprints-v4/http-makerequest-v4-spec.json``, for
  instance sdassd105/Sport-Connect ``Integration HTTP.blueprint.json`` modules 1 and 6). Four fields no export
  shows are only documented (integromat/make-skills ``http-fallback.md``) and carry just their name and type:
  ``basicAuthKeychain``, ``oAuthAccount``, ``multipartBodyContent`` and ``urlEncodedBodyContent``.

An export lists only the fields its current choices show: ``jsonStringBodyContent`` appears once
``contentType`` is ``json`` and ``inputMethod`` is ``jsonString``, ``apiKeyKeychain`` once
``authenticationType`` is ``apiKey``. A spec's ``shown_when`` (our addition, not Make's) records those
conditions — field name → {other field: the values that show it} — so a field is required only when shown,
and a value set on a field its module does not show (a body it will not send) is reported.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = ["HTTP_V4", "HTTP_V4_SPEC", "LEGACY_SPECS", "MODULE_SPECS"]

HTTP_V4: Final = "http:MakeRequest@4"

_LEGACY_JSON: Final = """
{
 "http:ActionSendData@3": {
  "source": "paoloronco/makecom-openai-gcp-instagramreel:blueprint.json (module 27)",
  "parameters": [
   {
    "name": "handleErrors",
    "type": "boolean",
    "label": "Evaluate all states as errors (except for 2xx and 3xx )",
    "required": true
   },
   {"name": "useNewZLibDeCompress", "type": "hidden"}
  ],
  "expect": [
   {"name": "url", "type": "url", "label": "URL", "required": true},
   {"name": "serializeUrl", "type": "boolean", "label": "Serialize URL", "required": true},
   {
    "name": "method",
    "type": "select",
    "label": "Method",
    "required": true,
    "validate": {"enum": ["get", "head", "post", "put", "patch", "delete", "options"]}
   },
   {
    "name": "headers",
    "spec": [
     {"name": "name", "type": "text", "label": "Name", "required": true},
     {"name": "value", "type": "text", "label": "Value"}
    ],
    "type": "array",
    "label": "Headers"
   },
   {
    "name": "qs",
    "spec": [
     {"name": "name", "type": "text", "label": "Name", "required": true},
     {"name": "value", "type": "text", "label": "Value"}
    ],
    "type": "array",
    "label": "Query String"
   },
   {
    "name": "bodyType",
    "type": "select",
    "label": "Body type",
    "validate": {"enum": ["raw", "x_www_form_urlencoded", "multipart_form_data"]}
   },
   {"name": "parseResponse", "type": "boolean", "label": "Parse response", "required": true},
   {"name": "authUser", "type": "text", "label": "User name"},
   {"name": "authPass", "type": "password", "label": "Password"},
   {"name": "timeout", "type": "uinteger", "label": "Timeout", "validate": {"max": 300, "min": 1}},
   {"name": "shareCookies", "type": "boolean", "label": "Share cookies with other HTTP modules", "required": true},
   {"name": "ca", "type": "cert", "label": "Self-signed certificate"},
   {
    "name": "rejectUnauthorized",
    "type": "boolean",
    "label": "Reject connections that are using unverified (self-signed) certificates",
    "required": true
   },
   {"name": "followRedirect", "type": "boolean", "label": "Follow redirect", "required": true},
   {
    "name": "useQuerystring",
    "type": "boolean",
    "label": "Disable serialization of multiple same query string keys as arrays",
    "required": true
   },
   {"name": "gzip", "type": "boolean", "label": "Request compressed content", "required": true},
   {"name": "useMtls", "type": "boolean", "label": "Use Mutual TLS", "required": true},
   {
    "name": "contentType",
    "type": "select",
    "label": "Content type",
    "validate": {"enum": ["text/plain", "application/json", "application/xml", "text/xml", "text/html", "custom"]}
   },
   {"name": "data", "type": "buffer", "label": "Request content"},
   {"name": "followAllRedirects", "type": "boolean", "label": "Follow all redirect", "required": true}
  ]
 },
 "util:SetVariable2@1": {
  "source": "paoloronco/makecom-openai-gcp-instagramreel:blueprint.json (module 59)",
  "parameters": [],
  "expect": [
   {"name": "name", "type": "text", "label": "Variable name", "required": true},
   {
    "name": "scope",
    "type": "select",
    "label": "Variable lifetime",
    "required": true,
    "validate": {"enum": ["roundtrip", "execution"]}
   },
   {"name": "value", "type": "any", "label": "Variable value"}
  ]
 },
 "gateway:CustomWebHook@1": {
  "source": "integromat/make-skills:skills/make-module-configuring/examples/ai-agent-full-blueprint.json (module 1)",
  "parameters": [
   {"name": "hook", "type": "hook:gateway-webhook", "label": "Webhook", "required": true},
   {"name": "maxResults", "type": "number", "label": "Maximum number of results"}
  ],
  "expect": []
 },
 "gateway:WebhookRespond@1": {
  "source": "integromat/make-skills:skills/make-module-configuring/examples/ai-agent-full-blueprint.json (module 5)",
  "parameters": [],
  "expect": [
   {"name": "status", "type": "uinteger", "label": "Status", "validate": {"min": 100}, "required": true},
   {"name": "body", "type": "any", "label": "Body"},
   {
    "name": "headers",
    "type": "array",
    "label": "Custom headers",
    "validate": {"maxItems": 16},
    "spec": [
     {"name": "key", "label": "Key", "type": "text", "required": true, "validate": {"max": 256}},
     {"name": "value", "label": "Value", "type": "text", "required": true, "validate": {"max": 4096}}
    ]
   }
  ]
 },
 "builtin:Break@1": {
  "source": "stored GitHub text file, index id 58005635921 (Spanish lead-classification export; repo not resolved)",
  "parameters": [],
  "expect": [
   {"name": "retry", "type": "boolean", "label": "Retry automatically", "required": true},
   {
    "name": "count",
    "type": "uinteger",
    "label": "Number of retries",
    "validate": {"min": 1, "max": 10000},
    "required": true
   },
   {
    "name": "interval",
    "type": "uinteger",
    "label": "Minutes between retries",
    "validate": {"min": 1, "max": 44640},
    "required": true
   }
  ]
 },
 "util:FunctionSleep@1": {
  "source": "stored GitHub file, index id 23211576507 (repo not resolved)",
  "parameters": [],
  "expect": [
   {"name": "duration", "type": "uinteger", "label": "Delay", "validate": {"min": 1, "max": 300}, "required": true}
  ]
 },
 "json:TransformToJSON@1": {
  "source": "stored GitHub file, index id 45653883481 (blog post embedding an exported blueprint; repo not resolved)",
  "parameters": [
   {"name": "space", "type": "select", "label": "Indentation", "validate": {"enum": ["tab", "2", "4"]}}
  ],
  "expect": [{"name": "object", "type": "any", "label": "Object"}]
 },
 "json:ParseJSON@1": {
  "source": "stored GitHub file, index id 12999678980 (repo not resolved)",
  "parameters": [{"name": "type", "type": "udt", "label": "Data structure"}],
  "expect": [{"name": "json", "type": "text", "label": "JSON string", "required": true}]
 }
}
"""

_HTTP_V4_JSON: Final = """
{
 "http:MakeRequest@4": {
  "source": "26 modules in 10 real exports (tests/fixtures/make-blueprints-v4/http-makerequest-v4-spec.json)",
  "parameters": [
   {
    "name": "authenticationType",
    "type": "select",
    "label": "Authentication type",
    "required": true,
    "validate": {"enum": ["noAuth", "apiKey", "basicAuth", "oAuth"]}
   },
   {
    "name": "tlsType",
    "type": "select",
    "label": "Transport layer security (TLS)",
    "validate": {"enum": ["mTls", "tls"]}
   },
   {"name": "proxyKeychain", "type": "keychain:proxy", "label": "Proxy"},
   {"name": "apiKeyKeychain", "type": "keychain:apikeyauth", "label": "Credentials", "required": true},
   {"name": "basicAuthKeychain", "type": "keychain:basicauth"},
   {"name": "oAuthAccount", "type": "account:oauth2"}
  ],
  "expect": [
   {"name": "url", "type": "url", "label": "URL", "required": true},
   {
    "name": "method",
    "type": "select",
    "label": "Method",
    "required": true,
    "validate": {"enum": ["get", "head", "post", "put", "patch", "delete", "options"]}
   },
   {
    "name": "headers",
    "spec": {
     "name": "value",
     "spec": [
      {
       "name": "name",
       "type": "text",
       "label": "Name",
       "required": true,
       "validate": {"pattern": "^[-!#$%&'*+.^_`|~0-9A-Za-z]+$"}
      },
      {"name": "value", "type": "text", "label": "Value"}
     ],
     "type": "collection",
     "label": "Header"
    },
    "type": "array",
    "label": "Headers"
   },
   {
    "name": "queryParameters",
    "spec": {
     "name": "value",
     "spec": [
      {"name": "name", "type": "text", "label": "Name", "required": true},
      {"name": "value", "type": "text", "label": "Value"}
     ],
     "type": "collection",
     "label": "Parameter"
    },
    "type": "array",
    "label": "Query parameters"
   },
   {
    "name": "contentType",
    "type": "select",
    "label": "Body content type",
    "validate": {"enum": ["json", "multipart", "urlEncoded", "custom"]}
   },
   {"name": "parseResponse", "type": "boolean", "label": "Parse response", "required": true},
   {"name": "stopOnHttpError", "type": "boolean", "label": "Return error if HTTP request fails", "required": true},
   {"name": "timeout", "type": "uinteger", "label": "Timeout", "validate": {"max": 300, "min": 1}},
   {"name": "allowRedirects", "type": "boolean", "label": "Allow redirects", "required": true},
   {"name": "shareCookies", "type": "boolean", "label": "Share cookies with other HTTP modules", "required": true},
   {"name": "requestCompressedContent", "type": "boolean", "label": "Request compressed content", "required": true},
   {
    "name": "inputMethod",
    "type": "select",
    "label": "Body input method",
    "required": true,
    "validate": {"enum": ["dataStructure", "jsonString"]}
   },
   {"name": "jsonStringBodyContent", "type": "text", "label": "Body content", "required": true},
   {
    "name": "paginationType",
    "type": "select",
    "label": "Pagination type",
    "validate": {"enum": ["offsetBased", "pageBased", "urlBased", "tokenBased"]}
   },
   {"name": "bodyDataStructure", "type": "udt", "label": "Body structure", "required": true},
   {"name": "dataStructureBodyContent", "type": "collection", "label": "Body content"},
   {"name": "multipartBodyContent", "type": "array"},
   {"name": "urlEncodedBodyContent", "type": "array"}
  ],
  "shown_when": {
   "apiKeyKeychain": {"authenticationType": ["apiKey"]},
   "basicAuthKeychain": {"authenticationType": ["basicAuth"]},
   "oAuthAccount": {"authenticationType": ["oAuth"]},
   "inputMethod": {"contentType": ["json"]},
   "jsonStringBodyContent": {"contentType": ["json"], "inputMethod": ["jsonString"]},
   "bodyDataStructure": {"contentType": ["json"], "inputMethod": ["dataStructure"]},
   "dataStructureBodyContent": {"contentType": ["json"], "inputMethod": ["dataStructure"]},
   "multipartBodyContent": {"contentType": ["multipart"]},
   "urlEncodedBodyContent": {"contentType": ["urlEncoded"]}
  }
 }
}
"""

LEGACY_SPECS: Final[dict[str, dict[str, Any]]] = json.loads(_LEGACY_JSON)
HTTP_V4_SPEC: Final[dict[str, Any]] = json.loads(_HTTP_V4_JSON)[HTTP_V4]

#: Every built-in spec; ``tierwise lint-make --specs FILE`` merges more over these.
MODULE_SPECS: Final[dict[str, dict[str, Any]]] = {**LEGACY_SPECS, HTTP_V4: HTTP_V4_SPEC}
