"""The WebSocket dispatch workers (Gateway._ws_worker): a few long-lived tasks per connection
instead of a task per frame must keep every guarantee a task per frame gave."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import aiohttp

from rony.core import RequestCtx, unwrap
from rony.core.pb.msg_pb2 import Ping, Pong
from rony.server import App
from rony.server.testing import serve

from .conftest import declare_method, error_of, recv_env, req

C_SetVar = declare_method("Workers", "SetVar")
C_GetVar = declare_method("Workers", "GetVar")
C_SelfCancel = declare_method("Workers", "SelfCancel")
C_Yield = declare_method("Workers", "Yield")
C_Hang = declare_method("Workers", "Hang")

VAR: contextvars.ContextVar[int] = contextvars.ContextVar("rony_test_var", default=-1)


def _app(live: list[int] | None = None) -> App:
    app = App("workers")

    async def set_var(ctx: RequestCtx) -> None:
        VAR.set(ctx.message(Ping).ID)
        ctx.push_message(Pong(ID=VAR.get()))

    async def get_var(ctx: RequestCtx) -> None:
        ctx.push_message(Pong(ID=VAR.get()))

    async def self_cancel(ctx: RequestCtx) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        await asyncio.sleep(0)  # the cancellation lands here; no reply

    async def yield_(ctx: RequestCtx) -> None:
        if live is not None:  # [running now, most at once]
            live[0] += 1
            live[1] = max(live)
        for _ in range(3):
            await asyncio.sleep(0)
        if live is not None:
            live[0] -= 1
        ctx.push_message(Pong(ID=ctx.message(Ping).ID))

    async def hang(ctx: RequestCtx) -> None:
        await asyncio.Event().wait()

    app.handle(C_SetVar, set_var)
    app.handle(C_GetVar, get_var)
    app.handle(C_SelfCancel, self_cancel)
    app.handle(C_Yield, yield_)
    app.handle(C_Hang, hang)
    return app


async def test_contextvars_do_not_leak_between_requests(http: aiohttp.ClientSession) -> None:
    async with serve(_app()) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_bytes(req(C_SetVar, Ping(ID=5), 1))
        assert unwrap(await recv_env(ws), Pong).ID == 5
        await ws.send_bytes(req(C_GetVar, Ping(), 2))
        env = await recv_env(ws)
        assert env.RequestID == 2
        assert unwrap(env, Pong).ID == -1  # a fresh context, as with a task per frame


async def test_handler_cancelling_itself_ends_only_its_request(
    http: aiohttp.ClientSession,
) -> None:
    async with serve(_app()) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_bytes(req(C_SelfCancel, Ping(), 1))
        await ws.send_bytes(req(C_GetVar, Ping(), 2))
        env = await recv_env(ws)
        assert env.RequestID == 2  # request 1 got no reply; the conn and its reader go on
        await ws.send_bytes(req(C_GetVar, Ping(), 3))
        assert (await recv_env(ws)).RequestID == 3


async def test_pipelined_frames_all_answered_with_bounded_workers(
    http: aiohttp.ClientSession,
) -> None:
    live = [0, 0]
    async with (
        serve(_app(live), max_inflight_per_conn=4) as edge,
        http.ws_connect(edge.url) as ws,
    ):
        for i in range(1, 201):
            await ws.send_bytes(req(C_Yield, Ping(ID=i), i))
        got = sorted([(await recv_env(ws)).RequestID for _ in range(200)])
        assert got == list(range(1, 201))
        assert live[1] == 4  # they ran concurrently, never more than max_inflight_per_conn
        assert edge.gateway is not None
        assert len(edge.gateway._ws_tasks) <= 5  # parked workers, not a task per frame


async def test_timeout_cancels_the_worker_not_the_reader(http: aiohttp.ClientSession) -> None:
    async with (
        serve(_app(), handler_timeout=0.1, max_inflight_per_conn=4) as edge,
        http.ws_connect(edge.url) as ws,
    ):
        await ws.send_bytes(req(C_Hang, Ping(), 1))
        await ws.send_bytes(req(C_GetVar, Ping(), 2))
        assert (await recv_env(ws)).RequestID == 2  # answered while 1 hangs
        env = await recv_env(ws)
        assert env.RequestID == 1
        assert error_of(env).Code == "E06"
        for i in (3, 4):  # the same worker and reader go on
            await ws.send_bytes(req(C_GetVar, Ping(), i))
            assert (await recv_env(ws)).RequestID == i


async def test_sequential_requests_reuse_one_worker(http: aiohttp.ClientSession) -> None:
    async with serve(_app()) as edge, http.ws_connect(edge.url) as ws:
        gateway = edge.gateway
        assert gateway is not None
        spawned = 0
        spawn = gateway._spawn_worker

        def counting(conn: Any) -> None:
            nonlocal spawned
            spawned += 1
            spawn(conn)

        gateway._spawn_worker = counting  # type: ignore[method-assign]
        for i in range(1, 51):
            await ws.send_bytes(req(C_GetVar, Ping(), i))
            assert (await recv_env(ws)).RequestID == i
        assert spawned <= 1  # the first request's worker serves the rest (no task per frame)


async def test_a_handler_keeps_its_own_task_across_awaits(http: aiohttp.ClientSession) -> None:
    """The chain starts in the reader's task and, once it awaits, goes on in that same task
    while another worker reads: current_task() and asyncio.timeout() concern this request."""
    app = App("tasks")
    seen: dict[int, tuple[object, object]] = {}
    both = asyncio.Event()

    async def timed(ctx: RequestCtx) -> None:
        rid = ctx.message(Ping).ID
        before = asyncio.current_task()
        if rid == 1:
            await both.wait()  # request 2 starts while this one waits
        else:
            both.set()
        try:
            async with asyncio.timeout(0.05):
                await asyncio.Event().wait()
        except TimeoutError:
            seen[rid] = (before, asyncio.current_task())
            ctx.push_message(Pong(ID=rid))

    async def pong(ctx: RequestCtx) -> None:
        ctx.push_message(Pong())

    app.handle(C_Yield, timed)
    app.handle(C_GetVar, pong)
    async with serve(app, max_inflight_per_conn=4) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_bytes(req(C_Yield, Ping(ID=1), 1))
        await ws.send_bytes(req(C_Yield, Ping(ID=2), 2))
        got = sorted([(await recv_env(ws)).RequestID for _ in range(2)])
        assert got == [1, 2]  # each timeout hit its own request, and nothing else
        assert seen[1][0] is seen[1][1]
        assert seen[2][0] is seen[2][1]
        assert seen[1][0] is not seen[2][0]  # two requests in flight: two tasks
        await ws.send_bytes(req(C_GetVar, Ping(), 3))  # the conn reads on
        assert (await recv_env(ws)).RequestID == 3
