"""Both twins over ``MockTransport``: the public way to test an app without a server."""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest

from rony.client import (
    AsyncClient,
    AsyncConnection,
    AsyncTransport,
    Client,
    ClientSettings,
    ConnectOptions,
    MockRequest,
    MockTransport,
    errors,
)
from rony.core import (
    C_Ping,
    MessageEnvelope,
    Ping,
    Pong,
    envelope,
)
from rony.core import errors as rony_errors
from tests.client.conftest import await_until, wait_until

FAST = ClientSettings(
    request_timeout=1.0, deadline=2.0, backoff_base=0.01, backoff_max=0.05, max_retries=2
)


def pong_handler(req: MockRequest) -> object:
    ping = req.message(Ping)
    if ping.ID < 0:
        raise rony_errors.InvalidError("ID", "negative")
    if ping.ID == 0:
        return None  # never answers
    if ping.ID == 99:
        return [Pong(ID=99), envelope(Pong(ID=1000), 0)]  # a reply and a push
    return Pong(ID=ping.ID)


# --- async ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_async_call_send_batch_errors(transport: str) -> None:
    mock = MockTransport(pong_handler)
    async with AsyncClient(
        "mock:1",
        transport=transport,  # type: ignore[arg-type]
        transport_impl=mock,
        settings=ClientSettings(headers={"app": "t"}, auth=b"k"),
    ) as c:
        assert await c.call(C_Ping, Ping(ID=5), Pong) == Pong(ID=5)
        assert mock.requests[-1].header == {"app": "t"}
        assert mock.requests[-1].auth == b"k"
        assert mock.requests[-1].url == f"{transport}://mock:1/"
        with pytest.raises(rony_errors.InvalidError) as info:
            await c.call(C_Ping, Ping(ID=-1), Pong)
        assert info.value.items == "ID"
        assert info.value.description == "negative"
        raw = await c.send(envelope(Ping(ID=-1)))
        assert raw.Constructor != C_Ping
        assert raw.RequestID != 0
        replies = await c.send_batch(
            [envelope(Ping(ID=i), constructor=C_Ping) for i in (1, 2, 3)], sync_run=True
        )
        assert [Pong.FromString(r.Message).ID for r in replies] == [1, 2, 3]
        assert len({r.RequestID for r in replies}) == 3


async def test_async_pushes_reach_iterator_and_callbacks_in_order() -> None:
    mock = MockTransport(pong_handler)
    got: list[int] = []
    async_got: list[int] = []

    async def acb(env: MessageEnvelope) -> None:
        async_got.append(Pong.FromString(env.Message).ID)

    async with AsyncClient("mock:1", transport_impl=mock) as c:
        c.on_push(lambda env: got.append(Pong.FromString(env.Message).ID))
        c.on_push(acb)
        it = c.pushes().__aiter__()
        assert await c.call(C_Ping, Ping(ID=99), Pong) == Pong(ID=99)
        for i in range(3):
            assert mock.push(envelope(Pong(ID=i), 0)) == 1
        ids = [Pong.FromString((await anext(it)).Message).ID for _ in range(4)]
        assert ids == [1000, 0, 1, 2]
        await await_until(lambda: len(got) == 4 and len(async_got) == 4)
        assert got == async_got == [1000, 0, 1, 2]
        await it.aclose()


async def test_async_slow_push_consumer_never_blocks_replies() -> None:
    mock = MockTransport(pong_handler)
    settings = ClientSettings(push_queue_size=4)
    async with AsyncClient("mock:1", transport_impl=mock, settings=settings) as c:
        it = c.pushes().__aiter__()
        await c.connect()
        for i in range(10):
            mock.push(envelope(Pong(ID=i), 0))
        assert await c.call(C_Ping, Ping(ID=7), Pong) == Pong(ID=7)  # not stuck behind pushes
        ids = [Pong.FromString((await anext(it)).Message).ID for _ in range(4)]
        assert ids == [6, 7, 8, 9]  # the oldest were dropped
        assert c.dropped_pushes == 6
        await it.aclose()


async def test_async_dropped_link_fails_written_requests_and_reconnects() -> None:
    mock = MockTransport(pong_handler)
    connects: list[str] = []
    async with AsyncClient("mock:1", transport_impl=mock, settings=FAST) as c:
        c.on_connect(connects.append)
        await c.connect()
        task = asyncio.ensure_future(c.call(C_Ping, Ping(ID=0), Pong))  # no reply coming
        await await_until(lambda: len(mock.requests) == 1)
        assert mock.drop() == 1
        with pytest.raises(errors.ConnectionLost) as info:
            await task
        assert info.value.written
        await await_until(lambda: len(connects) == 2)  # re-dialled in the background
        assert await c.call(C_Ping, Ping(ID=3), Pong) == Pong(ID=3)


async def test_async_idempotent_call_is_resent_after_a_drop() -> None:
    calls = 0

    def handler(req: MockRequest) -> object:
        nonlocal calls
        calls += 1
        return None if calls == 1 else Pong(ID=4)

    mock = MockTransport(handler)
    async with AsyncClient("mock:1", transport_impl=mock, settings=FAST) as c:
        task = asyncio.ensure_future(c.call(C_Ping, Ping(ID=4), Pong, idempotent=True))
        await await_until(lambda: calls == 1)
        mock.drop()
        assert await task == Pong(ID=4)
        assert calls == 2


async def test_async_refused_and_timeouts_are_typed() -> None:
    mock = MockTransport(pong_handler)
    mock.refuse = True
    async with AsyncClient("mock:1", transport_impl=mock, settings=FAST) as c:
        with pytest.raises(errors.RetriesExceeded) as info:
            await c.call(C_Ping, Ping(ID=1), Pong)
        assert isinstance(info.value.last_error, errors.ConnectError)
        assert info.value.attempts == 3
        mock.refuse = False
        t0 = time.monotonic()
        with pytest.raises(errors.RequestTimeout) as tinfo:
            await c.call(C_Ping, Ping(ID=0), Pong, timeout=0.2)
        assert tinfo.value.written
        assert time.monotonic() - t0 < 1.0
        # the late reply of a timed-out request is not a push
        assert isinstance(tinfo.value, TimeoutError)


async def test_async_close_fails_pending_and_ends_iterators() -> None:
    mock = MockTransport(pong_handler)
    c = AsyncClient("mock:1", transport_impl=mock)
    task = asyncio.ensure_future(c.call(C_Ping, Ping(ID=0), Pong))

    async def consume() -> list[MessageEnvelope]:
        return [env async for env in c.pushes()]

    pushes = asyncio.ensure_future(consume())
    await await_until(lambda: len(mock.requests) == 1)
    await c.close()
    await c.close()  # idempotent
    with pytest.raises(errors.ClientClosed):
        await task
    assert await pushes == []
    with pytest.raises(errors.ClientClosed):
        await c.call(C_Ping, Ping(ID=1), Pong)


async def test_async_close_during_a_dial_raises_client_closed() -> None:
    """close() cancels a dial in progress; the call waiting on it gets ClientClosed, not the
    dial task's CancelledError (which would look like the caller itself was cancelled)."""
    dialling = asyncio.Event()

    class HangingDial(AsyncTransport):
        async def connect_async(self, url: str, options: ConnectOptions) -> AsyncConnection:
            dialling.set()
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

    c = AsyncClient("ws://mock:1", transport_impl=HangingDial())
    task = asyncio.ensure_future(c.call(C_Ping, Ping(ID=1), Pong))
    await asyncio.wait_for(dialling.wait(), 5.0)
    await c.close()
    with pytest.raises(errors.ClientClosed):
        await task
    assert not task.cancelled()


async def test_async_discovery_for_replica_set_counts_against_the_call_timeout() -> None:
    """An unknown replica_set is looked up with GetNodes inside the call's own deadline; a
    lookup that gets no answer ends as the call's RequestTimeout (not a plain TimeoutError)."""
    mock = MockTransport(lambda req: None)  # never answers
    async with AsyncClient("mock:1", transport_impl=mock) as c:
        t0 = time.monotonic()
        with pytest.raises(errors.RequestTimeout):
            await c.call(C_Ping, Ping(ID=1), Pong, replica_set=7, timeout=0.3)
        assert time.monotonic() - t0 < 2.0


async def test_async_unexpected_and_duplicate_ids() -> None:
    mock = MockTransport(lambda req: Ping(ID=1))
    async with AsyncClient("mock:1", transport_impl=mock) as c:
        with pytest.raises(errors.UnexpectedResponse, match="expected Pong, got Ping"):
            await c.call(C_Ping, Ping(ID=1), Pong)


# --- sync ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_sync_call_send_batch_errors(transport: str) -> None:
    mock = MockTransport(pong_handler)
    with Client("mock:1", transport=transport, transport_impl=mock) as c:  # type: ignore[arg-type]
        assert c.call(C_Ping, Ping(ID=5), Pong) == Pong(ID=5)
        with pytest.raises(rony_errors.InvalidError):
            c.call(C_Ping, Ping(ID=-1), Pong)
        replies = c.send_batch([envelope(Ping(ID=i), constructor=C_Ping) for i in (1, 2, 3)])
        assert [Pong.FromString(r.Message).ID for r in replies] == [1, 2, 3]


def test_sync_discovery_for_replica_set_counts_against_the_call_timeout() -> None:
    mock = MockTransport(lambda req: None)  # never answers
    with Client("mock:1", transport_impl=mock) as c:
        t0 = time.monotonic()
        with pytest.raises(errors.RequestTimeout):
            c.call(C_Ping, Ping(ID=1), Pong, replica_set=7, timeout=0.3)
        assert time.monotonic() - t0 < 2.0  # the default deadline (15 s) no longer applies


def test_sync_pushes_iterator_and_callback() -> None:
    mock = MockTransport(pong_handler)
    got: list[int] = []
    with Client("mock:1", transport_impl=mock) as c:
        c.connect()
        c.on_push(lambda env: got.append(Pong.FromString(env.Message).ID))
        it = c.pushes(idle_timeout=2.0)
        for i in range(3):
            mock.push(envelope(Pong(ID=i), 0))  # nobody calls: the reader thread reads them
        ids = [Pong.FromString(next(it).Message).ID for _ in range(3)]
        assert ids == [0, 1, 2]
        wait_until(lambda: got == [0, 1, 2])
        assert c.call(C_Ping, Ping(ID=99), Pong) == Pong(ID=99)
        assert Pong.FromString(next(it).Message).ID == 1000
        it.close()


def test_sync_concurrent_on_push_starts_one_dispatcher() -> None:
    """on_push from several threads at once starts one dispatcher thread (two would each get
    every push and call every callback twice). A tiny switch interval widens the race."""

    def dispatchers() -> int:
        return sum(t.name == "rony-client-pushes" for t in threading.enumerate())

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for _ in range(30):
            with Client("mock:1", transport_impl=MockTransport(pong_handler)) as c:
                before = dispatchers()
                barrier = threading.Barrier(6)

                def register(c: Client, barrier: threading.Barrier) -> None:
                    barrier.wait()
                    c.on_push(lambda env: None)

                threads = [threading.Thread(target=register, args=(c, barrier)) for _ in range(6)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                assert dispatchers() - before == 1
    finally:
        sys.setswitchinterval(old)


def test_sync_dropped_link_and_reconnect_with_push_reader() -> None:
    mock = MockTransport(pong_handler)
    connects: list[str] = []
    with Client("mock:1", transport_impl=mock, settings=FAST) as c:
        c.on_connect(connects.append)
        c.connect()
        it = c.pushes(idle_timeout=2.0)
        result: list[BaseException] = []

        def blocked() -> None:
            try:
                c.call(C_Ping, Ping(ID=0), Pong)
            except BaseException as e:
                result.append(e)

        t = threading.Thread(target=blocked)
        t.start()
        wait_until(lambda: len(mock.requests) == 1)
        mock.drop()
        t.join(3)
        assert isinstance(result[0], errors.ConnectionLost)
        assert result[0].written
        wait_until(lambda: len(connects) == 2)  # the push reader re-dialled
        mock.push(envelope(Pong(ID=5), 0))
        assert Pong.FromString(next(it).Message).ID == 5
        assert c.call(C_Ping, Ping(ID=3), Pong) == Pong(ID=3)
        it.close()


def test_sync_lazy_reconnect_without_push_consumers() -> None:
    mock = MockTransport(pong_handler)
    with Client("mock:1", transport_impl=mock, settings=FAST) as c:
        assert c.call(C_Ping, Ping(ID=1), Pong) == Pong(ID=1)
        mock.drop()
        assert c.call(C_Ping, Ping(ID=2), Pong) == Pong(ID=2)


def test_sync_timeout_refused_and_close() -> None:
    mock = MockTransport(pong_handler)
    c = Client("mock:1", transport_impl=mock, settings=FAST)
    with pytest.raises(errors.RequestTimeout):
        c.call(C_Ping, Ping(ID=0), Pong, timeout=0.2)
    assert c.call(C_Ping, Ping(ID=1), Pong) == Pong(ID=1)  # the reader role was handed back
    mock.drop()
    mock.refuse = True
    with pytest.raises(errors.RetriesExceeded):
        c.call(C_Ping, Ping(ID=1), Pong)
    mock.refuse = False
    result: list[BaseException] = []

    def blocked() -> None:
        try:
            c.call(C_Ping, Ping(ID=0), Pong, timeout=5)
        except BaseException as e:
            result.append(e)

    t = threading.Thread(target=blocked)
    t.start()
    wait_until(lambda: sum(r.message(Ping).ID == 0 for r in mock.requests) == 2)
    c.close()
    t.join(3)
    assert isinstance(result[0], errors.ClientClosed)


def test_sync_many_threads_share_one_connection() -> None:
    mock = MockTransport(pong_handler)
    errs: list[BaseException] = []
    with Client("mock:1", transport_impl=mock) as c:

        def work(k: int) -> None:
            try:
                for i in range(1, 40):
                    assert k * 100 + i == c.call(C_Ping, Ping(ID=k * 100 + i), Pong).ID
            except BaseException as e:
                errs.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert errs == []
    assert len(mock.requests) == 16 * 39


def test_async_handler_needs_async_client() -> None:
    async def handler(req: MockRequest) -> object:
        return Pong(ID=1)

    with (
        Client("mock:1", transport_impl=MockTransport(handler), transport="http") as c,
        pytest.raises(TypeError, match="AsyncClient"),
    ):
        c.call(C_Ping, Ping(ID=1), Pong)
