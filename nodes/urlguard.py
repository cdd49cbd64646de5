"""Callback URLs: which ones may be called, and an HTTP client that cannot be steered anywhere else.

A callback URL is user input that makes the service send a request from inside its own network, so
a URL that reaches a private, loopback, link-local or otherwise non-public address is refused unless
``TIERWISE_CALLBACK_ALLOW_PRIVATE=1`` says this is a local set-up. Two checks stand guard:

* ``check_callback_url`` at acceptance: the URL's shape, then every address its host resolves to.
  A refused URL is a 422 ``/problems/invalid-callback-url`` whose detail says what to fix.
* ``guarded_client`` at delivery: its transport resolves the host once when it opens a connection,
  checks every address again and connects to a vetted address itself, while TLS (SNI and the
  certificate check) and the ``Host`` header still use the host name. A name that resolves to a
  public address when the run is accepted and to a private one when the callback is made (DNS
  rebinding) is refused at connect time, before any socket is opened to the private address. The
  client never follows redirects and ignores proxy variables and ``~/.netrc``; should a caller force
  redirects on, each hop opens its own connection and is checked the same way.

What counts as public (``is_public``): what ``ipaddress`` calls global, minus multicast, minus a few
special-purpose IPv6 blocks some Python versions still call global, and never an address with a
zone id. An IPv6 address that carries an IPv4 address is judged by that IPv4 address:
IPv4-mapped ``::ffff:0:0/96``, IPv4-translated ``::ffff:0:0:0/96``, IPv4-compatible ``::/96`` (so
``::`` and ``::1`` too) and the NAT64 prefix ``64:ff9b::/96`` are only other spellings of it; 6to4
``2002::/16`` and Teredo ``2001::/32`` (its server and its obfuscated client) must pass both as IPv6
and for every IPv4 address they carry. The NAT64 local-use block ``64:ff9b:1::/48`` is never public.

Host spellings: a host that ends in a number (its last label is all digits or ``0x`` and hex) is an
IPv4 address to URL parsers and resolvers, which also read decimal ``2130706433``, octal or hex
``0177.0.0.1``/``0x7f.1`` and short ``127.1`` forms. No webhook is written that way, so such a host
must be four decimal numbers exactly as ``ipaddress`` writes them (``93.184.216.34``); any other
spelling is refused outright rather than normalised, whatever it would resolve to.

The exceptions::

    InvalidRequest (nodes.errors)   422
    └── UnsafeCallback              /problems/invalid-callback-url, raised by check_callback_url
    httpx.ConnectError
    └── UnsafeDestination           raised by a guarded client's request refused at connect time
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import socket
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence

import httpcore
import httpx

from nodes.errors import FieldIssue, InvalidRequest
from nodes.tls import client_tls

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Resolve ``(host, port)`` to addresses; raises ``OSError`` (or ``UnicodeError``) when it cannot."""

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SPELLINGS = (_MAPPED, _TRANSLATED, _COMPATIBLE, _NAT64)
# Special-purpose blocks that are not globally reachable but that some Python versions call global.
_NEVER_PUBLIC = (
    ipaddress.IPv6Network("64:ff9b:1::/48"),  # NAT64 local use (RFC 8215)
    ipaddress.IPv6Network("fec0::/10"),  # site-local (deprecated by RFC 3879)
    ipaddress.IPv6Network("3fff::/20"),  # documentation (RFC 9637)
    ipaddress.IPv6Network("5f00::/16"),  # SRv6 segment identifiers (RFC 9602)
)
_ENDS_IN_A_NUMBER = re.compile(r"(?:[0-9]+|0x[0-9a-f]*)", re.IGNORECASE)
_FIX = "use a host on the public internet, or set TIERWISE_CALLBACK_ALLOW_PRIVATE=1 to allow this on a local set-up"


class UnsafeCallback(InvalidRequest):
    """A callback URL that may not be called."""

    slug = "invalid-callback-url"
    title = "Callback URL refused"


class UnsafeDestination(httpx.ConnectError):
    """A guarded client refused to connect: at connect time the host was, or resolved to, a non-public address."""


class _Refused(Exception):
    """A host that may not be reached; ``reason`` is the sentence shown to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _RefusedAtConnect(httpcore.ConnectError):
    """The network backend's refusal, mapped to ``UnsafeDestination`` by the transport."""


def _refuse(reason: str) -> UnsafeCallback:
    return UnsafeCallback(f"callback_url: {reason}", errors=[FieldIssue(("callback_url",), reason)])


def embedded_ipv4(ip: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries.

    One for the mapped, translated, compatible, NAT64 and 6to4 forms; the server and then the client
    for Teredo; none for any other address.
    """
    if any(ip in network for network in _SPELLINGS):
        return (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF),)
    if ip.sixtofour is not None:
        return (ip.sixtofour,)
    if ip.teredo is not None:
        return ip.teredo
    return ()


def _parse(address: str | IPAddress) -> IPAddress | None:
    if not isinstance(address, str):
        return address
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def is_public(address: str | IPAddress) -> bool:
    """True for an address on the public internet, False for anything else.

    Never raises: text that is not an address in standard notation is not public, nor is an IPv6
    address with a zone id. The module docstring lists what is refused; in short, an IPv6 address that
    carries an IPv4 address is never more public than that IPv4 address.
    """
    ip = _parse(address)
    if ip is None:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return ip.is_global and not ip.is_multicast
    if ip.scope_id is not None:
        return False
    embedded = embedded_ipv4(ip)
    if any(ip in network for network in _SPELLINGS):
        return is_public(embedded[0])
    if any(ip in network for network in _NEVER_PUBLIC):
        return False
    return ip.is_global and not ip.is_multicast and all(is_public(v4) for v4 in embedded)


def _describe(address: str) -> str:
    ip = _parse(address)
    embedded = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else ()
    if not embedded or (isinstance(ip, ipaddress.IPv6Address) and (ip.is_loopback or ip.is_unspecified)):
        return address
    return f"{address} which embeds {' and '.join(str(v4) for v4 in embedded)}"


def _literal(host: str) -> IPAddress | None:
    """The address a host names directly, None for a host name; raises ``_Refused`` for other spellings."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise _Refused(f"the host {host!r} is not a valid IPv6 address") from exc
    if _ENDS_IN_A_NUMBER.fullmatch(host.removesuffix(".").rsplit(".", 1)[-1]):
        try:
            return ipaddress.IPv4Address(host)
        except ValueError as exc:
            raise _Refused(
                f"the host {host!r} is an IPv4 address in a non-standard form; write it as four decimal "
                "numbers (like 93.184.216.34) or use a host name"
            ) from exc
    return None


async def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to for a TCP connection, in the resolver's order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _vetted(host: str, port: int, resolver: Resolver, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for ``host``; raises ``_Refused`` (or ``OSError`` when unresolvable)."""
    literal = _literal(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = list(await resolver(host, port))
        except (OSError, UnicodeError) as exc:
            raise OSError(f"the host {host!r} could not be resolved; check the host name") from exc
        if not addresses:
            raise OSError(f"the host {host!r} resolved to no address; check the host name")
    if allow_private:
        return addresses
    private = [address for address in addresses if not is_public(address)]
    if private:
        verb = "is" if literal is not None else "resolves to"
        described = ", ".join(_describe(address) for address in private)
        raise _Refused(f"the host {host!r} {verb} a non-public address ({described}); {_FIX}")
    return addresses


def parse_callback_url(url: str) -> tuple[str, int]:
    """Check a callback URL's shape; return the host to resolve and the port.

    The URL must be http or https, with a host in a standard spelling, no user name or password and a
    port from 1 to 65535. It is read by httpx's parser, the one the guarded client uses, so the host
    checked here is the host a delivery connects to.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise _refuse(f"is not a valid URL ({exc})") from exc
    if parsed.scheme not in ("http", "https"):
        raise _refuse("must be an http:// or https:// URL")
    host = parsed.raw_host.decode("ascii")
    if not host:
        raise _refuse("has no host")
    if parsed.userinfo:
        raise _refuse("must not carry a user name or password; put secrets in the path or query")
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if not 1 <= port <= 65535:
        raise _refuse(f"has an invalid port ({port}); use a port from 1 to 65535")
    try:
        _literal(host)
    except _Refused as exc:
        raise _refuse(exc.reason) from exc
    return host, port


async def check_callback_url(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> None:
    """Refuse (422 ``UnsafeCallback``) a malformed callback URL or one that reaches a non-public address.

    The host is resolved with ``resolver`` and every address it resolves to must be public; with
    ``allow_private`` only the URL's shape is checked.
    """
    host, port = parse_callback_url(url)
    if allow_private:
        return
    try:
        await _vetted(host, port, resolver, allow_private=False)
    except _Refused as exc:
        raise _refuse(exc.reason) from exc
    except OSError as exc:
        raise _refuse(str(exc)) from exc


class _PinningBackend(httpcore.AsyncNetworkBackend):
    """Opens each connection to an address vetted at that moment, never to a name resolved elsewhere."""

    def __init__(self, network: httpcore.AsyncNetworkBackend, resolver: Resolver, *, allow_private: bool) -> None:
        self._network = network
        self._resolver = resolver
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            async with asyncio.timeout(timeout):
                addresses = await _vetted(host, port, self._resolver, allow_private=self._allow_private)
        except _Refused as exc:
            raise _RefusedAtConnect(exc.reason) from exc
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host!r} took longer than {timeout} s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        failure: Exception | None = None
        for address in addresses:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                return await self._network.connect_tcp(
                    address, port, timeout=remaining, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise _RefusedAtConnect("callbacks are made over TCP only")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# httpcore's errors as httpx's, most specific first (the mapping httpx's own transport makes).
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (_RefusedAtConnect, UnsafeDestination),
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
)


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


class _GuardedTransport(httpx.AsyncBaseTransport):
    """httpx's transport contract over an httpcore pool whose every connection the pinning backend opens."""

    def __init__(self, backend: _PinningBackend) -> None:
        limits = httpx.Limits()
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=client_tls(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _as_httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


def guarded_client(
    *,
    allow_private: bool,
    timeout: httpx.Timeout | float,
    resolver: Resolver = resolve,
    network: httpcore.AsyncNetworkBackend | None = None,
) -> httpx.AsyncClient:
    """An HTTP client for callback deliveries that connects only to addresses vetted at connect time.

    Each new connection resolves its host once with ``resolver``, refuses (``UnsafeDestination``) if
    any address is not public, and connects through ``network`` (anyio's sockets by default) to the
    first vetted address that answers; the request itself still names the host. With
    ``allow_private`` any address may be reached. Redirects are never followed, and proxy variables
    and ``~/.netrc`` are ignored.
    """
    backend = _PinningBackend(network or httpcore.AnyIOBackend(), resolver, allow_private=allow_private)
    return httpx.AsyncClient(
        transport=_GuardedTransport(backend), timeout=timeout, follow_redirects=False, trust_env=False
    )
