"""Callback URL guard: which addresses are public, the acceptance check, and the client pinned at connect time."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import Receiver

from nodes.urlguard import (
    UnsafeCallback,
    UnsafeDestination,
    check_callback_url,
    embedded_ipv4,
    guarded_client,
    is_public,
    parse_callback_url,
)

PUBLIC_V4 = "93.184.216.34"
PUBLIC_V6 = "2606:2800:220:1:248:1893:25c8:1946"
NO_CONTENT = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"


class Resolutions:
    """A resolver that answers from a script: one list per call, or per host from a mapping."""

    def __init__(self, *answers: Sequence[str], by_host: dict[str, Sequence[str]] | None = None) -> None:
        self.answers = list(answers)
        self.by_host = by_host or {}
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.asked.append((host, port))
        if host in self.by_host:
            return self.by_host[host]
        assert self.answers, f"unexpected resolution of {host!r}"
        return self.answers.pop(0)


async def never_resolve(host: str, port: int) -> Sequence[str]:
    raise AssertionError(f"{host!r} should not have been resolved")


class FakeStream(httpcore.AsyncNetworkStream):
    """One connection: records what is written and the TLS server name, and replays a scripted reply."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.written = b""
        self.server_hostname: str | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        chunk, self.reply = self.reply[:max_bytes], self.reply[max_bytes:]
        return chunk

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer

    async def aclose(self) -> None:
        pass

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        self.server_hostname = server_hostname
        return self

    def get_extra_info(self, info: str) -> Any:
        return None


class FakeNetwork(httpcore.AsyncNetworkBackend):
    """A network that opens no socket: it records each address asked for and answers with scripted replies."""

    def __init__(self, *replies: bytes, unreachable: Iterable[str] = ()) -> None:
        self.replies = list(replies)
        self.unreachable = set(unreachable)
        self.connects: list[tuple[str, int]] = []
        self.streams: list[FakeStream] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if host in self.unreachable:
            raise httpcore.ConnectError(f"{host} is unreachable")
        stream = FakeStream(self.replies.pop(0) if self.replies else NO_CONTENT)
        self.streams.append(stream)
        return stream

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def problem_of(excinfo: pytest.ExceptionInfo[UnsafeCallback]) -> dict[str, Any]:
    problem = excinfo.value.to_problem()
    assert (problem["type"], problem["status"]) == ("/problems/invalid-callback-url", 422)
    assert [issue["loc"] for issue in problem["errors"]] == [["callback_url"]]
    return problem


# -- is_public and the acceptance check ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://[::127.0.0.1]/x", "::7f00:1 which embeds 127.0.0.1"),
        ("http://[64:ff9b::7f00:1]/x", "64:ff9b::7f00:1 which embeds 127.0.0.1"),
        ("http://[64:ff9b::a9fe:a9fe]/x", "64:ff9b::a9fe:a9fe which embeds 169.254.169.254"),
        ("http://[2002:7f00:1::]/x", "2002:7f00:1:: which embeds 127.0.0.1"),
        ("http://[2002:a9fe:a9fe::]/x", "2002:a9fe:a9fe:: which embeds 169.254.169.254"),
        ("http://[::ffff:10.0.0.1]/x", "::ffff:a00:1 which embeds 10.0.0.1"),
        ("http://[::ffff:0:7f00:1]/x", "::ffff:0:7f00:1 which embeds 127.0.0.1"),
        ("http://[64:ff9b:1::5db8:d822]/x", "(64:ff9b:1::5db8:d822)"),
        ("http://[::]/x", "non-public address (::)"),
        ("http://[::1]:8080/x", "non-public address (::1)"),
        ("http://[fe80::1%25eth0]/x", "(fe80::1%25eth0)"),
        ("http://[fd00::1]/x", "(fd00::1)"),
        ("http://[ff0e::1]/x", "(ff0e::1)"),
        ("http://[fec0::1]/x", "(fec0::1)"),
        (
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/x",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2 which embeds 65.54.227.120 and 192.0.2.45",
        ),
        ("http://127.0.0.1:9/x", "(127.0.0.1)"),
        ("http://169.254.169.254/latest/meta-data", "(169.254.169.254)"),
        ("http://224.0.0.1/x", "(224.0.0.1)"),
        ("http://203.0.113.9/x", "(203.0.113.9)"),
    ],
)
async def test_non_public_address_literals_are_refused_and_named(url: str, named: str) -> None:
    with pytest.raises(UnsafeCallback) as excinfo:
        await check_callback_url(url, allow_private=False, resolver=never_resolve)
    problem = problem_of(excinfo)
    assert "is a non-public address" in problem["detail"] and named in problem["detail"]
    assert problem["detail"].endswith("set TIERWISE_CALLBACK_ALLOW_PRIVATE=1 to allow this on a local set-up")


@pytest.mark.parametrize(
    "url",
    [
        f"https://{PUBLIC_V4}/hook",
        f"http://[{PUBLIC_V6}]:8443/hook",
        "http://[2606:4700:4700::1111]/hook",
        "http://[::ffff:93.184.216.34]/hook",
        "http://[64:ff9b::5db8:d822]/hook",
        "http://[2002:5db8:d822:1::1]/hook",
        "http://[::93.184.216.34]/hook",
    ],
)
async def test_public_address_literals_are_accepted(url: str) -> None:
    await check_callback_url(url, allow_private=False, resolver=never_resolve)


@pytest.mark.parametrize(
    "host",
    ["2130706433", "0x7f000001", "0x7f.1", "0177.1", "127.1", "127.0.1", "0x5db8d822", "93.184.216.34.", "1.2.3.4.5"],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_ipv4_in_non_standard_spellings_is_refused_whatever_it_reaches(host: str, allow_private: bool) -> None:
    with pytest.raises(UnsafeCallback) as excinfo:
        await check_callback_url(f"http://{host}/hook", allow_private=allow_private, resolver=never_resolve)
    assert problem_of(excinfo)["detail"] == (
        f"callback_url: the host {host!r} is an IPv4 address in a non-standard form; "
        "write it as four decimal numbers (like 93.184.216.34) or use a host name"
    )


@pytest.mark.parametrize("allow_private", [False, True])
async def test_four_numbers_with_leading_zeros_are_refused_by_the_url_parser(allow_private: bool) -> None:
    with pytest.raises(UnsafeCallback) as excinfo:
        await check_callback_url("http://0177.0.0.1/hook", allow_private=allow_private, resolver=never_resolve)
    assert problem_of(excinfo)["detail"] == "callback_url: is not a valid URL (Invalid IPv4 address: '0177.0.0.1')"


async def test_names_that_only_look_numeric_are_resolved() -> None:
    resolver = Resolutions([PUBLIC_V4], [PUBLIC_V6])
    await check_callback_url("https://1e100.net/hook", allow_private=False, resolver=resolver)
    await check_callback_url("https://0x7f.example/hook", allow_private=False, resolver=resolver)
    assert resolver.asked == [("1e100.net", 443), ("0x7f.example", 443)]


async def test_a_name_is_refused_when_any_address_it_resolves_to_is_not_public() -> None:
    resolver = Resolutions([PUBLIC_V4, "10.0.0.7", PUBLIC_V6, "64:ff9b::a00:7"])
    with pytest.raises(UnsafeCallback) as excinfo:
        await check_callback_url("http://hooks.example:8080/x", allow_private=False, resolver=resolver)
    assert problem_of(excinfo)["detail"] == (
        "callback_url: the host 'hooks.example' resolves to a non-public address "
        "(10.0.0.7, 64:ff9b::a00:7 which embeds 10.0.0.7); use a host on the public internet, "
        "or set TIERWISE_CALLBACK_ALLOW_PRIVATE=1 to allow this on a local set-up"
    )
    assert resolver.asked == [("hooks.example", 8080)]


async def test_a_name_resolving_only_to_public_addresses_is_accepted() -> None:
    resolver = Resolutions([PUBLIC_V4, PUBLIC_V6])
    await check_callback_url("https://hooks.example/x?signature=abc", allow_private=False, resolver=resolver)
    assert resolver.asked == [("hooks.example", 443)]


async def test_unresolvable_hosts_are_refused() -> None:
    async def fails(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(UnsafeCallback) as excinfo:
        await check_callback_url("http://nowhere.example/x", allow_private=False, resolver=fails)
    assert (
        problem_of(excinfo)["detail"]
        == "callback_url: the host 'nowhere.example' could not be resolved; check the host name"
    )
    # An empty label fails in the resolver's IDNA encoding (UnicodeError), before any lookup.
    with pytest.raises(UnsafeCallback) as excinfo:
        await check_callback_url("http://a..b/x", allow_private=False)
    assert problem_of(excinfo)["detail"] == "callback_url: the host 'a..b' could not be resolved; check the host name"


async def test_localhost_is_refused_by_the_real_resolver() -> None:
    with pytest.raises(UnsafeCallback) as excinfo:
        await check_callback_url("http://localhost:5678/webhook", allow_private=False)
    assert "the host 'localhost' resolves to a non-public address (127.0.0.1" in problem_of(excinfo)["detail"]


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://files.example/hook", "must be an http:// or https:// URL"),
        ("not a url", "must be an http:// or https:// URL"),
        ("http:///hook", "has no host"),
        ("http://user:pw@203.0.113.9/hook", "must not carry a user name or password"),
        ("http://127.0.0.1\\@hooks.example/x", "must not carry a user name or password"),
        ("http://hooks.example:0/x", "has an invalid port (0); use a port from 1 to 65535"),
        ("http://hooks.example:99999/x", "has an invalid port (99999); use a port from 1 to 65535"),
        ("http://hooks.example:abc/x", "is not a valid URL (Invalid port: 'abc')"),
        ("http://[zz::1]/x", "is not a valid URL"),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_malformed_urls_are_refused_even_when_private_hosts_are_allowed(
    url: str, reason: str, allow_private: bool
) -> None:
    with pytest.raises(UnsafeCallback) as excinfo:
        await check_callback_url(url, allow_private=allow_private, resolver=never_resolve)
    assert problem_of(excinfo)["detail"].startswith(f"callback_url: {reason}")


async def test_allowing_private_hosts_skips_resolution() -> None:
    await check_callback_url("http://127.0.0.1:5678/webhook", allow_private=True, resolver=never_resolve)
    await check_callback_url("http://n8n.internal/webhook", allow_private=True, resolver=never_resolve)
    assert parse_callback_url("HTTPS://Hooks.Example/x") == ("hooks.example", 443)
    assert parse_callback_url("http://[::1]:8080/x") == ("::1", 8080)


# -- the laws of is_public --------------------------------------------------------------------------------


def spellings_of(v4: ipaddress.IPv4Address, suffix: int) -> list[ipaddress.IPv6Address]:
    """Every IPv6 form that carries ``v4``: mapped, translated, compatible, NAT64 and 6to4 (any subnet and host)."""
    n = int(v4)
    return [
        ipaddress.IPv6Address((0xFFFF << 32) | n),
        ipaddress.IPv6Address((0xFFFF << 48) | n),
        ipaddress.IPv6Address(n),
        ipaddress.IPv6Address((0x0064FF9B << 96) | n),
        ipaddress.IPv6Address((0x2002 << 112) | (n << 80) | suffix),
    ]


@given(st.ip_addresses(v=4), st.integers(0, 2**80 - 1))
def test_every_ipv6_spelling_of_an_ipv4_address_is_as_public_as_it(v4: ipaddress.IPv4Address, suffix: int) -> None:
    for v6 in spellings_of(v4, suffix):
        assert embedded_ipv4(v6) == (v4,)
        assert is_public(v6) == is_public(str(v6)) == is_public(v4), v6


@given(st.ip_addresses(v=4), st.ip_addresses(v=4), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF))
def test_teredo_carries_its_server_and_client_and_is_never_public(
    server: ipaddress.IPv4Address, client: ipaddress.IPv4Address, flags: int, port: int
) -> None:
    address = ipaddress.IPv6Address(
        (0x20010000 << 96) | (int(server) << 64) | (flags << 48) | (port << 32) | (int(client) ^ 0xFFFFFFFF)
    )
    assert embedded_ipv4(address) == (server, client)
    assert not is_public(address)


@given(st.ip_addresses(v=6))
def test_a_public_ipv6_address_is_global_unicast_and_carries_only_public_ipv4(ip: ipaddress.IPv6Address) -> None:
    if is_public(ip):
        assert not ip.is_multicast and ip.scope_id is None
        assert all(is_public(v4) for v4 in embedded_ipv4(ip))
        assert ip.is_global or embedded_ipv4(ip)
        assert ip not in ipaddress.IPv6Network("64:ff9b:1::/48")


@given(st.ip_addresses(v=6), st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True))
def test_an_address_with_a_zone_id_is_never_public(ip: ipaddress.IPv6Address, zone: str) -> None:
    assert not is_public(f"{ip}%{zone}")


@given(st.ip_addresses(v=4))
def test_ipv4_is_public_when_global_and_not_multicast(v4: ipaddress.IPv4Address) -> None:
    assert is_public(v4) == is_public(str(v4)) == (v4.is_global and not v4.is_multicast)


@given(st.text())
def test_is_public_answers_for_any_text(text: str) -> None:
    assert is_public(text) in (True, False)


@given(st.ip_addresses(v=4))
def test_only_the_standard_spelling_of_an_ipv4_address_passes(v4: ipaddress.IPv4Address) -> None:
    assert parse_callback_url(f"http://{v4}/hook") == (str(v4), 80)
    a, b, c, d = v4.packed
    for spelling in (str(int(v4)), hex(int(v4)), f"0{a:o}.{b}.{c}.{d}", f"{a}.{(b << 16) | (c << 8) | d}", f"{v4}."):
        with pytest.raises(UnsafeCallback, match="non-standard form|Invalid IPv4 address"):
            parse_callback_url(f"http://{spelling}/hook")


def test_common_verdicts() -> None:
    assert is_public("8.8.8.8") and is_public("2606:4700:4700::1111") and is_public(PUBLIC_V6)
    for address in ("100.64.0.1", "fd00::1", "224.0.0.1", "ff02::1", "0.0.0.0", "255.255.255.255", "3fff::1"):
        assert not is_public(address), address
    assert not is_public("2130706433") and not is_public("127.1") and not is_public("example.com")


# -- the guarded client: connect-time checks and pinning ---------------------------------------------------


async def test_rebinding_between_check_and_connect_is_refused_before_connecting() -> None:
    resolver = Resolutions([PUBLIC_V4], ["127.0.0.1"])
    network = FakeNetwork()
    await check_callback_url("http://rebind.example/hook", allow_private=False, resolver=resolver)
    async with guarded_client(allow_private=False, timeout=5, resolver=resolver, network=network) as client:
        with pytest.raises(UnsafeDestination) as excinfo:
            await client.post("http://rebind.example/hook", content=b"{}")
    assert str(excinfo.value) == (
        "the host 'rebind.example' resolves to a non-public address (127.0.0.1); use a host on the public "
        "internet, or set TIERWISE_CALLBACK_ALLOW_PRIVATE=1 to allow this on a local set-up"
    )
    assert isinstance(excinfo.value, httpx.ConnectError)
    assert resolver.asked == [("rebind.example", 80), ("rebind.example", 80)]
    assert network.connects == []


async def test_rebinding_to_a_listening_loopback_port_opens_no_socket(
    receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = int(receiver.url.rsplit(":", 1)[1])
    attempts: list[Any] = []
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def spy_connect(self: socket.socket, address: Any) -> None:
        attempts.append(address)
        connect(self, address)

    def spy_connect_ex(self: socket.socket, address: Any) -> int:
        attempts.append(address)
        return connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", spy_connect_ex)
    url = f"http://rebind.example:{port}/hook"
    resolver = Resolutions([PUBLIC_V4], ["127.0.0.1"], ["127.0.0.1"])
    await check_callback_url(url, allow_private=False, resolver=resolver)
    async with guarded_client(allow_private=False, timeout=5, resolver=resolver) as client:
        with pytest.raises(UnsafeDestination, match=r"non-public address \(127\.0\.0\.1\)"):
            await client.post(url, content=b"{}")
    assert attempts == [] and receiver.received == []
    # The same resolution with private hosts allowed does reach the receiver, through the sockets spied on.
    async with guarded_client(allow_private=True, timeout=5, resolver=resolver) as client:
        response = await client.post(url, content=b"{}")
    assert response.status_code == 200
    assert attempts == [("127.0.0.1", port)] and [r["path"] for r in receiver.received] == ["/hook"]


async def test_the_connection_goes_to_the_vetted_address_while_tls_and_host_name_the_host() -> None:
    resolver = Resolutions([PUBLIC_V4])
    network = FakeNetwork()
    async with guarded_client(allow_private=False, timeout=5, resolver=resolver, network=network) as client:
        response = await client.post("https://hooks.example/x?signature=s1", content=b'{"ok":true}')
    assert response.status_code == 204
    assert network.connects == [(PUBLIC_V4, 443)]
    [stream] = network.streams
    assert stream.server_hostname == "hooks.example"
    assert stream.written.startswith(b"POST /x?signature=s1 HTTP/1.1\r\nHost: hooks.example\r\n")
    assert stream.written.endswith(b'\r\n\r\n{"ok":true}')


async def test_the_next_vetted_address_is_tried_when_one_does_not_answer() -> None:
    resolver = Resolutions([PUBLIC_V6, PUBLIC_V4])
    network = FakeNetwork(unreachable=[PUBLIC_V6])
    async with guarded_client(allow_private=False, timeout=5, resolver=resolver, network=network) as client:
        response = await client.get("http://hooks.example:8080/x")
    assert response.status_code == 204
    assert network.connects == [(PUBLIC_V6, 8080), (PUBLIC_V4, 8080)]


async def test_a_connection_is_refused_when_any_address_is_not_public() -> None:
    resolver = Resolutions([PUBLIC_V4, "64:ff9b::a9fe:a9fe"])
    network = FakeNetwork()
    async with guarded_client(allow_private=False, timeout=5, resolver=resolver, network=network) as client:
        with pytest.raises(UnsafeDestination, match=r"64:ff9b::a9fe:a9fe which embeds 169\.254\.169\.254"):
            await client.get("http://hooks.example/x")
    assert network.connects == []


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://[::127.0.0.1]/x", "is a non-public address (::7f00:1 which embeds 127.0.0.1)"),
        ("http://[2002:a9fe:a9fe::]/x", "is a non-public address (2002:a9fe:a9fe:: which embeds 169.254.169.254)"),
        ("http://2130706433/x", "is an IPv4 address in a non-standard form"),
        ("http://0x7f.1/x", "is an IPv4 address in a non-standard form"),
    ],
)
async def test_literal_hosts_are_checked_at_connect_time_too(url: str, fragment: str) -> None:
    network = FakeNetwork()
    async with guarded_client(allow_private=False, timeout=5, resolver=never_resolve, network=network) as client:
        with pytest.raises(UnsafeDestination) as excinfo:
            await client.get(url)
    assert fragment in str(excinfo.value)
    assert network.connects == []


async def test_a_forced_redirect_to_a_private_address_is_still_refused_at_connect_time() -> None:
    resolver = Resolutions(by_host={"hooks.example": [PUBLIC_V4], "internal.example": ["10.0.0.5"]})
    network = FakeNetwork(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://internal.example/admin\r\n\r\n")
    async with guarded_client(allow_private=False, timeout=5, resolver=resolver, network=network) as client:
        with pytest.raises(UnsafeDestination, match=r"'internal\.example' resolves to a non-public address"):
            await client.post("http://hooks.example/x", content=b"{}", follow_redirects=True)
    assert network.connects == [(PUBLIC_V4, 80)]


async def test_proxy_variables_and_netrc_are_ignored(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine hooks.example login someone password secret\n")
    netrc.chmod(0o600)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("NETRC", str(netrc))
    resolver = Resolutions([PUBLIC_V4], [PUBLIC_V4])
    network = FakeNetwork(NO_CONTENT, NO_CONTENT)
    async with guarded_client(allow_private=False, timeout=5, resolver=resolver, network=network) as client:
        assert client.trust_env is False and client.follow_redirects is False
        assert (await client.post("http://hooks.example/x", content=b"{}")).status_code == 204
        assert (await client.post("https://hooks.example/x", content=b"{}")).status_code == 204
    assert network.connects == [(PUBLIC_V4, 80), (PUBLIC_V4, 443)]
    assert all(b"authorization" not in stream.written.lower() for stream in network.streams)


async def test_a_redirect_is_not_followed_and_is_a_non_2xx(receiver: Receiver) -> None:
    with Receiver() as elsewhere:
        receiver.answers = [(307, {"location": f"{elsewhere.url}/stolen"})]
        async with guarded_client(allow_private=True, timeout=5) as client:
            response = await client.post(f"{receiver.url}/hook", content=b'{"answer":1}')
        assert response.status_code == 307 and not response.is_success
        assert response.headers["location"] == f"{elsewhere.url}/stolen"
        assert [r["path"] for r in receiver.received] == ["/hook"] and elsewhere.received == []


async def test_an_unresolvable_host_at_connect_time_is_a_connect_error() -> None:
    async def fails(host: str, port: int) -> Sequence[str]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    async with guarded_client(allow_private=False, timeout=5, resolver=fails, network=FakeNetwork()) as client:
        with pytest.raises(httpx.ConnectError, match="could not be resolved") as excinfo:
            await client.get("http://nowhere.example/x")
    assert not isinstance(excinfo.value, UnsafeDestination)


async def test_a_slow_resolution_is_a_connect_timeout() -> None:
    async def hangs(host: str, port: int) -> Sequence[str]:
        await asyncio.sleep(30)
        return [PUBLIC_V4]

    network = FakeNetwork()
    async with guarded_client(allow_private=False, timeout=0.05, resolver=hangs, network=network) as client:
        with pytest.raises(httpx.ConnectTimeout, match="resolving 'slow.example' took longer than 0.05 s"):
            await client.get("http://slow.example/x")
    assert network.connects == []


async def test_response_bodies_stream_and_protocol_errors_are_httpx_errors() -> None:
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    network = FakeNetwork(body, b"not http at all\r\n\r\n")
    resolver = Resolutions([PUBLIC_V4], [PUBLIC_V4])
    async with guarded_client(allow_private=False, timeout=5, resolver=resolver, network=network) as client:
        assert (await client.get("http://hooks.example/a")).text == "hello"
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("http://other.example/b")
