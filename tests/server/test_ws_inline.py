"""The inline WebSocket feed (Gateway._feed): frames dispatched from data_received, each as
the reader's task. The rest of tests/server runs both ways (conftest's ws_read_path); these
pin what only the inline path can get wrong, and that the installed aiohttp still has what
it needs (if a release renames the internals, the first test fails and frames go through
receive())."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from rony.core import RequestCtx, unwrap
from rony.core.pb.msg_pb2 import Ping, Pong
from rony.server import App
from rony.server.testing import serve

from .conftest import declare_method, recv_env, req

C_TaskInfo = declare_method("Inline", "TaskInfo")
C_StaleCancel = declare_method("Inline", "StaleCancel")
C_Count = declare_method("Inline", "Count")

VAR: contextvars.ContextVar[int] = contextvars.ContextVar("inline_var", default=-1)


def _app(seen: list[Any]) -> App:
    app = App("inline")

    async def task_info(ctx: RequestCtx) -> None:
        # At the chain's first step (run from data_received when inline): a current task,
        # asyncio.timeout() usable, and the same task after an await.
        first = asyncio.current_task()
        async with asyncio.timeout(5):
            await asyncio.sleep(0)
        seen.append((first is not None, first is asyncio.current_task()))
        ctx.push_message(Pong(ID=ctx.message(Ping).ID))

    async def stale_cancel(ctx: RequestCtx) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()  # and returns without awaiting: the request is over, answered
        ctx.push_message(Pong(ID=ctx.message(Ping).ID))

    async def count(ctx: RequestCtx) -> None:
        seen.append(VAR.get())
        ctx.push_message(Pong(ID=ctx.message(Ping).ID))

    app.handle(C_TaskInfo, task_info)
    app.handle(C_StaleCancel, stale_cancel)
    app.handle(C_Count, count)
    return app


async def test_installed_aiohttp_feeds_data_frames_inline(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, ws_read_path: str
) -> None:
    calls = 0
    receive = web.WebSocketResponse.receive

    async def counting(self: web.WebSocketResponse, *args: Any) -> Any:
        nonlocal calls
        calls += 1
        return await receive(self, *args)

    monkeypatch.setattr(web.WebSocketResponse, "receive", counting)
    async with serve(_app([])) as edge, http.ws_connect(edge.url) as ws:
        for i in range(1, 51):
            await ws.send_bytes(req(C_Count, Ping(ID=i), i))
            assert i == unwrap(await recv_env(ws), Pong).ID
        conn = next(iter(edge.gateway.ws_conns.values()))  # type: ignore[union-attr]
        if ws_read_path == "inline":
            assert conn.feed_queue is not None  # aiohttp has what the inline feed uses
            assert calls == 0  # no data frame went through receive()
        else:
            assert conn.feed_queue is None
            assert calls >= 50


async def test_setting_turns_the_inline_feed_off(http: aiohttp.ClientSession) -> None:
    async with serve(_app([]), ws_inline_dispatch=False) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_bytes(req(C_Count, Ping(ID=1), 1))
        assert unwrap(await recv_env(ws), Pong).ID == 1
        conn = next(iter(edge.gateway.ws_conns.values()))  # type: ignore[union-attr]
        assert conn.feed_queue is None


async def test_a_chain_starts_in_a_task_that_it_keeps(http: aiohttp.ClientSession) -> None:
    seen: list[Any] = []
    async with serve(_app(seen)) as edge, http.ws_connect(edge.url) as ws:
        for i in range(1, 21):  # a burst: several frames may come in one read
            await ws.send_bytes(req(C_TaskInfo, Ping(ID=i), i))
        got = sorted([(await recv_env(ws)).RequestID for _ in range(20)])
        assert got == list(range(1, 21))
    assert seen == [(True, True)] * 20


async def test_a_stale_self_cancel_reaches_no_other_request(
    http: aiohttp.ClientSession,
) -> None:
    seen: list[Any] = []
    async with serve(_app(seen)) as edge, http.ws_connect(edge.url) as ws:
        for i in range(1, 31):
            c = C_StaleCancel if i % 3 == 0 else C_TaskInfo
            await ws.send_bytes(req(c, Ping(ID=i), i))
        got = sorted([(await recv_env(ws)).RequestID for _ in range(30)])
        assert got == list(range(1, 31))  # every request answered, the cancelled ones too
        await ws.send_bytes(req(C_Count, Ping(ID=99), 99))
        assert (await recv_env(ws)).RequestID == 99


async def test_pings_amid_a_burst_get_pongs_and_replies_keep_coming(
    http: aiohttp.ClientSession,
) -> None:
    async with (
        serve(_app([])) as edge,
        http.ws_connect(edge.url, autoping=False) as ws,
    ):
        for i in range(1, 41):
            await ws.send_bytes(req(C_Count, Ping(ID=i), i))
            if i % 10 == 0:
                await ws.ping(b"p%d" % i)
        ids: list[int] = []
        pongs: list[bytes] = []
        while len(ids) < 40 or len(pongs) < 4:
            msg = await asyncio.wait_for(ws.receive(), 10)
            if msg.type is aiohttp.WSMsgType.PONG:
                pongs.append(msg.data)
            else:
                ids.append((await _env(msg)).RequestID)
        assert sorted(ids) == list(range(1, 41))
        assert pongs == [b"p10", b"p20", b"p30", b"p40"]


async def _env(msg: aiohttp.WSMessage) -> Any:
    from rony.core import decode_envelope

    assert msg.type is aiohttp.WSMsgType.BINARY, msg
    return decode_envelope(msg.data)


async def test_a_failing_feed_falls_back_to_receive(
    http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch, ws_read_path: str
) -> None:
    if ws_read_path != "inline":
        pytest.skip("the inline feed only")
    from rony.server.gateway._gateway import Gateway

    feed = Gateway._feed
    failed = 0

    def failing_once(self: Gateway, conn: Any) -> None:
        nonlocal failed
        if conn.feed_queue._buffer and not failed:
            failed += 1
            raise RuntimeError("boom")
        feed(self, conn)

    monkeypatch.setattr(Gateway, "_feed", failing_once)
    async with serve(_app([])) as edge, http.ws_connect(edge.url) as ws:
        for i in range(1, 11):
            await ws.send_bytes(req(C_Count, Ping(ID=i), i))
            assert i == unwrap(await recv_env(ws), Pong).ID
        conn = next(iter(edge.gateway.ws_conns.values()))  # type: ignore[union-attr]
        assert failed == 1
        assert conn.feed_queue is None  # the conn went on through receive()
