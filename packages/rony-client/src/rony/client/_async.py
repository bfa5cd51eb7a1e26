"""``AsyncClient``: the asyncio twin, a thin driver over the protocol core.

WebSocket: one connection per target URL ("link"), dialled on first use, requests multiplexed
by RequestID; one reader task per link matches replies to waiting futures and hands pushes to
the push consumers. When a link drops, every request written on it fails with
``ConnectionLost`` (retried only when the call is idempotent), requests not yet written are
retried by the exchange's policy, and (``settings.reconnect``) a background task re-dials with
jittered exponential back-off so pushes keep flowing. HTTP: one POST per envelope or batch.

Background tasks (readers, re-dialers, the push dispatcher, on_connect hooks) are owned by the
client and cancelled by ``close()``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, Literal, TypeVar, overload

from google.protobuf.message import Message

from rony.client._protocol import (
    ClientCore,
    Done,
    Exchange,
    Fail,
    Pending,
    PushQueue,
    Send,
    Wait,
    decode_frame,
    match_http_replies,
    reply_message,
)
from rony.client._settings import ClientSettings
from rony.client._tracing import trace_header
from rony.client._transport import AsyncConnection, AsyncTransport, ConnectOptions
from rony.client.errors import (
    ClientClosed,
    ClientError,
    ConnectError,
    ConnectionLost,
    RequestTimeout,
)
from rony.core import C_GetNodes, C_Redirect, Edges, GetNodes, MessageEnvelope, loop_clock

__all__ = ["AsyncClient", "AsyncPushStream"]

log = logging.getLogger("rony.client")
M = TypeVar("M", bound=Message)
_TICK = 0.01  # request timeouts fire within 10 ms after their deadline
PushCallback = Callable[[MessageEnvelope], Awaitable[None] | None]
ConnectCallback = Callable[[str], Awaitable[None] | None]


def _renew(err: ClientError, written: bool | None = None) -> ClientError:
    """A fresh copy of a connection-wide error for one waiter (exceptions carry tracebacks)."""
    try:
        copy = type(err)(str(err))
    except TypeError:
        copy = ConnectionLost(str(err))
    copy.written = err.written if written is None else written
    copy.__cause__ = err.__cause__
    return copy


class _Sink:
    """One push consumer: a bounded drop-oldest queue and a wake-up event."""

    __slots__ = ("closed", "event", "queue")

    def __init__(self, size: int) -> None:
        self.queue: PushQueue[MessageEnvelope] = PushQueue(size)
        self.event = asyncio.Event()
        self.closed = False

    def put(self, env: MessageEnvelope) -> None:
        self.queue.put(env)
        self.event.set()

    async def get(self) -> MessageEnvelope | None:
        while not self.queue:
            if self.closed:
                return None
            self.event.clear()
            await self.event.wait()
        return self.queue.get()


class AsyncPushStream:
    """An async iterator over server pushes; ``aclose()`` (or ``async with``) unsubscribes."""

    __slots__ = ("_client", "_sink")

    def __init__(self, client: AsyncClient, sink: _Sink) -> None:
        self._client = client
        self._sink = sink

    def __aiter__(self) -> AsyncPushStream:
        return self

    async def __anext__(self) -> MessageEnvelope:
        env = await self._sink.get()
        if env is None:
            raise StopAsyncIteration
        return env

    async def aclose(self) -> None:
        self._sink.closed = True
        self._sink.event.set()
        if self._sink in self._client._sinks:
            self._client._sinks.remove(self._sink)

    async def __aenter__(self) -> AsyncPushStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Link:
    __slots__ = ("conn", "connecting", "reader", "reconnecting", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: AsyncConnection | None = None
        self.connecting: asyncio.Task[AsyncConnection] | None = None
        self.reader: asyncio.Task[None] | None = None
        self.reconnecting: asyncio.Task[None] | None = None


class AsyncClient:
    """Talk to a Rony cluster from asyncio, over WebSocket (default) or HTTP.

    ``url`` is one URL or a list of seed URLs (failover in order). ``transport`` picks the wire
    (``"ws"`` or ``"http"``; seed URLs are rewritten to it). ``encoding="json"`` sends and
    reads Go Rony's JSON envelopes instead of protobuf (same API). ``transport_impl`` replaces
    the network (e.g. ``MockTransport(handler)``).
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        transport: Literal["ws", "http"] = "ws",
        settings: ClientSettings | None = None,
        encoding: Literal["protobuf", "json"] = "protobuf",
        transport_impl: AsyncTransport | None = None,
    ) -> None:
        self._core = ClientCore(url, transport=transport, settings=settings, encoding=encoding)
        self.settings = self._core.settings
        self._ws = transport == "ws"
        if transport_impl is None:
            from rony.client._aio_transport import AiohttpTransport

            transport_impl = AiohttpTransport()
            self._owns_transport = True
        else:
            self._owns_transport = False
        self._transport = transport_impl
        self._options = ConnectOptions.from_settings(self.settings, text=self._core.json)
        self._pending: Pending[asyncio.Future[MessageEnvelope]] = Pending()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._clock: Callable[[], float] = time.monotonic  # its loop's time (_running_loop)
        self._links: dict[str, _Link] = {}
        self._sinks: list[_Sink] = []
        self._callbacks: list[PushCallback] = []
        self._dispatch_sink: _Sink | None = None
        self._connect_callbacks: list[ConnectCallback] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._buckets: dict[int, tuple[asyncio.TimerHandle, list[int]]] = {}
        self._closed = False
        self.dropped_pushes = 0

    # --- lifecycle --------------------------------------------------------------------------------

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    async def connect(self) -> None:
        """Dial the current target now (WebSocket); a no-op over HTTP."""
        self._check_open()
        if self._ws:
            self._running_loop()
            url, _ = self._core.routing.pick(None, self._clock())
            await self._open(url, self.settings.dial_timeout)

    async def close(self) -> None:
        """Fail pending requests with ``ClientClosed``, stop background tasks, close links."""
        if self._closed:
            return
        self._closed = True
        for fut in self._pending.lose_all():
            if not fut.done():
                fut.set_exception(ClientClosed("the client was closed", written=True))
        for handle, _ in self._buckets.values():
            handle.cancel()
        self._buckets.clear()
        for sink in self._sinks:
            sink.closed = True
            sink.event.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for link in self._links.values():
            for t in (link.connecting, link.reader, link.reconnecting):
                if t is not None and not t.done():
                    t.cancel()
                    tasks.append(t)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for link in self._links.values():
            if link.conn is not None:
                conn, link.conn = link.conn, None
                try:
                    await conn.close()
                except Exception:  # closing a broken link: nothing to report
                    log.debug("closing %s failed", link.url, exc_info=True)
        if self._owns_transport:
            await self._transport.aclose()

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("the client is closed")

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The client's event loop, asked for once: CPython 3.11's ``get_running_loop()``
        makes a ``getpid()`` system call each time, once per call here before. A client
        belongs to the loop it runs in, as its connections do; when that loop is closed (a
        second ``asyncio.run``) it takes the running one."""
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
            self._clock = loop_clock(loop)
        return loop

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- routing ----------------------------------------------------------------------------------

    @property
    def session_replica_set(self) -> int | None:
        """The replica set a session Redirect pinned this client to (None: the seeds)."""
        return self._core.routing.session_replica_set

    async def discover(
        self,
        replica_sets: Sequence[int] = (),
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Edges:
        """Ask the cluster for the edges of ``replica_sets`` (none: the seed's own replica set)
        with ``GetNodes``, and remember them for ``replica_set=`` routing and redirects."""
        reply = await self.call(
            C_GetNodes,
            GetNodes(ReplicaSet=list(replica_sets)),
            Edges,
            timeout=timeout,
            idempotent=True,
        )
        assert isinstance(reply, Edges)
        self._core.routing.learn(reply.Nodes)
        return reply

    # --- requests ---------------------------------------------------------------------------------

    @overload
    async def call(
        self,
        constructor: int,
        message: Message,
        response_class: type[M],
        *,
        header: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        replica_set: int | None = None,
        idempotent: bool = False,
    ) -> M: ...

    @overload
    async def call(
        self,
        constructor: int,
        message: Message,
        response_class: None = None,
        *,
        header: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        replica_set: int | None = None,
        idempotent: bool = False,
    ) -> Message: ...

    async def call(
        self,
        constructor: int,
        message: Message,
        response_class: type[Message] | None = None,
        *,
        header: Mapping[str, str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
        replica_set: int | None = None,
        idempotent: bool = False,
    ) -> Message:
        """Send ``message`` under ``constructor`` (an RPC method id) and return the reply message.

        An ``Error`` reply raises its ``rony.core.errors`` class; a reply of another class than
        ``response_class`` raises ``UnexpectedResponse``. ``timeout`` bounds the whole call
        (retries and redirects included). ``replica_set`` routes it to that replica set's edges
        (learned with ``discover``, asked for automatically when unknown). ``idempotent=True``
        lets the client re-send it after the connection dropped with the request written.
        """
        self._check_open()
        loop = self._running_loop()
        core = self._core
        now = self._clock()
        header = trace_header(header)  # (the caller's span, if any: then not the fast lane)
        if header is None and replica_set is None and constructor and self._ws:
            # The fast lane: the usual call, on a link that is up, to where nothing needs
            # deciding. Its first attempt runs without an Exchange; one is made only if that
            # attempt fails or is redirected, and takes over from there (same retries, same
            # deadline), so the outcome is what the exchange alone would give.
            url = core.routing.direct()
            if (
                url is not None
                and (link := self._links.get(url)) is not None
                and (conn := link.conn) is not None
                and (deadline := core.deadline(now, timeout)) > now
            ):
                wait = deadline - now
                rid, frame = core.call_frame(constructor, message)
                rt = core.request_timeout
                failed: ClientError | None = None
                try:
                    reply = await self._ws_attempt(
                        link, conn, rid, frame, now + (rt if rt < wait else wait), loop
                    )
                except ClientError as err:
                    failed = err
                else:
                    if reply.Constructor != C_Redirect or not core.follow_redirects:
                        return reply_message(reply, response_class)
                # The exchange takes over where the first attempt left it (next() would have
                # picked the same url for it).
                ex = Exchange(core, frame, (rid,), deadline=deadline, idempotent=idempotent)
                ex.url = url
                if failed is not None:
                    self._failed(ex, failed)
                else:
                    ex.on_reply(reply, self._clock())
                return reply_message(await self._drive_one(ex, loop), response_class)
        ex = core.call_exchange(
            constructor,
            message,
            header,
            now,
            timeout=timeout,
            idempotent=idempotent,
            replica_set=replica_set,
        )
        if replica_set is not None:
            await self._route_to(replica_set, ex)
        return reply_message(await self._drive_one(ex, loop), response_class)

    async def send(
        self,
        env: MessageEnvelope,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        replica_set: int | None = None,
        idempotent: bool = False,
    ) -> MessageEnvelope:
        """Send an envelope (RequestID 0 gets a fresh id); return the reply envelope as is
        (an ``Error`` envelope is returned, not raised; redirects are followed)."""
        self._check_open()
        return await self._run(self._core.prepare(env), timeout, idempotent, replica_set)

    async def send_batch(
        self,
        envs: Sequence[MessageEnvelope],
        *,
        sync_run: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109
        replica_set: int | None = None,
    ) -> list[MessageEnvelope]:
        """Send several envelopes in one MessageContainer frame (``sync_run``: the server runs
        them in order); return their replies in the same order. A member answered with a
        ``Redirect`` is re-sent alone to where it points."""
        self._check_open()
        loop = self._running_loop()
        prepared = [self._core.prepare(e) for e in envs]
        ex = self._core.batch(
            prepared, self._clock(), sync_run=sync_run, timeout=timeout, replica_set=replica_set
        )
        await self._route_to(replica_set, ex)
        done = await self._drive(ex, loop)
        replies = done.replies
        assert replies is not None
        redirected = [
            i
            for i, r in enumerate(replies)
            if r.Constructor == C_Redirect and self.settings.follow_redirects
        ]
        if redirected:
            now = self._clock()
            subs = [
                self._core.resume(prepared[i], replies[i], now, ex.deadline) for i in redirected
            ]
            results = await asyncio.gather(*(self._drive(s, loop) for s in subs))
            for i, res in zip(redirected, results, strict=True):
                assert res.reply is not None
                replies[i] = res.reply
        return replies

    async def _route_to(self, replica_set: int | None, ex: Exchange) -> None:
        if replica_set is not None and not self._core.routing.knows(replica_set):
            # within the call's deadline; running out raises RequestTimeout like the call would
            remaining = ex.deadline - self._clock()
            await self.discover([replica_set], timeout=max(remaining, 0.0))

    async def _run(
        self,
        env: MessageEnvelope,
        timeout: float | None,  # noqa: ASYNC109
        idempotent: bool,
        replica_set: int | None,
    ) -> MessageEnvelope:
        loop = self._running_loop()
        ex = self._core.exchange(
            env, self._clock(), timeout=timeout, idempotent=idempotent, replica_set=replica_set
        )
        if replica_set is not None:
            await self._route_to(replica_set, ex)
        return await self._drive_one(ex, loop)

    async def _drive_one(self, ex: Exchange, loop: asyncio.AbstractEventLoop) -> MessageEnvelope:
        reply = (await self._drive(ex, loop)).reply
        assert reply is not None
        return reply

    def _failed(self, ex: Exchange, err: ClientError) -> None:
        """An attempt of ``ex`` failed with ``err``: the exchange decides what comes next."""
        if self._closed and not isinstance(err, ClientClosed):
            raise ClientClosed("the client was closed", written=err.written) from err
        ex.on_error(err, self._clock())

    async def _drive(self, ex: Exchange, loop: asyncio.AbstractEventLoop) -> Done:
        batch = ex.batch
        clock = self._clock
        while True:
            action = ex.next(clock())
            if type(action) is Send:
                try:
                    if batch:
                        replies = await self._attempt_batch(action, ex)
                    elif not self._ws:
                        reply = (await self._post(action, ex))[0]
                    else:
                        link = self._links.get(action.url)
                        if link is None or link.conn is None:
                            link = await self._open(action.url, action.dial_timeout)
                        conn = link.conn
                        if conn is None:
                            raise ConnectionLost(
                                "connection dropped before the write", written=False
                            )
                        reply = await self._ws_attempt(
                            link, conn, ex.request_ids[0], ex.frame, clock() + action.timeout, loop
                        )
                except ClientError as err:
                    self._failed(ex, err)
                    continue
                if batch:
                    ex.on_replies(replies, clock())
                else:
                    done = ex.on_reply(reply, clock())
                    if done is not None:
                        return done  # (the common end, without another turn of next)
            elif type(action) is Wait:
                await asyncio.sleep(action.seconds)
                self._check_open()
            elif type(action) is Done:
                return action
            else:
                assert isinstance(action, Fail)
                raise action.error

    # --- one attempt ------------------------------------------------------------------------------

    async def _ws_attempt(
        self,
        link: _Link,
        conn: AsyncConnection,
        rid: int,
        frame: bytes,
        deadline: float,
        loop: asyncio.AbstractEventLoop,
    ) -> MessageEnvelope:
        """Write ``frame`` on ``conn`` and wait for the reply to ``rid`` until ``deadline`` (the
        loop's time)."""
        fut: asyncio.Future[MessageEnvelope] = loop.create_future()
        self._pending.add(rid, conn, fut, deadline)
        try:
            await conn.send(frame)
        except BaseException as exc:
            self._pending.discard(rid)
            if fut.done() and not fut.cancelled():
                fut.exception()  # the reader failed it too; this error wins
            if isinstance(exc, ConnectionLost):
                await self._drop(link, conn)
            raise
        # Expire rid at its deadline: one timer per _TICK slot, shared by all the requests due
        # in it (a timer per request costs more than the rest of a call).
        slot = int(deadline / _TICK) + 1
        bucket = self._buckets.get(slot)
        if bucket is None:
            bucket = self._buckets[slot] = (loop.call_at(slot * _TICK, self._fire, slot), [])
        bucket[1].append(rid)
        try:
            return await fut
        except BaseException:
            self._pending.discard(rid, abandoned=True)
            raise

    def _fire(self, slot: int) -> None:
        entry = self._buckets.pop(slot, None)
        if entry is None:
            return
        for fut in self._pending.expire(entry[1], slot * _TICK):
            if not fut.done():
                fut.set_exception(
                    RequestTimeout("no reply before the attempt's timeout", written=True)
                )

    async def _attempt_batch(self, act: Send, ex: Exchange) -> list[MessageEnvelope]:
        if not self._ws:
            return await self._post(act, ex)
        link = await self._open(act.url, act.dial_timeout)
        conn = link.conn
        if conn is None:
            raise ConnectionLost("connection dropped before the write", written=False)
        loop = self._running_loop()
        futs = [loop.create_future() for _ in ex.request_ids]
        for rid, fut in zip(ex.request_ids, futs, strict=True):
            self._pending.add(rid, conn, fut)
        try:
            try:
                await conn.send(ex.frame)
            except BaseException as exc:
                for f in futs:
                    if f.done() and not f.cancelled():
                        f.exception()
                if isinstance(exc, ConnectionLost):
                    await self._drop(link, conn)
                raise
            done, _ = await asyncio.wait(futs, timeout=act.timeout)
            if len(done) < len(futs):
                for f in done:
                    f.exception()
                raise RequestTimeout(
                    f"{len(futs) - len(done)} of {len(futs)} batch replies missing after "
                    f"{act.timeout:.3g} s",
                    written=True,
                )
            return [f.result() for f in futs]
        finally:
            for rid, f in zip(ex.request_ids, futs, strict=True):
                if not f.done():
                    self._pending.discard(rid, abandoned=True)
                    f.cancel()
                else:
                    self._pending.discard(rid)

    async def _post(self, act: Send, ex: Exchange) -> list[MessageEnvelope]:
        body = await self._transport.round_trip_async(
            act.url, ex.frame, timeout=act.timeout, options=self._options
        )
        return match_http_replies(self._core.decode_frame(body), ex.request_ids, self._deliver_push)

    # --- links ------------------------------------------------------------------------------------

    async def _open(self, url: str, dial_timeout: float) -> _Link:
        link = self._links.get(url)
        if link is not None and link.conn is not None:
            return link
        if link is None:
            link = self._links[url] = _Link(url)
        task = link.connecting
        if task is None:
            task = link.connecting = asyncio.get_running_loop().create_task(self._dial(link))
            task.add_done_callback(_retrieve)
        done, _ = await asyncio.wait({task}, timeout=dial_timeout)
        if not done:
            raise ConnectError(f"dialling {url} took longer than {dial_timeout:.3g} s")
        if task.cancelled():  # only close() cancels a dial; this caller was not cancelled
            raise ClientClosed("the client was closed", written=False)
        task.result()  # ConnectError
        return link

    async def _dial(self, link: _Link) -> AsyncConnection:
        try:
            conn = await self._transport.connect_async(link.url, self._options)
            if self._closed:
                await conn.close()
                raise ClientClosed("the client was closed")
            link.conn = conn
            link.reader = asyncio.get_running_loop().create_task(self._read(link, conn))
            for cb in self._connect_callbacks:
                self._spawn(_call_hook(cb, link.url))
            return conn
        finally:
            link.connecting = None

    async def _drop(self, link: _Link, conn: AsyncConnection) -> None:
        """A write found the connection dead: detach it so the next attempt re-dials; closing
        it ends its reader, which fails what was written on it."""
        if link.conn is conn:
            link.conn = None
        try:
            await conn.close()
        except Exception:
            log.debug("closing %s failed", link.url, exc_info=True)

    async def _read(self, link: _Link, conn: AsyncConnection) -> None:
        pending = self._pending
        limits = self._core.limits
        reason: ClientError
        try:
            while True:
                data = await conn.recv()
                # (decode_frame itself, not ClientCore's wrapper: one call fewer per reply)
                envs = decode_frame(data, limits)  # DecodeError / FrameTooLarge: link untrusted
                for env in envs:
                    rid = env.RequestID
                    fut = pending.resolve(rid) if rid else None
                    if fut is not None:
                        if not fut.done():
                            fut.set_result(env)
                    elif not (rid and pending.is_late(rid)):
                        self._deliver_push(env)
        except ClientError as err:
            reason = err
        except Exception as err:  # a transport bug must not leave waiters hanging
            reason = ConnectionLost(f"reader failed: {err!r}", written=True)
        # the link is gone: fail what was written on it, then re-dial in the background
        if link.conn is conn:
            link.conn = None
        for fut in pending.lose(conn):
            if not fut.done():
                fut.set_exception(_renew(reason, written=True))
        try:
            await conn.close()
        except Exception:
            log.debug("closing %s failed", link.url, exc_info=True)
        if self.settings.reconnect and not self._closed and link.reconnecting is None:
            link.reconnecting = self._spawn(self._redial(link))

    async def _redial(self, link: _Link) -> None:
        try:
            attempt = 0
            while not self._closed and link.conn is None:
                await asyncio.sleep(self._core.backoff.delay(attempt))
                attempt += 1
                if link.conn is not None or self._closed:
                    return
                try:
                    await self._open(link.url, self.settings.dial_timeout)
                except ClientError as err:
                    log.debug("re-dial of %s failed: %s", link.url, err)
        finally:
            link.reconnecting = None

    # --- pushes -----------------------------------------------------------------------------------

    def _deliver_push(self, env: MessageEnvelope) -> None:
        if not self._sinks:
            self.dropped_pushes += 1
            return
        for sink in self._sinks:
            before = sink.queue.dropped
            sink.put(env)
            self.dropped_pushes += sink.queue.dropped - before

    def on_push(self, callback: PushCallback) -> Callable[[], None]:
        """Call ``callback(env)`` (sync or async) for every server push, in arrival order, from
        one dispatcher task (never from the read loop); returns a function that unregisters it.
        A callback that raises is logged and kept."""
        self._check_open()
        self._callbacks.append(callback)
        if self._dispatch_sink is None:
            sink = self._dispatch_sink = _Sink(self.settings.push_queue_size)
            self._sinks.append(sink)
            self._spawn(self._dispatch(sink))

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    async def _dispatch(self, sink: _Sink) -> None:
        while True:
            env = await sink.get()
            if env is None:
                return
            for cb in list(self._callbacks):
                try:
                    result = cb(env)
                    if result is not None:
                        await result
                except Exception:
                    log.exception("push callback %r failed", cb)

    def pushes(self) -> AsyncPushStream:
        """Iterate over server pushes (RequestID 0, or matching no pending request) from the
        moment of this call until the client closes or ``aclose()``. Each stream buffers
        ``push_queue_size`` pushes, dropping the oldest when its reader falls behind. Call
        ``connect()`` first to receive without making a call::

            async with client.pushes() as stream:
                async for env in stream: ...
        """
        self._check_open()
        sink = _Sink(self.settings.push_queue_size)
        self._sinks.append(sink)
        return AsyncPushStream(self, sink)

    def on_connect(self, callback: ConnectCallback) -> None:
        """Run ``callback(url)`` (sync or async, as a task) after every successful dial,
        re-dials included (e.g. to re-subscribe)."""
        self._connect_callbacks.append(callback)


# --- helpers --------------------------------------------------------------------------------------


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a waiter may have given up; the error is reported to the others


async def _call_hook(cb: ConnectCallback, url: str) -> None:
    try:
        result = cb(url)
        if result is not None:
            await result
    except Exception:
        log.exception("on_connect callback %r failed", cb)
