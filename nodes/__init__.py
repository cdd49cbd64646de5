"""Tierwise: four tier-aware LLM nodes (classify, extract, draft, judge) behind a webhook/JSON protocol.

The package is laid out in the order a request travels: ``routes`` (HTTP) → ``protocol``
(request models) → ``routing`` (starting tier) → ``pipeline`` (attempts, repair, escalation)
→ ``provider`` (the OpenAI-compatible client) with ``backoff`` → ``validate`` → ``cost`` →
``runlog`` (storage). ``catalog`` holds one module per node; ``sandbox`` is the built-in
OpenAI-compatible upstream used when no real endpoint is configured.
"""

__version__ = "0.1.0"
