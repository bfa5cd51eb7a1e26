"""``encoding="json"``: Client and AsyncClient speak Go Rony's JSON envelopes (WS text frames,
HTTP ``application/json``) to a real node, with the same API: typed replies, typed errors,
redirects, pushes; a bad ``encoding`` is a ValueError."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import pytest

from rony.client import AsyncClient, Client, ClientSettings, MockRequest, MockTransport
from rony.core import C_Ping, KeyValue, Ping, Pong, envelope
from rony.core import Edge as EdgeMessage
from rony.core import errors as rony_errors
from rony.server import App, Edge
from rony.server.testing import serve
from tests.client import _nodeapp as na
from tests.client.conftest import ThreadNode, await_until

TRANSPORTS = pytest.mark.parametrize("transport", ["ws", "http"])


@TRANSPORTS
async def test_async_calls_errors_and_raw_envelopes(node: Edge, transport: str) -> None:
    async with AsyncClient(node.url, transport=transport, encoding="json") as c:  # type: ignore[arg-type]
        for _ in range(2):  # the second call of a WS client takes the open link's fast lane
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
        with pytest.raises(rony_errors.InvalidError):  # no handler: E01 HANDLER
            await c.call(12345, Ping(ID=1), Pong)
        kv = await c.call(na.C_Meta, Ping(), KeyValue, header={"k": "v"})
        assert kv.Key == "v"  # the header travelled in the JSON envelope
        # The reply really came back as JSON: only the JSON decoder marks it so.
        raw = await c.send(envelope(Ping(ID=9), constructor=na.C_Echo, request_id=77))
        assert raw.RequestID == 77
        assert raw.JsonEncoded
        assert json.loads(raw.Message) == {"ID": "9"}  # protojson: int64 as a string
        # An envelope built as JSON goes as it is.
        raw = await c.send(envelope(Ping(ID=4), constructor=na.C_Echo, json_encoded=True))
        assert json.loads(raw.Message) == {"ID": "4"}
        # One request that makes several replies over HTTP (pushes, then the answer): a
        # container in JSON.
        assert await c.call(na.C_PushN, Ping(ID=2), Pong) == Pong(ID=2)
        with pytest.raises(ValueError, match="not available with encoding='json'"):
            await c.send_batch([envelope(Ping(ID=1), constructor=na.C_Echo)])


async def test_async_ws_pushes_arrive_as_json(node: Edge) -> None:
    async with AsyncClient(node.url, encoding="json") as c:
        got: list[Any] = []
        c.on_push(got.append)
        assert await c.call(na.C_PushN, Ping(ID=3), Pong) == Pong(ID=3)
        await await_until(lambda: len(got) == 3)
        assert all(e.JsonEncoded for e in got)


@TRANSPORTS
def test_sync_calls_and_errors(thread_node: ThreadNode, transport: str) -> None:
    with Client(thread_node.url, transport=transport, encoding="json") as c:  # type: ignore[arg-type]
        assert c.call(C_Ping, Ping(ID=7), Pong) == Pong(ID=7)
        assert c.call(na.C_Echo, Ping(ID=-3), Pong) == Pong(ID=-3)
        with pytest.raises(rony_errors.AccessError, match="nope"):
            c.call(na.C_Fail, Ping(ID=1), Pong)
        with pytest.raises(rony_errors.InvalidError):
            c.call(12345, Ping(ID=1), Pong)
        raw = c.send(envelope(Ping(ID=9), constructor=na.C_Echo))
        assert raw.JsonEncoded
        assert json.loads(raw.Message) == {"ID": "9"}
        assert c.call(na.C_PushN, Ping(ID=2), Pong) == Pong(ID=2)
        with pytest.raises(ValueError, match="not available with encoding='json'"):
            c.send_batch([envelope(Ping(ID=1), constructor=na.C_Echo)])


async def test_the_wire_is_json(node: Edge) -> None:
    """What JSON mode writes is what a Go Rony JSON peer writes: the gateway answers a text
    frame with a text frame, an application/json body with one (checked with a plain aiohttp
    client beside ours, to see the frames themselves)."""
    frames: list[str] = []
    async with aiohttp.ClientSession() as session, session.ws_connect(node.url) as ws:
        await ws.send_str('{"requestId": 5, "cmd": "Ping", "message": {"ID": "3"}}')
        msg = await ws.receive()
        assert msg.type is aiohttp.WSMsgType.TEXT
        frames.append(msg.data)
    assert json.loads(frames[0])["message"] == {"ID": "3"}
    # and our client's HTTP request is one of those bodies (the gateway would answer a
    # protobuf body with protobuf: the reply's JsonEncoded says which it got)
    async with AsyncClient(node.url, transport="http", encoding="json") as c:
        assert (await c.send(envelope(Ping(ID=1), constructor=C_Ping))).JsonEncoded
    async with AsyncClient(node.url, transport="http") as c:
        assert not (await c.send(envelope(Ping(ID=1), constructor=C_Ping))).JsonEncoded


@contextlib.asynccontextmanager
async def _redirecting_pair() -> AsyncIterator[tuple[Edge, Edge]]:
    """A answers Test.WhoAmI with a request Redirect to replica set 1, where B answers it."""
    from rony.core import RequestCtx

    async def redirect(ctx: RequestCtx) -> None:
        ctx.push_redirect_request(1)

    app_a = App("a")
    app_a.handle(na.C_WhoAmI, redirect, request_class=Ping)
    async with (
        serve(app_a, replica_set=0, server_id="A") as a,
        serve(na.build_app("b"), replica_set=1, server_id="B") as b,
    ):
        own = a.members

        def members(replica_set: int | None = None) -> Sequence[EdgeMessage]:
            return [b.this_node()] if replica_set == 1 else own(replica_set)

        a.members = members  # type: ignore[method-assign]
        yield a, b


@TRANSPORTS
async def test_redirects_are_followed(transport: str) -> None:
    async with (
        _redirecting_pair() as (a, _),
        AsyncClient(a.url, transport=transport, encoding="json") as c,  # type: ignore[arg-type]
    ):
        assert (await c.call(na.C_WhoAmI, Ping(), KeyValue)).Key == "B"


@TRANSPORTS
def test_sync_redirects_are_followed(transport: str) -> None:
    result: list[str] = []
    ready, done = threading.Event(), threading.Event()
    urls: list[str] = []

    def run_pair() -> None:
        import asyncio

        async def main() -> None:
            async with _redirecting_pair() as (a, _):
                urls.append(a.url)
                ready.set()
                await asyncio.to_thread(done.wait, 10)

        asyncio.run(main())

    t = threading.Thread(target=run_pair, daemon=True)
    t.start()
    try:
        assert ready.wait(10)
        with Client(urls[0], transport=transport, encoding="json") as c:  # type: ignore[arg-type]
            result.append(c.call(na.C_WhoAmI, Ping(), KeyValue).Key)
    finally:
        done.set()
        t.join(10)
    assert result == ["B"]


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_bad_encoding_is_a_value_error(cls: Any) -> None:
    with pytest.raises(ValueError, match="encoding must be 'protobuf' or 'json', not 'xml'"):
        cls("ws://127.0.0.1:1/", encoding="xml")
    # Go Rony's JSON envelope has no Auth field: refused, not dropped silently
    with pytest.raises(ValueError, match=r"cannot carry ClientSettings\.auth"):
        cls("ws://127.0.0.1:1/", encoding="json", settings=ClientSettings(auth=b"token"))


@TRANSPORTS
async def test_mock_transport_speaks_json_too(transport: str) -> None:
    """MockTransport reads a JSON-mode client's requests and answers it in JSON (text frames,
    JSON bodies), so a service's client code is tested the same way in either mode."""
    seen: list[Any] = []

    def handler(req: MockRequest) -> Pong:
        seen.append(req.envelope.JsonEncoded)
        return Pong(ID=req.message(Ping).ID)

    mock = MockTransport(handler)
    async with AsyncClient(
        "ws://mock/",
        transport=transport,  # type: ignore[arg-type]
        encoding="json",
        transport_impl=mock,
    ) as c:
        assert await c.call(na.C_Echo, Ping(ID=5), Pong) == Pong(ID=5)
        raw = await c.send(envelope(Ping(ID=6), constructor=na.C_Echo))
        assert raw.JsonEncoded
    with Client(
        "ws://mock/",
        transport=transport,  # type: ignore[arg-type]
        encoding="json",
        transport_impl=mock,
    ) as sc:
        assert sc.call(na.C_Echo, Ping(ID=7), Pong) == Pong(ID=7)
    assert seen == [True, True, True]
