"""Test helpers for Rony services (Go Rony's ``edgetest``), public API.

* ``serve(app, **overrides)``: a real node on ``127.0.0.1:0`` with a temporary data folder::

      async with serve(app) as edge:
          ...  # talk to edge.url with any client

* ``TestClient(app)``: the same node without a socket; requests go straight to the dispatcher::

      async with TestClient(app) as client:
          res = await client.call(C_SampleEcho, EchoRequest(ID=1), EchoResponse)
          rest = await client.rest("GET", "/echo/7/hi")

* the pytest fixture ``rony_node`` (installed as a pytest plugin with rony-server): an async
  factory ``await rony_node(app, **overrides) -> Edge``; every node it started is stopped at
  the end of the test.
"""

from __future__ import annotations

import itertools
import random
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, TypeVar, overload
from urllib.parse import parse_qsl, urlsplit

from google.protobuf.message import Message

from rony.core import MessageEnvelope, RonyError, envelope
from rony.core.testing import MemoryConn, reply_message
from rony.server._app import App
from rony.server._edge import Edge
from rony.server.gateway._rest import (
    RestResponse,
    RestRouter,
    bind_request,
    error_response,
    render_response,
    split_path,
    too_large_response,
)

__all__ = ["RestResponse", "TestClient", "UnexpectedReply", "serve"]

M = TypeVar("M", bound=Message)

_conn_ids = itertools.count(1_000_000_000)


class UnexpectedReply(AssertionError):
    """The reply was not of the expected class, or there was none."""


def _edge_for(app: App | Edge, overrides: dict[str, Any]) -> Edge:
    if isinstance(app, Edge):
        return Edge(app.app, app.settings.replace(**overrides))
    return Edge(app, **overrides)


async def _stop_all(edges: Iterable[Edge], grace: float) -> None:
    """Stop every node in ``edges``, even when stopping one raises; then raise the first error.

    (The ``rony_node`` fixture's teardown: a node whose stop failed must not leave the ones after
    it running, with their ports, LMDB envs and threads, into the next test.)
    """
    errors: list[BaseException] = []
    for edge in edges:
        try:
            await edge.stop(grace)
        except BaseException as exc:  # also a cancelled teardown: the others are still stopped
            errors.append(exc)
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(f"stopping another node also failed: {other!r}")
        raise first


@asynccontextmanager
async def serve(app: App | Edge, *, grace: float = 1.0, **overrides: Any) -> AsyncIterator[Edge]:
    """A started node on 127.0.0.1:0 with a temporary data folder; stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="rony-test-") as tmp:
        overrides.setdefault("data_dir", tmp)
        overrides.setdefault("gateway_host", "127.0.0.1")
        overrides.setdefault("gateway_port", 0)
        edge = _edge_for(app, overrides)
        await edge.start()
        try:
            yield edge
        finally:
            await edge.stop(grace)


class TestClient:
    """An in-process client: no socket, the app's real dispatcher, handlers and store.

    The client is one persistent connection (like a WebSocket) with ``values`` as its
    connection values (as if sent as handshake headers or query args).
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: App | Edge,
        *,
        values: Mapping[str, Any] | None = None,
        client_ip: str = "127.0.0.1",
        **overrides: Any,
    ) -> None:
        self._app = app
        self._overrides = overrides
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.edge: Edge | None = None
        self.conn = MemoryConn(
            persistent=True, client_ip=client_ip, values=values, conn_id=next(_conn_ids)
        )

    async def __aenter__(self) -> TestClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        if self.edge is not None:
            return
        overrides = dict(self._overrides)
        if "data_dir" not in overrides:
            self._tmp = tempfile.TemporaryDirectory(prefix="rony-test-")
            overrides["data_dir"] = self._tmp.name
        edge = _edge_for(self._app, overrides)
        try:
            await edge.start(serve_gateway=False)
        except BaseException:
            # `async with` does not call __aexit__ when __aenter__ raised: clean up here.
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None
            raise
        self.edge = edge

    async def close(self) -> None:
        """Stop the node and remove its temporary data folder; ``start()`` may follow."""
        edge, self.edge = self.edge, None
        try:
            if edge is not None:
                await edge.stop(1.0)
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
                self._tmp = None

    def _edge(self) -> Edge:
        if self.edge is None:
            raise RuntimeError("use `async with TestClient(app) as client:` (or await start())")
        return self.edge

    # --- RPC ----------------------------------------------------------------------------------

    async def send(self, env: MessageEnvelope) -> list[MessageEnvelope]:
        """Dispatch one envelope (or container); return every envelope sent back, in order."""
        edge = self._edge()
        replies: list[MessageEnvelope] = []
        await edge.dispatcher.dispatch(self.conn, env, reply=replies.append)
        return replies

    async def send_bytes(self, data: bytes, *, json: bool = False) -> list[MessageEnvelope]:
        """Dispatch raw bytes as a WebSocket frame would (binary, or a JSON text frame)."""
        edge = self._edge()
        replies: list[MessageEnvelope] = []
        await edge.dispatcher.dispatch_bytes(self.conn, data, json=json, reply=replies.append)
        return replies

    @overload
    async def call(
        self,
        constructor: int,
        message: Message,
        response_class: type[M],
        *,
        header: Mapping[str, str] | None = None,
    ) -> M: ...

    @overload
    async def call(
        self,
        constructor: int,
        message: Message,
        response_class: None = None,
        *,
        header: Mapping[str, str] | None = None,
    ) -> Message: ...

    async def call(
        self,
        constructor: int,
        message: Message,
        response_class: type[Message] | None = None,
        *,
        header: Mapping[str, str] | None = None,
    ) -> Message:
        """Send one request; return its reply, raising the ``RonyError`` of an Error reply."""
        request_id = random.getrandbits(63) | 1
        env = envelope(message, request_id, constructor=constructor, header=header or {})
        replies = [r for r in await self.send(env) if r.RequestID == request_id]
        if not replies:
            raise UnexpectedReply(f"no reply to request {request_id} (constructor {constructor})")
        reply = reply_message(replies[0])  # raises RonyError for an Error reply
        if response_class is not None and not isinstance(reply, response_class):
            raise UnexpectedReply(
                f"expected {response_class.DESCRIPTOR.name}, got {type(reply).DESCRIPTOR.name}"
            )
        return reply

    # --- REST ---------------------------------------------------------------------------------

    async def rest(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        *,
        values: Mapping[str, Any] | None = None,
    ) -> RestResponse:
        """Call a REST route as the gateway would (``path`` may carry a query string)."""
        edge = self._edge()
        parts = urlsplit(path)
        router = RestRouter(edge.app.routes)
        match = router.match(method, split_path(parts.path))
        if match is None:
            return RestResponse(404, {}, b"")
        route, params = match
        if len(body) > edge.settings.max_message_size:  # the gateway's 413 (as _read_body)
            return too_large_response(edge.settings.max_message_size)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        conn = MemoryConn(
            persistent=False,
            client_ip=self.conn.client_ip,
            values={**query, **(values or {}), **params},
            conn_id=next(_conn_ids),
        )
        try:
            env = bind_request(route, params, query, body, edge.settings.limits)
        except RonyError as err:
            return error_response(err)
        replies = await edge.dispatcher.dispatch(conn, env)
        raw = parts.path + (f"?{parts.query}" if parts.query else "")
        return render_response(route, replies, raw)
