"""handler_timeout's outcome: exactly one per request, and other cancellations (Edge.stop after its
grace) propagate even through a chain whose timeout already fired. A real Dispatcher in real
tasks, and a real node over a WebSocket."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from rony.core import C_Error, MessageEnvelope, Ping, Pong, RequestCtx, envelope, method_id
from rony.core import registry as core_registry
from rony.core.errors import UnavailableError
from rony.core.testing import MemoryConn
from rony.server import App, Dispatcher, DispatchSettings
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
