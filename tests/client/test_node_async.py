"""AsyncClient against a real node (rony.server.testing.serve), over WebSocket and HTTP."""

from __future__ import annotations

import asyncio
import time

import pytest

from rony.client import AsyncClient, ClientSettings, errors, reply_message
from rony.core import C_Ping, Edges, KeyValue, MessageEnvelope, Ping, Pong, envelope
from rony.core import errors as rony_errors
from rony.server import Edge
from tests.client import _nodeapp as na
from tests.client.conftest import await_until

TRANSPORTS = pytest.mark.parametrize("transport", ["ws", "http"])


def client(edge: Edge, transport: str = "ws", **settings: object) -> AsyncClient:
    return AsyncClient(
        edge.url,
        transport=transport,  # type: ignore[arg-type]
        settings=ClientSettings(**settings),  # type: ignore[arg-type]
    )


@TRANSPORTS
async def test_call_send_and_typed_errors(node: Edge, transport: str) -> None:
    async with client(node, transport) as c:
        assert await c.call(C_Ping, Ping(ID=7), Pong) == Pong(ID=7)
        assert await c.call(na.C_Echo, Ping(ID=-3), Pong) == Pong(ID=-3)
        assert await c.call(na.C_Echo, Ping(ID=1)) == Pong(ID=1)  # class from the registry
        with pytest.raises(rony_errors.AccessError) as info:
            await c.call(na.C_Fail, Ping(ID=1), Pong)
        assert (info.value.code, info.value.items, info.value.description) == (
            "E07",
            "ACCESS",
            "nope",
        )
        with pytest.raises(rony_errors.UnavailableError, match="gone away"):
            await c.call(na.C_Raise, Ping(ID=1), Pong)
        with pytest.raises(errors.UnexpectedResponse, match="expected Pong, got KeyValue"):
            await c.call(na.C_Big, Ping(ID=1), Pong)
        with pytest.raises(errors.DecodeError):
            await c.call(na.C_Garbage, Ping(ID=1), Pong)
        with pytest.raises(rony_errors.InvalidError):  # no handler: E01 HANDLER
            await c.call(12345, Ping(ID=1), Pong)
        raw = await c.send(envelope(Ping(ID=9), constructor=na.C_Echo, request_id=77))
        assert raw.RequestID == 77
        assert Pong.FromString(raw.Message) == Pong(ID=9)
        err_env = await c.send(envelope(Ping(ID=9), constructor=na.C_Fail))
        assert err_env.RequestID != 0
        assert err_env.Constructor != na.C_Fail
        assert c.closed is False
    assert c.closed


@TRANSPORTS
async def test_headers_auth_and_handshake_headers(node: Edge, transport: str) -> None:
    settings = {"headers": {"k": "from-settings"}, "auth": b"secret"}
    settings["http_headers"] = {"X-Token": "tok"}
    async with client(node, transport, **settings) as c:
        kv = await c.call(na.C_Meta, Ping(ID=1), KeyValue)
        assert kv == KeyValue(Key="from-settings", Value="secret|tok")
        kv = await c.call(na.C_Meta, Ping(ID=1), KeyValue, header={"k": "mine"})
        assert kv.Key == "mine"


@TRANSPORTS
@pytest.mark.parametrize("sync_run", [False, True])
async def test_batch_in_one_container(node: Edge, transport: str, sync_run: bool) -> None:
    async with client(node, transport) as c:
        na.ORDER.clear()
        delays = [200, 150, 100]
        envs = [envelope(Ping(ID=ms), constructor=na.C_Order) for ms in delays]
        envs.append(envelope(Ping(ID=5), constructor=na.C_Fail))
        replies = await c.send_batch(envs, sync_run=sync_run)
        assert [Pong.FromString(r.Message).ID for r in replies[:3]] == delays
        assert len({r.RequestID for r in replies}) == 4
        with pytest.raises(rony_errors.AccessError):
            reply_message(replies[3])
        if sync_run:  # one after another, in request order
            assert na.ORDER == [200, -200, 150, -150, 100, -100]
        else:  # all started before any finished; the shortest finished first
            assert na.ORDER == [200, 150, 100, -100, -150, -200]


async def test_thousand_concurrent_tasks_over_one_websocket(node: Edge) -> None:
    # Correctness, not speed: room for a loaded machine (the node shares this debug-mode loop).
    async with client(node, request_timeout=30.0) as c:
        ids = list(range(1, 1001))
        results = await asyncio.gather(*(c.call(na.C_Echo, Ping(ID=i), Pong) for i in ids))
        assert [r.ID for r in results] == ids
        whoami = await asyncio.gather(*(c.call(na.C_WhoAmI, Ping(), KeyValue) for _ in range(50)))
        assert len({kv.Value for kv in whoami}) == 1  # all multiplexed on one connection


@pytest.mark.slow  # 1,000 POSTs through 32 keep-alive connections, server in the same loop
async def test_thousand_concurrent_tasks_over_http(node: Edge) -> None:
    # Calls queue for one of http_pool_size connections within their timeout: give room.
    async with client(node, "http", request_timeout=30.0) as c:
        ids = list(range(1, 1001))
        results = await asyncio.gather(*(c.call(na.C_Echo, Ping(ID=i), Pong) for i in ids))
        assert [r.ID for r in results] == ids


async def test_pushes_iterator_callbacks_and_edge_push(node: Edge) -> None:
    got: list[int] = []
    async with client(node) as c:
        c.on_push(lambda env: got.append(Pong.FromString(env.Message).ID))
        async with c.pushes() as stream:
            assert await c.call(na.C_PushN, Ping(ID=5), Pong) == Pong(ID=5)
            ids = []
            async for env in stream:
                ids.append(Pong.FromString(env.Message).ID)
                if len(ids) == 5:
                    break
            assert ids == [0, 1, 2, 3, 4]
            # a push from outside any request, by connection id
            kv = await c.call(na.C_WhoAmI, Ping(), KeyValue)
            assert node.push(int(kv.Value), envelope(Pong(ID=42), 0))
            env = await asyncio.wait_for(anext(stream), 2)
            assert Pong.FromString(env.Message) == Pong(ID=42)
        await await_until(lambda: len(got) == 6)
        assert got == [0, 1, 2, 3, 4, 42]


async def test_timeout_is_typed_and_late_reply_is_not_a_push(node: Edge) -> None:
    async with client(node) as c, c.pushes() as stream:
        t0 = time.monotonic()
        with pytest.raises(errors.RequestTimeout) as info:
            await c.call(na.C_Slow, Ping(ID=1500), Pong, timeout=0.1)
        assert info.value.written
        assert time.monotonic() - t0 < 1.2  # did not wait for the reply
        assert await c.call(na.C_Slow, Ping(ID=1600), Pong) == Pong(ID=1600)
        assert c._pending.late_replies == 1  # the late reply came, and was dropped
        assert c.dropped_pushes == 0
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 0.05)
    async with AsyncClient(node.url, settings=ClientSettings(request_timeout=0.1)) as c2:
        with pytest.raises(errors.RequestTimeout):
            await c2.call(na.C_Slow, Ping(ID=300), Pong)


async def test_frame_over_the_limit_is_typed_and_the_link_recovers(node: Edge) -> None:
    async with client(node, max_message_size=64 * 1024) as c:
        with pytest.raises(errors.FrameTooLarge):
            await c.call(na.C_Big, Ping(ID=100_000), KeyValue)
        assert await c.call(na.C_Echo, Ping(ID=2), Pong) == Pong(ID=2)
        with pytest.raises(errors.FrameTooLarge) as info:
            await c.call(na.C_Echo, Ping(ID=1), Pong, header={"x": "y" * 70_000})
        assert not info.value.written
    async with client(node, "http", max_message_size=64 * 1024) as c:
        with pytest.raises(errors.FrameTooLarge):
            await c.call(na.C_Big, Ping(ID=100_000), KeyValue)
        assert await c.call(na.C_Echo, Ping(ID=2), Pong) == Pong(ID=2)


async def test_refused_connection_is_typed_and_quick() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens here
    fast = ClientSettings(max_retries=2, backoff_base=0.01, backoff_max=0.02)
    for transport in ("ws", "http"):
        async with AsyncClient(
            f"127.0.0.1:{port}",
            transport=transport,  # type: ignore[arg-type]
            settings=fast,
        ) as c:
            t0 = time.monotonic()
            with pytest.raises(errors.RetriesExceeded) as info:
                await c.call(C_Ping, Ping(ID=1), Pong)
            assert isinstance(info.value.last_error, errors.ConnectError)
            assert not info.value.written
            assert time.monotonic() - t0 < 2


async def test_seed_failover_and_discover(node: Edge) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{s.getsockname()[1]}"
    async with AsyncClient([dead, node.url], settings=ClientSettings(backoff_base=0.01)) as c:
        assert await c.call(C_Ping, Ping(ID=1), Pong) == Pong(ID=1)
        edges = await c.discover()
        assert isinstance(edges, Edges)
        assert edges.Nodes[0].ServerID == node.server_id
        # routed by replica set to the learned edge (the dead seed is not tried)
        assert await c.call(C_Ping, Ping(ID=2), Pong, replica_set=0) == Pong(ID=2)


async def test_close_fails_in_flight_requests(node: Edge) -> None:
    c = client(node)
    task = asyncio.ensure_future(c.call(na.C_Slow, Ping(ID=2000), Pong))
    await c.connect()
    await await_until(lambda: len(c._pending) == 1)  # the request is in flight
    await c.close()
    with pytest.raises(errors.ClientClosed):
        await task


async def test_pushes_without_a_call_after_connect(node: Edge) -> None:
    async with client(node) as c, c.pushes() as stream:
        await c.connect()
        conn_ids = list(node.gateway.ws_conns) if node.gateway else []
        assert len(conn_ids) == 1
        node.push(conn_ids[0], envelope(Pong(ID=8), 0))
        env: MessageEnvelope = await asyncio.wait_for(anext(stream), 2)
        assert Pong.FromString(env.Message).ID == 8
