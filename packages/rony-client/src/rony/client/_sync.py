"""``Client``: the blocking twin. No event loop; thread-safe.

Concurrency design (why lock-step, "leader/follower"): a WebSocket connection has at most one
reader at a time, and it is *a caller*. A thread that sent a request and finds nobody reading
becomes the reader ("leader"): it reads frames from the socket itself, hands every other
caller's reply to that caller (``threading.Event``) and returns as soon as its own reply is in,
passing the reader role to one waiting thread. So a lone caller pays no thread hop at all: the
reply goes from the socket to the thread that asked (``_sync_ws`` drives websockets' protocol
in the caller; ``websockets.sync`` would add a reader-thread hop to every reply), and N threads
share one connection with N requests in flight. A dedicated reader thread per connection would
put a hop on *every* reply; we start one only when the application consumes server pushes
(``on_push`` / ``pushes()``), because then somebody must read while no call is in flight. That
thread is then the permanent reader and also re-dials the connection (back-off) when it drops.
Without push consumers a dropped connection is re-dialled by the next request, and pushes read
by a caller are counted in ``dropped_pushes``; an idle connection keeps unread frames in the
kernel's socket buffer (TCP flow control), and keep-alive pings run on a small timer thread.

HTTP uses ``http.client`` with a keep-alive pool; every call blocks only its own thread.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, TypeVar, overload

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
    match_http_replies,
    reply_message,
)
from rony.client._settings import ClientSettings
from rony.client._transport import ConnectOptions, SyncConnection, SyncTransport
from rony.client.errors import (
    ClientClosed,
    ClientError,
    ConnectError,
    ConnectionLost,
    RequestTimeout,
)
from rony.core import C_GetNodes, C_Redirect, Edges, GetNodes, MessageEnvelope

__all__ = ["Client", "PushStream"]

log = logging.getLogger("rony.client")
M = TypeVar("M", bound=Message)
PushCallback = Callable[[MessageEnvelope], None]
ConnectCallback = Callable[[str], None]
_monotonic = time.monotonic
_FOREVER = float("inf")


def _renew(err: ClientError, written: bool) -> ClientError:
    try:
        copy = type(err)(str(err))
    except TypeError:
        copy = ConnectionLost(str(err))
    copy.written = written
    return copy


class _Slot:
    """A waiting request (or the push reader's stand-in). Guarded by the client lock."""

    __slots__ = ("done", "error", "event", "reply")

    def __init__(self) -> None:
        # Made only when the caller has to wait for another thread (the lone-caller path never
        # needs one: it reads its own reply). Set and read under the client lock.
        self.event: threading.Event | None = None
        self.done = False
        self.reply: MessageEnvelope | None = None
        self.error: ClientError | None = None


class _Link:
    __slots__ = ("conn", "dial_lock", "push_reader", "reader_active", "slots", "url")

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: SyncConnection | None = None
        self.dial_lock = threading.Lock()
        self.reader_active = False
        self.slots: set[_Slot] = set()  # callers waiting on this link (for the reader hand-over)
        self.push_reader: threading.Thread | None = None


class _Sink:
    __slots__ = ("closed", "cond", "queue")

    def __init__(self, size: int) -> None:
        self.queue: PushQueue[MessageEnvelope] = PushQueue(size)
        self.cond = threading.Condition(threading.Lock())
        self.closed = False

    def put(self, env: MessageEnvelope) -> int:
        with self.cond:
            before = self.queue.dropped
            self.queue.put(env)
            self.cond.notify()
            return self.queue.dropped - before

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def get(self, timeout: float | None) -> MessageEnvelope | None:
        with self.cond:
            if not self.cond.wait_for(lambda: self.queue or self.closed, timeout):
                return None
            return self.queue.get() if self.queue else None


class PushStream:
    """An iterator over server pushes; ``close()`` (or ``with``) unsubscribes."""

    __slots__ = ("_client", "_idle_timeout", "_sink")

    def __init__(self, client: Client, sink: _Sink, idle_timeout: float | None) -> None:
        self._client = client
        self._sink = sink
        self._idle_timeout = idle_timeout

    def __iter__(self) -> PushStream:
        return self

    def __next__(self) -> MessageEnvelope:
        env = self._sink.get(self._idle_timeout)
        if env is None:
            raise StopIteration
        return env

    def close(self) -> None:
        self._sink.close()
        self._client._remove_sink(self._sink)

    def __enter__(self) -> PushStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Client:
    """Talk to a Rony cluster from blocking code, over WebSocket (default) or HTTP.

    Safe to share between threads. ``url`` is one URL or a list of seed URLs (failover in
    order); ``transport`` picks the wire; ``encoding="json"`` speaks Go Rony's JSON envelopes
    instead of protobuf (same API); ``transport_impl`` replaces the network (e.g.
    ``MockTransport(handler)``). Use as ``with Client(...) as c:``.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        *,
        transport: Literal["ws", "http"] = "ws",
        settings: ClientSettings | None = None,
        encoding: Literal["protobuf", "json"] = "protobuf",
        transport_impl: SyncTransport | None = None,
    ) -> None:
        self._core = ClientCore(url, transport=transport, settings=settings, encoding=encoding)
        self.settings = self._core.settings
        self._ws = transport == "ws"
        if transport_impl is None:
            from rony.client._sync_transport import SyncNetTransport

            transport_impl = SyncNetTransport()
            self._owns_transport = True
        else:
            self._owns_transport = False
        self._transport = transport_impl
        self._options = ConnectOptions.from_settings(self.settings, text=self._core.json)
        self._lock = threading.Lock()
        self._pending: Pending[_Slot] = Pending()
        self._links: dict[str, _Link] = {}
        self._sinks: list[_Sink] = []
        self._callbacks: list[PushCallback] = []
        self._dispatcher: threading.Thread | None = None
        self._connect_callbacks: list[ConnectCallback] = []
        self._closed = threading.Event()
        self.dropped_pushes = 0

    # --- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise ClientClosed("the client is closed")

    def connect(self) -> None:
        """Dial the current target now (WebSocket); a no-op over HTTP."""
        self._check_open()
        if self._ws:
            with self._lock:
                url, _ = self._core.routing.pick(None, _monotonic())
            self._open(url, self.settings.dial_timeout)

    def close(self) -> None:
        """Fail pending requests with ``ClientClosed``, end push iterators, close connections."""
        with self._lock:
            if self._closed.is_set():
                return
            self._closed.set()
            for slot in self._pending.lose_all():
                self._finish(slot, error=ClientClosed("the client was closed", written=True))
            sinks, self._sinks = self._sinks, []
            links = list(self._links.values())
            conns = []
            for link in links:
                for s in link.slots:
                    if s.event is not None:
                        s.event.set()  # a push reader waiting for the reader role
                if link.conn is not None:
                    conns.append(link.conn)
                    link.conn = None
        for sink in sinks:
            sink.close()
        for conn in conns:
            try:
                conn.close()
            except Exception:
                log.debug("closing a connection failed", exc_info=True)
        me = threading.current_thread()
        threads = [link.push_reader for link in links] + [self._dispatcher]
        for t in threads:
            if t is not None and t is not me:
                t.join(timeout=5.0)
        if self._owns_transport:
            self._transport.close()

    # --- routing ----------------------------------------------------------------------------------

    @property
    def session_replica_set(self) -> int | None:
        return self._core.routing.session_replica_set

    def discover(self, replica_sets: Sequence[int] = (), *, timeout: float | None = None) -> Edges:
        """``GetNodes`` for ``replica_sets`` (none: the seed's own); remember the edges."""
        reply = self.call(
            C_GetNodes,
            GetNodes(ReplicaSet=list(replica_sets)),
            Edges,
            timeout=timeout,
            idempotent=True,
        )
        with self._lock:
            self._core.routing.learn(reply.Nodes)
        return reply

    # --- requests ---------------------------------------------------------------------------------

    @overload
    def call(
        self,
        constructor: int,
        message: Message,
        response_class: type[M],
        *,
        header: Mapping[str, str] | None = None,
        timeout: float | None = None,
        replica_set: int | None = None,
        idempotent: bool = False,
    ) -> M: ...

    @overload
    def call(
        self,
        constructor: int,
        message: Message,
        response_class: None = None,
        *,
        header: Mapping[str, str] | None = None,
        timeout: float | None = None,
        replica_set: int | None = None,
        idempotent: bool = False,
    ) -> Message: ...

    def call(
        self,
        constructor: int,
        message: Message,
        response_class: type[Message] | None = None,
        *,
        header: Mapping[str, str] | None = None,
        timeout: float | None = None,
        replica_set: int | None = None,
        idempotent: bool = False,
    ) -> Message:
        """As ``AsyncClient.call``, blocking."""
        self._check_open()
        ex = self._core.call_exchange(
            constructor,
            message,
            header,
            _monotonic(),
            timeout=timeout,
            idempotent=idempotent,
            replica_set=replica_set,
        )
        if replica_set is not None:
            self._route_to(replica_set, ex)
        reply = self._drive(ex).reply
        assert reply is not None
        return reply_message(reply, response_class)

    def send(
        self,
        env: MessageEnvelope,
        *,
        timeout: float | None = None,
        replica_set: int | None = None,
        idempotent: bool = False,
    ) -> MessageEnvelope:
        """As ``AsyncClient.send``, blocking."""
        self._check_open()
        return self._run(self._core.prepare(env), timeout, idempotent, replica_set)

    def send_batch(
        self,
        envs: Sequence[MessageEnvelope],
        *,
        sync_run: bool = False,
        timeout: float | None = None,
        replica_set: int | None = None,
    ) -> list[MessageEnvelope]:
        """As ``AsyncClient.send_batch``, blocking."""
        self._check_open()
        prepared = [self._core.prepare(e) for e in envs]
        ex = self._core.batch(
            prepared, _monotonic(), sync_run=sync_run, timeout=timeout, replica_set=replica_set
        )
        self._route_to(replica_set, ex)
        replies = self._drive(ex).replies
        assert replies is not None
        if self.settings.follow_redirects:
            for i, r in enumerate(replies):
                if r.Constructor == C_Redirect:
                    with self._lock:
                        sub = self._core.resume(prepared[i], r, _monotonic(), ex.deadline)
                    reply = self._drive(sub).reply
                    assert reply is not None
                    replies[i] = reply
        return replies

    def _route_to(self, replica_set: int | None, ex: Exchange) -> None:
        if replica_set is not None and not self._core.routing.knows(replica_set):
            # within the call's deadline (it used to get a deadline of its own)
            self.discover([replica_set], timeout=max(ex.deadline - _monotonic(), 0.0))

    def _run(
        self,
        env: MessageEnvelope,
        timeout: float | None,
        idempotent: bool,
        replica_set: int | None,
    ) -> MessageEnvelope:
        ex = self._core.exchange(
            env, _monotonic(), timeout=timeout, idempotent=idempotent, replica_set=replica_set
        )
        if replica_set is not None:
            self._route_to(replica_set, ex)
        reply = self._drive(ex).reply
        assert reply is not None
        return reply

    def _drive(self, ex: Exchange) -> Done:
        lock = self._lock
        batch = ex.batch
        while True:
            # next() and on_reply() read routing and change it only by single dict or
            # attribute stores (atomic under the GIL); on_error's read-modify-write is locked.
            action = ex.next(_monotonic())
            if type(action) is Send:
                try:
                    if not self._ws:
                        replies = self._post(action, ex)
                    elif batch:
                        replies = self._attempt_batch(action, ex)
                    else:
                        reply = self._attempt(action, ex)
                except ClientError as err:
                    if self._closed.is_set() and not isinstance(err, ClientClosed):
                        raise ClientClosed("the client was closed", written=err.written) from err
                    with lock:
                        ex.on_error(err, _monotonic())
                    continue
                if batch:
                    ex.on_replies(replies, _monotonic())
                elif not self._ws:
                    ex.on_reply(replies[0], _monotonic())
                else:
                    ex.on_reply(reply, _monotonic())
            elif type(action) is Wait:
                if self._closed.wait(action.seconds):
                    raise ClientClosed("the client was closed")
            elif type(action) is Done:
                return action
            else:
                assert isinstance(action, Fail)
                raise action.error

    # --- one attempt over WebSocket ---------------------------------------------------------------

    def _register(self, link: _Link, rids: Sequence[int]) -> tuple[SyncConnection, list[_Slot]]:
        slots = [_Slot() for _ in rids]
        with self._lock:
            conn = link.conn
            if conn is None:
                raise ConnectionLost("connection dropped before the write", written=False)
            for rid, slot in zip(rids, slots, strict=True):
                try:
                    self._pending.add(rid, conn, slot)
                except ValueError:
                    for r in rids:
                        if r == rid:
                            break
                        self._pending.discard(r)
                    raise
                link.slots.add(slot)
        return conn, slots

    def _unregister(self, link: _Link, rids: Sequence[int], slots: Sequence[_Slot]) -> None:
        with self._lock:
            for rid, slot in zip(rids, slots, strict=True):
                self._pending.discard(rid)
                link.slots.discard(slot)

    def _attempt(self, act: Send, ex: Exchange) -> MessageEnvelope:
        link = self._links.get(act.url)
        if link is None or link.conn is None:
            link = self._open(act.url, act.dial_timeout)
        rid = ex.request_ids[0]
        slot = _Slot()
        with self._lock:
            conn = link.conn
            if conn is None:
                raise ConnectionLost("connection dropped before the write", written=False)
            self._pending.add(rid, conn, slot)
            link.slots.add(slot)
        try:
            conn.send(ex.frame)
        except BaseException as exc:
            self._unregister(link, (rid,), (slot,))
            if isinstance(exc, ConnectionLost):
                self._lost(link, conn, exc)  # dead: the next attempt re-dials
            raise
        return self._wait(link, conn, slot, rid, _monotonic() + act.timeout)

    def _attempt_batch(self, act: Send, ex: Exchange) -> list[MessageEnvelope]:
        link = self._open(act.url, act.dial_timeout)
        rids = ex.request_ids
        conn, slots = self._register(link, rids)
        try:
            conn.send(ex.frame)
        except BaseException as exc:
            self._unregister(link, rids, slots)
            if isinstance(exc, ConnectionLost):
                self._lost(link, conn, exc)  # dead: the next attempt re-dials
            raise
        deadline = _monotonic() + act.timeout
        replies = []
        try:
            for rid, slot in zip(rids, slots, strict=True):
                replies.append(self._wait(link, conn, slot, rid, deadline))
        except BaseException:
            with self._lock:
                for rid, slot in zip(rids, slots, strict=True):
                    if not slot.done:
                        self._pending.discard(rid, abandoned=True)
                        link.slots.discard(slot)
            raise
        return replies

    def _wait(
        self, link: _Link, conn: SyncConnection, slot: _Slot, rid: int, deadline: float
    ) -> MessageEnvelope:
        lock = self._lock
        while True:
            with lock:
                if slot.done:
                    break
                remaining = deadline - _monotonic()
                lead = remaining > 0 and not link.reader_active and link.conn is conn
                if lead:
                    link.reader_active = True
                elif slot.event is None:
                    slot.event = threading.Event()
                event = slot.event
            if lead:
                try:
                    self._lead(link, conn, slot, deadline)
                finally:
                    with lock:
                        link.reader_active = False
                        self._hand_over(link)
                continue
            if remaining <= 0:
                with lock:
                    if slot.done:
                        break
                    self._pending.discard(rid, abandoned=True)
                    link.slots.discard(slot)
                    if not link.reader_active:
                        self._hand_over(link)
                raise RequestTimeout("no reply before the attempt's timeout", written=True)
            assert event is not None
            event.wait(remaining)
            event.clear()
        if slot.error is not None:
            raise slot.error
        assert slot.reply is not None
        return slot.reply

    def _hand_over(self, link: _Link) -> None:
        """Wake one waiting caller so it becomes the reader. Holds the lock. A caller with no
        event has not waited yet: it will look for the reader role by itself."""
        for s in link.slots:
            if not s.done and s.event is not None:
                s.event.set()
                return

    def _finish(
        self, slot: _Slot, reply: MessageEnvelope | None = None, error: ClientError | None = None
    ) -> None:
        slot.reply = reply
        slot.error = error
        slot.done = True
        if slot.event is not None:
            slot.event.set()

    def _lead(self, link: _Link, conn: SyncConnection, slot: _Slot, deadline: float) -> None:
        """Read frames (as the link's reader) until ``slot`` is done or ``deadline`` passes."""
        decode = self._core.decode_frame
        lock = self._lock
        pending = self._pending
        forever = deadline == _FOREVER
        timeout: float | None = None
        while not slot.done:
            if not forever:
                timeout = deadline - _monotonic()
                if timeout <= 0:
                    return
            try:
                data = conn.recv(timeout)
                envs = decode(data)
            except TimeoutError:
                return
            except ClientError as err:
                self._lost(link, conn, err)
                return
            with lock:
                for env in envs:
                    rid = env.RequestID
                    s = pending.resolve(rid) if rid else None
                    if s is not None:
                        link.slots.discard(s)
                        s.reply = env
                        s.done = True
                        if s.event is not None:
                            s.event.set()
                    elif not (rid and pending.is_late(rid)):
                        self._deliver_push(env)

    def _lost(self, link: _Link, conn: SyncConnection, err: ClientError) -> None:
        with self._lock:
            if link.conn is conn:
                link.conn = None
            for s in self._pending.lose(conn):
                link.slots.discard(s)
                self._finish(s, error=_renew(err, written=True))
        try:
            conn.close()
        except Exception:
            log.debug("closing %s failed", link.url, exc_info=True)

    def _open(self, url: str, dial_timeout: float) -> _Link:
        link = self._links.get(url)
        if link is not None and link.conn is not None:
            return link
        with self._lock:
            link = self._links.get(url)
            if link is None:
                link = self._links[url] = _Link(url)
        if not link.dial_lock.acquire(timeout=dial_timeout):
            raise ConnectError(f"dialling {url} took longer than {dial_timeout:.3g} s")
        try:
            if link.conn is not None:
                return link
            self._check_open()
            options = dataclasses.replace(self._options, dial_timeout=dial_timeout)
            conn = self._transport.connect(url, options)
            with self._lock:
                if self._closed.is_set():
                    conn.close()
                    raise ClientClosed("the client was closed")
                link.conn = conn
                start_reader = bool(self._sinks) and link.push_reader is None
                if start_reader:
                    self._start_push_reader(link)
        finally:
            link.dial_lock.release()
        for cb in self._connect_callbacks:
            try:
                cb(url)
            except Exception:
                log.exception("on_connect callback %r failed", cb)
        return link

    # --- HTTP -------------------------------------------------------------------------------------

    def _post(self, act: Send, ex: Exchange) -> list[MessageEnvelope]:
        body = self._transport.round_trip(
            act.url, ex.frame, timeout=act.timeout, options=self._options
        )
        envs = self._core.decode_frame(body)
        with self._lock:
            return match_http_replies(envs, ex.request_ids, self._deliver_push)

    # --- pushes -----------------------------------------------------------------------------------

    def _deliver_push(self, env: MessageEnvelope) -> None:
        """Holds the lock. Never blocks: each sink drops its oldest push when full."""
        if not self._sinks:
            self.dropped_pushes += 1
            return
        for sink in self._sinks:
            self.dropped_pushes += sink.put(env)

    def _add_sink(self) -> _Sink:
        with self._lock:
            return self._add_sink_locked()

    def _add_sink_locked(self) -> _Sink:
        self._check_open()
        sink = _Sink(self.settings.push_queue_size)
        self._sinks.append(sink)
        for link in self._links.values():
            if link.push_reader is None and link.conn is not None:
                self._start_push_reader(link)
        return sink

    def _remove_sink(self, sink: _Sink) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def _start_push_reader(self, link: _Link) -> None:
        t = threading.Thread(
            target=self._push_reader,
            args=(link,),
            name=f"rony-client-reader {link.url}",
            daemon=True,
        )
        link.push_reader = t
        t.start()

    def _push_reader(self, link: _Link) -> None:
        """The permanent reader of one link while pushes are consumed; re-dials it on loss."""
        me = _Slot()  # never done: waits for the reader role like a caller would
        me.event = threading.Event()
        attempt = 0
        lock = self._lock
        while not self._closed.is_set():
            conn = link.conn
            if conn is None:
                if not self.settings.reconnect:
                    break
                if self._closed.wait(self._core.backoff.delay(attempt)):
                    break
                attempt += 1
                try:
                    self._open(link.url, self.settings.dial_timeout)
                    attempt = 0
                except ClientError as err:
                    log.debug("re-dial of %s failed: %s", link.url, err)
                continue
            with lock:
                lead = not link.reader_active and link.conn is conn
                if lead:
                    link.reader_active = True
                    link.slots.discard(me)
                else:
                    link.slots.add(me)
            if not lead:
                me.event.wait(1.0)  # woken by a hand-over; the timeout is a safety net
                me.event.clear()
                continue
            try:
                self._lead(link, conn, me, _FOREVER)
            finally:
                with lock:
                    link.reader_active = False
                    self._hand_over(link)
        with lock:
            link.slots.discard(me)
            link.push_reader = None

    def on_push(self, callback: PushCallback) -> Callable[[], None]:
        """Call ``callback(env)`` for every server push, in order, from one dispatcher thread
        (never from the reader); returns a function that unregisters it. Errors are logged."""
        with self._lock:
            self._callbacks.append(callback)
            if self._dispatcher is None:  # decided and claimed under one lock: one dispatcher
                sink = self._add_sink_locked()
                self._dispatcher = threading.Thread(
                    target=self._dispatch, args=(sink,), name="rony-client-pushes", daemon=True
                )
                self._dispatcher.start()

        def remove() -> None:
            with self._lock:
                if callback in self._callbacks:
                    self._callbacks.remove(callback)

        return remove

    def _dispatch(self, sink: _Sink) -> None:
        while True:
            env = sink.get(None)
            if env is None:
                return
            with self._lock:
                callbacks = list(self._callbacks)
            for cb in callbacks:
                try:
                    cb(env)
                except Exception:
                    log.exception("push callback %r failed", cb)

    def pushes(self, *, idle_timeout: float | None = None) -> PushStream:
        """Iterate over server pushes from the moment of this call; ends when the client closes,
        on ``close()``, or after ``idle_timeout`` s without one. Buffers ``push_queue_size``,
        dropping the oldest. Call ``connect()`` first to receive without making a call::

            with client.pushes() as stream:
                for env in stream: ...
        """
        return PushStream(self, self._add_sink(), idle_timeout)

    def on_connect(self, callback: ConnectCallback) -> None:
        """Run ``callback(url)`` after every successful dial (re-dials included), in the thread
        that dialled."""
        self._connect_callbacks.append(callback)
