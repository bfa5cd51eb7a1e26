"""The blocking WebSocket (``_sync_ws``) against a scripted peer: fragments, server pings,
text frames, keep-alive while idle. A real Rony node never fragments or pings, so a small
``websockets`` server stands in for a peer that does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.server import ServerConnection, serve

from rony.client import Client, ClientSettings, errors
from rony.core import C_Ping, MessageEnvelope, Ping, Pong, encode_envelope_json, envelope
from tests.client.conftest import wait_until


async def peer_handler(ws: ServerConnection) -> None:
    async for data in ws:
        assert isinstance(data, bytes)
        req = MessageEnvelope.FromString(data)
        n = Ping.FromString(req.Message).ID
        reply = envelope(Pong(ID=n), req.RequestID).SerializeToString()
        if n == 1:  # fragmented
            await ws.send([reply[:3], reply[3:10], reply[10:]])
        elif n == 2:  # a ping first; the client must answer it while it reads
            pong = await ws.ping()
            await ws.send(reply)
            await asyncio.wait_for(pong, 2)
            await ws.send(envelope(Pong(ID=22), 0).SerializeToString())  # sent once ponged
        elif n == 3:  # JSON text frame
            await ws.send(encode_envelope_json(envelope(Pong(ID=3), req.RequestID)).decode())
        elif n == 4:  # a push, then (after a pause) the reply
            await ws.send(envelope(Pong(ID=40), 0).SerializeToString())
            await asyncio.sleep(0.4)
            await ws.send(reply)
        elif n == 5:  # close mid-request
            await ws.close(1011, "boom")
        else:
            await ws.send(reply)


@pytest.fixture
async def peer() -> AsyncIterator[str]:
    async with serve(peer_handler, "127.0.0.1", 0, compression=None) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/"


async def test_fragments_pings_and_text_frames(peer: str) -> None:
    def run() -> None:
        with Client(peer, settings=ClientSettings(idle_timeout=None)) as c:
            assert c.call(C_Ping, Ping(ID=1), Pong) == Pong(ID=1)
            assert c.call(C_Ping, Ping(ID=2), Pong) == Pong(ID=2)
            assert c.call(C_Ping, Ping(ID=3), Pong) == Pong(ID=3)
            assert c.call(C_Ping, Ping(ID=7), Pong) == Pong(ID=7)
            # the peer's ping was answered: it went on to send its push (read by a caller)
            assert c.dropped_pushes == 1

    await asyncio.to_thread(run)


async def test_keepalive_reads_while_idle_and_keeps_frames(peer: str) -> None:
    def run() -> None:
        with Client(peer, settings=ClientSettings(idle_timeout=0.3)) as c:  # ping every 0.1 s
            assert c.call(C_Ping, Ping(ID=4), Pong) == Pong(ID=4)  # push arrives first
            assert c.dropped_pushes == 1
            link = next(iter(c._links.values()))
            conn = link.conn
            assert conn is not None
            # idle for a few ping periods: the keep-alive thread reads the pongs itself
            mark = time.monotonic()
            wait_until(lambda: conn._last_pong > mark + 0.25)  # type: ignore[attr-defined]
            assert conn is link.conn  # still the same live connection
            assert c.call(C_Ping, Ping(ID=8), Pong) == Pong(ID=8)

    await asyncio.to_thread(run)


async def test_peer_closing_mid_request_is_connection_lost(peer: str) -> None:
    def run() -> None:
        with Client(peer, settings=ClientSettings(max_retries=0)) as c:
            with pytest.raises(errors.ConnectionLost) as info:
                c.call(C_Ping, Ping(ID=5), Pong)
            assert info.value.written
            assert c.call(C_Ping, Ping(ID=6), Pong) == Pong(ID=6)  # re-dialled

    await asyncio.to_thread(run)
