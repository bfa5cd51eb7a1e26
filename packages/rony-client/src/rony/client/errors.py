"""Client-side failures, as a typed tree.

Two families reach a caller:

* a ``rony.core.errors.RonyError`` subclass when the *server* answered with an ``Error`` envelope
  (``call`` raises the class of its wire code, carrying ``code``, ``items``, ``description``);
* a ``ClientError`` subclass, below, when the exchange itself failed: nothing to dial, the
  connection dropped, the deadline passed, the reply was not what was asked for.

Every ``ClientError`` says whether the request may have reached the server (``written``), so an
application knows whether a non-idempotent request might have run.
"""

from __future__ import annotations

__all__ = [
    "ClientClosed",
    "ClientError",
    "ConnectError",
    "ConnectionLost",
    "DecodeError",
    "FrameTooLarge",
    "ProtocolError",
    "RequestTimeout",
    "RetriesExceeded",
    "TooManyRedirects",
    "TransportError",
    "UnexpectedResponse",
]


class ClientError(Exception):
    """Base of every client-side failure."""

    #: True when the request (or part of it) may have reached the server.
    written: bool = False

    def __init__(self, message: str = "", *, written: bool | None = None) -> None:
        super().__init__(message)
        if written is not None:
            self.written = written


class TransportError(ClientError):
    """The network failed: dial, read or write."""


class ConnectError(TransportError):
    """Could not open a connection (refused, unreachable, DNS, TLS or handshake failure, dial
    timeout). Nothing was written, so the request is always safe to retry."""

    written = False


class ConnectionLost(TransportError):
    """The connection dropped. ``written`` says whether our request was already sent on it."""


class FrameTooLarge(TransportError):
    """A frame or body exceeded ``ClientSettings.max_message_size`` (incoming: the connection is
    closed, as it cannot be resynchronised; outgoing: nothing is sent)."""


class RequestTimeout(ClientError, TimeoutError):
    """No reply before the call's deadline (``timeout=`` or ``ClientSettings.deadline``), or an
    attempt's ``request_timeout`` passed after the request was written."""


class RetriesExceeded(TransportError):
    """More than ``max_retries`` network failures; ``last_error`` (= ``__cause__``) is the last."""

    def __init__(self, message: str, last_error: BaseException, attempts: int) -> None:
        super().__init__(message, written=getattr(last_error, "written", False))
        self.last_error = last_error
        self.attempts = attempts


class ProtocolError(ClientError):
    """The server answered something the client cannot use."""

    written = True


class DecodeError(ProtocolError):
    """A reply did not decode (a frame, an HTTP body, a container or a payload)."""


class UnexpectedResponse(ProtocolError):
    """A reply decoded, but is not of the class the caller asked for (or is unknown)."""

    def __init__(self, message: str, constructor: int = 0) -> None:
        super().__init__(message)
        self.constructor = constructor


class TooManyRedirects(ProtocolError):
    """``Redirect`` replies chained beyond ``ClientSettings.max_redirects``."""


class ClientClosed(ClientError):
    """The client was closed (before or while the request was in flight)."""
