"""The OpenAI-compatible surface: ``/v1/models``, ``/v1/chat/completions`` and ``/v1/responses``.

For clients that speak OpenAI's API — n8n's OpenAI Chat Model and its AI nodes, LangChain, the
OpenAI SDKs — with Tierwise's tiers behind it:

    HTTP ──▶ routes ──▶ surface (admission, then the run) ──▶ runner (the ladder, as for the nodes)
              │            ▲
              │            └── chat / responses: OpenAI's request → a ``chat`` node request; the run's
              │                                  record → OpenAI's response, or its stream of events
              └── errors: every refusal as OpenAI's error body

* ``models``: the model ids (``tierwise/auto|nano|mini|full``) and the tier each one starts on.
* ``chat``: Chat Completions requests in, ``chat.completion`` objects and chunk streams out.
* ``responses``: Responses requests translated to chat form, ``response`` objects and event streams out.
* ``sse``: server-sent event framing.
* ``errors``: problems as ``{"error": {"message", "type", "code", "param"}}``.
* ``surface``: admission, the run, the stored record and the answer, for both endpoints.
* ``routes``: the FastAPI routes.
"""
