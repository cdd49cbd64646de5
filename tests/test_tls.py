"""One verifying TLS context per process, shared by every outgoing client."""

from __future__ import annotations

import ssl

from nodes.tls import client_tls


def test_the_context_is_built_once_and_verifies_certificates() -> None:
    context = client_tls()
    assert context is client_tls()
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
