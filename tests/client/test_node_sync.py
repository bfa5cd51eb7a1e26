"""The blocking Client against a real node (running in a background thread)."""

from __future__ import annotations

import threading
import time

import pytest

from rony.client import AsyncClient, Client, ClientSettings, errors, reply_message
from rony.core import C_Ping, KeyValue, Ping, Pong, envelope
from rony.core import errors as rony_errors
from tests.client import _nodeapp as na
from tests.client.conftest import ThreadNode, wait_until

TRANSPORTS = pytest.mark.parametrize("transport", ["ws", "http"])


def client(node: ThreadNode, transport: str = "ws", **settings: object) -> Client:
    return Client(
        node.url,
        transport=transport,  # type: ignore[arg-type]
        settings=ClientSettings(**settings),  # type: ignore[arg-type]
    )


@TRANSPORTS
def test_call_send_batch_and_typed_errors(thread_node: ThreadNode, transport: str) -> None:
    with client(thread_node, transport, headers={"k": "h"}, auth=b"a") as c:
        assert c.call(C_Ping, Ping(ID=7), Pong) == Pong(ID=7)
        assert c.call(na.C_Meta, Ping(), KeyValue) == KeyValue(Key="h", Value="a|")
        with pytest.raises(rony_errors.AccessError, match="nope"):
            c.call(na.C_Fail, Ping(ID=1), Pong)
        with pytest.raises(rony_errors.UnavailableError):
            c.call(na.C_Raise, Ping(ID=1), Pong)
        with pytest.raises(errors.UnexpectedResponse):
            c.call(na.C_Big, Ping(ID=1), Pong)
        with pytest.raises(errors.DecodeError):
            c.call(na.C_Garbage, Ping(ID=1), Pong)
        raw = c.send(envelope(Ping(ID=3), constructor=na.C_Echo, request_id=5))
        assert raw.RequestID == 5
        assert Pong.FromString(raw.Message).ID == 3
        for sync_run in (False, True):
            replies = c.send_batch(
                [envelope(Ping(ID=i), constructor=na.C_Echo) for i in range(1, 6)]
                + [envelope(Ping(), constructor=na.C_Fail)],
                sync_run=sync_run,
            )
            assert [reply_message(r, Pong).ID for r in replies[:5]] == [1, 2, 3, 4, 5]
            with pytest.raises(rony_errors.AccessError):
                reply_message(replies[5])


@TRANSPORTS
def test_sixteen_threads_share_one_client(thread_node: ThreadNode, transport: str) -> None:
    errs: list[BaseException] = []
    with client(thread_node, transport) as c:

        def work(k: int) -> None:
            try:
                for i in range(1, 61):
                    rid = k * 1000 + i
                    assert rid == c.call(na.C_Echo, Ping(ID=rid), Pong).ID
                    if i % 20 == 0:  # some slow ones in the mix: others keep flowing
                        assert c.call(na.C_Slow, Ping(ID=30), Pong).ID == 30
            except BaseException as e:
                errs.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not any(t.is_alive() for t in threads)
        if transport == "ws":
            conns = {c.call(na.C_WhoAmI, Ping(), KeyValue).Value for _ in range(5)}
            assert len(conns) == 1  # one multiplexed WebSocket
    assert errs == []


def test_timeouts_leave_the_connection_usable(thread_node: ThreadNode) -> None:
    with client(thread_node) as c:
        t0 = time.monotonic()
        with pytest.raises(errors.RequestTimeout) as info:
            c.call(na.C_Slow, Ping(ID=1500), Pong, timeout=0.1)
        assert info.value.written
        assert time.monotonic() - t0 < 1.2  # did not wait for the reply
        # A waiter that times out while another thread reads hands the reader role back.
        results: list[object] = []

        def slow() -> None:
            try:
                results.append(c.call(na.C_Slow, Ping(ID=200), Pong, timeout=0.05))
            except errors.RequestTimeout as e:
                results.append(e)

        threads = [threading.Thread(target=slow) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(5)
        assert len(results) == 4
        assert all(isinstance(r, errors.RequestTimeout) for r in results)
        assert c.call(na.C_Echo, Ping(ID=9), Pong) == Pong(ID=9)
    with client(thread_node, "http") as c:
        with pytest.raises(errors.RequestTimeout):
            c.call(na.C_Slow, Ping(ID=300), Pong, timeout=0.1)
        assert c.call(na.C_Echo, Ping(ID=9), Pong) == Pong(ID=9)


def test_pushes_with_a_reader_thread(thread_node: ThreadNode) -> None:
    got: list[int] = []
    with client(thread_node) as c:
        c.on_push(lambda env: got.append(Pong.FromString(env.Message).ID))
        with c.pushes(idle_timeout=3) as stream:
            assert c.call(na.C_PushN, Ping(ID=4), Pong) == Pong(ID=4)
            ids = [Pong.FromString(next(stream).Message).ID for _ in range(4)]
            assert ids == [0, 1, 2, 3]
            conn_id = int(c.call(na.C_WhoAmI, Ping(), KeyValue).Value)
            edge = thread_node.edge
            assert edge is not None
            # a push while no call is in flight: the reader thread reads it
            thread_node.call_soon(edge.push, conn_id, envelope(Pong(ID=77), 0))
            assert Pong.FromString(next(stream).Message).ID == 77
        wait_until(lambda: got == [0, 1, 2, 3, 77])


def test_pushes_without_consumers_are_counted_not_blocking(thread_node: ThreadNode) -> None:
    with client(thread_node) as c:
        assert c.call(na.C_PushN, Ping(ID=50), Pong) == Pong(ID=50)
        assert c.call(na.C_Echo, Ping(ID=1), Pong) == Pong(ID=1)
        wait_until(lambda: c.dropped_pushes == 50)


def test_frame_over_the_limit(thread_node: ThreadNode) -> None:
    for transport in ("ws", "http"):
        with client(thread_node, transport, max_message_size=64 * 1024) as c:
            with pytest.raises(errors.FrameTooLarge):
                c.call(na.C_Big, Ping(ID=100_000), KeyValue)
            assert c.call(na.C_Echo, Ping(ID=2), Pong) == Pong(ID=2)  # recovered


def test_close_unblocks_waiting_threads(thread_node: ThreadNode) -> None:
    c = client(thread_node)
    c.connect()
    out: list[BaseException] = []

    def wait() -> None:
        try:
            c.call(na.C_Slow, Ping(ID=3000), Pong)
        except BaseException as e:
            out.append(e)

    threads = [threading.Thread(target=wait) for _ in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: len(c._pending) == 3)
    c.close()
    for t in threads:
        t.join(3)
    assert len(out) == 3
    assert all(isinstance(e, errors.ClientClosed) for e in out)
    with pytest.raises(errors.ClientClosed):
        c.call(C_Ping, Ping(), Pong)


def test_echo_example_and_generated_stubs_on_both_twins() -> None:
    """The quick-start service (examples/echo), served for real, called through the stubs
    protoc-gen-rony generated (SampleClient / SampleSyncClient) and through ``call``."""
    import asyncio

    from examples.echo.app import app
    from examples.echo.sample_pb2 import EchoRequest, EchoResponse
    from examples.echo.sample_rony import C_SampleEcho, SampleClient, SampleSyncClient

    node = ThreadNode(app).start()
    try:
        for transport in ("ws", "http"):
            with Client(node.url, transport=transport) as c:  # type: ignore[arg-type]
                res = SampleSyncClient(c).echo(EchoRequest(ID=5, RandomText="hi"))
                assert res == EchoResponse(ReqID=5, RandomText="hi")
                res = c.call(C_SampleEcho, EchoRequest(ID=6), EchoResponse, timeout=2)
                assert res.ReqID == 6

            async def twin(t: str = transport) -> EchoResponse:
                async with AsyncClient(node.url, transport=t) as ac:  # type: ignore[arg-type]
                    return await SampleClient(ac).echo(EchoRequest(ID=7), header={"a": "b"})

            assert asyncio.run(twin()) == EchoResponse(ReqID=7)
    finally:
        node.stop()
