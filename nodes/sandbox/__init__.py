"""The sandbox upstream: an OpenAI-compatible chat-completions server for offline runs and tests.

Tierwise talks to OpenAI-compatible endpoints. When no real API key is configured, and in every
test and benchmark, it talks to this sandbox instead, over real HTTP on loopback. The sandbox
answers ``json_schema`` requests with values synthesized to satisfy the schema, ``json_object``
requests from a ``<json_schema>`` block in the prompt, and text requests with a plausible paragraph,
with OpenAI's exact body shape, usage arithmetic and headers. A ``SandboxConfig`` adds latency and
faults (rate limits, quota errors, 5xx, slow replies, non-JSON, schema drift, refusals, truncation,
canned content) so retry, repair and escalation paths can be exercised deterministically, and
OpenAI-style per-model rate limits (``rate_limit_rpm``/``rate_limit_tpm`` token buckets answering 429
with exact ``retry-after-ms`` and real ``x-ratelimit-*`` headers). ``GET /_sandbox/stats`` counts
served, rate-limited and faulted requests; ``log_requests=False`` turns off the request log.
A ``ReplyShaper`` passed to ``create_sandbox_app`` decides the successful replies of the models it
knows (what they say and how long they take), with faults and rate limits still applied on top; the
economics benchmark plugs its simulated models in this way (``bench/simulator.py``).

* ``create_sandbox_app``: the FastAPI app (``server``).
* ``SandboxConfig``, ``FaultRule``, ``load_sandbox_config``: configuration (``faults``).
* ``ReplyShaper``, ``ChatRequest``, ``ShapedReply``, ``Delivery``: the extension seam (``shaping``).
* ``synthesize``: JSON Schema to a valid instance (``synth``).
* Token buckets behind the rate limits (``limits``).
"""

from nodes.sandbox.faults import FaultRule, SandboxConfig, load_sandbox_config
from nodes.sandbox.server import create_sandbox_app
from nodes.sandbox.shaping import ChatRequest, Delivery, ReplyShaper, ShapedReply
from nodes.sandbox.synth import synthesize

__all__ = [
    "ChatRequest",
    "Delivery",
    "FaultRule",
    "ReplyShaper",
    "SandboxConfig",
    "ShapedReply",
    "create_sandbox_app",
    "load_sandbox_config",
    "synthesize",
]
