"""Faults: the node killed mid-request and restarted on the same port, a frozen node, and a
misbehaving peer sending bytes that are not an envelope. Typed errors, never a hang."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from rony.client import AsyncClient, Client, ClientSettings, errors
from rony.core import C_Ping, Ping, Pong
from tests.client import _nodeapp as na
from tests.client.conftest import ProcNode, await_until, wait_until

pytestmark = pytest.mark.slow  # subprocess nodes

FAST = ClientSettings(
    request_timeout=10.0,
    deadline=30.0,  # a restarted node may take seconds to come up on a loaded machine
    max_retries=200,
    backoff_base=0.05,
    backoff_max=0.25,
    idle_timeout=0.9,  # ping every 0.3 s: a frozen peer is noticed in about a second
)


def _in_flight(c: AsyncClient | Client) -> int:
    return len(c._pending)


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_async_kill_mid_request_then_restart(proc_node: ProcNode, transport: str) -> None:
    connects: list[str] = []
    async with AsyncClient(proc_node.url, transport=transport, settings=FAST) as c:  # type: ignore[arg-type]
        c.on_connect(connects.append)
        assert await c.call(C_Ping, Ping(ID=1), Pong) == Pong(ID=1)
        slow = asyncio.ensure_future(c.call(na.C_Slow, Ping(ID=5000), Pong))
        if transport == "ws":
            await await_until(lambda: _in_flight(c) == 1, 5)
        await asyncio.sleep(0.2)  # the request reached the node
        await asyncio.to_thread(proc_node.kill)
        t0 = time.monotonic()
        with pytest.raises(errors.ConnectionLost) as info:
            await slow  # written: not re-sent (not idempotent), fails at once
        assert info.value.written
        assert time.monotonic() - t0 < 4.0  # not the 5 s handler, not the 10 s timeout
        # the node is gone: refused, retried with back-off, then a typed error
        short = ClientSettings(max_retries=2, backoff_base=0.01, backoff_max=0.02)
        async with AsyncClient(proc_node.url, transport=transport, settings=short) as c2:  # type: ignore[arg-type]
            with pytest.raises(errors.RetriesExceeded) as rinfo:
                await c2.call(C_Ping, Ping(ID=2), Pong)
            assert isinstance(rinfo.value.last_error, errors.ConnectError)
        # a call made while the node is down waits out the back-off and succeeds after restart
        pending = asyncio.ensure_future(c.call(C_Ping, Ping(ID=3), Pong))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(proc_node.start)  # same port
        assert await pending == Pong(ID=3)
        assert await c.call(na.C_Echo, Ping(ID=4), Pong) == Pong(ID=4)
        if transport == "ws":
            assert len(connects) >= 2
            assert len(set(connects)) == 1


async def test_async_frozen_node_detected_by_pings(proc_node: ProcNode) -> None:
    async with AsyncClient(proc_node.url, settings=FAST) as c:
        assert await c.call(C_Ping, Ping(ID=1), Pong) == Pong(ID=1)
        proc_node.pause()
        try:
            t0 = time.monotonic()
            with pytest.raises(errors.ConnectionLost):
                await c.call(na.C_Echo, Ping(ID=2), Pong, timeout=6)
            assert time.monotonic() - t0 < 5.0  # the keep-alive ping, not the 6 s timeout
        finally:
            proc_node.resume()
        assert await c.call(na.C_Echo, Ping(ID=3), Pong) == Pong(ID=3)


def test_sync_kill_mid_request_then_restart(proc_node: ProcNode) -> None:
    out: list[BaseException] = []
    with Client(proc_node.url, settings=FAST) as c:
        assert c.call(C_Ping, Ping(ID=1), Pong) == Pong(ID=1)

        def slow() -> None:
            try:
                c.call(na.C_Slow, Ping(ID=5000), Pong)
            except BaseException as e:
                out.append(e)

        threads = [threading.Thread(target=slow) for _ in range(3)]
        for t in threads:
            t.start()
        wait_until(lambda: _in_flight(c) == 3, 5)
        time.sleep(0.2)
        proc_node.kill()
        for t in threads:
            t.join(3)
        assert len(out) == 3
        assert all(isinstance(e, errors.ConnectionLost) and e.written for e in out)
        result: list[object] = []
        t = threading.Thread(target=lambda: result.append(c.call(C_Ping, Ping(ID=3), Pong)))
        t.start()
        time.sleep(0.3)
        proc_node.start()
        t.join(30)
        assert result == [Pong(ID=3)]
    with Client(proc_node.url, transport="http", settings=FAST) as h:
        assert h.call(C_Ping, Ping(ID=5), Pong) == Pong(ID=5)
        proc_node.kill()
        short = ClientSettings(max_retries=1, backoff_base=0.01)
        with (
            Client(proc_node.url, transport="http", settings=short) as h2,
            pytest.raises(errors.RetriesExceeded),
        ):
            h2.call(C_Ping, Ping(ID=6), Pong)
        proc_node.start()
        assert h.call(C_Ping, Ping(ID=7), Pong) == Pong(ID=7)  # pooled socket was stale


def test_sync_push_reader_reconnects_after_restart(proc_node: ProcNode) -> None:
    connects: list[str] = []
    with Client(proc_node.url, settings=FAST) as c:
        c.on_connect(connects.append)
        with c.pushes(idle_timeout=8) as stream:
            c.connect()
            proc_node.restart()
            # re-dialled by the reader thread, no call needed
            wait_until(lambda: len(connects) == 2, 30)
            assert c.call(na.C_PushN, Ping(ID=2), Pong) == Pong(ID=2)
            assert [Pong.FromString(next(stream).Message).ID for _ in range(2)] == [0, 1]


def test_sync_frozen_node_detected_by_pings(proc_node: ProcNode) -> None:
    with Client(proc_node.url, settings=FAST) as c:
        assert c.call(C_Ping, Ping(ID=1), Pong) == Pong(ID=1)
        proc_node.pause()
        try:
            t0 = time.monotonic()
            with pytest.raises(errors.ConnectionLost):
                c.call(na.C_Echo, Ping(ID=2), Pong, timeout=6)
            assert time.monotonic() - t0 < 5.0  # the keep-alive ping, not the timeout
        finally:
            proc_node.resume()
        assert c.call(na.C_Echo, Ping(ID=3), Pong) == Pong(ID=3)


# --- a misbehaving peer (no Rony node sends these; a tiny aiohttp app stands in for one) -----


@pytest.fixture
async def bad_peer() -> AsyncIterator[str]:
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.BINARY:
                    await ws.send_bytes(b"\xff\xfe\xfd not an envelope")
            return ws
        await request.read()
        return web.Response(body=b"\xff\xfe\xfd not an envelope")

    server = web.Server(handler)
    runner = web.ServerRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_undecodable_reply_is_typed(bad_peer: str, transport: str) -> None:
    async with AsyncClient(bad_peer, transport=transport) as c:  # type: ignore[arg-type]
        t0 = time.monotonic()
        with pytest.raises(errors.DecodeError):
            await c.call(C_Ping, Ping(ID=1), Pong)
        results = await asyncio.gather(
            *(c.call(C_Ping, Ping(ID=i), Pong) for i in range(5)), return_exceptions=True
        )
        assert all(isinstance(r, errors.DecodeError) for r in results)
        assert time.monotonic() - t0 < 2  # never waits for the timeout

    def sync() -> None:
        with (
            Client(bad_peer, transport=transport) as s,  # type: ignore[arg-type]
            pytest.raises(errors.DecodeError),
        ):
            s.call(C_Ping, Ping(ID=1), Pong)

    await asyncio.to_thread(sync)
