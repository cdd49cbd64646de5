"""Loopback servers: bound before they start, no delayed-ACK stall on kept-alive connections, stopped whole."""

from __future__ import annotations

import socket

import httpx
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from support import TLS

from nodes.loopback import LoopbackServer


def app() -> Starlette:
    async def hello(request: object) -> JSONResponse:
        return JSONResponse({"hello": "world"})

    return Starlette(routes=[Route("/", hello)])


def test_the_port_is_known_before_start_and_accepted_connections_skip_nagle() -> None:
    server = LoopbackServer(app())
    assert server.url == f"http://127.0.0.1:{server.port}" and server.port > 0
    assert server._socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    url = server.start_in_thread()
    try:
        with httpx.Client(base_url=url, verify=TLS) as client:
            assert [client.get("/").json() for _ in range(3)] == [{"hello": "world"}] * 3
    finally:
        server.stop_thread()
    assert server._thread is not None and not server._thread.is_alive()


async def test_it_runs_inside_a_running_event_loop_too() -> None:
    server = LoopbackServer(app())
    url = await server.start()
    try:
        async with httpx.AsyncClient(base_url=url, verify=TLS) as client:
            assert (await client.get("/")).status_code == 200
    finally:
        await server.stop()
