"""``ClientSettings``: every knob of the client, named, documented, with a default.

The defaults follow Go Rony's ``edgec`` where it had one (dial 3 s, request 3 s, 5 retries, idle
1 min, overall deadline = request timeout x retries); the rest are ours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ClientSettings"]


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """How a ``Client`` / ``AsyncClient`` dials, waits, retries and follows redirects.

    Timeouts (seconds):
        dial_timeout: opening one connection (TCP + WebSocket handshake, or TCP for HTTP).
        request_timeout: waiting for the reply to one attempt once it is written
            (``AsyncClient`` checks it in 10 ms slots, so it fires up to 10 ms late).
        deadline: the whole call, including retries, back-off sleeps and redirects. ``None``
            means ``request_timeout * max(1, max_retries)`` (Go Rony's ContextTimeout default,
            which Go never enforced). A call's ``timeout=`` argument overrides it.
        idle_timeout: a WebSocket with no traffic is kept alive with pings every
            ``idle_timeout / 3`` s; one unanswered for ``idle_timeout / 3`` s drops the connection
            (Go's client never pinged, so an idle link was cut and re-dialled every minute).
            ``None`` disables pings.

    Retries and back-off:
        max_retries: further attempts after a network failure that left the request unsent
            (dial failed, connection dropped before the write). A request that was written is
            never re-sent unless the call says ``idempotent=True``.
        backoff_base, backoff_max, backoff_jitter: the n-th retry (and the n-th reconnect of a
            dropped WebSocket) waits ``min(backoff_max, backoff_base * 2**n)`` scaled by a random
            factor in ``[1 - backoff_jitter, 1]`` (0 = no jitter, 1 = "full jitter").
        reconnect: re-dial a dropped WebSocket in the background (with back-off) so server pushes
            keep flowing; otherwise it is re-dialled by the next request.

    Redirects:
        follow_redirects: follow ``Redirect`` replies (session: later requests go to the named
            replica set; request: only this one). When False the ``Redirect`` is the reply.
        max_redirects: redirects followed by one call before ``TooManyRedirects``.

    Limits:
        max_message_size: bytes of one frame / HTTP body, in and out (``FrameTooLarge``).
        max_container_length: envelopes in one container, in and out.
        push_queue_size: undelivered server pushes buffered per consumer (each ``on_push``
            dispatcher, each ``pushes()`` iterator). When full the *oldest* is dropped and
            ``dropped_pushes`` counts it: the read loop never waits for a slow consumer.
        http_pool_size: HTTP connections per host: ``AsyncClient`` opens at most this many at
            once (more concurrent calls queue for one, within their timeout); ``Client`` keeps
            at most this many idle for reuse.
        http_keepalive_expiry: an idle pooled HTTP connection older than this is closed, not
            reused (well under aiohttp's server-side 75 s keep-alive, to avoid stale sockets).

    Metadata, on every request:
        headers: added to each envelope's ``Header`` (a call's own header wins on a clash).
        auth: put in each envelope's ``Auth`` field unless the envelope already carries one.
        http_headers: sent on each WebSocket handshake and each HTTP POST (e.g. a bearer token
            for a proxy; the server copies handshake headers into the connection's values).
    """

    dial_timeout: float = 3.0
    request_timeout: float = 3.0
    deadline: float | None = None
    idle_timeout: float | None = 60.0
    max_retries: int = 5
    backoff_base: float = 0.1
    backoff_max: float = 5.0
    backoff_jitter: float = 0.5
    reconnect: bool = True
    follow_redirects: bool = True
    max_redirects: int = 5
    max_message_size: int = 4 * 1024 * 1024
    max_container_length: int = 1024
    push_queue_size: int = 1024
    http_pool_size: int = 32
    http_keepalive_expiry: float = 15.0
    headers: Mapping[str, str] = field(default_factory=dict)
    auth: bytes = b""
    http_headers: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        positive = (
            "dial_timeout",
            "request_timeout",
            "backoff_max",
            "http_keepalive_expiry",
        )
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and value > 0 and math.isfinite(value)):
                raise ValueError(f"ClientSettings.{name} must be a positive number, not {value!r}")
        for name in ("deadline", "idle_timeout"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"ClientSettings.{name} must be positive or None, not {value!r}")
        if self.backoff_base < 0:
            raise ValueError("ClientSettings.backoff_base must be >= 0")
        if not 0.0 <= self.backoff_jitter <= 1.0:
            raise ValueError("ClientSettings.backoff_jitter must be within [0, 1]")
        for name in ("max_retries", "max_redirects"):
            if getattr(self, name) < 0:
                raise ValueError(f"ClientSettings.{name} must be >= 0")
        for name in (
            "max_message_size",
            "max_container_length",
            "push_queue_size",
            "http_pool_size",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"ClientSettings.{name} must be >= 1")
        if not isinstance(self.auth, bytes):
            raise TypeError("ClientSettings.auth must be bytes")

    @property
    def effective_deadline(self) -> float:
        """The overall deadline of a call when it gives no ``timeout=``."""
        if self.deadline is not None:
            return self.deadline
        return self.request_timeout * max(1, self.max_retries)

    @property
    def ping_interval(self) -> float | None:
        return None if self.idle_timeout is None else self.idle_timeout / 3
