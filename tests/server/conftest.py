"""Shared fixtures for rony.server tests: a test App with observable handlers, WS helpers."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from rony.core import (
    C_Error,
    MessageEnvelope,
    RequestCtx,
    decode_envelope,
    envelope,
    method_id,
    registry,
)
from rony.core.errors import AccessError
from rony.core.pb.msg_pb2 import Error, KeyValue, Ping, Pong

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # so `examples.echo` imports (pytest runs in importlib mode)
    sys.path.insert(0, str(ROOT))

from rony.server import App  # noqa: E402


def declare_method(service: str, name: str) -> int:
    """A test method's id, registered as "<service><name>" with Ping as its message (any names
    and message: only the id's crc matters on the wire)."""
    cid = method_id(service, name)
    registry.register(cid, service + name, Ping)
    return cid


# Method ids of the test service.
C_Sleep = declare_method("Test", "Sleep")
C_Record = declare_method("Test", "Record")
C_Boom = declare_method("Test", "Boom")
C_Denied = declare_method("Test", "Denied")
C_Internal = declare_method("Test", "Internal")
C_Multi = declare_method("Test", "Multi")
C_Whoami = declare_method("Test", "Whoami")
C_PushTo = declare_method("Test", "PushTo")
C_Silent = declare_method("Test", "Silent")
C_Flood = declare_method("Test", "Flood")


class Probe:
    """What the test handlers did, in order, plus gates a test can open."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.gates: dict[int, asyncio.Event] = {}
        self.started: dict[int, asyncio.Event] = {}

    def gate(self, key: int) -> asyncio.Event:
        return self.gates.setdefault(key, asyncio.Event())

    def start_event(self, key: int) -> asyncio.Event:
        return self.started.setdefault(key, asyncio.Event())


def build_test_app(probe: Probe) -> App:
    """Handlers keyed on Ping.ID so a test controls each request."""
    app = App("test")

    async def sleep(ctx: RequestCtx) -> None:
        # Waits until the test opens gate ID (or for ID milliseconds when ID < 0).
        req = ctx.message(Ping)
        probe.events.append(f"start {req.ID}")
        probe.start_event(req.ID).set()
        if req.ID < 0:
            await asyncio.sleep(-req.ID / 1000)
        else:
            await probe.gate(req.ID).wait()
        probe.events.append(f"end {req.ID}")
        ctx.push_message(Pong(ID=req.ID))

    async def record(ctx: RequestCtx) -> None:
        req = ctx.message(Ping)
        probe.events.append(f"record {req.ID}")
        ctx.push_message(Pong(ID=req.ID))

    async def boom(ctx: RequestCtx) -> None:
        raise RuntimeError("secret traceback detail")

    async def denied(ctx: RequestCtx) -> None:
        raise AccessError("TOKEN", "bad token")

    async def internal(ctx: RequestCtx) -> None:
        ctx.push_message(Pong(ID=99))

    async def multi(ctx: RequestCtx) -> None:
        req = ctx.message(Ping)
        for i in range(req.ID):
            ctx.push_message(Pong(ID=i))

    async def whoami(ctx: RequestCtx) -> None:
        kv = [
            KeyValue(Key="conn_id", Value=str(ctx.conn_id)),
            KeyValue(Key="client_ip", Value=ctx.conn.client_ip),
            KeyValue(Key="token", Value=str(ctx.conn.get("token", ""))),
            KeyValue(Key="x-custom", Value=str(ctx.conn.get("X-Custom", ""))),
        ]
        ctx.push_envelope(
            envelope(
                Pong(ID=ctx.conn_id),
                ctx.request_id,
                header={k.Key: k.Value for k in kv},
            )
        )

    async def push_to(ctx: RequestCtx) -> None:
        req = ctx.message(Ping)
        ok = ctx.services.push(req.ID, envelope(Pong(ID=7777), 0))
        ctx.push_message(Pong(ID=1 if ok else 0))

    async def silent(ctx: RequestCtx) -> None:
        probe.events.append("silent")

    async def flood(ctx: RequestCtx) -> None:
        # ID replies of ~1 KiB each, pushed at once.
        req = ctx.message(Ping)
        pad = {"pad": "x" * 1024}
        for i in range(req.ID):
            ctx.push_message(Pong(ID=i), header=pad)

    app.handle(C_Sleep, sleep, request_class=Ping, service="Test", method="Sleep")
    app.handle(C_Record, record, request_class=Ping, service="Test", method="Record")
    app.handle(C_Boom, boom)
    app.handle(C_Denied, denied)
    app.handle(C_Internal, internal, internal=True)
    app.handle(C_Multi, multi)
    app.handle(C_Whoami, whoami)
    app.handle(C_PushTo, push_to)
    app.handle(C_Silent, silent)
    app.handle(C_Flood, flood)
    return app


@pytest.fixture(autouse=True, params=["inline", "receive"])
def ws_read_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with both ways a WebSocket frame is taken: inline from
    data_received (the default) and through aiohttp's receive() (the fallback when an aiohttp
    release lacks the internals the inline feed uses, or ``ws_inline_dispatch=False``)."""
    if request.param == "receive":
        from rony.server.gateway import _gateway

        monkeypatch.setattr(_gateway._FeedParser, "install", classmethod(lambda *a: None))
    return str(request.param)


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def test_app(probe: Probe) -> App:
    return build_test_app(probe)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def req(constructor: int, msg: Any, request_id: int = 1, **kw: Any) -> bytes:
    return envelope(msg, request_id, constructor=constructor, **kw).SerializeToString()


async def recv_env(ws: aiohttp.ClientWebSocketResponse) -> MessageEnvelope:
    msg = await ws.receive(timeout=5.0)
    assert msg.type is aiohttp.WSMsgType.BINARY, (msg.type, msg.data, msg.extra)
    return decode_envelope(msg.data)


def error_of(env: MessageEnvelope) -> Error:
    assert env.Constructor == C_Error, env
    err = Error()
    err.ParseFromString(env.Message)
    return err


async def wait_for(cond: Callable[[], bool]) -> None:
    """Poll a condition with a 5 s deadline (for state we cannot await directly)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5.0
    while not cond():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
