"""A request leaves no reference cycle behind in the server.

Refcounting frees an acyclic request the moment it is done. A cycle (once: RequestCtx ->
DispatchCtx -> its list of RequestCtxs) holds the request and everything it points at (the
aiohttp request, its headers, its stream) until the cyclic collector runs, and makes that
collector run every few dozen requests: it cost the HTTP path about 8 µs a request. These tests
run each kind of request with the collector off and look for server objects in what a collection
then finds unreachable.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import aiohttp
import pytest

from examples.echo.app import app as echo_app
from examples.echo.sample_pb2 import EchoRequest
from examples.echo.sample_rony import C_SampleEcho
from rony.core import RequestCtx, container_envelope, envelope, method_id, registry
from rony.core.errors import InvalidError
from rony.core.pb.msg_pb2 import Ping
from rony.server import App
from rony.server.testing import serve

from .conftest import C_Boom, C_Denied, C_Record, C_Sleep, recv_env, req

ROUNDS = 20

C_Chained = method_id("Test", "Chained")
registry.register(C_Chained, "TestChained", Ping)


@pytest.fixture
def garbage() -> Iterator[list[object]]:
    """The objects that the cyclic collector would have freed, collected while the test ran."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    found: list[object] = []
    try:
        yield found
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


def server_objects(found: list[object]) -> list[str]:
    """Names of the server-side types among the unreachable objects: ours and aiohttp's web_*."""
    gc.collect()
    found.extend(gc.garbage)
    names = set()
    for obj in found:
        module = getattr(type(obj), "__module__", "") or ""
        if module.startswith("rony.") or module.startswith("aiohttp.web"):
            names.add(f"{module}.{type(obj).__qualname__}")
    return sorted(names)


async def test_http_rpc_rest_and_ws_requests_leave_no_cycles(
    http: aiohttp.ClientSession, garbage: list[object]
) -> None:
    echo = req(C_SampleEcho, EchoRequest(ID=1, RandomText="x"), 1)
    both = container_envelope(
        [envelope(EchoRequest(ID=2, RandomText="y"), 2), envelope(Ping(ID=3), 3)],
        sync_run=True,
    ).SerializeToString()
    async with serve(echo_app) as edge, http.ws_connect(edge.url) as ws:
        for _ in range(3):  # warm: first-use caches are not cycles of a request
            await ws.send_bytes(echo)
            await recv_env(ws)
        gc.collect()
        gc.garbage.clear()
        for _ in range(ROUNDS):
            await ws.send_bytes(echo)
            assert (await recv_env(ws)).RequestID == 1
            await ws.send_bytes(both)
            ids = {(await recv_env(ws)).RequestID, (await recv_env(ws)).RequestID}
            assert ids == {2, 3}
            async with http.post(edge.url, data=echo) as r:
                assert r.status == 200
            async with http.post(edge.url, data=b"\xff garbage") as r:
                assert r.status == 400
            async with http.get(edge.url + "/echo/7/hello") as r:
                assert r.status == 200
        assert server_objects(garbage) == []


async def test_errors_and_awaiting_handlers_leave_no_cycles(
    test_app: App, http: aiohttp.ClientSession, garbage: list[object]
) -> None:
    # Error replies (unknown method, a handler's RonyError, one raised while handling another
    # exception, a handler's crash) and a chain that awaits (the WS reader hands its role on
    # and the chain finishes in its own task).
    async def lookup(ctx: RequestCtx) -> None:
        try:
            {}[ctx.message(Ping).ID]
        except KeyError as exc:
            raise InvalidError("ID", "unknown id") from exc

    test_app.handle(C_Chained, lookup)
    frames = [
        req(C_Record, Ping(ID=1), 1),
        req(12345, Ping(ID=2), 2),
        req(C_Denied, Ping(ID=3), 3),
        req(C_Boom, Ping(ID=4), 4),
        req(C_Chained, Ping(ID=5), 5),
        req(C_Sleep, Ping(ID=-1), 6),
    ]
    async with serve(test_app) as edge, http.ws_connect(edge.url) as ws:
        for data in frames:  # warm
            await ws.send_bytes(data)
            await recv_env(ws)
        gc.collect()
        gc.garbage.clear()
        for _ in range(ROUNDS):
            for i, data in enumerate(frames, 1):
                await ws.send_bytes(data)
                assert (await recv_env(ws)).RequestID == i
                async with http.post(edge.url, data=data) as r:
                    assert (r.status == 200) is (i in (1, 6))
        assert server_objects(garbage) == []
