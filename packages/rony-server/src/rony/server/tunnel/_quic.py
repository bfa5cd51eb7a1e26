"""The tunnel's QUIC links: one verified, multiplexed connection between two nodes.

Theory of operation. A link is an aioquic ``QuicConnectionProtocol``. Both ends present their
node certificate; aioquic checks that each end holds the key of the certificate it sent, but
not that the certificate comes from our cluster CA (it has no client-certificate checks at
all, and a server only asks for one when a private flag is set). So the server link sets that
flag, and on ``HandshakeCompleted`` each end verifies the peer's chain against the cluster CA
itself (``TLSFiles.verify_peer``); a peer that fails is closed with ``CLOSE_REFUSED`` before any
of its frames is read. Until then every stream byte is dropped, so a refused client's request
never reaches a handler. Session tickets are off: aioquic's resumption breaks client
certificates, and a full handshake costs only ~10 ms once per peer.

After verification the client opens one bidirectional stream and every call of the link runs
on it as frames (``_frames``): a REQUEST with a fresh call id, answered by a REPLY or an ERROR
with the same id; a CANCEL withdraws a request whose caller gave up. The server runs the
requests of a loop turn one after the other in one task, each in a task of its own only once
it suspends, at most ``max_inflight_per_peer`` at a time per link. Frames
are queued into aioquic at once and flushed by one ``transmit`` per loop turn, so many calls
share a datagram. A link that closes, or is closed, fails every call still pending on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import ssl
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from heapq import heapify, heappop, heappush
from typing import TYPE_CHECKING, Any, Final

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic import events
from aioquic.quic.configuration import SMALLEST_MAX_DATAGRAM_SIZE, QuicConfiguration
from aioquic.quic.connection import NetworkAddress, QuicConnection
from aioquic.tls import load_pem_private_key, load_pem_x509_certificates
from cryptography import x509
from cryptography.x509.oid import NameOID
from google.protobuf.message import DecodeError

from rony.core.errors import (
    AccessError,
    BusyError,
    InternalError,
    InvalidError,
    MalformedError,
    RequestTimeoutError,
    RonyError,
    UnavailableError,
    from_message,
)
from rony.core.pb.msg_pb2 import Error
from rony.server._addrs import hostport
from rony.server.gateway._conn import Resume
from rony.server.pb.imsg_pb2 import TunnelMessage
from rony.server.tunnel._frames import (
    CANCEL,
    ERROR,
    REPLY,
    REQUEST,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    FrameTooLargeError,
    check_max_frame_size,
    encode_frame,
    pack_header,
)

if TYPE_CHECKING:
    from rony.server.cluster._ca import TLSFiles

__all__ = ["ALPN", "Handler", "Peer", "TunnelSettings"]

log = logging.getLogger("rony.server")

ALPN: Final = "rony-tunnel/1"
# Application close codes (QUIC leaves them to us).
CLOSE_DONE: Final = 0x0
CLOSE_REFUSED: Final = 0x1  # the peer's certificate failed verification
CLOSE_PROTOCOL: Final = 0x2  # the peer sent bytes or frames the tunnel does not allow
_MiB: Final = 1024 * 1024


@dataclass(frozen=True, slots=True)
class TunnelSettings:
    """The tunnel's limits; the same values are meant to be used on every node."""

    max_frame_size: int = 16 * _MiB
    """Largest TunnelMessage carried, encoded, either way. A larger one fails at its sender
    (``FrameTooLargeError``, E01); a receiver checks each frame's length prefix against its own
    limit before keeping any of it."""
    max_datagram_size: int = 1452
    """Largest QUIC packet sent (aioquic's default is 1200, and it does no path MTU discovery):
    1452 fits a 1500-byte Ethernet MTU under IPv6 and UDP headers."""
    max_data: int = 64 * _MiB
    """Connection flow-control window granted to the peer at first (aioquic: 1 MiB). aioquic
    grows windows as they fill; a larger start keeps an 8 MiB reply from waiting on window
    updates."""
    max_stream_data: int = 32 * _MiB
    """Per-stream flow-control window granted at first (aioquic: 1 MiB); every call of a link
    shares its one stream."""
    idle_timeout: float = 60.0
    """A link that hears nothing from its peer for this long closes (QUIC idle timeout)."""
    connect_timeout: float = 5.0
    """Longest a dial (address lookup, handshake, certificate checks) may take."""
    max_inflight_per_peer: int = 512
    """Calls in flight per link. A caller beyond it waits for a slot (within its timeout); a
    server receiving more than this from one peer answers the extra ones ``BusyError`` (E09)."""
    probe_timeout: float = 1.0
    """After a call times out the link is probed (a QUIC PING); a link that hears nothing back
    within this time is taken for dead (a peer gone without closing, e.g. killed) and closed,
    so the next call dials again instead of waiting out ``idle_timeout``."""

    def __post_init__(self) -> None:
        check_max_frame_size(self.max_frame_size)
        if self.max_datagram_size < SMALLEST_MAX_DATAGRAM_SIZE:
            raise ValueError(f"max_datagram_size must be >= {SMALLEST_MAX_DATAGRAM_SIZE}")
        for name in ("max_data", "max_stream_data", "max_inflight_per_peer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        for name in ("idle_timeout", "connect_timeout", "probe_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")


@dataclass(frozen=True, slots=True)
class Peer:
    """The node at the other end of a link, as its verified certificate names it."""

    name: str
    """The subject CN of the peer's certificate (its node name)."""
    address: str
    """Its remote address as "HOST:PORT" ("[::1]:PORT" for IPv6)."""


Handler = Callable[[TunnelMessage, Peer], Awaitable[TunnelMessage | bytes]]
"""Serves a request: returns the reply, or its encoded bytes (a TunnelMessage's)."""


def parse_addr(addr: str) -> tuple[str, int]:
    """("HOST", PORT) of "HOST:PORT" or "[V6]:PORT"; anything else is an ``InvalidError``."""
    host, sep, port = addr.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # a bare IPv6 address: which colon ends it is ambiguous
    if not sep or not host or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise InvalidError("TUNNEL", f"a tunnel address is HOST:PORT or [V6]:PORT, not {addr!r}")
    return host, int(port)


def quic_configuration(tls: TLSFiles, settings: TunnelSettings, *, is_client: bool) -> Any:
    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=[ALPN],
        idle_timeout=settings.idle_timeout,
        max_data=settings.max_data,
        max_datagram_size=settings.max_datagram_size,
        max_stream_data=settings.max_stream_data,
        # The client checks the server's chain itself, against the cluster CA, after the
        # handshake (as the server does); node names are not host names, so no hostname check.
        verify_mode=ssl.CERT_NONE,
    )
    config.certificate = tls.cert
    config.certificate_chain = load_pem_x509_certificates(tls.cert_pem)[1:]
    config.private_key = load_pem_private_key(tls.key_pem)
    return config


class _ClientCertConnection(QuicConnection):
    """A server-side connection that asks its client for a certificate."""

    def _initialize(self, peer_cid: bytes) -> None:
        super()._initialize(peer_cid)
        # aioquic (1.7.2, tls.py) sends a CertificateRequest only when this flag is set; it is
        # private ("for test purposes only") but the only way in. The tunnel tests fail if it
        # ever stops working: a client without a certificate must be refused.
        self.tls._request_client_certificate = True


def _common_name(cert: x509.Certificate) -> str:
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    value = names[0].value if names else ""
    return value if isinstance(value, str) else value.decode(errors="replace")


def _copy(err: RonyError) -> RonyError:
    """A fresh exception like ``err``: one instance raised in many calls would pile up their
    tracebacks."""
    return type(err)(err.items, err.description, code=err.code)


def _error_payload(err: RonyError) -> bytes:
    return err.to_message().SerializeToString()


class _Link(QuicConnectionProtocol):
    """What both ends share: certificate checks, frame decoding, batched sends, closing."""

    def __init__(self, quic: QuicConnection, tls: TLSFiles, settings: TunnelSettings) -> None:
        super().__init__(quic)
        self._tls = tls
        self._settings = settings
        self._max_frame = settings.max_frame_size
        self._decoders: dict[int, FrameDecoder] = {}
        self.peer: Peer | None = None  # set once the peer's certificate passed
        self.closed: RonyError | None = None  # why the link is closed, once it is
        self.last_rx = self._loop.time()
        self._addr: NetworkAddress | None = None
        self._out: list[bytes] = []  # frames to hand to aioquic at the end of this loop turn
        self._out_stream = -1
        self._flush_handle: asyncio.Handle | None = None

    # -- aioquic hooks

    def datagram_received(self, data: bytes | str, addr: NetworkAddress) -> None:
        self.last_rx = now = self._loop.time()
        self._addr = addr
        if self.peer is None or self.closed is not None:
            super().datagram_received(data, addr)  # handshake, refusal, closing: as aioquic does
            return
        # aioquic transmits after every datagram read. On a verified link that transmit waits
        # for the flush at the end of the loop turn instead, after the calls it wakes (on the
        # client) or the requests it starts (on the server) have queued their frames: the
        # ACKs, the replies and the next calls leave in the same packets, and an empty
        # transmit (~10 us of aioquic's packet building) is saved per datagram.
        self._quic.receive_datagram(data, addr, now=now)  # type: ignore[arg-type]
        self._process_events()
        if self._flush_handle is None and self.closed is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def quic_event_received(self, event: events.QuicEvent) -> None:
        kind = type(event)
        if kind is events.StreamDataReceived:
            assert isinstance(event, events.StreamDataReceived)
            self._on_stream_data(event)
        elif kind is events.HandshakeCompleted:
            assert isinstance(event, events.HandshakeCompleted)
            self._on_handshake(event)
        elif kind is events.ConnectionTerminated:
            assert isinstance(event, events.ConnectionTerminated)
            self._on_terminated(event)

    # -- what the roles fill in

    def _verified(self) -> None:
        raise NotImplementedError

    def _on_frame(self, stream_id: int, frame: Any) -> None:
        raise NotImplementedError

    def _closed_now(self, why: RonyError) -> None:
        """Called once, when the link closes: fail or cancel what is pending."""

    # -- shared

    def clock(self) -> float:
        """The loop's time (read through the link: no running-loop lookup)."""
        return self._loop.time()

    @property
    def remote(self) -> str:
        addr = self._addr
        return hostport(str(addr[0]), int(addr[1])) if addr else "?"

    def _on_handshake(self, event: events.HandshakeCompleted) -> None:
        if self.closed is not None:
            return
        tls = self._quic.tls
        cert = tls._peer_certificate
        try:
            if event.alpn_protocol != ALPN:
                raise ValueError(f"ALPN {event.alpn_protocol!r}, not {ALPN}")
            if cert is None:
                raise ValueError("no certificate")
            self._tls.verify_peer([cert, *tls._peer_certificate_chain])
        except ValueError as err:  # CAError is a ValueError
            reason = f"{self.remote}: certificate refused: {err}"
            log.warning("tunnel: %s", reason)
            self.close_with(CLOSE_REFUSED, AccessError("TUNNEL", reason))
            return
        self.peer = Peer(_common_name(cert), self.remote)
        self._verified()

    def _on_stream_data(self, event: events.StreamDataReceived) -> None:
        if self.peer is None or self.closed is not None:
            return  # never read a byte from a peer that is not verified (or no longer wanted)
        sid = event.stream_id
        decoder = self._decoders.get(sid)
        if decoder is None:
            decoder = self._decoders[sid] = FrameDecoder(self._max_frame)
        try:
            frames = decoder.feed(event.data)
        except FrameError as err:
            self.close_with(CLOSE_PROTOCOL, UnavailableError("TUNNEL", f"{self.remote}: {err}"))
            return
        for frame in frames:
            self._on_frame(sid, frame)
            if self.closed is not None:
                return

    def _on_terminated(self, event: events.ConnectionTerminated) -> None:
        if self.closed is None:
            reason = event.reason_phrase or f"QUIC error {event.error_code:#x}"
            if event.error_code == CLOSE_REFUSED:
                why: RonyError = AccessError(
                    "TUNNEL", f"{self.remote} refused this node's certificate: {reason}"
                )
            else:
                why = UnavailableError("TUNNEL", f"the link to {self.remote} closed: {reason}")
            self.closed = why
            self._closed_now(why)
        self._stop_timers()

    def send_frame(self, stream_id: int, data: bytes) -> None:
        # Frames wait for the end of the loop turn and go to aioquic together: one
        # send_stream_data and one transmit for all of them (each costs ~15 us per call).
        if stream_id != self._out_stream and self._out:
            self._flush()
        self._out_stream = stream_id
        self._out.append(data)
        if self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_handle = None
        if self.closed is None:
            out = self._out
            if out:
                self._out = []
                data = out[0] if len(out) == 1 else b"".join(out)
                self._quic.send_stream_data(self._out_stream, data)
            self.transmit()

    def close_with(self, code: int, why: RonyError) -> None:
        """Close the link now (idempotent): tell the peer, fail what is pending."""
        if self.closed is not None:
            return
        self.closed = why
        reason = why.description[:200]
        transport = self._transport
        if transport is not None and not transport.is_closing():
            if self._out and self.peer is not None:
                self._quic.send_stream_data(self._out_stream, b"".join(self._out))
            self._out = []
            self.close(error_code=code, reason_phrase=reason)
        else:  # its socket is gone already (the tunnel stopped): nothing can be sent
            self._quic.close(error_code=code, reason_phrase=reason)
        self._closed_now(why)

    def _stop_timers(self) -> None:
        # The connection is over: its timer has nothing left to do, and must not fire on a
        # transport that is closed by then.
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._transmit_task is not None:
            self._transmit_task.cancel()
            self._transmit_task = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._out = []

    def shut(self, why: RonyError) -> None:
        """Close the link and its socket's timers; used when the tunnel stops."""
        self.close_with(CLOSE_DONE, why)
        self._stop_timers()


class ServerLink(_Link):
    """The accepting end: runs each verified request through the handler."""

    def __init__(
        self,
        quic: QuicConnection,
        stream_handler: object = None,
        *,
        tls: TLSFiles,
        settings: TunnelSettings,
        handler: Handler,
        links: set[ServerLink],
    ) -> None:
        # QuicServer builds a plain QuicConnection; it has not started its TLS yet, so giving
        # it the subclass that asks for a client certificate is still in time.
        quic.__class__ = _ClientCertConnection
        super().__init__(quic, tls, settings)
        self._handler = handler
        self._links = links
        self._limit = settings.max_inflight_per_peer
        # A request's chain runs inline in a runner task (see _run), and gets a task of its own
        # only when it suspends: ``tasks`` holds those (call id -> the task running it),
        # ``_queued`` the requests not started yet (call id -> its entry in ``_batch``).
        self.tasks: dict[int, asyncio.Task[None]] = {}
        self._queued: dict[int, list[Any]] = {}
        self._batch: list[list[Any]] = []
        self._runners: set[asyncio.Task[None]] = set()
        links.add(self)

    def _verified(self) -> None:
        pass  # the client opens the stream

    def _on_frame(self, stream_id: int, frame: Any) -> None:
        kind, call_id = frame[0], frame[1]
        if kind == REQUEST:
            if type(frame) is FrameTooLarge:
                err: RonyError = FrameTooLargeError(
                    description=f"a request of {frame.size} bytes is over max_frame_size "
                    f"({self._max_frame}) at {self.peer.name if self.peer else '?'}"
                )
            elif len(self.tasks) + len(self._queued) >= self._limit:
                err = BusyError("TUNNEL", f"over max_inflight_per_peer ({self._limit})")
            elif call_id in self.tasks or call_id in self._queued:
                err = InvalidError("TUNNEL", f"call id {call_id} is already in flight")
            else:
                entry = [stream_id, call_id, frame[2]]
                self._queued[call_id] = entry
                if not self._batch:
                    self._start_runner(self._batch)
                self._batch.append(entry)
                return
            error = encode_frame(ERROR, call_id, _error_payload(err), self._max_frame)
            self.send_frame(stream_id, error)
        elif kind == CANCEL:
            task = self.tasks.pop(call_id, None)
            if task is not None:
                task.cancel()
            else:
                self._queued.pop(call_id, None)  # not started: its runner skips it
        else:
            why = UnavailableError("TUNNEL", f"{self.remote} sent a reply to a server")
            self.close_with(CLOSE_PROTOCOL, why)

    def _start_runner(self, batch: list[list[Any]]) -> None:
        runner = self._loop.create_task(self._run(batch))
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)

    async def _run(self, batch: list[list[Any]]) -> None:
        """Serve the requests of ``batch`` one after the other, each chain inline in this task
        (a task per request costs more than a small request's whole dispatch). A chain that
        suspends keeps this task (its handler_timeout and cancels are bound to the task it
        started in); the requests after it go to a new runner. So does the rest of the batch
        when a chain leaves something behind in this task: a cancel request of its own, or a
        contextvar set (the next request must start in a clean context, as in a task)."""
        if batch is self._batch:
            self._batch = []  # frames from now on start a new batch
        task = asyncio.current_task()
        assert task is not None
        base = contextvars.copy_context()
        queued = self._queued
        for i, entry in enumerate(batch):
            stream_id, call_id, payload = entry
            if queued.get(call_id) is not entry:
                continue  # cancelled before it started
            del queued[call_id]
            coro = self._serve(stream_id, call_id, payload)
            try:
                yielded = coro.send(None)
            except (StopIteration, asyncio.CancelledError):  # (the chain raised a cancel)
                if task.cancelling() or contextvars.copy_context() != base:
                    if i + 1 < len(batch):
                        self._start_runner(batch[i + 1 :])
                    return
                continue
            if i + 1 < len(batch):
                self._start_runner(batch[i + 1 :])
            self.tasks[call_id] = task
            await Resume(coro, yielded)
            return

    async def _serve(self, stream_id: int, call_id: int, payload: bytes) -> None:
        try:
            try:
                request = TunnelMessage.FromString(payload)
            except DecodeError:
                raise MalformedError("TUNNEL", "the request is not a TunnelMessage") from None
            assert self.peer is not None
            reply = await self._handler(request, self.peer)
            data = reply if type(reply) is bytes else reply.SerializeToString()  # type: ignore[union-attr]
            if len(data) > self._max_frame:
                encode_frame(REPLY, call_id, data, self._max_frame)  # raises FrameTooLargeError
            frame = pack_header(len(data), REPLY, call_id) + data
        except RonyError as err:
            frame = encode_frame(ERROR, call_id, _error_payload(err), self._max_frame)
        except Exception:
            log.exception("tunnel: the handler failed on a call from %s", self.peer)
            failed = InternalError("TUNNEL", "the handler failed")
            frame = encode_frame(ERROR, call_id, _error_payload(failed), self._max_frame)
        finally:
            self.tasks.pop(call_id, None)
        if self.closed is None:
            self.send_frame(stream_id, frame)

    def _closed_now(self, why: RonyError) -> None:
        self._queued.clear()
        for task in self._runners:
            task.cancel()

    def _on_terminated(self, event: events.ConnectionTerminated) -> None:
        super()._on_terminated(event)
        # Known to the tunnel until here, not just until closed: a link closed by us drains
        # for a while, and its timers must be stopped if the tunnel stops meanwhile.
        self._links.discard(self)


class ClientLink(_Link):
    """The dialling end: sends calls and matches their replies by call id."""

    def __init__(self, quic: QuicConnection, tls: TLSFiles, settings: TunnelSettings) -> None:
        super().__init__(quic, tls, settings)
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self._pending: dict[int, asyncio.Future[TunnelMessage]] = {}
        self._next_id = 1
        self._stream = -1
        # Calls in flight, at most max_inflight_per_peer; callers beyond it wait in line
        # (asyncio.Semaphore costs an acquire coroutine per call even when a slot is free).
        self._inflight = 0
        self._limit = settings.max_inflight_per_peer
        self._slot_waiters: deque[asyncio.Future[None]] = deque()
        self._probe: asyncio.TimerHandle | None = None
        # Deadlines of the calls in flight, (deadline, call id), a heap with one timer armed at
        # the earliest live one: cheaper than a timer per call. Entries of answered calls stay
        # until they reach the top or the heap is compacted.
        self._deadlines: list[tuple[float, int]] = []
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at = 0.0
        self.on_close: Callable[[], None] | None = None  # the pool's: forget this link

    def _verified(self) -> None:
        self._stream = self._quic.get_next_available_stream_id()
        if not self.ready.done():
            self.ready.set_result(None)

    async def call(self, msg: TunnelMessage | bytes, deadline: float) -> TunnelMessage:
        """Send a request (a TunnelMessage, or one already encoded) and wait for its reply."""
        call_id = self._next_id
        self._next_id = call_id + 1
        # Encoded (and its size checked) before a slot is taken or a byte is sent.
        payload = msg if type(msg) is bytes else msg.SerializeToString()  # type: ignore[union-attr]
        size = len(payload)
        if size > self._max_frame:
            encode_frame(REQUEST, call_id, payload, self._max_frame)  # raises FrameTooLargeError
        data = pack_header(size, REQUEST, call_id) + payload  # (encode_frame's, inline)
        if self._inflight >= self._limit:
            await self._wait_slot(deadline)
        self._inflight += 1
        try:
            if self.closed is not None:
                raise _copy(self.closed)
            reply: asyncio.Future[TunnelMessage] = self._loop.create_future()
            self._pending[call_id] = reply
            self.send_frame(self._stream, data)
            heap = self._deadlines
            if len(heap) > 4 * len(self._pending) + 4096:
                self._compact()
            heappush(heap, (deadline, call_id))
            if self._expiry is None or deadline < self._expiry_at:
                self._arm(deadline)
            try:
                return await reply
            except asyncio.CancelledError:
                if self._pending.pop(call_id, None) is not None:
                    self._cancel(call_id)
                raise
        finally:
            self._inflight -= 1
            if self._slot_waiters:
                self._wake_one()

    async def _wait_slot(self, deadline: float) -> None:
        waiters = self._slot_waiters
        try:
            async with asyncio.timeout_at(deadline):
                while self._inflight >= self._limit:
                    waiter = self._loop.create_future()
                    waiters.append(waiter)
                    try:
                        await waiter
                    except BaseException:
                        if waiter.done() and not waiter.cancelled():
                            self._wake_one()  # woken and cancelled at once: pass the slot on
                        else:
                            with contextlib.suppress(ValueError):
                                waiters.remove(waiter)
                        raise
        except TimeoutError:
            raise self._timeout_error() from None

    def _wake_one(self) -> None:
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _arm(self, at: float) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        self._expiry = self._loop.call_at(at, self._expire_due)
        self._expiry_at = at

    def _compact(self) -> None:
        pending = self._pending
        self._deadlines = [entry for entry in self._deadlines if entry[1] in pending]
        heapify(self._deadlines)

    def _expire_due(self) -> None:
        self._expiry = None
        now = self._loop.time()
        heap, pending = self._deadlines, self._pending
        while heap:
            at, call_id = heap[0]
            if call_id in pending and at > now:
                self._arm(at)
                return
            heappop(heap)
            if call_id in pending:
                self._expire(call_id)

    def _timeout_error(self) -> RonyError:
        return RequestTimeoutError("TUNNEL", f"no reply from {self.remote} in time")

    def _cancel(self, call_id: int) -> None:
        if self.closed is None:
            self.send_frame(self._stream, encode_frame(CANCEL, call_id, b"", self._max_frame))

    def _expire(self, call_id: int) -> None:
        reply = self._pending.pop(call_id, None)
        if reply is None or reply.done():
            return
        reply.set_exception(self._timeout_error())
        self._cancel(call_id)
        if self._probe is None and self.closed is None:
            # Is the peer still there? Any packet back (the PING's ACK at least) says yes.
            self._quic.send_ping(0)
            self._transmit_soon()
            sent = self._loop.time()
            self._probe = self._loop.call_later(
                self._settings.probe_timeout, self._probe_done, sent
            )

    def _probe_done(self, sent: float) -> None:
        self._probe = None
        if self.last_rx < sent:
            why = UnavailableError(
                "TUNNEL", f"{self.remote} did not answer for {self._settings.probe_timeout} s"
            )
            self.close_with(CLOSE_DONE, why)

    def _on_frame(self, stream_id: int, frame: Any) -> None:
        kind = frame[0]
        if kind != REPLY and kind != ERROR:
            why = UnavailableError("TUNNEL", f"{self.remote} sent a request to a client")
            self.close_with(CLOSE_PROTOCOL, why)
            return
        reply = self._pending.pop(frame[1], None)
        if reply is None or reply.done():
            return  # its caller gave up (timeout or cancel) before it came
        if type(frame) is FrameTooLarge:
            reply.set_exception(
                FrameTooLargeError(
                    description=f"a reply of {frame.size} bytes is over max_frame_size "
                    f"({self._max_frame})"
                )
            )
            return
        try:
            if kind == REPLY:
                reply.set_result(TunnelMessage.FromString(frame[2]))
            else:
                reply.set_exception(from_message(Error.FromString(frame[2])))
        except DecodeError:
            reply.set_exception(MalformedError("TUNNEL", f"{self.remote} sent a broken reply"))

    def _closed_now(self, why: RonyError) -> None:
        if not self.ready.done():
            self.ready.set_exception(why)
            self.ready.exception()  # retrieved: a dial that gave up no longer waits on it
        pending, self._pending = self._pending, {}
        for reply in pending.values():
            if not reply.done():
                reply.set_exception(_copy(why))
        if self._probe is not None:
            self._probe.cancel()
            self._probe = None
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._deadlines = []
        # The socket is this link's alone, and nothing more will be sent or read on it (no
        # draining period: a peer that keeps sending gets no second CONNECTION_CLOSE).
        self._stop_timers()
        if self._transport is not None:
            self._transport.close()
        if self.on_close is not None:
            self.on_close()
