"""One TLS context per process for every outgoing HTTPS connection (model endpoints, callbacks).

Building a context reads the system's certificate store, which costs tens of milliseconds; every
client Tierwise makes shares this one instead of building its own.
"""

from __future__ import annotations

import ssl
from functools import cache


@cache
def client_tls() -> ssl.SSLContext:
    """The default, certificate-verifying client context, built on first use."""
    return ssl.create_default_context()
