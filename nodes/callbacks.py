"""Callback URLs: which ones may be called, and how one delivery is made.

A callback URL is where an asynchronous run's answer is POSTed: n8n's Wait-node resume URL (whose
``?signature=`` must be sent back exactly as given) or a Make custom webhook. Because the service
makes that request from inside its own network, a URL whose host is, or resolves to, a private,
loopback, link-local or otherwise non-public address is refused unless
``TIERWISE_CALLBACK_ALLOW_PRIVATE=1`` says this is a local set-up. The check is made when the run is
accepted and again before every delivery, so a name that later resolves elsewhere is caught too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from nodes import __version__
from nodes.errors import FieldIssue, InvalidRequest

USER_AGENT = f"Tierwise/{__version__} (callback)"


class UnsafeCallback(InvalidRequest):
    """A callback URL that may not be called."""

    slug = "invalid-callback-url"
    title = "Callback URL refused"


def _refuse(reason: str) -> UnsafeCallback:
    return UnsafeCallback(f"callback_url: {reason}", errors=[FieldIssue(("callback_url",), reason)])


def is_public(address: str) -> bool:
    """True for an address on the public internet (not private, loopback, link-local, reserved, ...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def parse_callback_url(url: str) -> tuple[str, int]:
    """Check the URL's shape; return its host and port."""
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # an unclosed "[" around an IPv6 address, say
        raise _refuse(f"is not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https"):
        raise _refuse("must be an http:// or https:// URL")
    if not parts.hostname:
        raise _refuse("has no host")
    try:
        parts.hostname.encode("idna")
    except UnicodeError as exc:
        raise _refuse("has an invalid host name: each part between dots must have 1 to 63 characters") from exc
    if parts.username or parts.password:
        raise _refuse("must not carry a user name or password; put secrets in the path or query")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise _refuse("has an invalid port") from exc
    return parts.hostname, port


async def check_callback_url(url: str, *, allow_private: bool) -> None:
    """Refuse (422) a callback URL that is malformed or that reaches a non-public address."""
    host, port = parse_callback_url(url)
    if allow_private:
        return
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise _refuse(f"the host {host!r} could not be resolved") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    private = [address for address in addresses if not is_public(address)]
    if private:
        raise _refuse(
            f"the host {host!r} resolves to a non-public address ({', '.join(private)}); "
            "set TIERWISE_CALLBACK_ALLOW_PRIVATE=1 to allow this on a local set-up"
        )


@dataclass(frozen=True)
class DeliveryResult:
    """How one delivery attempt went."""

    delivered: bool
    status: int | None
    error: str | None
    headers: dict[str, str] | None = None


async def deliver(
    client: httpx.AsyncClient, url: str, body: bytes, *, delivery_id: str, run_id: str, attempt: int
) -> DeliveryResult:
    """POST one answer to its callback URL; any 2xx means delivered."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Tierwise-Delivery-Id": delivery_id,
        "X-Tierwise-Run-Id": run_id,
        "X-Tierwise-Delivery-Attempt": str(attempt),
    }
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return DeliveryResult(False, None, f"{type(exc).__name__}: {exc}"[:500])
    if 200 <= response.status_code < 300:
        return DeliveryResult(True, response.status_code, None)
    return DeliveryResult(
        False,
        response.status_code,
        f"the receiver answered HTTP {response.status_code}",
        {key.lower(): value for key, value in response.headers.items()},
    )
