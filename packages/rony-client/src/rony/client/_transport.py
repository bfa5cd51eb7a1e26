"""Transport interfaces (sync and async twins) and ``MockTransport``.

A transport moves bytes; it knows nothing of request ids, retries or redirects (``_protocol``
does). It offers two shapes, chosen by the URL scheme:

* ``ws``/``wss``: ``connect`` returns a persistent connection: ``send(frame)`` and ``recv()``
  whole frames, many requests in flight, server pushes in between;
* ``http``/``https``: ``round_trip(url, frame)`` POSTs one envelope and returns the body.

Failures are reported as ``rony.client.errors`` classes: ``ConnectError`` (dial failed, nothing
written), ``ConnectionLost`` (with ``written``), ``FrameTooLarge``, ``RequestTimeout``.

``MockTransport(handler)`` implements both twins in memory, like httpx's: the handler gets one
``MockRequest`` per envelope (a container is unpacked, as the server does) and returns the reply.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias, TypeVar

from google.protobuf.message import Message

from rony.client._settings import ClientSettings
from rony.client.errors import ClientError, ConnectError, ConnectionLost, FrameTooLarge
from rony.core import (
    C_MessageContainer,
    MessageContainer,
    MessageEnvelope,
    RonyError,
    container_envelope,
    decode_envelope,
    decode_envelope_json,
    encode_envelope_json,
    envelope,
    header_dict,
    unwrap,
)

__all__ = [
    "AsyncConnection",
    "AsyncTransport",
    "ConnectOptions",
    "MockReply",
    "MockRequest",
    "MockTransport",
    "SyncConnection",
    "SyncTransport",
]

M = TypeVar("M", bound=Message)
Frame: TypeAlias = bytes | str


def server_limit(value: str | None) -> int | None:
    """The header's value as a positive int; None when absent or not a number (no limit)."""
    if value is None or not value.strip().isdigit():
        return None
    limit = int(value)
    return limit if limit > 0 else None


def server_too_large(size: int, limit: int) -> FrameTooLarge:
    return FrameTooLarge(
        f"request is {size} bytes; the server's max_message_size is {limit} "
        "(it would close the connection with 1009)",
        written=False,
    )


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """What a transport needs from ``ClientSettings`` (one attempt's dial timeout may be lower)."""

    dial_timeout: float = 3.0
    max_message_size: int = 4 * 1024 * 1024
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 20.0
    headers: Mapping[str, str] = field(default_factory=dict)
    pool_size: int = 16
    keepalive_expiry: float = 15.0
    text: bool = False
    """JSON mode: frames are Go Rony's JSON envelopes (WS text frames, HTTP application/json)."""

    @classmethod
    def from_settings(cls, s: ClientSettings, *, text: bool = False) -> ConnectOptions:
        return cls(
            text=text,
            dial_timeout=s.dial_timeout,
            max_message_size=s.max_message_size,
            ping_interval=s.ping_interval,
            ping_timeout=s.ping_interval,
            headers=dict(s.http_headers),
            pool_size=s.http_pool_size,
            keepalive_expiry=s.http_keepalive_expiry,
        )


# --- the interfaces -------------------------------------------------------------------------------


class SyncConnection(Protocol):
    """A persistent (WebSocket) connection used by the blocking ``Client``.

    ``send`` may be called from several threads at once; ``recv`` from one thread at a time.
    """

    def send(self, frame: bytes) -> None:
        """Write one frame; ``ConnectionLost(written=False)`` if the connection is gone."""
        ...

    def recv(self, timeout: float | None) -> Frame:
        """The next frame; builtin ``TimeoutError`` after ``timeout``; ``ConnectionLost`` or
        ``FrameTooLarge`` when the connection ends."""
        ...

    def close(self) -> None: ...


class AsyncConnection(Protocol):
    """A persistent (WebSocket) connection used by ``AsyncClient``."""

    async def send(self, frame: bytes) -> None: ...

    async def recv(self) -> Frame:
        """The next frame; ``ConnectionLost`` or ``FrameTooLarge`` when the connection ends."""
        ...

    async def close(self) -> None: ...


class SyncTransport:
    """The blocking transport interface (``Client(transport_impl=...)``)."""

    def connect(self, url: str, options: ConnectOptions) -> SyncConnection:
        raise ConnectError(f"{type(self).__name__} does not speak WebSocket ({url})")

    def round_trip(
        self, url: str, frame: bytes, *, timeout: float, options: ConnectOptions
    ) -> bytes:
        raise ConnectError(f"{type(self).__name__} does not speak HTTP ({url})")

    def close(self) -> None:
        """Release pooled connections."""


class AsyncTransport:
    """The asyncio transport interface (``AsyncClient(transport_impl=...)``)."""

    async def connect_async(self, url: str, options: ConnectOptions) -> AsyncConnection:
        raise ConnectError(f"{type(self).__name__} does not speak WebSocket ({url})")

    async def round_trip_async(
        self,
        url: str,
        frame: bytes,
        *,
        timeout: float,  # noqa: ASYNC109
        options: ConnectOptions,
    ) -> bytes:
        raise ConnectError(f"{type(self).__name__} does not speak HTTP ({url})")

    async def aclose(self) -> None:
        """Release pooled connections."""


# --- the mock -------------------------------------------------------------------------------------


@dataclass(slots=True)
class MockRequest:
    """One request envelope as the mock's handler sees it."""

    url: str
    envelope: MessageEnvelope

    @property
    def constructor(self) -> int:
        return self.envelope.Constructor

    @property
    def request_id(self) -> int:
        return self.envelope.RequestID

    @property
    def header(self) -> dict[str, str]:
        return header_dict(self.envelope)

    @property
    def auth(self) -> bytes:
        return self.envelope.Auth

    def message(self, message_class: type[M]) -> M:
        msg = unwrap(self.envelope, message_class)
        assert isinstance(msg, message_class)
        return msg


MockReply: TypeAlias = Message | MessageEnvelope | Sequence[Message | MessageEnvelope] | None
"""What a handler returns: a message (wrapped with the request's id and the message's own
constructor), a ready envelope (sent as is, e.g. a push with RequestID 0), several, or None."""

Handler: TypeAlias = Callable[[MockRequest], MockReply | Awaitable[MockReply]]


def _replies(req: MockRequest, result: MockReply) -> list[MessageEnvelope]:
    if result is None:
        return []
    items: Sequence[Message | MessageEnvelope]
    items = result if isinstance(result, Sequence) else [result]
    out = []
    for item in items:
        if isinstance(item, MessageEnvelope):
            out.append(item)
        else:
            out.append(envelope(item, req.request_id))
    return out


def _requests(url: str, frame: bytes, text: bool = False) -> list[MockRequest]:
    # ``text``: a client in JSON mode (one JSON envelope: there are no JSON batches)
    env = decode_envelope_json(frame) if text else decode_envelope(frame)
    if env.Constructor == C_MessageContainer:
        container = MessageContainer.FromString(env.Message)
        return [MockRequest(url, e) for e in container.Envelopes]
    return [MockRequest(url, env)]


def _wire(env: MessageEnvelope, text: bool) -> bytes:
    """One reply as the gateway writes it to a client in ``text`` (JSON) mode or not."""
    return encode_envelope_json(env) if text else env.SerializeToString()


def _ws_frame(env: MessageEnvelope, text: bool) -> Frame:
    """One WebSocket frame: a text frame (str) in JSON mode, as a real socket delivers it."""
    return _wire(env, True).decode() if text else env.SerializeToString()


def _body(replies: list[MessageEnvelope], text: bool = False) -> bytes:
    if text and replies:
        return _wire(replies[0] if len(replies) == 1 else container_envelope(replies), True)
    if len(replies) == 1:
        return replies[0].SerializeToString()
    container = MessageContainer(Length=len(replies), Envelopes=replies)
    return envelope(container, 0).SerializeToString()


class MockTransport(SyncTransport, AsyncTransport):
    """An in-memory server for both twins: ``Client(url, transport_impl=MockTransport(handler))``.

    The handler may be sync or (for ``AsyncClient``) ``async``. It may raise a ``RonyError``
    (the client gets an ``Error`` reply) or a ``rony.client.errors`` error (``ConnectionLost``
    drops the WebSocket / fails the POST). ``requests`` records every request seen; ``push``
    sends an envelope to every open WebSocket; ``drop`` closes them all (as a server restart);
    ``refuse = True`` makes every dial fail with ``ConnectError``.
    """

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[MockRequest] = []
        self.refuse = False
        self._lock = threading.Lock()
        self._sync_conns: list[_MockSyncConn] = []
        self._async_conns: list[_MockAsyncConn] = []

    # handler plumbing

    def _handle_sync(self, req: MockRequest) -> list[MessageEnvelope]:
        self.requests.append(req)
        try:
            result = self.handler(req)
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                raise TypeError("an async MockTransport handler needs AsyncClient")
            return _replies(req, result)
        except RonyError as err:
            return [envelope(err.to_message(), req.request_id)]

    async def _handle_async(self, req: MockRequest) -> list[MessageEnvelope]:
        self.requests.append(req)
        try:
            result = self.handler(req)
            if inspect.isawaitable(result):
                result = await result
            return _replies(req, result)
        except RonyError as err:
            return [envelope(err.to_message(), req.request_id)]

    def _check_dial(self, url: str) -> None:
        if self.refuse:
            raise ConnectError(f"mock: connection to {url} refused")

    # sync twin

    def connect(self, url: str, options: ConnectOptions) -> SyncConnection:
        self._check_dial(url)
        conn = _MockSyncConn(self, url, options.text)
        with self._lock:
            self._sync_conns.append(conn)
        return conn

    def round_trip(
        self, url: str, frame: bytes, *, timeout: float, options: ConnectOptions
    ) -> bytes:
        self._check_dial(url)
        replies: list[MessageEnvelope] = []
        for req in _requests(url, frame, options.text):
            replies.extend(self._handle_sync(req))
        return _body(replies, options.text)

    # async twin

    async def connect_async(self, url: str, options: ConnectOptions) -> AsyncConnection:
        self._check_dial(url)
        conn = _MockAsyncConn(self, url, options.text)
        with self._lock:
            self._async_conns.append(conn)
        return conn

    async def round_trip_async(
        self,
        url: str,
        frame: bytes,
        *,
        timeout: float,  # noqa: ASYNC109
        options: ConnectOptions,
    ) -> bytes:
        self._check_dial(url)
        replies: list[MessageEnvelope] = []
        for req in _requests(url, frame, options.text):
            replies.extend(await self._handle_async(req))
        return _body(replies, options.text)

    # server-side actions

    def push(self, env: MessageEnvelope) -> int:
        """Send ``env`` to every open WebSocket; return how many got it."""
        with self._lock:
            conns: list[_MockSyncConn | _MockAsyncConn] = [*self._sync_conns, *self._async_conns]
        n = 0
        for c in conns:
            n += c.deliver(_ws_frame(env, c.text))
        return n

    def drop(self) -> int:
        """Close every open WebSocket from the server side; return how many."""
        with self._lock:
            conns: list[_MockSyncConn | _MockAsyncConn] = [*self._sync_conns, *self._async_conns]
            self._sync_conns.clear()
            self._async_conns.clear()
        for c in conns:
            c.lose(ConnectionLost("mock: connection dropped by the server", written=True))
        return len(conns)

    def _forget(self, conn: Any) -> None:
        with self._lock:
            for lst in (self._sync_conns, self._async_conns):
                if conn in lst:
                    lst.remove(conn)


class _MockSyncConn:
    def __init__(self, owner: MockTransport, url: str, text: bool = False) -> None:
        self._owner = owner
        self._url = url
        self.text = text
        self._inbox: queue.SimpleQueue[Frame | ClientError] = queue.SimpleQueue()
        self._closed: ClientError | None = None

    def deliver(self, frame: Frame) -> int:
        if self._closed is not None:
            return 0
        self._inbox.put(frame)
        return 1

    def lose(self, err: ClientError) -> None:
        if self._closed is None:
            self._closed = err
            self._inbox.put(err)

    def send(self, frame: bytes) -> None:
        if self._closed is not None:
            raise ConnectionLost("mock: connection is closed", written=False)
        try:
            for req in _requests(self._url, frame, self.text):
                for reply in self._owner._handle_sync(req):
                    self._inbox.put(_ws_frame(reply, self.text))
        except ConnectionLost as err:
            self._owner._forget(self)
            self.lose(ConnectionLost(str(err), written=True))

    def recv(self, timeout: float | None) -> Frame:
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if isinstance(item, ClientError):
            self._inbox.put(item)  # stays closed for any later reader
            raise item
        return item

    def close(self) -> None:
        self._owner._forget(self)
        self.lose(ConnectionLost("mock: connection closed by the client", written=True))


class _MockAsyncConn:
    def __init__(self, owner: MockTransport, url: str, text: bool = False) -> None:
        self._owner = owner
        self._url = url
        self.text = text
        self._loop = asyncio.get_running_loop()
        self._inbox: asyncio.Queue[Frame | ClientError] = asyncio.Queue()
        self._closed: ClientError | None = None

    def _put(self, item: Frame | ClientError) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._inbox.put_nowait(item)
        else:
            self._loop.call_soon_threadsafe(self._inbox.put_nowait, item)

    def deliver(self, frame: Frame) -> int:
        if self._closed is not None:
            return 0
        self._put(frame)
        return 1

    def lose(self, err: ClientError) -> None:
        if self._closed is None:
            self._closed = err
            self._put(err)

    async def send(self, frame: bytes) -> None:
        if self._closed is not None:
            raise ConnectionLost("mock: connection is closed", written=False)
        try:
            for req in _requests(self._url, frame, self.text):
                for reply in await self._owner._handle_async(req):
                    self._inbox.put_nowait(_ws_frame(reply, self.text))
        except ConnectionLost as err:
            self._owner._forget(self)
            self.lose(ConnectionLost(str(err), written=True))

    async def recv(self) -> Frame:
        item = await self._inbox.get()
        if isinstance(item, ClientError):
            self._inbox.put_nowait(item)
            raise item
        return item

    async def close(self) -> None:
        self._owner._forget(self)
        self.lose(ConnectionLost("mock: connection closed by the client", written=True))
