"""Gateway connections: a WebSocket conn (persistent) and an HTTP conn (one request).

``WSConn.send`` never blocks (the ``Conn`` contract): it appends the encoded frame to a bounded
queue that one writer task per connection drains in order. A client that does not read its
replies fills the queue; it is then closed with 1008 (policy violation) rather than letting
memory grow (Go Rony wrote synchronously with a 5 s deadline per frame).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import struct
from collections.abc import Coroutine, Generator, Mapping
from typing import Any, Protocol

from aiohttp import WSCloseCode, web

from rony.core import MessageEnvelope, encode_envelope_json, loop_clock
from rony.core.errors import RonyError
from rony.server._dispatch import error_envelope
from rony.server._metrics import GatewayCounters

__all__ = [
    "RECEIVE",
    "HttpConn",
    "Resume",
    "Role",
    "WSConn",
    "Worker",
    "canonical_header",
]

log = logging.getLogger("rony.server")

CLOSE_TIMEOUT = 2.0
"""Seconds a close handshake may take before the socket is dropped."""

# Server WebSocket frames are unmasked: FIN + opcode, then the length (RFC 6455 §5.2).
_BINARY_HEADERS = [bytes((0x82, n)) for n in range(126)]
_LEN16 = struct.Struct("!BBH").pack
_LEN64 = struct.Struct("!BBQ").pack


def _frame_writer(ws: web.WebSocketResponse) -> Any:
    """aiohttp's frame writer of a prepared WebSocket if it has what ``WSConn`` writes
    through directly, else None (then every frame goes through ``send_bytes``).

    These are aiohttp internals (``_writer``, its ``_closing`` flag, ``transport`` and
    ``protocol`` with its ``_paused`` flow-control flag); tests/server/test_ws_direct_write.py
    fails if a release renames them.
    """
    writer = getattr(ws, "_writer", None)
    transport = getattr(writer, "transport", None)
    protocol = getattr(writer, "protocol", None)
    if (
        isinstance(getattr(writer, "_closing", None), bool)
        and isinstance(transport, asyncio.WriteTransport)
        and isinstance(getattr(protocol, "_paused", None), bool)
    ):
        return writer
    return None


class RequestSource(Protocol):
    """Where an HttpConn reads its client IP and values from (the gateway)."""

    def request_ip(self, request: web.BaseRequest) -> str: ...

    def request_values(self, request: web.BaseRequest) -> dict[str, Any]: ...


RECEIVE = "receive"
"""What ``WSConn.feed_wait`` gives the reader to make it call ``receive()`` once."""

Role = tuple["asyncio.Task[None]", contextvars.Context, contextvars.Context]
"""A worker: its task, its context, and that context as the worker started."""

Worker = tuple[
    "asyncio.Future[None]", "asyncio.Task[None]", contextvars.Context, contextvars.Context
]
"""A parked worker: the future it waits on for the reader role, then as ``Role``."""


def canonical_header(name: str) -> str:
    """``x-custom-header`` -> ``X-Custom-Header`` (the key Go Rony put into the conn values)."""
    return "-".join(p[:1].upper() + p[1:].lower() for p in name.split("-"))


class Resume:
    """Awaitable that drives a coroutine which already ran its first step (and yielded
    ``yielded``) to its end in the awaiting task: a task's step loop without the task.

    With ``exc`` (a cancellation that reached the task before it took the coroutine over),
    that is thrown in first, as a task delivers a cancel at the coroutine's next await.
    """

    __slots__ = ("_coro", "_exc", "_yielded")

    def __init__(
        self, coro: Coroutine[Any, Any, Any], yielded: Any, exc: BaseException | None = None
    ) -> None:
        self._coro = coro
        self._yielded = yielded
        self._exc = exc

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, yielded, exc = self._coro, self._yielded, self._exc
        self._yielded = self._exc = None
        if exc is not None:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return stop.value
        while True:
            try:
                sent = yield yielded  # the task sees exactly what the coroutine yielded
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # a cancellation or a failed future: pass it in
                try:
                    yielded = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    yielded = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


class _Values:
    __slots__ = ("_conn_id", "_values")

    def __init__(self, conn_id: int, values: Mapping[str, Any]) -> None:
        self._conn_id = conn_id
        self._values: dict[str, Any] = dict(values)

    @property
    def conn_id(self) -> int:
        return self._conn_id

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._values[key] = value


class HttpConn(_Values):
    """One HTTP request (RPC or REST): not persistent, replies are buffered by the dispatch.

    Its client IP and its values (headers, query args, then ``params``) are read off the
    request on first use: most handlers never look, and the IP alone took aiohttp's peer
    lookup and, behind trusted proxies, a header parse per request.
    """

    __slots__ = ("_ip", "_loaded", "_params", "_request", "_source", "sent")
    persistent = False

    def __init__(
        self,
        conn_id: int,
        source: RequestSource,
        request: web.BaseRequest,
        params: Mapping[str, str] | None = None,
    ) -> None:
        # _Values.__init__'s fields, set here: super().__init__ cost ~3 k instructions a request.
        self._conn_id = conn_id
        self._values = {}
        self._source = source
        self._request = request
        self._params = params
        self._ip: str | None = None
        self._loaded = False
        self.sent: list[MessageEnvelope] = []

    @property
    def client_ip(self) -> str:
        if self._ip is None:
            self._ip = self._source.request_ip(self._request)
        return self._ip

    def _load(self) -> None:
        self._loaded = True
        loaded = self._source.request_values(self._request)
        if self._params:
            loaded.update(self._params)
        self._values = {**loaded, **self._values}

    def get(self, key: str, default: Any = None) -> Any:
        if not self._loaded:
            self._load()
        return self._values.get(key, default)

    def set(self, key: str, value: Any) -> None:
        if not self._loaded:
            self._load()
        self._values[key] = value

    def send(self, env: MessageEnvelope) -> None:
        self.sent.append(env)


class WSConn(_Values):
    """A WebSocket: persistent, pushes go out at once through the bounded write queue."""

    __slots__ = (
        "_blocked",
        "_closing",
        "_direct",
        "_drained",
        "_queue",
        "_queued_bytes",
        "_waiter",
        "_writer",
        "client_ip",
        "clock",
        "close_task",
        "context",
        "counters",
        "ended",
        "feed_blocked",
        "feed_queue",
        "feed_wait",
        "feeding",
        "handoffs",
        "idle_workers",
        "inflight",
        "last_activity",
        "loop",
        "queue_bytes",
        "queue_size",
        "reader_done",
        "request",
        "role",
        "slot_waiter",
        "text_mode",
        "writer_task",
        "ws",
    )
    persistent = True

    def __init__(
        self,
        conn_id: int,
        client_ip: str,
        values: Mapping[str, Any],
        ws: web.WebSocketResponse,
        request: web.BaseRequest,
        queue_size: int,
        *,
        compress: bool = False,
        counters: GatewayCounters | None = None,
        queue_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        super().__init__(conn_id, values)
        # Frames and bytes sent (the gateway's counters, shared by its conns).
        self.counters = counters if counters is not None else GatewayCounters()
        self.client_ip = client_ip
        self.ws = ws
        self.request = request
        self.queue_size = queue_size
        self.queue_bytes = queue_bytes  # write_queue_bytes: the queue's bound in bytes
        self.loop = asyncio.get_running_loop()
        self.clock = loop_clock(self.loop)  # loop.time, cheaper
        self.last_activity = self.clock()
        self.inflight = 0
        self.slot_waiter: asyncio.Future[None] | None = None
        # Parked workers (the future each waits on for the reader role, its task, its context,
        # that context as the worker started: Gateway._park), whether reading has ended, and
        # the future the connection's aiohttp handler waits on until then (Gateway._ws_worker).
        self.idle_workers: list[Worker] = []
        self.reader_done = False
        self.ended: asyncio.Future[None] = self.loop.create_future()
        # The reader, the worker that holds the reader role now: (task, context, that context
        # as it started); None when no worker is left to take the role (reading is over).
        self.role: Role | None = None
        # Inline dispatch (Gateway._feed): aiohttp's message queue of this socket when frames
        # are dispatched from data_received, whether the reader lets them be now, the future
        # the reader waits on meanwhile, chains that suspended there (task -> (coroutine,
        # what it yielded)), and whether a full max_inflight_per_conn stopped the feed.
        self.feed_queue: Any = None
        self.feeding = False
        self.feed_wait: asyncio.Future[Any] | None = None
        self.handoffs: dict[asyncio.Task[None], tuple[Any, Any]] = {}
        self.feed_blocked = False
        self.context = contextvars.copy_context()  # every request starts in a copy of this
        self.text_mode = False  # set once the client sends a text (JSON) frame
        self._queue: collections.deque[bytes | str] = collections.deque()
        self._queued_bytes = 0  # len() of the queued frames (characters for a text frame)
        self._waiter: asyncio.Future[None] | None = None
        self._closing = False
        # Fast path: with compression off, aiohttp writes a frame to the transport at once and
        # only suspends for flow control, so an idle writer lets us write in the caller.
        self._direct = not compress
        # Faster still: a binary frame is written straight to the transport while
        # nothing is queued, the transport is not paused and no close frame went out: the
        # bytes aiohttp would write, without its two coroutines (~0.8 µs of a ~20 µs call).
        self._writer = _frame_writer(ws) if self._direct else None
        self._blocked: asyncio.Task[None] | None = None
        self._drained: list[asyncio.Future[None]] = []
        self.close_task: asyncio.Task[None] | None = None
        self.writer_task: asyncio.Task[None] = self.loop.create_task(self._write_loop())

    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def queued(self) -> int:
        """Frames waiting in the write queue now."""
        return len(self._queue)

    # --- Conn ---------------------------------------------------------------------------------

    def send(self, env: MessageEnvelope) -> None:
        """Queue one binary frame (protobuf)."""
        self.send_encoded(env.SerializeToString())

    def send_encoded(self, frame: bytes) -> None:
        """Queue one binary frame: an encoded envelope."""
        if self._direct and not self._closing and not self._queue and self._blocked is None:
            writer = self._writer
            if (
                writer is not None
                and not writer._closing
                and not writer.protocol._paused
                and not (transport := writer.transport).is_closing()
            ):
                n = len(frame)
                c = self.counters
                c.ws_out += 1
                c.ws_out_bytes += n
                if n < 126:
                    transport.write(_BINARY_HEADERS[n] + frame)
                elif n < 65536:
                    transport.write(_LEN16(0x82, 126, n) + frame)
                else:  # large: written after its header, not copied into it
                    transport.write(_LEN64(0x82, 127, n))
                    transport.write(frame)
                self.last_activity = self.clock()
                return
            c = self.counters
            c.ws_out += 1
            c.ws_out_bytes += len(frame)
            self._write_now(frame)  # _enqueue's fast path, one call fewer per reply
            return
        self._enqueue(frame)

    def send_text(self, env: MessageEnvelope) -> None:
        """Queue one text frame (Go Rony's JSON envelope): the reply to a text frame."""
        try:
            data = encode_envelope_json(env)
        except RonyError as err:
            log.error("conn %s: reply does not encode as JSON: %s", self.conn_id, err)
            data = encode_envelope_json(error_envelope(err, env.RequestID))
        self._enqueue(data.decode())

    def push(self, env: MessageEnvelope) -> None:
        """A push from outside a request: in the conn's own encoding."""
        if self.text_mode:
            self.send_text(env)
        else:
            self.send(env)

    def _enqueue(self, frame: bytes | str) -> None:
        if self._closing:
            return  # the client is gone; a late reply or push is dropped
        c = self.counters
        if self._direct and not self._queue and self._blocked is None:
            c.ws_out += 1
            c.ws_out_bytes += len(frame) if isinstance(frame, bytes) else len(frame.encode())
            self._write_now(frame)
            return
        size = len(frame)
        queued = self._queued_bytes + size
        if len(self._queue) >= self.queue_size or (queued > self.queue_bytes and self._queue):
            # Full by frames (write_queue_size) or by bytes (write_queue_bytes: a frame
            # count alone let a client that does not read hold 1,024 large replies). A
            # single frame over the byte bound is still queued when the queue is empty: it
            # is bounded by max_message_size, and the bound is about a client falling behind.
            if self.close_task is None:  # once per connection, not once per dropped frame
                log.warning(
                    "conn %s: write queue full (%d frames, %d bytes); closing the slow client",
                    self.conn_id,
                    len(self._queue),
                    self._queued_bytes,
                )
            self.close_soon(WSCloseCode.POLICY_VIOLATION, "write queue full")
            return  # (dropped: not counted as sent)
        c.ws_out += 1
        c.ws_out_bytes += size if isinstance(frame, bytes) else len(frame.encode())
        self._queued_bytes = queued
        self._queue.append(frame)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # --- the writer ---------------------------------------------------------------------------

    def _write_now(self, frame: bytes | str) -> None:
        """Write one frame from the caller; if flow control suspends it, finish it in a task.

        Frames sent while it is suspended wait in the queue behind it, so order is kept. (This
        saves a task switch per reply, the largest cost after the handler itself.)
        """
        coro = self.ws.send_bytes(frame) if isinstance(frame, bytes) else self.ws.send_str(frame)
        try:
            yielded = coro.send(None)
        except StopIteration:
            self.last_activity = self.clock()
            return
        except (ConnectionError, RuntimeError) as exc:
            log.debug("conn %s: write failed: %s", self.conn_id, exc)
            self._closing = True
            return
        self._blocked = self.loop.create_task(self._resume(coro, yielded))

    async def _resume(self, coro: Any, yielded: Any) -> None:
        """Drive a suspended send coroutine to its end."""
        try:
            await Resume(coro, yielded)
            self.last_activity = self.clock()
        except (ConnectionError, RuntimeError) as exc:
            log.debug("conn %s: write failed: %s", self.conn_id, exc)
            self._closing = True
        finally:
            coro.close()
            self._blocked = None
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    async def _write_loop(self) -> None:
        ws = self.ws
        queue = self._queue
        try:
            while True:
                while queue and self._blocked is None:
                    frame = queue.popleft()
                    self._queued_bytes -= len(frame)
                    if isinstance(frame, bytes):
                        await ws.send_bytes(frame)
                    else:
                        await ws.send_str(frame)
                    self.last_activity = self.clock()
                if not queue:
                    self._wake_drained()
                if self._closing and not queue:
                    return
                self._waiter = self.loop.create_future()
                await self._waiter
                self._waiter = None
        except (ConnectionError, RuntimeError) as exc:
            # The peer went away mid-write (aiohttp raises ClientConnectionResetError, a
            # ConnectionError, or RuntimeError on a closing socket): drop what is queued.
            log.debug("conn %s: write failed: %s", self.conn_id, exc)
            queue.clear()
            self._queued_bytes = 0
            self._closing = True
        finally:
            self._wake_drained()

    def _wake_drained(self) -> None:
        drained, self._drained = self._drained, []
        for fut in drained:
            if not fut.done():
                fut.set_result(None)

    async def flush(self) -> None:
        """Wait until the queued frames are written (for a graceful close)."""
        if (not self._queue and self._blocked is None) or self.writer_task.done():
            return
        fut = self.loop.create_future()
        self._drained.append(fut)
        await fut

    # --- closing ------------------------------------------------------------------------------

    def close_soon(self, code: int, reason: str) -> None:
        if self.close_task is None:
            self.close_task = self.loop.create_task(self.close(code, reason))

    def want_receive(self) -> None:
        """Stop the inline feed; the reader reads the next message through aiohttp's
        ``receive()`` (a control frame, the end of the stream, or a close under way)."""
        self.feeding = False
        wait = self.feed_wait
        if wait is not None and not wait.done():
            wait.set_result(RECEIVE)

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame with ``code`` and stop; drop the socket if the peer stalls."""
        already = self._closing
        self._closing = True
        self.want_receive()  # aiohttp's receive() sees the close and ends the reading
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if already and self.ws.closed:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self.ws.close(code=code, message=reason.encode())
        except (TimeoutError, ConnectionError, RuntimeError):
            transport = self.request.transport
            if transport is not None:
                transport.abort()

    async def finish(self) -> None:
        """After reading ended: stop the writer, release everything."""
        self._closing = True
        self._queue.clear()
        self._queued_bytes = 0
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        tasks = [t for t in (self.writer_task, self._blocked) if t is not None]
        for t in tasks:
            if not t.done():
                t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.close_task is not None:
            await asyncio.gather(self.close_task, return_exceptions=True)
