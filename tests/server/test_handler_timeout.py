"""handler_timeout's outcome: exactly one per request, and other cancellations (Edge.stop after its
grace) propagate even through a chain whose timeout already fired. A real Dispatcher in real
tasks, and a real node over a WebSocket."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from rony.core import C_Error, MessageEnvelope, Ping, Pong, RequestCtx, envelope, method_id
from rony.core import registry as core_registry
from rony.core.errors import UnavailableError
from rony.core.testing import MemoryConn
from rony.server import App, Dispatcher, DispatchSettings, Edge
from rony.server.testing import serve

from .conftest import error_of, recv_env, req

C_Stubborn = method_id("TimeoutTest", "Stubborn")
core_registry.register(C_Stubborn, "TimeoutTestStubborn", Ping)

LIMIT = 0.05


class _Scenario:
    """One handler for C_Stubborn whose reaction to the timeout's CancelledError a test picks."""

    def __init__(self, on_cancel: str) -> None:
        self.on_cancel = on_cancel
        self.caught = asyncio.Event()
        self.release = asyncio.Event()
        self.app = App("timeout")
        self.app.handle(C_Stubborn, self._handler)

    async def _handler(self, ctx: RequestCtx) -> None:
        try:
            await asyncio.Event().wait()  # never set: only the timeout ends this
        except asyncio.CancelledError:
            self.caught.set()
            if self.on_cancel == "reply":
                ctx.push_message(Pong(ID=7))  # caught, answered, returned
            elif self.on_cancel == "error":
                raise UnavailableError("ITEM", "gave up") from None
            elif self.on_cancel == "cleanup":
                await self.release.wait()  # slow cleanup, then a reply
                ctx.push_message(Pong(ID=8))
            elif self.on_cancel == "stop-now":
                # Another cancel request arrives while the task runs: asyncio delivers it at the
                # task's next suspension, which the swallowing handler does not reach.
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
            elif self.on_cancel == "propagate":
                raise


def _dispatcher(s: _Scenario) -> Dispatcher:
    return Dispatcher(s.app, settings=DispatchSettings(handler_timeout=LIMIT))


def _codes(sent: list[MessageEnvelope]) -> list[str]:
    return [error_of(e).Code if e.Constructor == C_Error else "reply" for e in sent]


@pytest.mark.parametrize("persistent", [True, False])
async def test_a_handler_that_catches_the_timeout_and_replies_gets_only_its_reply(
    persistent: bool,
) -> None:
    # It used to get its reply AND an E06 for the same RequestID.
    s = _Scenario("reply")
    conn = MemoryConn(persistent=persistent)
    sent: list[MessageEnvelope] = []
    reply = sent.append if persistent else None
    env = envelope(Ping(ID=1), 5, constructor=C_Stubborn)
    out = await _dispatcher(s).dispatch(conn, env, reply=reply)
    replies = sent if persistent else out
    assert _codes(replies) == ["reply"]
    assert replies[0].RequestID == 5
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the timeout's request was withdrawn


async def test_a_handler_that_catches_the_timeout_and_raises_gets_only_its_error() -> None:
    s = _Scenario("error")
    out = await _dispatcher(s).dispatch(
        MemoryConn(persistent=False), envelope(Ping(ID=1), 5, constructor=C_Stubborn)
    )
    assert _codes(out) == ["E02"]


async def test_a_handler_the_timeout_cuts_gets_e06() -> None:
    s = _Scenario("propagate")
    out = await _dispatcher(s).dispatch(
        MemoryConn(persistent=False), envelope(Ping(ID=1), 5, constructor=C_Stubborn)
    )
    assert _codes(out) == ["E06"]
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0


async def test_stop_cancel_on_a_timed_out_chain_propagates() -> None:
    # The timeout fired; the handler caught it and is cleaning up when stop cancels the task:
    # stop's CancelledError used to be absorbed as the timeout's (an E06, the task went on).
    s = _Scenario("cleanup")
    sent: list[MessageEnvelope] = []
    after: list[str] = []
    dispatcher = _dispatcher(s)

    async def worker() -> None:  # as the gateway's WS worker: dispatch, then go on
        await dispatcher.dispatch(
            MemoryConn(), envelope(Ping(ID=1), 5, constructor=C_Stubborn), reply=sent.append
        )
        after.append("went on")
        await asyncio.Event().wait()

    task = asyncio.create_task(worker())
    await asyncio.wait_for(s.caught.wait(), 5)
    task.cancel()  # Edge.stop after its grace period
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert task.cancelled()
    assert task.cancelling() == 1  # stop's request only: the timeout's was withdrawn
    assert after == []
    assert sent == []


async def test_stop_cancel_swallowed_with_the_timeouts_still_propagates() -> None:
    # A cancel request made while the handler runs, after it caught the timeout's CancelledError
    # and swallowed it: the dispatcher must not return as if only its own request existed.
    s = _Scenario("stop-now")
    sent: list[MessageEnvelope] = []
    after: list[str] = []
    dispatcher = _dispatcher(s)

    async def worker() -> None:
        await dispatcher.dispatch(
            MemoryConn(), envelope(Ping(ID=1), 5, constructor=C_Stubborn), reply=sent.append
        )
        after.append("went on")  # (before its next await, so before asyncio would cancel it)

    task = asyncio.create_task(worker())
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    assert after == []
    assert sent == []


async def test_over_a_websocket_a_caught_timeout_answers_once(http: aiohttp.ClientSession) -> None:
    s = _Scenario("reply")
    async with serve(s.app, handler_timeout=LIMIT) as edge, http.ws_connect(edge.url) as ws:
        await ws.send_bytes(req(C_Stubborn, Ping(ID=1), 11))
        first = await recv_env(ws)
        assert (first.RequestID, first.Constructor != C_Error) == (11, True)
        # The next request's answer comes next: nothing else was sent for request 11.
        await ws.send_bytes(req(C_Stubborn, Ping(ID=1), 12))
        second = await recv_env(ws)
        assert second.RequestID == 12


async def test_edge_stop_ends_a_timed_out_chain_and_finishes(
    http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    # A handler caught its timeout and is still cleaning up when stop's grace runs out: stop's
    # cancel used to be absorbed as an E06, the WS worker went on and parked, and stop waited on
    # it for ever.
    s = _Scenario("cleanup")
    edge = Edge(s.app, data_dir=str(tmp_path), handler_timeout=LIMIT)
    await edge.start()
    ws = await http.ws_connect(edge.url)
    await ws.send_bytes(req(C_Stubborn, Ping(ID=1), 11))
    await asyncio.wait_for(s.caught.wait(), 5)
    try:
        await asyncio.wait_for(edge.stop(0.05), 5)
    except TimeoutError:
        raise AssertionError("Edge.stop did not finish") from None
    msg = await ws.receive(timeout=5)  # the close, with no E06 (or reply) before it
    assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
    await ws.close()
