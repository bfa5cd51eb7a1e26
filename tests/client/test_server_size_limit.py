"""A request over the *server's* max_message_size (lower than the client's) fails at once with
FrameTooLarge naming that limit, is not retried, and leaves the connection usable. A server
that only closes with 1009 (no size in its handshake) also gives FrameTooLarge."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from rony.client import AsyncClient, Client, ClientSettings
from rony.client.errors import FrameTooLarge
from rony.core import KeyValue, Ping, Pong
from rony.server.testing import serve
from tests.client._nodeapp import C_Echo, build_app

LIMIT = 1024
# 1 MiB: large enough that the server's close met the client still writing (a reset, which
# was retried six times and ended as RetriesExceeded), small next to the client's 4 MiB.
SIZES = [3 * LIMIT, 1024 * 1024]


@pytest.mark.parametrize("size", SIZES)
async def test_async_client_refuses_a_request_over_the_server_limit(size: int) -> None:
    async with (
        serve(build_app(), max_message_size=LIMIT) as edge,
        AsyncClient(edge.url.replace("http", "ws")) as client,
    ):
        t0 = time.monotonic()
        with pytest.raises(FrameTooLarge, match=f"the server's max_message_size is {LIMIT}"):
            await client.call(C_Echo, Ping(ID=1), Pong, header={"pad": "x" * size})
        assert time.monotonic() - t0 < 1.0  # no retries with back-off
        assert await client.call(C_Echo, Ping(ID=2), Pong) == Pong(ID=2)  # still usable


@pytest.mark.parametrize("size", SIZES)
async def test_sync_client_refuses_a_request_over_the_server_limit(size: int) -> None:
    async with serve(build_app(), max_message_size=LIMIT) as edge:
        url = edge.url.replace("http", "ws")

        def calls() -> None:
            with Client(url) as client:
                with pytest.raises(FrameTooLarge, match=f"max_message_size is {LIMIT}"):
                    client.call(C_Echo, Ping(ID=1), Pong, header={"pad": "x" * size})
                assert client.call(C_Echo, Ping(ID=2), Pong) == Pong(ID=2)

        await asyncio.to_thread(calls)


async def test_a_close_1009_without_the_header_is_frame_too_large() -> None:
    # A server that does not say its limit (Go Rony, or a proxy in front): its close 1009.
    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=LIMIT)
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/", ws_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        settings = ClientSettings(max_retries=0)
        message = KeyValue(Key="k", Value="x" * (3 * LIMIT))

        def sync_call() -> None:
            with (
                Client(f"ws://127.0.0.1:{port}", settings=settings) as client,
                pytest.raises(FrameTooLarge, match="1009"),
            ):
                client.call(C_Echo, message, Pong, timeout=5)

        await asyncio.to_thread(sync_call)
        async with AsyncClient(f"ws://127.0.0.1:{port}", settings=settings) as client:
            with pytest.raises(FrameTooLarge):
                await client.call(C_Echo, message, Pong, timeout=5)
    finally:
        await runner.cleanup()


def test_the_header_names_agree() -> None:
    """The gateway writes and both client transports read rony.core's one header name."""
    from rony.client import _aio_transport, _sync_ws
    from rony.core import MAX_MESSAGE_SIZE_HEADER
    from rony.server.gateway import _gateway

    assert MAX_MESSAGE_SIZE_HEADER == "X-Rony-Max-Message-Size"
    for module in (_gateway, _aio_transport, _sync_ws):
        assert module.MAX_MESSAGE_SIZE_HEADER is MAX_MESSAGE_SIZE_HEADER
