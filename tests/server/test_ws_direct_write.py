"""WSConn writes small binary replies straight to the transport (aiohttp internals, detected at
connect); these tests pin that the detection still finds them in the installed aiohttp, that the
frames are right at every length encoding, and that without the fast path replies still flow."""

from __future__ import annotations

import asyncio
import base64
import os
import struct

import aiohttp
import pytest

from examples.echo.app import app as echo_app
from examples.echo.sample_pb2 import EchoRequest, EchoResponse
from examples.echo.sample_rony import C_SampleEcho
from rony.core import RequestCtx, unwrap
from rony.core.pb.msg_pb2 import Ping, Pong
from rony.server import App
from rony.server.gateway import _conn
from rony.server.testing import serve

from .conftest import C_Sleep, recv_env, req, wait_for


def _only_conn(edge: object) -> _conn.WSConn:
    conns = list(edge.gateway.ws_conns.values())  # type: ignore[attr-defined]
    assert len(conns) == 1
    return conns[0]


async def test_installed_aiohttp_has_what_the_direct_write_needs(
    http: aiohttp.ClientSession,
) -> None:
    async with serve(echo_app) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_bytes(req(C_SampleEcho, EchoRequest(ID=1, RandomText="x"), 1))
        await recv_env(ws)
        # If an aiohttp release renames the internals, this fails (and replies still flow,
        # through send_bytes): look at rony.server.gateway._conn._frame_writer.
        assert _only_conn(edge)._writer is not None


@pytest.mark.parametrize("direct", [True, False], ids=["direct", "send_bytes"])
async def test_every_length_encoding_round_trips(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    if not direct:
        monkeypatch.setattr(_conn, "_frame_writer", lambda ws: None)
    # Replies of < 126 bytes (7-bit length), < 64 KiB (16-bit) and larger (64-bit).
    sizes = [0, 100, 125, 126, 1000, 65_000, 65_536, 200_000]
    async with serve(echo_app) as edge, http.ws_connect(edge.url, max_msg_size=0) as ws:
        for i, size in enumerate(sizes, 1):
            text = "é" * (size // 2) + "z" * (size % 2)
            await ws.send_bytes(req(C_SampleEcho, EchoRequest(ID=i, RandomText=text), i))
            env = await recv_env(ws)
            assert env.RequestID == i
            assert unwrap(env, EchoResponse) == EchoResponse(ReqID=i, RandomText=text)
        assert (_only_conn(edge)._writer is not None) is direct


def _frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each unmasked server frame in ``data``."""
    out = []
    while data:
        opcode, n, at = data[0] & 0x0F, data[1] & 0x7F, 2
        if n == 126:
            n, at = struct.unpack("!H", data[2:4])[0], 4
        elif n == 127:
            n, at = struct.unpack("!Q", data[2:10])[0], 10
        out.append((opcode, data[at : at + n]))
        data = data[at + n :]
    return out


async def test_no_direct_write_after_aiohttp_sent_the_close_frame() -> None:
    """A reply ready after aiohttp itself sent the close frame is dropped, never written."""
    app = App("late")
    started = asyncio.Event()
    release = asyncio.Event()

    async def sleep(ctx: RequestCtx) -> None:
        started.set()
        await release.wait()
        ctx.push_message(Pong(ID=7))

    app.handle(C_Sleep, sleep)
    async with serve(app) as edge:
        host, port = edge.gateway.address  # type: ignore[union-attr]
        reader, writer = await asyncio.open_connection(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
        payload = req(C_Sleep, Ping(ID=7), 1)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        writer.write(bytes((0x82, 0x80 | len(payload))) + mask + masked)
        await asyncio.wait_for(started.wait(), 5)
        conn = _only_conn(edge)
        assert conn._writer is not None
        # A frame with a reserved opcode: aiohttp itself sends the close frame (1002) and
        # waits for ours, while the handler's reply comes.
        writer.write(bytes((0x83, 0x80)) + os.urandom(4))
        await wait_for(lambda: conn.ws._writer._closing)  # type: ignore[union-attr]
        release.set()
        await wait_for(lambda: conn.inflight == 0)  # the reply was pushed
        mask = os.urandom(4)
        code = struct.pack("!H", 1000)
        writer.write(bytes((0x88, 0x82)) + mask + bytes(b ^ mask[i] for i, b in enumerate(code)))
        await asyncio.wait_for(conn.ended, 5)
        writer.close()
        data = await asyncio.wait_for(reader.read(), 5)
        assert [op for op, _ in _frames(data)] == [0x8]  # the close frame, nothing after it
