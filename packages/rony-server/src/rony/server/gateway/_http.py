"""aiohttp's HTTP protocol with a time limit on a request's head (``header_timeout``).

aiohttp bounds a connection that sends nothing (its keep-alive timer, our ``idle_timeout``)
but not one that sends a request's head slowly: a client that sends one byte of headers every
few seconds holds a connection (and a ``max_connections`` slot) for ``idle_timeout`` (300 s)
with each request; many such clients lock everyone else out (slowloris). Go's net/http has
``ReadHeaderTimeout`` for this, off by default; nginx's ``client_header_timeout`` is 60 s.

Here the clock starts at the first byte of a request head (a new connection's, or the next one
on a kept-alive connection) and stops when the head is parsed: over ``header_timeout`` the
client gets ``408 Request Timeout`` and the connection is closed. A connection that sends
nothing is left to the keep-alive timer; a WebSocket (once upgraded) and a request body are
not timed here (``idle_timeout`` bounds the one, the gateway's ``body_timeout`` the other).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp.web_protocol import RequestHandler

__all__ = ["HeadTimedHandler"]

log = logging.getLogger("rony.server.gateway")

_REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 29\r\n\r\nrequest headers took too long"
)


class HeadTimedHandler(RequestHandler):
    """One HTTP connection, as aiohttp's, with the head of each request timed."""

    __slots__ = ("_head_count", "_head_timeout", "_head_timer")

    def __init__(self, *args: Any, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timeout = header_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_count = 0  # _request_count when the timer was set

    def data_received(self, data: bytes) -> None:
        # (runs for every read of every connection, WebSockets included: cheap tests first)
        if (
            self._head_timer is None
            and not self._upgraded
            and not self._request_in_progress
            and not self._messages
        ):
            # The first bytes of a request head: between requests, nothing queued.
            self._head_count = self._request_count
            self._head_timer = self._loop.call_at(
                self._loop.time() + self._head_timeout, self._head_expired
            )
        super().data_received(data)
        timer = self._head_timer
        if timer is not None and self._request_count != self._head_count:
            timer.cancel()  # the head is parsed (a request, or a 400 for a bad one)
            self._head_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        transport = self.transport
        if (
            self._request_count != self._head_count
            or self._request_in_progress
            or transport is None
            or transport.is_closing()
        ):
            return
        log.info("HTTP head not received within header_timeout (%ss): 408", self._head_timeout)
        transport.write(_REQUEST_TIMEOUT)
        self.force_close()  # (closes the transport: what is buffered is flushed first)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)
