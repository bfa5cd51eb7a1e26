"""Calls between Edges through the tunnel (real QUIC with mutual TLS, real gossip, 127.0.0.1).

A handler on one node runs a request on a node of another replica set; the request goes
through the callee's dispatch pipeline with kind TUNNEL, so internal methods answer there and
nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import pytest

from rony.client import AsyncClient
from rony.core import (
    Edges,
    KeyValue,
    Kind,
    Ping,
    Pong,
    RequestCtx,
    method_id,
)
from rony.core import errors as rony_errors
from rony.server import App, Edge
from tests.cluster._edges import edges, until

C_Where = method_id("RemoteTest", "Where")  # Ping -> KeyValue(Key=server id, Value=kind)
C_Forward = method_id("RemoteTest", "Forward")  # Ping(ID=rs) -> the Where of a node of rs
C_Secret = method_id("RemoteTest", "Secret")  # internal: Ping -> Pong(ID=42)
C_Fail = method_id("RemoteTest", "Fail")  # Ping -> Error E07
C_Many = method_id("RemoteTest", "Many")  # Ping(ID=n) -> n Pongs
C_Big = method_id("RemoteTest", "Big")  # Ping(ID=size) -> KeyValue of size bytes
C_Hang = method_id("RemoteTest", "Hang")  # Ping -> never answers (records its cancellation)
C_Meta = method_id("RemoteTest", "Meta")  # Ping -> KeyValue(header "h", conn value "s")

CANCELLED: list[str] = []


def build_app() -> App:
    app = App("remote-test")

    async def where(ctx: RequestCtx) -> None:
        kind = "tunnel" if ctx.kind is Kind.TUNNEL else "gateway"
        ctx.push_message(KeyValue(Key=ctx.server_id, Value=kind))

    async def forward(ctx: RequestCtx) -> None:
        reply = await ctx.execute_remote(ctx.message(Ping).ID, C_Where, Ping(), KeyValue)
        ctx.push_message(reply)

    async def secret(ctx: RequestCtx) -> None:
        ctx.push_message(Pong(ID=42))

    async def fail(ctx: RequestCtx) -> None:
        ctx.push_error(rony_errors.AccessError("NOPE", "not you"))

    async def many(ctx: RequestCtx) -> None:
        for i in range(ctx.message(Ping).ID):
            ctx.push_message(Pong(ID=i))

    async def big(ctx: RequestCtx) -> None:
        ctx.push_message(KeyValue(Key="big", Value="x" * ctx.message(Ping).ID))

    async def hang(ctx: RequestCtx) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            CANCELLED.append(ctx.server_id)
            raise

    async def meta(ctx: RequestCtx) -> None:
        ctx.push_message(KeyValue(Key=ctx.header.get("h", "-"), Value=ctx.conn.get("s", "-")))

    for cid, fn, name in (
        (C_Meta, meta, "Meta"),
        (C_Where, where, "Where"),
        (C_Forward, forward, "Forward"),
        (C_Fail, fail, "Fail"),
        (C_Many, many, "Many"),
        (C_Big, big, "Big"),
        (C_Hang, hang, "Hang"),
    ):
        app.handle(cid, fn, request_class=Ping, service="RemoteTest", method=name)
    app.handle(
        C_Secret, secret, request_class=Ping, service="RemoteTest", method="Secret", internal=True
    )
    return app


def nodes(tmp_path: Path) -> contextlib.AbstractAsyncContextManager[list[Edge]]:
    """a (replica set 1, the seed), b and c (replica set 2), gossip and tunnel over TLS."""
    return edges(tmp_path, build_app(), {"a": 1, "b": 2, "c": 2}, tunnel=True)


async def test_a_handler_calls_another_replica_set(tmp_path: Path) -> None:
    async with nodes(tmp_path) as (a, _b, _c), AsyncClient(a.url) as client:
        reply = await client.call(C_Forward, Ping(ID=2), KeyValue)
        assert reply.Key in ("b", "c")
        assert reply.Value == "tunnel"
        # from the Edge too, outside any request, and to a given server id
        kv = await a.execute_remote(2, C_Where, Ping(), KeyValue, server_id="c")
        assert (kv.Key, kv.Value) == ("c", "tunnel")
        # this node's own replica set: run here, still as a tunnel request
        mine = await a.execute_remote(1, C_Where, Ping(), KeyValue)
        assert (mine.Key, mine.Value) == ("a", "tunnel")
        edges = await a.cluster_edges(2)
        assert isinstance(edges, Edges)
        assert sorted(e.ServerID for e in edges.Nodes) == ["a", "b", "c"]


async def test_internal_methods_answer_only_through_the_tunnel(tmp_path: Path) -> None:
    async with nodes(tmp_path) as (a, b, _c):
        pong = await a.execute_remote(2, C_Secret, Ping(), Pong)
        assert pong.ID == 42
        async with AsyncClient(b.url) as client:
            with pytest.raises(rony_errors.InvalidError) as info:
                await client.call(C_Secret, Ping(), Pong)
            assert info.value.items == "HANDLER"


async def test_errors_come_back_as_their_class(tmp_path: Path) -> None:
    async with nodes(tmp_path) as (a, _b, _c):
        with pytest.raises(rony_errors.AccessError, match="not you"):
            await a.execute_remote(2, C_Fail, Ping(), Pong)
        with pytest.raises(rony_errors.UnavailableError, match="replica set 7"):
            await a.execute_remote(7, C_Where, Ping(), KeyValue)
        with pytest.raises(rony_errors.InternalError, match="not the Pong expected"):
            await a.execute_remote(2, C_Where, Ping(), Pong)
        with pytest.raises(rony_errors.InternalError, match="one reply, got 3"):
            await a.execute_remote(2, C_Many, Ping(ID=3), Pong)


async def test_header_and_store_reach_the_callee(tmp_path: Path) -> None:
    # (calls with a header or a Store take the general path; the usual call builds bytes)
    async with nodes(tmp_path) as (a, _b, _c):
        kv = await a.execute_remote(2, C_Meta, Ping(), KeyValue, header={"h": "hv"})
        assert (kv.Key, kv.Value) == ("hv", "-")
        kv = await a.execute_remote(2, C_Meta, Ping(), KeyValue, store={"s": "sv"})
        assert (kv.Key, kv.Value) == ("-", "sv")
        kv = await a.try_execute_remote(2, 0.0, 2, C_Meta, Ping(), KeyValue, store={"s": "x"})
        assert (kv.Key, kv.Value) == ("-", "x")
        kv = await a.execute_remote(2, C_Meta, Ping(), KeyValue)
        assert (kv.Key, kv.Value) == ("-", "-")


async def test_many_concurrent_calls_and_a_large_reply(tmp_path: Path) -> None:
    async with nodes(tmp_path) as (a, _b, _c):
        for server_id in ("b", "c"):  # links up first: this is about loss, not dial time
            await a.execute_remote(2, C_Where, Ping(), KeyValue, server_id=server_id, timeout=30)
        replies = await asyncio.gather(
            *(a.execute_remote(2, C_Where, Ping(ID=i), KeyValue, timeout=60) for i in range(1000))
        )
        assert len(replies) == 1000
        assert {r.Key for r in replies} <= {"b", "c"}
        size = 8 * 1024 * 1024
        kv = await a.execute_remote(2, C_Big, Ping(ID=size), KeyValue, timeout=30)
        assert len(kv.Value) == size


async def test_cancelling_the_caller_cancels_the_remote_request(tmp_path: Path) -> None:
    async with nodes(tmp_path) as (a, _b, _c):
        CANCELLED.clear()
        with pytest.raises(rony_errors.RequestTimeoutError):
            await a.execute_remote(2, C_Hang, Ping(), Pong, timeout=0.3)
        await until(lambda: len(CANCELLED) == 1, "the remote handler to be cancelled", 5)
        assert CANCELLED[0] in ("b", "c")


async def test_a_dead_member_is_skipped_on_retry(tmp_path: Path) -> None:
    async with nodes(tmp_path) as (a, b, c):
        assert b.tunnel is not None
        await b.tunnel.stop()  # b's tunnel is gone, its gossip still says it is alive
        seen = set()
        for _ in range(10):
            kv = await a.try_execute_remote(3, 0.0, 2, C_Where, Ping(), KeyValue, timeout=1)
            seen.add(kv.Key)
        assert seen == {"c"}
        # named, it is tried alone: nothing answers its UDP port, so the dial runs out of time
        with pytest.raises((rony_errors.UnavailableError, rony_errors.RequestTimeoutError)):
            await a.execute_remote(2, C_Where, Ping(), KeyValue, server_id="b", timeout=1)
        assert c.tunnel is not None


C_HangThere = method_id("RemoteTest", "HangThere")  # Ping(ID=rs) -> Hang on a node of rs


async def test_the_incoming_requests_deadline_bounds_the_remote_call(tmp_path: Path) -> None:
    app = build_app()

    async def hang_there(ctx: RequestCtx) -> None:
        await ctx.execute_remote(ctx.message(Ping).ID, C_Hang, Ping(), Pong, timeout=60)

    app.handle(
        C_HangThere, hang_there, request_class=Ping, service="RemoteTest", method="HangThere"
    )
    CANCELLED.clear()
    nodes = {"a": 1, "b": 2}
    async with edges(tmp_path, app, nodes, tunnel=True, handler_timeout=0.5) as (a, _b):
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with AsyncClient(a.url) as client:
            with pytest.raises(rony_errors.RequestTimeoutError):
                await client.call(C_HangThere, Ping(ID=2), Pong)
        assert loop.time() - start < 5  # the handler's 0.5 s, not the call's 60 s
        await until(lambda: CANCELLED == ["b"], "the remote handler to be cancelled", 5)
