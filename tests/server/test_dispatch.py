"""Dispatch semantics: containers (SyncRun on/off), middleware, internal methods, error mapping,
pushes to other connections. Over real sockets, plus the in-process TestClient."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from rony.core import (
    C_Ping,
    Kind,
    Ping,
    Pong,
    RequestCtx,
    container_envelope,
    envelope,
    unwrap,
)
from rony.core.errors import AccessError
from rony.core.testing import MemoryConn
from rony.server import App
from rony.server.testing import TestClient, serve

from .conftest import (
    C_Boom,
    C_Denied,
    C_Internal,
    C_PushTo,
    C_Record,
    C_Silent,
    C_Sleep,
    C_Whoami,
    Probe,
    error_of,
    recv_env,
    req,
)


async def test_container_sync_run_runs_in_order(
    test_app: App, probe: Probe, http: aiohttp.ClientSession
) -> None:
    async with serve(test_app) as edge, http.ws_connect(edge.url) as ws:
        # SyncRun: the first (slow) envelope must finish before the second starts.
        envs = [
            envelope(Ping(ID=-30), 1, constructor=C_Sleep),
            envelope(Ping(ID=2), 2, constructor=C_Record),
            envelope(Ping(ID=3), 3, constructor=C_Record),
        ]
        await ws.send_bytes(container_envelope(envs, sync_run=True).SerializeToString())
        ids = [(await recv_env(ws)).RequestID for _ in range(3)]
        assert ids == [1, 2, 3]
        assert probe.events == ["start -30", "end -30", "record 2", "record 3"]


async def test_container_concurrent_without_sync_run(
    test_app: App, probe: Probe, http: aiohttp.ClientSession
) -> None:
    async with serve(test_app) as edge, http.ws_connect(edge.url) as ws:
        # Without SyncRun all start at once: the record replies overtake the blocked sleeper.
        envs = [
            envelope(Ping(ID=50), 1, constructor=C_Sleep),
            envelope(Ping(ID=2), 2, constructor=C_Record),
            envelope(Ping(ID=3), 3, constructor=C_Record),
        ]
        await ws.send_bytes(container_envelope(envs, sync_run=False).SerializeToString())
        first = {(await recv_env(ws)).RequestID for _ in range(2)}
        assert first == {2, 3}
        assert "end 50" not in probe.events
        probe.gate(50).set()
        assert (await recv_env(ws)).RequestID == 1
        assert probe.events.index("start 50") < probe.events.index("record 2")


async def test_sync_run_next_can_go_releases_early() -> None:
    app = App()
    order: list[str] = []
    release = asyncio.Event()

    async def first(ctx: RequestCtx) -> None:
        order.append("first start")
        ctx.next_can_go()
        await release.wait()
        order.append("first end")
        ctx.push_message(Pong(ID=1))

    async def second(ctx: RequestCtx) -> None:
        order.append("second")
        release.set()
        ctx.push_message(Pong(ID=2))

    app.handle(101, first)
    app.handle(102, second)
    async with TestClient(app) as client:
        env = container_envelope(
            [envelope(Ping(), 1, constructor=101), envelope(Ping(), 2, constructor=102)],
            sync_run=True,
        )
        replies = await client.send(env)
    assert order == ["first start", "second", "first end"]
    assert [r.RequestID for r in replies] == [2, 1]


async def test_pre_post_handlers_and_stop_execution() -> None:
    app = App()
    seen: list[str] = []

    async def auth(ctx: RequestCtx) -> None:
        seen.append("pre")
        if ctx.get("denied") or ctx.header.get("token") != "ok":
            ctx.push_error(AccessError("TOKEN"))  # stops the chain

    async def handler(ctx: RequestCtx) -> None:
        seen.append("handler")
        ctx.push_message(Pong(ID=1))

    async def never(ctx: RequestCtx) -> None:
        seen.append("never")

    async def stopper(ctx: RequestCtx) -> None:
        seen.append("stopper")
        ctx.stop_execution()

    async def post(ctx: RequestCtx) -> None:
        seen.append(f"post stopped={ctx.stopped}")

    app.add_pre_handler(auth)
    app.add_post_handler(post)
    app.handle(200, stopper, never)
    app.handle(201, handler)
    async with TestClient(app) as client:
        with pytest.raises(AccessError):
            await client.call(201, Ping())
        assert seen == ["pre", "post stopped=True"]
        seen.clear()
        assert await client.call(201, Ping(), Pong, header={"token": "ok"}) == Pong(ID=1)
        assert seen == ["pre", "handler", "post stopped=False"]
        seen.clear()
        replies = await client.send(envelope(Ping(), 9, constructor=200, header={"token": "ok"}))
        assert replies == []
        assert seen == ["pre", "stopper", "post stopped=True"]
        seen.clear()
        # Builtins skip the app's middleware: Ping works without a token.
        assert await client.call(C_Ping, Ping(ID=4), Pong) == Pong(ID=4)
        assert seen == []


async def test_internal_method_refused_from_gateway_allowed_for_tunnel(
    test_app: App, http: aiohttp.ClientSession
) -> None:
    async with serve(test_app) as edge:
        async with http.ws_connect(edge.url) as ws:
            await ws.send_bytes(req(C_Internal, Ping(), 5))
            env = await recv_env(ws)
            assert env.RequestID == 5
            assert (error_of(env).Code, error_of(env).Items) == ("E01", "HANDLER")
        async with http.post(edge.url, data=req(C_Internal, Ping(), 6)) as r:
            assert r.status == 400
        # The same method through the tunnel kind runs.
        conn = MemoryConn(persistent=False)
        replies = await edge.dispatcher.dispatch(
            conn, envelope(Ping(), 7, constructor=C_Internal), kind=Kind.TUNNEL
        )
        assert [unwrap(r, Pong).ID for r in replies] == [99]


async def test_handler_exception_is_e00_without_leak(
    test_app: App, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(test_app) as edge, http.ws_connect(edge.url) as ws:
        with caplog.at_level(logging.ERROR, logger="rony.server"):
            await ws.send_bytes(req(C_Boom, Ping(), 3))
            env = await recv_env(ws)
        err = error_of(env)
        assert (env.RequestID, err.Code, err.Items) == (3, "E00", "SERVER")
        assert "secret" not in err.Description
        assert "Traceback" not in err.Description
        assert any("secret traceback detail" in (r.exc_text or "") for r in caplog.records)
        await ws.send_bytes(req(C_Denied, Ping(), 4))
        err = error_of(await recv_env(ws))
        assert (err.Code, err.Items, err.Description) == ("E07", "TOKEN", "bad token")
        await ws.send_bytes(req(C_Ping, Ping(ID=1), 5))
        assert unwrap(await recv_env(ws), Pong).ID == 1


async def test_http_handler_with_no_reply_is_204(
    test_app: App, http: aiohttp.ClientSession
) -> None:
    async with serve(test_app) as edge, http.post(edge.url, data=req(C_Silent, Ping(), 1)) as r:
        assert r.status == 204


async def test_http_replies_sent_as_bytes_and_as_envelopes_keep_status_and_order(
    http: aiohttp.ClientSession,
) -> None:
    """Over HTTP a plain reply travels as its encoded bytes, others as envelopes: one reply
    is the body (an Error's status from its code, however it was pushed); several come back
    as one container in the order they were pushed."""
    from rony.core import C_Error, C_MessageContainer, C_Pong, decode_container, decode_envelope
    from rony.core.errors import UnavailableError, http_status_of

    from .conftest import declare_method

    c_error_as_message = declare_method("HttpReplies", "ErrorAsMessage")
    c_mixed = declare_method("HttpReplies", "Mixed")

    async def error_as_message(ctx: RequestCtx) -> None:
        err = UnavailableError("ITEM", "gone").to_message()
        ctx.push_message(err, constructor=C_Error)

    async def mixed(ctx: RequestCtx) -> None:
        ctx.push_message(Pong(ID=1), constructor=C_Pong)  # bytes
        ctx.push_error(AccessError("ITEM", "no"))  # an envelope
        ctx.push_message(Pong(ID=3), constructor=C_Pong)

    app = App("http-replies")
    app.handle(c_error_as_message, error_as_message)
    app.handle(c_mixed, mixed)
    async with serve(app) as edge:
        async with http.post(edge.url, data=req(c_error_as_message, Ping(), 4)) as r:
            assert r.status == http_status_of("E02") != 200  # as push_error would give
            env = decode_envelope(await r.read())
            assert (env.RequestID, error_of(env).Code) == (4, "E02")
        async with http.post(edge.url, data=req(c_mixed, Ping(), 5)) as r:
            assert r.status == 200
            env = decode_envelope(await r.read())
        assert env.Constructor == C_MessageContainer
        inner = decode_container(env).Envelopes
        assert [e.Constructor for e in inner] == [C_Pong, C_Error, C_Pong]
        assert [e.RequestID for e in inner] == [5, 5, 5]
        denied = AccessError("ITEM", "no").code
        assert (unwrap(inner[0], Pong).ID, error_of(inner[1]).Code, unwrap(inner[2], Pong).ID) == (
            1,
            denied,
            3,
        )


async def test_push_to_another_connection_and_from_outside(
    test_app: App, http: aiohttp.ClientSession
) -> None:
    async with (
        serve(test_app) as edge,
        http.ws_connect(edge.url) as a,
        http.ws_connect(edge.url + "/?token=abc", headers={"X-Custom": "v"}) as b,
    ):
        await b.send_bytes(req(C_Whoami, Ping(), 1))
        env = await recv_env(b)
        values = {kv.Key: kv.Value for kv in env.Header}
        b_id = int(values["conn_id"])
        assert values["token"] == "abc"
        assert values["x-custom"] == "v"
        assert values["client_ip"] == "127.0.0.1"
        # a asks the server to push to b.
        await a.send_bytes(req(C_PushTo, Ping(ID=b_id), 2))
        assert unwrap(await recv_env(a), Pong).ID == 1
        pushed = await recv_env(b)
        assert (pushed.RequestID, unwrap(pushed, Pong).ID) == (0, 7777)
        # The app pushes from outside any request.
        assert edge.push(b_id, envelope(Pong(ID=8888)))
        assert unwrap(await recv_env(b), Pong).ID == 8888
        # A gone connection: push says False.
        assert not edge.push(10**9, envelope(Pong(ID=1)))
        await a.send_bytes(req(C_PushTo, Ping(ID=10**9), 3))
        assert unwrap(await recv_env(a), Pong).ID == 0


async def test_trusted_proxy_client_ip(test_app: App, http: aiohttp.ClientSession) -> None:
    hdrs = {"X-Forwarded-For": "203.0.113.9, 10.0.0.2"}
    async with serve(test_app) as edge, http.ws_connect(edge.url, headers=hdrs) as ws:
        await ws.send_bytes(req(C_Whoami, Ping(), 1))
        values = {kv.Key: kv.Value for kv in (await recv_env(ws)).Header}
        assert values["client_ip"] == "127.0.0.1"  # untrusted peer: header ignored
    async with (
        serve(test_app, trusted_proxies=("127.0.0.0/8", "10.0.0.0/8")) as edge,
        http.ws_connect(edge.url, headers=hdrs) as ws,
    ):
        await ws.send_bytes(req(C_Whoami, Ping(), 1))
        values = {kv.Key: kv.Value for kv in (await recv_env(ws)).Header}
        assert values["client_ip"] == "203.0.113.9"
