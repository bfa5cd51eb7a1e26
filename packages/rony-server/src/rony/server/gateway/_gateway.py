"""The gateway: HTTP + WebSocket on one port (aiohttp's low-level server, no router).

Theory of operation
-------------------
Every request goes through ``_handle``:

1. over ``max_connections`` open TCP connections -> 503 with an ``E09 BUSY`` Error envelope;
2. ``OPTIONS`` -> 204 CORS preflight; every other response carries the CORS headers;
3. WebSocket upgrade on *any* path when ``Connection: Upgrade`` or ``X-Rony-Upgrade: Upgrade``
   (for proxies that strip ``Connection``), as Go Rony;
4. ``GET health_path`` -> 200; ``GET status_path`` (and ``.json``) -> the status page;
5. a REST route (method + path) -> the REST flow (``_rest.py``);
6. a POST is RPC over HTTP (on any path): the body is one envelope, the reply one envelope;
7. anything else: a GET/HEAD of an unknown path -> 404, another verb -> 405 (Allow: POST and
   the path's REST verbs), the body an Error as JSON.

WebSocket: binary frames are protobuf envelopes, text frames Go Rony's JSON envelopes (when
``json_enabled``; the reply to a text frame is a text frame). A few worker tasks per
connection take turns as its reader: each frame's dispatch runs at once as the reader's task
(straight from aiohttp's ``data_received``: see ``_feed``), and the reader role passes to another
worker only when a handler chain awaits (see ``_ws_worker``); at most ``max_inflight_per_conn``
chains run at once, and when that many are in flight no frame is taken (aiohttp's queue fills,
then it stops reading the socket: TCP back-pressure) until one finishes. So:

* **ordering guarantee**: the dispatches of one connection *start* in the order their frames
  arrived, and the first ``await``-free part of each handler chain runs in that order; with
  ``max_inflight_per_conn = 1`` requests are handled strictly one after another and replies come
  back in request order. With more, a handler that awaits lets the next frame's handler run, so
  replies may come back out of order (match them by RequestID). Go Rony gave no ordering at all
  (inventory §4.3). Across connections there is no ordering.

Replies and pushes are written at once while the socket keeps up, else through ``WSConn``'s
bounded write queue and writer task. An idle timer per WebSocket closes it after
``idle_timeout`` without a read, a write or a ping (and no request in flight); the reader
answers pings.

HTTP RPC: the status is 200 for a normal reply, the HTTP status of the Error's code when the
(single) reply is an Error, 204 when the handler pushed nothing, 400 + Error for an empty or
undecodable body, 413 + Error for a body over ``max_message_size``. Several replies (a container
request) come back as *one* MessageContainer envelope (Go Rony concatenated the envelopes into
one body, which no client can split: inventory §14 weakness 4). ``Content-Type`` is
``application/x-protobuf``, or ``application/json`` for a JSON request. Keep-alive is on (Go
Rony sent ``Connection: close`` on every reply).

Stop: stop listening, refuse new requests on open connections (``E09 BUSY``), wait for the
in-flight dispatches up to ``grace``, cancel what is left, flush the write queues and close
every WebSocket with 1001 (going away), then close the remaining HTTP connections.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import itertools
import json as _json
import logging
import time
from asyncio.tasks import _enter_task, _leave_task  # (see the workers' comment in Gateway)
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from aiohttp import WSCloseCode, WSMsgType, hdrs, web
from aiohttp.web_protocol import RequestHandler

from rony.core import (
    MAX_MESSAGE_SIZE_HEADER,
    C_Error,
    Error,
    MessageEnvelope,
    container_envelope,
    decode_envelope,
    encode_envelope_json,
    envelope_bytes,
    loop_clock,
    unwrap,
)
from rony.core.errors import (
    BusyError,
    MalformedError,
    RequestTimeoutError,
    RonyError,
    UnavailableError,
    http_status_of,
)
from rony.server._app import RestRoute
from rony.server._dispatch import Dispatcher, error_envelope
from rony.server._metrics import GatewayCounters
from rony.server._settings import EdgeSettings
from rony.server.gateway._conn import (
    CLOSE_TIMEOUT,
    RECEIVE,
    HttpConn,
    Resume,
    WSConn,
    canonical_header,
)
from rony.server.gateway._cors import (
    client_ip,
    cors_headers,
    parse_networks,
    preflight_headers,
)
from rony.server.gateway._http import HeadTimedHandler
from rony.server.gateway._rest import (
    JSON,
    PROTOBUF,
    RestRouter,
    bind_request,
    error_response,
    query_values,
    render_response,
    split_path,
    too_large_response,
)
from rony.server.gateway._status import StatusPage

if TYPE_CHECKING:
    from rony.server._prometheus import MetricsEndpoint

__all__ = ["Gateway"]

log = logging.getLogger("rony.server")

IDLE_WORKERS = 4
"""Idle dispatch workers a WebSocket keeps for its next frames (more are started on demand,
up to max_inflight_per_conn, and end when they find nothing to do)."""

# The current task of a loop, as one C call (asyncio.current_task is a Python frame around it in
# CPython 3.11-3.13); _feed asks once per frame.
_current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]
_current_tasks = getattr(asyncio.tasks, "_current_tasks", None)
_current_task = _current_tasks.get if isinstance(_current_tasks, dict) else asyncio.current_task

_SKIP_HEADERS = frozenset({"host", "upgrade", "connection", "content-length"})


class _BodyTooLarge(Exception):
    pass


class _BodyTimeout(Exception):
    pass


class _Server(web.Server):
    """aiohttp's low-level server, counting open TCP connections for ``max_connections``
    (and those accepted, for metrics); its connections time each request's head
    (``header_timeout``: ``_http.py``)."""

    open_connections = 0
    counters: GatewayCounters | None = None
    header_timeout = 10.0

    def __call__(self) -> RequestHandler:
        return HeadTimedHandler(
            self, loop=self._loop, header_timeout=self.header_timeout, **self._kwargs
        )

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        super().connection_made(handler, transport)
        self.open_connections += 1
        if self.counters is not None:
            self.counters.conns_total += 1

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self.open_connections -= 1


class Gateway:
    """HTTP + WebSocket front of an Edge. ``start()`` binds; ``stop(grace)`` drains."""

    def __init__(self, dispatcher: Dispatcher, settings: EdgeSettings) -> None:
        self.dispatcher = dispatcher
        self.settings = settings
        self.router = RestRouter(dispatcher.app.routes)
        self._rest_methods = frozenset(r.method.upper() for r in dispatcher.app.routes)
        self.ws_conns: dict[int, WSConn] = {}
        # Connections, messages and bytes, as plain ints (read by /metrics and the status page).
        self.counters = GatewayCounters()
        # GET metrics_path (rony.server._prometheus): set by the Edge when it serves metrics here.
        self.metrics: MetricsEndpoint | None = None
        self.address: tuple[str, int] = (settings.gateway_host, settings.gateway_port)
        self._trusted = parse_networks(settings.trusted_proxies)
        self._cors_plain: Mapping[str, str] = MappingProxyType(
            cors_headers(None, settings.cors_origins)
        )
        # The headers of a protobuf reply to a request without Origin (web.Response copies them).
        self._proto_plain: Mapping[str, str] = MappingProxyType(
            {**self._cors_plain, hdrs.CONTENT_TYPE: PROTOBUF}
        )
        self._conn_ids = itertools.count(1)
        self._runner: web.ServerRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Callable[[], float] = time.monotonic  # the loop's time (set in start)
        self._server: _Server | None = None
        self._site: web.TCPSite | None = None
        self._stopping = False
        self._busy = 0  # dispatches in flight (WS frames and HTTP requests)
        self._idle: asyncio.Future[None] | None = None
        self._ws_tasks: set[asyncio.Task[None]] = set()
        self._ws_handlers: set[asyncio.Task[Any]] = set()
        # GET status_path and its .json twin (_status.py); None when status_path is None.
        self._status = (
            StatusPage(self, settings.status_path) if settings.status_path is not None else None
        )

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        s = self.settings
        self.dispatcher.log_requests = log.isEnabledFor(logging.DEBUG)
        self._loop = asyncio.get_running_loop()
        self._clock = loop_clock(self._loop)
        self._server = _Server(
            self._handle,
            keepalive_timeout=s.idle_timeout,
            access_log=None,
            max_field_size=16 * 1024,
        )
        self._server.counters = self.counters
        self._server.header_timeout = s.header_timeout
        self._runner = web.ServerRunner(self._server, shutdown_timeout=CLOSE_TIMEOUT)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, s.gateway_host, s.gateway_port, backlog=2048)
        await self._site.start()
        server = self._site._server
        assert isinstance(server, asyncio.base_events.Server)
        sockname = server.sockets[0].getsockname()
        self.address = (str(sockname[0]), int(sockname[1]))
        return self.address

    @property
    def stopping(self) -> bool:
        return self._stopping

    @property
    def open_connections(self) -> int:
        """TCP connections open now (WebSocket and HTTP)."""
        return self._server.open_connections if self._server is not None else 0

    async def stop(self, grace: float) -> None:
        if self._runner is None or self._stopping:
            return
        self._stopping = True
        loop = asyncio.get_running_loop()
        if self._site is not None:
            await self._site.stop()  # stop accepting
        if self._busy:
            self._idle = loop.create_future()
            try:
                async with asyncio.timeout(grace):
                    await self._idle
            except TimeoutError:
                log.warning(
                    "stop: %d requests still running after %ss; cancelling", self._busy, grace
                )
        for conn in self.ws_conns.values():
            conn.feeding = False  # the frames left are for aiohttp's close handshake
        for task in list(self._ws_tasks):
            task.cancel()
        if self._ws_tasks:
            await asyncio.gather(*self._ws_tasks, return_exceptions=True)
        conns = list(self.ws_conns.values())

        async def going_away(conn: WSConn) -> None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT):
                    await conn.flush()
            await conn.close(WSCloseCode.GOING_AWAY, "server shutting down")

        await asyncio.gather(*(going_away(c) for c in conns), return_exceptions=True)
        for conn in conns:
            self._reading_over(conn)  # their workers are cancelled: release the handlers
        if self._ws_handlers:
            # Let the reader loops see the close and release their conns.
            await asyncio.wait(self._ws_handlers, timeout=CLOSE_TIMEOUT)
        runner, self._runner = self._runner, None
        await runner.cleanup()

    # --- push ---------------------------------------------------------------------------------

    def push(self, conn_id: int, env: MessageEnvelope) -> bool:
        conn = self.ws_conns.get(conn_id)
        if conn is None or conn.closed:
            return False
        conn.push(env)
        return True

    # --- request entry ------------------------------------------------------------------------

    def _begin(self) -> None:
        self._busy += 1

    def _end(self) -> None:
        self._busy -= 1
        if self._busy == 0 and self._idle is not None:
            self._end_idle()

    def _end_idle(self) -> None:
        """Nothing in flight: wake stop(), which waits for that."""
        if self._idle is not None and not self._idle.done():
            self._idle.set_result(None)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        s = self.settings
        headers = request.headers
        origin = headers.get(hdrs.ORIGIN)
        # (most requests have no Origin: their CORS headers are always the same)
        cors = self._cors_plain if origin is None else cors_headers(origin, s.cors_origins)
        server = self._server
        assert server is not None
        if server.open_connections > s.max_connections:
            self.counters.refuse("max_connections")
            resp = self._envelope_response(
                error_envelope(BusyError("SERVER", "too many connections")), False, cors
            )
            resp.force_close()
            return resp
        method = request.method
        if method == hdrs.METH_OPTIONS:
            return web.Response(status=204, headers=preflight_headers(headers, s.cors_origins))
        if "upgrade" in headers.get(hdrs.CONNECTION, "").lower() or (
            headers.get("X-Rony-Upgrade", "").lower() == "upgrade"
        ):
            return await self._websocket(request, cors)
        if s.health_path is not None and method == "GET" and request.path == s.health_path:
            # While draining, 503: a load balancer polling on a kept-alive connection (the
            # listener is already closed) stops sending work here.
            status = "stopping" if self._stopping else "ok"
            body = _json.dumps({"status": status, "server_id": s.server_id}).encode()
            return web.Response(
                body=body,
                status=503 if self._stopping else 200,
                content_type="application/json",
                headers=cors,
            )
        status_page = self._status
        if status_page is not None and method == "GET" and request.path in status_page.paths:
            return status_page.respond(request)  # (while stopping too: it says so)
        metrics = self.metrics
        if metrics is not None and method == "GET" and request.path == metrics.path:
            return metrics.respond(request)  # (while stopping too)
        if self._stopping:
            self.counters.refuse("stopping")
            resp = self._envelope_response(
                error_envelope(BusyError("SERVER", "the server is shutting down")), False, cors
            )
            resp.force_close()
            return resp
        if method.upper() in self._rest_methods:  # (the router's own first test)
            match = self.router.match(method, split_path(request.rel_url.raw_path))
            if match is not None:
                return await self._rest(request, match[0], match[1], cors)
        if method != hdrs.METH_POST:
            return self._not_rpc(request, cors)
        return await self._rpc(request, cors)

    def _not_rpc(self, request: web.BaseRequest, cors: Mapping[str, str]) -> web.Response:
        """A request that is neither RPC (a POST) nor a REST route: 404 or 405, JSON.

        A GET of an unknown path is a 404; another verb is a 405 whose Allow lists POST (RPC is
        served on every path) and the verbs of the REST routes matching the path. The body is
        an Error as JSON, like a REST error's, so a browser or curl reads why.
        """
        method = request.method.upper()
        segments = split_path(request.rel_url.raw_path)
        allowed = sorted(
            {hdrs.METH_POST}
            | {m for m in self._rest_methods if self.router.match(m, segments) is not None}
        )
        where = f"{method} {request.path}"
        err: RonyError
        if method in (hdrs.METH_GET, hdrs.METH_HEAD) and allowed == [hdrs.METH_POST]:
            status = 404
            err = UnavailableError(
                "ROUTE", f"no route {where}; RPC is a POST of one MessageEnvelope on any path"
            )
        else:
            status = 405
            err = MalformedError("METHOD", f"{where} is not served; allowed: {', '.join(allowed)}")
        out = error_response(err)
        headers = {**cors, **out.headers, hdrs.ALLOW: ", ".join(allowed)}
        return web.Response(body=out.body, status=status, headers=headers)

    def request_values(self, request: web.BaseRequest) -> dict[str, Any]:
        """A conn's values from its request: the headers (canonical names), then the query."""
        values: dict[str, Any] = {}
        for name, value in request.headers.items():
            low = name.lower()
            if low in _SKIP_HEADERS or low.startswith("sec-websocket-"):
                continue
            values[canonical_header(name)] = value
        # Then the query arguments, a header of the same name winning. A repeated argument
        # gives its last value, the one REST binding uses (see query_values).
        query = request.query
        if query:
            for key, value in query_values(query.items()).items():
                values.setdefault(key, value)
        return values

    def request_ip(self, request: web.BaseRequest) -> str:
        """The client's IP: the peer's, or X-Forwarded-For's when the peer is a trusted proxy."""
        peer = request.remote or ""
        if not self._trusted:
            return peer
        return client_ip(peer, request.headers, self._trusted)

    def _body_now(self, request: web.BaseRequest) -> bytes | None:
        """The whole body if it is here already (``_read_body`` without awaiting), else None."""
        length = request.content_length
        if length is None:
            return None
        if length > self.settings.max_message_size:
            raise _BodyTooLarge
        if not length:
            return b""
        content = request.content
        return content.read_nowait(-1) if content.is_eof() else None

    async def _read_body(self, request: web.BaseRequest) -> bytes:
        """The body that ``_body_now`` found not all here yet (it checked Content-Length),
        within ``body_timeout`` (a client sending its body slowly holds a connection)."""
        try:
            async with asyncio.timeout(self.settings.body_timeout):
                if request.content_length is not None:
                    return await request.content.read(-1)
                limit = self.settings.max_message_size
                data = bytearray()
                while True:
                    chunk = await request.content.readany()
                    if not chunk:
                        return bytes(data)
                    data += chunk
                    if len(data) > limit:
                        raise _BodyTooLarge
        except TimeoutError:
            raise _BodyTimeout from None

    def _body_timeout_error(self) -> RequestTimeoutError:
        return RequestTimeoutError(
            "BODY", f"request body not received within {self.settings.body_timeout} s"
        )

    def _envelope_response(
        self, env: MessageEnvelope, json: bool, cors: Mapping[str, str], status: int | None = None
    ) -> web.Response:
        if status is None:
            status = 200 if env.Constructor != C_Error else http_status_of(_error_code(env))
        if json:
            try:
                body = encode_envelope_json(env)
            except RonyError as err:
                body = encode_envelope_json(error_envelope(err, env.RequestID))
                status = err.http_status
            ctype = JSON
        else:
            body = env.SerializeToString()
            ctype = PROTOBUF
        return self._body_response(body, ctype, cors, status)

    def _body_response(
        self, body: bytes, ctype: str, cors: Mapping[str, str], status: int = 200
    ) -> web.Response:
        # Content-Type given as a header: the same header as the content_type setter writes,
        # without its parse-and-rebuild.
        if ctype == PROTOBUF and cors is self._cors_plain:
            headers = self._proto_plain  # (the usual reply's: built once)
        else:
            headers = {**cors, hdrs.CONTENT_TYPE: ctype}
        return web.Response(body=body, status=status, headers=headers)

    # --- RPC over HTTP ------------------------------------------------------------------------

    async def _rpc(self, request: web.BaseRequest, cors: Mapping[str, str]) -> web.StreamResponse:
        # request.content_type parses the header; a header without "json" cannot be JSON.
        raw_type = request.headers.get(hdrs.CONTENT_TYPE)
        json = (
            self.settings.json_enabled
            and raw_type is not None
            and "json" in raw_type.lower()
            and request.content_type == JSON
        )
        try:
            # The body, read without a coroutine when it came with the head (a small one).
            body = self._body_now(request)
            if body is None:
                body = await self._read_body(request)
        except _BodyTooLarge:
            err = MalformedError("REQUEST", f"body over {self.settings.max_message_size} bytes")
            resp = self._envelope_response(error_envelope(err), json, cors, status=413)
            resp.force_close()
            return self._http_out(resp, 0)
        except _BodyTimeout:
            late = self._body_timeout_error()
            resp = self._envelope_response(error_envelope(late), json, cors, status=408)
            resp.force_close()  # (the rest of the body may still come: no next request)
            return self._http_out(resp, 0)
        if not body:
            err = MalformedError("REQUEST", "empty body: POST one MessageEnvelope")
            return self._http_out(self._envelope_response(error_envelope(err), json, cors), 0)
        conn = HttpConn(next(self._conn_ids), self, request)
        self._begin()
        try:
            if json:
                replies: list[Any] = await self.dispatcher.dispatch_bytes(
                    conn, body, json=True, task=request.task, now=self._clock()
                )
            else:
                # As a WebSocket frame is dispatched: the plain replies come as their bytes
                # (envelope_bytes), the others as envelopes, in the order they were sent.
                replies = []
                add = replies.append
                await self.dispatcher.dispatch_frame(
                    conn, body, add, add, request.task, self._clock()
                )
        finally:
            self._end()
        size = len(body)
        if not replies:
            return self._http_out(web.Response(status=204, headers=cors), size)
        if len(replies) == 1:
            only = replies[0]
            if type(only) is bytes and not only.startswith(_ERROR_HEAD):
                return self._http_out(self._body_response(only, PROTOBUF, cors), size)
        envs = [MessageEnvelope.FromString(r) if type(r) is bytes else r for r in replies]
        if len(envs) == 1:
            return self._http_out(self._envelope_response(envs[0], json, cors), size)
        resp = self._envelope_response(container_envelope(envs), json, cors, status=200)
        return self._http_out(resp, size)

    def _http_out(self, resp: web.Response, size: int) -> web.Response:
        """Count an HTTP RPC or REST exchange: a request of ``size`` body bytes, ``resp``."""
        c = self.counters
        c.http_in += 1
        c.http_in_bytes += size
        c.http_out += 1
        body = resp.body
        if type(body) is bytes:
            c.http_out_bytes += len(body)
        return resp

    # --- REST ---------------------------------------------------------------------------------

    async def _rest(
        self,
        request: web.BaseRequest,
        route: RestRoute,
        params: dict[str, str],
        cors: Mapping[str, str],
    ) -> web.StreamResponse:
        try:
            # The body, read without a coroutine when it came with the head (a small one).
            body = self._body_now(request)
            if body is None:
                body = await self._read_body(request)
        except _BodyTooLarge:
            out = too_large_response(self.settings.max_message_size)
            body = b""
            close = True
        except _BodyTimeout:
            out = error_response(self._body_timeout_error())
            body = b""
            close = True
        else:
            close = False
            conn = HttpConn(next(self._conn_ids), self, request, params)
            query = query_values(request.query.items())
            try:
                env = bind_request(route, params, query, body, self.settings.limits)
            except RonyError as err:
                out = error_response(err)
            else:
                self._begin()
                tracing = self.dispatcher.tracing  # a span "<METHOD> <route>" (_tracing)
                traced = None
                if tracing is not None:
                    traced = tracing.rest_begin(
                        request.method, route.path, request.path, request.headers
                    )
                status: int | None = None
                try:
                    replies = await self.dispatcher.dispatch(
                        conn, env, task=request.task, now=self._clock()
                    )
                    out = render_response(route, replies, request.raw_path)
                    status = out.status
                finally:
                    self._end()
                    if traced is not None:
                        tracing.rest_end(traced, status)  # type: ignore[union-attr]
        resp = web.Response(body=out.body, status=out.status, headers={**cors, **out.headers})
        if close:
            resp.force_close()
        return self._http_out(resp, len(body))

    # --- WebSocket ----------------------------------------------------------------------------

    async def _websocket(
        self, request: web.BaseRequest, cors: Mapping[str, str]
    ) -> web.StreamResponse:
        s = self.settings
        if self._stopping:
            self.counters.refuse("stopping")
            return web.Response(status=503, text="the server is shutting down", headers=cors)
        if (
            hdrs.UPGRADE not in request.headers
            or "upgrade" not in request.headers.get(hdrs.CONNECTION, "").lower()
        ):
            # X-Rony-Upgrade: a proxy stripped Connection/Upgrade; restore them for aiohttp.
            fixed = request.headers.copy()
            fixed[hdrs.CONNECTION] = "Upgrade"
            fixed.setdefault(hdrs.UPGRADE, "websocket")
            request = request.clone(headers=fixed)
            # aiohttp checks the parser's upgrade flag, which only `Connection: Upgrade` sets.
            # The client sends no frame before our 101, so the parser has nothing to misread.
            # (aiohttp internals; tests/server/test_echo.py guards it.)
            request._message = request._message._replace(upgrade=True)
        ws = web.WebSocketResponse(
            max_msg_size=s.max_message_size,
            compress=s.ws_compress,
            # Pings are answered in _read, so that they count as activity for idle_timeout
            # (with aiohttp's autoping a client that only pings was cut off as idle).
            autoping=False,
            decode_text=False,
            timeout=CLOSE_TIMEOUT,
        )
        # Told to the client in the handshake: a frame over it is refused before it is sent. The
        # close 1009 the server would send is often lost: the client, still writing a large
        # frame, meets a reset (the unread bytes make the server's close a RST) and retries.
        ws.headers[MAX_MESSAGE_SIZE_HEADER] = str(s.max_message_size)
        try:
            await ws.prepare(request)
        except web.HTTPException as exc:
            self.counters.refuse("handshake")
            return web.Response(status=exc.status, text=exc.text or exc.reason, headers=cors)
        task = asyncio.current_task()
        assert task is not None
        self._ws_handlers.add(task)
        conn = WSConn(
            next(self._conn_ids),
            self.request_ip(request),
            self.request_values(request),
            ws,
            request,
            s.write_queue_size,
            compress=s.ws_compress,
            counters=self.counters,
            queue_bytes=s.write_queue_bytes,
        )
        app = self.dispatcher.app
        if app.connect_hooks and not await self._connected(conn, app.connect_hooks):
            self.counters.refuse("connect_hook")
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"connect hook failed")
            return ws
        self.ws_conns[conn.conn_id] = conn
        idle = _IdleTimer(conn, s.idle_timeout)
        feed = _FeedParser.install(request, ws, self, conn) if s.ws_inline_dispatch else None
        try:
            self._spawn_worker(conn)  # the first reader
            await conn.ended  # the workers read and dispatch until the socket ends
        finally:
            if feed is not None:
                feed.detach()
            if not conn.reader_done:
                # This handler was cancelled (the server is going away): stop reading.
                role = conn.role
                self._reading_over(conn)
                if role is not None:
                    role[0].cancel()
            idle.cancel()
            self.ws_conns.pop(conn.conn_id, None)
            self._ws_handlers.discard(task)
            await conn.finish()
            for hook in app.disconnect_hooks:
                try:
                    await hook(conn)
                except Exception:
                    log.exception("conn %s: disconnect hook %r failed", conn.conn_id, hook)
        return ws

    async def _connected(self, conn: WSConn, hooks: list[Any]) -> bool:
        """Run the app's connect hooks; False (logged) when one raised."""
        for hook in hooks:
            try:
                await hook(conn)
            except Exception:
                log.exception("conn %s: connect hook %r failed; closing", conn.conn_id, hook)
                return False
        return True

    # WebSocket workers. Each connection has a few worker tasks; exactly one of them, the
    # reader, holds the reader role (``conn.role``) at a time. Each frame's dispatch runs at
    # once *as the reader's task*: a handler chain that never awaits (most do not) completes
    # right there and its reply is written before the next frame is taken, with no task
    # switch at all. When a chain suspends, the reader hands the reader role to an idle
    # worker (or starts one) and goes on driving that chain to its end, as the chain's own
    # task: so a handler's ``asyncio.current_task()``, ``asyncio.timeout()`` and the
    # handler_timeout cancellation all concern the task that runs exactly that request, as
    # with a task per frame. Once the chain ends, the worker parks until it is handed the
    # reader role again (at most IDLE_WORKERS stay parked; the others end). So:
    #
    # * dispatches *start* in the order their frames arrived (each starts before the next
    #   frame is taken), and with max_inflight_per_conn = 1 they run one after another;
    # * at most max_inflight_per_conn chains run at once: no frame is taken while that many
    #   are in flight (aiohttp's queue fills, then it stops reading the socket: TCP
    #   back-pressure), and there are at most max_inflight_per_conn + 1 workers per conn;
    # * every request starts in the conn's own context (a copy of the handshake's): a worker
    #   whose handler set a contextvar ends after that request instead of serving another.
    #
    # Where a frame is taken. Inline (``_feed``, the default): straight from aiohttp's
    # ``data_received``, right after its parser queued the frame, with the reader's task
    # entered as the current task and its context as the context, as a task's own step
    # does; the reader meanwhile waits on ``conn.feed_wait``. That saves the queue's future,
    # the task wake-up and ``receive()``'s coroutines per frame: ~3 µs of a ~20 µs call
    # (benchmarks/gateway.py). Anything but a data frame (ping, pong, close, the end of the
    # stream, a protocol error) and every frame once a close is under way goes through
    # aiohttp's own ``receive()`` in the reader's task, as before. These are aiohttp
    # internals (the protocol's ``_payload_parser``, the response's ``_reader`` queue and its
    # ``_buffer``), found at the handshake by ``_FeedParser.install``; without them every frame goes
    # through ``receive()``. tests/server/conftest.py runs every server test both ways, and
    # tests/server/test_ws_inline.py fails if an aiohttp release renames those internals.
    #
    # (Before this, the reader awaited ``receive()``; before that, a reader task handed frames
    # to worker tasks. Python 3.12's eager tasks would give the same at the price of a Task
    # per request.)

    def _spawn_worker(self, conn: WSConn) -> None:
        """Start a worker that takes the reader role, in the conn's own context. It takes
        no inline frame before it runs (``_feed_wait`` lets them in)."""
        ctx = conn.context.copy()
        base = ctx.copy()
        task = conn.loop.create_task(self._ws_worker(conn, ctx, base), context=ctx)
        self._ws_tasks.add(task)
        task.add_done_callback(self._ws_tasks.discard)
        conn.role = (task, ctx, base)
        conn.feeding = False

    def _pass_role(self, conn: WSConn) -> None:
        parked = conn.idle_workers
        if parked:
            fut, task, ctx, base = parked.pop()
            conn.role = (task, ctx, base)
            fut.set_result(None)
        elif not conn.reader_done:
            self._spawn_worker(conn)
        else:
            conn.role = None

    def _reading_over(self, conn: WSConn) -> None:
        """The socket is done (or the server stops): wake and end every parked worker."""
        conn.reader_done = True
        conn.want_receive()  # (stops the feed; the reader sees reader_done and ends)
        parked = conn.idle_workers
        while parked:
            fut = parked.pop()[0]
            if not fut.done():
                fut.set_result(None)
        if not conn.ended.done():
            conn.ended.set_result(None)

    def _request_done(self, conn: WSConn) -> None:
        conn.inflight -= 1
        conn.last_activity = conn.loop.time()
        waiter = conn.slot_waiter
        if waiter is not None:
            conn.slot_waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if conn.feed_blocked:  # a slot is free: take the frames that wait (not in this task)
            conn.feed_blocked = False
            conn.loop.call_soon(self._feed, conn)
        self._end()

    async def _ws_worker(
        self, conn: WSConn, ctx: contextvars.Context, base: contextvars.Context
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        while True:
            # The reader role: returns a dispatch whose chain suspended, or None when this
            # worker must end (the socket is done, or its context changed).
            try:
                suspended = await self._read(conn, task, base)
            except Exception as exc:  # the socket failed under us (e.g. answering a ping)
                log.debug("conn %s: read failed: %r", conn.conn_id, exc)
                self._reading_over(conn)
                return
            except BaseException:
                if not self._stopping:  # (stop ends reading itself, after the 1001 close)
                    self._reading_over(conn)
                raise
            if suspended is None:
                return
            coro, yielded, cancel, passed = suspended
            if not passed:
                self._pass_role(conn)
            try:
                await Resume(coro, yielded, cancel)
            except asyncio.CancelledError:
                # Stop cancels the workers after the grace period. Anything else is a handler
                # cancelling its own request (a task per frame ended there): the conn goes on.
                if self._stopping:
                    raise
                _clear_cancel(task)
            except Exception:
                log.exception("conn %s: dispatch failed", conn.conn_id)
            finally:
                self._request_done(conn)
            if contextvars.copy_context() != base:
                return  # the handler set a contextvar: do not let it leak into another request
            if not await self._park(conn, task, ctx, base):
                return

    async def _read(
        self, conn: WSConn, task: asyncio.Task[None], base: contextvars.Context
    ) -> tuple[Any, Any, BaseException | None, bool] | None:
        """Hold the reader role until a dispatch run in this task suspends: returns it (the
        coroutine, what it yielded, a cancellation to throw in first, whether the role was
        passed on already); None when reading is over or this worker must end."""
        ws = conn.ws
        loop = conn.loop
        dispatcher = self.dispatcher
        send, send_text = conn.send, conn.send_text
        max_inflight = self.settings.max_inflight_per_conn
        counters = self.counters
        receive_once = False
        while not conn.reader_done:
            if conn.handoffs:
                handoff = conn.handoffs.pop(task, None)
                if handoff is not None:  # a chain suspended in _feed while this task was entered
                    exc = asyncio.CancelledError() if task.cancelling() else None
                    return handoff[0], handoff[1], exc, True
            role = conn.role
            if role is None or role[0] is not task:
                return None  # the role went to another worker (see _feed)
            if conn.feed_queue is not None and not receive_once and not conn.closed:
                got = await self._feed_wait(conn, task)
                if isinstance(got, tuple):
                    return got
                receive_once = got == RECEIVE
                continue
            receive_once = False
            try:
                if conn.inflight >= max_inflight:
                    # Back-pressure: read nothing more from this socket until a slot frees.
                    waiter = conn.slot_waiter = loop.create_future()
                    await waiter
                msg = await ws.receive()
            except asyncio.CancelledError:
                if self._stopping or conn.reader_done:
                    raise
                # A handler that ran in this task cancelled it (its own request, already over):
                # the cancellation is stale. receive() loses nothing when cancelled.
                _clear_cancel(task)
                continue
            kind = msg.type
            if kind is WSMsgType.BINARY:
                is_json = False
            elif kind is WSMsgType.TEXT:
                is_json = conn.text_mode = True
            elif kind is WSMsgType.PING:
                conn.last_activity = loop.time()
                await ws.pong(msg.data)
                continue
            elif kind is WSMsgType.PONG:
                conn.last_activity = loop.time()
                continue
            else:
                if kind is WSMsgType.ERROR:
                    log.info("conn %s: websocket error: %s", conn.conn_id, msg.data)
                self._reading_over(conn)  # CLOSE, CLOSING, CLOSED, ERROR
                return None
            data: bytes = msg.data
            conn.last_activity = now = loop.time()
            counters.ws_in += 1
            counters.ws_in_bytes += len(data)
            if is_json and not _valid_text(conn, data):
                self._reading_over(conn)
                return None
            if self._stopping:
                self._refuse(conn, data, is_json)
                continue
            conn.inflight += 1
            self._busy += 1
            coro = dispatcher.dispatch_bytes(
                conn, data, json=is_json, reply=send_text if is_json else send, task=task, now=now
            )
            try:
                yielded = coro.send(None)
            except StopIteration:
                # The chain ran to its end in this task (the common case). Only the reader
                # waits for a slot, so there is no slot waiter to wake: _end, not _request_done.
                conn.inflight -= 1
                self._end()
            except asyncio.CancelledError:
                self._request_done(conn)
                if self._stopping:
                    raise
            except Exception:
                self._request_done(conn)
                log.exception("conn %s: dispatch failed", conn.conn_id)
            else:
                return coro, yielded, None, False
            if task.cancelling():
                # The handler cancelled its own request and it is over: the cancel is still
                # pending on this task and would land on the next request's first await (if
                # receive() finds a frame waiting it does not suspend): take it here.
                if self._stopping:
                    raise asyncio.CancelledError
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0)
                _clear_cancel(task)
            if contextvars.copy_context() != base:
                # The handler set a contextvar: a fresh worker reads on; this one ends.
                self._spawn_worker(conn)
                return None
        return None

    async def _feed_wait(self, conn: WSConn, task: asyncio.Task[None]) -> Any:
        """The reader's wait while ``_feed`` takes the frames: gives a suspended chain's
        handoff (a tuple as ``_read`` returns), RECEIVE, or anything else to look again."""
        loop = conn.loop
        fut = conn.feed_wait = loop.create_future()
        conn.feeding = True
        queue = conn.feed_queue
        if queue._buffer or _queue_ended(queue):
            loop.call_soon(self._feed, conn)  # what came while nobody fed
        try:
            return await fut
        except asyncio.CancelledError as exc:
            handoff = conn.handoffs.pop(task, None)
            if self._stopping or conn.reader_done:
                conn.feeding = False
                if handoff is not None:  # the chain gets the cancellation, as in its own task
                    return handoff[0], handoff[1], exc, True
                raise
            if handoff is not None:
                # A cancel that came after the chain suspended (handler_timeout, or the chain's
                # own before it awaited) is the chain's: thrown in. Stale ones were cleared.
                return handoff[0], handoff[1], exc if task.cancelling() else None, True
            _clear_cancel(task)  # a handler that ran in this task cancelled its own request
            return None
        finally:
            if conn.feed_wait is fut:
                conn.feed_wait = None

    def _feed(self, conn: WSConn) -> None:
        """Dispatch the frames aiohttp's parser has queued, at once, each as the reader's
        task (see the workers' comment above). Runs from data_received, or soon after.

        This runs once per frame: it reads aiohttp's queue and the loop's current task
        directly and ends a finished request without _end's call (fewer Python calls per
        frame: callgrind counts them).
        """
        queue = conn.feed_queue
        if queue is None or not conn.feeding or conn.role is None:
            return
        if conn._closing or conn.reader_done:
            conn.want_receive()
            return
        loop = conn.loop
        if _current_task(loop) is not None:  # (fed from inside a task: not here)
            loop.call_soon(self._feed, conn)
            return
        buffer = queue._buffer
        dispatch = self.dispatcher.dispatch_frame
        max_inflight = self.settings.max_inflight_per_conn
        counters = self.counters
        while conn.feeding:
            if not buffer:
                if queue.is_eof() or queue.exception() is not None:  # (_queue_ended, inlined)
                    conn.want_receive()  # the end: receive() reports it as before
                return
            if conn.inflight >= max_inflight:
                conn.feed_blocked = True  # _request_done feeds again
                return
            kind = buffer[0][0].type
            if kind is WSMsgType.BINARY:
                is_json = False
            elif kind is WSMsgType.TEXT:
                is_json = conn.text_mode = True
            else:
                conn.want_receive()  # a control frame: receive() handles it, then we go on
                return
            # The first message, through the queue's own read() (so its size accounting and
            # flow control stay right): the coroutine returns without suspending.
            read = queue.read()
            try:
                read.send(None)
            except StopIteration as done:
                data: bytes = done.value.data
            else:
                read.close()
                raise RuntimeError("aiohttp's WebSocket queue had no message")
            conn.last_activity = now = conn.clock()
            counters.ws_in += 1
            counters.ws_in_bytes += len(data)
            if is_json and not _valid_text(conn, data):
                return  # (close_soon stopped the feed)
            if self._stopping:
                self._refuse(conn, data, is_json)
                continue
            role = conn.role
            assert role is not None
            task, ctx, base = role
            conn.inflight += 1
            self._busy += 1
            if is_json:
                coro = self.dispatcher.dispatch_bytes(
                    conn, data, json=True, reply=conn.send_text, task=task, now=now
                )
            else:
                coro = dispatch(conn, data, conn.send, conn.send_encoded, task, now)
            _enter_task(loop, task)
            try:
                yielded = ctx.run(coro.send, None)
            except StopIteration:  # the chain ran to its end (the common case)
                conn.inflight -= 1
                self._busy -= 1
                if not self._busy and self._idle is not None:
                    self._end_idle()
            except asyncio.CancelledError:  # the handler cancelled its own request
                self._request_done(conn)
            except Exception:
                self._request_done(conn)
                log.exception("conn %s: dispatch failed", conn.conn_id)
            else:
                # The chain awaits: its task drives it on (_read finds the handoff) and the
                # reader role passes to another worker.
                conn.handoffs[task] = (coro, yielded)
                self._pass_role(conn)
                _wake_reader(conn)
                continue
            finally:
                _leave_task(loop, task)
            if task.cancelling() or ctx != base:
                # The handler cancelled its own (finished) request, which must not reach
                # another one, or set a contextvar: a fresh worker takes the role.
                _clear_cancel(task)
                self._spawn_worker(conn)
                _wake_reader(conn)

    async def _park(
        self,
        conn: WSConn,
        task: asyncio.Task[None],
        ctx: contextvars.Context,
        base: contextvars.Context,
    ) -> bool:
        """Wait to be handed the reader role again: True when it was, False to end."""
        parked = conn.idle_workers
        while True:
            if conn.reader_done or len(parked) >= IDLE_WORKERS:
                return False
            fut: asyncio.Future[None] = conn.loop.create_future()
            parked.append((fut, task, ctx, base))
            try:
                await fut
            except asyncio.CancelledError:
                given = fut.done() and not fut.cancelled()
                for i, entry in enumerate(parked):
                    if entry[0] is fut:
                        del parked[i]
                        break
                if self._stopping or conn.reader_done:
                    if given and not self._stopping:
                        self._reading_over(conn)  # nobody else will read
                    raise
                if given and task in conn.handoffs:
                    return True  # the cancel belongs to the chain handed over (see _read)
                _clear_cancel(task)  # a stale self-cancel of the request just ended
                if not given:
                    continue
            return not conn.reader_done

    def _refuse(self, conn: WSConn, data: bytes, is_json: bool) -> None:
        request_id = 0
        if not is_json:
            with contextlib.suppress(MalformedError):
                request_id = decode_envelope(data, self.dispatcher.settings.limits).RequestID
        env = error_envelope(BusyError("SERVER", "the server is shutting down"), request_id)
        (conn.send_text if is_json else conn.send)(env)


class _FeedParser:
    """Stands in for aiohttp's WebSocket parser on the connection's protocol: parses through
    it, then lets the gateway dispatch what it queued at once (``Gateway._feed``)."""

    __slots__ = ("_conn", "_gateway", "_inner")

    def __init__(self, inner: Any, gateway: Gateway, conn: WSConn) -> None:
        self._inner = inner
        self._gateway: Gateway | None = gateway
        self._conn: WSConn | None = conn

    @classmethod
    def install(
        cls, request: web.BaseRequest, ws: web.WebSocketResponse, gateway: Gateway, conn: WSConn
    ) -> _FeedParser | None:
        """Put a feed in front of aiohttp's parser if the installed aiohttp has what it needs
        (internals: see the workers' comment in Gateway), else None: ``receive()`` then."""
        protocol = request.protocol
        inner = getattr(protocol, "_payload_parser", None)
        queue = getattr(ws, "_reader", None)
        buffer = getattr(queue, "_buffer", None)
        if not (
            isinstance(buffer, collections.deque)
            and callable(getattr(inner, "feed_data", None))
            and callable(getattr(inner, "feed_eof", None))
            and all(callable(getattr(queue, m, None)) for m in ("read", "is_eof", "exception"))
        ):
            return None
        feed = cls(inner, gateway, conn)
        protocol._payload_parser = feed
        conn.feed_queue = queue
        return feed

    def feed_data(self, data: bytes) -> Any:
        result = self._inner.feed_data(data)
        gateway = self._gateway
        if gateway is not None:  # (_feed inlined: this runs for every chunk read)
            conn = self._conn
            assert conn is not None
            try:
                gateway._feed(conn)
            except Exception:
                self._failed(conn)
        return result

    def feed_eof(self) -> None:
        self._inner.feed_eof()
        self._feed()

    def _feed(self) -> None:
        gateway, conn = self._gateway, self._conn
        if gateway is None or conn is None:
            return
        try:
            gateway._feed(conn)
        except Exception:
            self._failed(conn)

    def _failed(self, conn: WSConn) -> None:
        """A bug of ours must not kill aiohttp's protocol: fall back to ``receive()``."""
        log.exception("conn %s: inline feed failed; reading through receive()", conn.conn_id)
        self.detach()
        conn.feed_queue = None
        conn.want_receive()

    def detach(self) -> None:
        """Forward only, from now on (and drop the references: protocol -> conn)."""
        self._gateway = self._conn = None


def _valid_text(conn: WSConn, data: bytes) -> bool:
    """RFC 6455 §8.1: a text message that is not UTF-8 fails the connection with 1007. aiohttp
    is asked for raw bytes (``decode_text=False``: the JSON codec reads bytes, and Python's
    ``json.loads`` of bytes lets lone surrogates through), so the check is ours."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        log.info("conn %s: text message is not UTF-8; closing with 1007", conn.conn_id)
        conn.close_soon(WSCloseCode.INVALID_TEXT, "invalid UTF-8 text message")
        return False
    return True


def _wake_reader(conn: WSConn) -> None:
    """The reader role moved on (``_feed``): wake the old reader from its ``feed_wait``, to
    find its handoff or to see that the role is gone."""
    wait, conn.feed_wait = conn.feed_wait, None
    if wait is not None and not wait.done():
        wait.set_result(None)


def _queue_ended(queue: Any) -> bool:
    """aiohttp's queue has seen the end of the stream or a protocol error."""
    return bool(queue.is_eof() or queue.exception() is not None)


class _IdleTimer:
    """Closes a WebSocket after ``timeout`` seconds with no read, no write, nothing in flight.

    Go Rony counted reads only, so a client that only received pushes was cut off.
    """

    __slots__ = ("_conn", "_handle", "_timeout")

    def __init__(self, conn: WSConn, timeout: float) -> None:
        self._conn = conn
        self._timeout = timeout
        self._handle: asyncio.TimerHandle | None = conn.loop.call_at(
            conn.last_activity + timeout, self._check
        )

    def _check(self) -> None:
        conn = self._conn
        now = conn.loop.time()
        if conn.closed:
            self._handle = None
            return
        if conn.inflight == 0 and now - conn.last_activity >= self._timeout:
            log.info("conn %s: idle for %ss; closing", conn.conn_id, self._timeout)
            conn.close_soon(WSCloseCode.OK, "idle timeout")
            self._handle = None
            return
        when = max(conn.last_activity + self._timeout, now + min(1.0, self._timeout))
        self._handle = conn.loop.call_at(when, self._check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None


def _clear_cancel(task: asyncio.Task[Any]) -> None:
    """Forget the cancellation requests of a request that has ended (the worker goes on)."""
    while task.uncancel():
        pass


# An encoded envelope starts with its Constructor (field 1, see envelope_bytes): one that
# starts with these bytes is an Error (a varint is never a prefix of another varint).
_ERROR_HEAD = envelope_bytes(C_Error, 0, b"")


def _error_code(env: MessageEnvelope) -> str:
    try:
        err = unwrap(env, Error)
    except RonyError:
        return "E00"
    assert isinstance(err, Error)
    return err.Code
