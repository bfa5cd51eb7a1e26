"""App.on_connect / on_disconnect run per WebSocket (a failing connect hook closes it with
1011); at DEBUG the dispatcher logs one line per request."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from rony.core import C_Ping, Conn, Ping, Pong, unwrap
from rony.server import App
from rony.server.testing import serve

from .conftest import recv_env, req


async def test_connect_and_disconnect_hooks(http: aiohttp.ClientSession) -> None:
    app = App("hooks")
    seen: list[str] = []
    gone = asyncio.Event()

    @app.on_connect
    async def hello(conn: Conn) -> None:
        conn.set("greeted", True)
        seen.append(f"connect {conn.conn_id}")

    @app.on_disconnect
    async def bye(conn: Conn) -> None:
        seen.append(f"disconnect {conn.conn_id} {conn.get('greeted')}")
        gone.set()

    async with serve(app) as edge:
        async with http.ws_connect(edge.url) as ws:
            await ws.send_bytes(req(C_Ping, Ping(ID=3), 1))  # served after the hook
            assert unwrap(await recv_env(ws), Pong).ID == 3
            [conn_id] = edge.gateway.ws_conns if edge.gateway else []
            assert seen == [f"connect {conn_id}"]
        await asyncio.wait_for(gone.wait(), 5)
        assert seen == [f"connect {conn_id}", f"disconnect {conn_id} True"]


async def test_a_failing_connect_hook_closes_with_1011(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("refuse")
    ran: list[int] = []

    @app.on_connect
    async def refuse(conn: Conn) -> None:
        raise RuntimeError("no thanks")

    @app.on_disconnect
    async def bye(conn: Conn) -> None:
        ran.append(conn.conn_id)

    with caplog.at_level(logging.ERROR, logger="rony.server"):
        async with serve(app) as edge, http.ws_connect(edge.url) as ws:
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
            assert ws.close_code == 1011
    assert "connect hook" in caplog.text
    assert "no thanks" in caplog.text
    assert ran == []  # its connect never completed


async def test_requests_are_logged_at_debug(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    app = App("debug")
    with caplog.at_level(logging.DEBUG, logger="rony.server"):
        async with serve(app) as edge, http.ws_connect(edge.url) as ws:
            await ws.send_bytes(req(C_Ping, Ping(ID=1), 7))
            await recv_env(ws)
            await ws.send_bytes(req(12345, Ping(ID=1), 8))
            await recv_env(ws)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    # A builtin is named by its message (a generated method: Service.Method).
    assert any(f"request 7: Ping ({C_Ping}) from 127.0.0.1" in ln for ln in lines), lines
    assert any("request 8: no handler for 12345" in ln for ln in lines), lines


async def test_no_request_lines_above_debug(
    http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="rony.server"):
        async with serve(App("quiet")) as edge, http.ws_connect(edge.url) as ws:
            await ws.send_bytes(req(C_Ping, Ping(ID=1), 7))
            await recv_env(ws)
    assert not any("request 7" in r.getMessage() for r in caplog.records)
