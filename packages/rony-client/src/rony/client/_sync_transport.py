"""The blocking transport: websockets' protocol driven by the caller (``_sync_ws``) for
WebSocket, ``http.client`` with a keep-alive pool for HTTP. No event loop, no reader thread."""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.parse

from rony.client import _sync_ws
from rony.client._transport import ConnectOptions, SyncConnection, SyncTransport
from rony.client.errors import (
    ConnectError,
    ConnectionLost,
    FrameTooLarge,
    RequestTimeout,
    UnexpectedResponse,
)

__all__ = ["SyncNetTransport"]

_CONTENT_TYPE = "application/x-protobuf"
_JSON = "application/json"


class _Pooled:
    __slots__ = ("conn", "idle_since")

    def __init__(self, conn: http.client.HTTPConnection, idle_since: float) -> None:
        self.conn = conn
        self.idle_since = idle_since


class SyncNetTransport(SyncTransport):
    """Real sockets. HTTP keeps a small pool of keep-alive connections per host (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: dict[tuple[str, str, int], list[_Pooled]] = {}
        self._closed = False

    # --- WebSocket --------------------------------------------------------------------------------

    def connect(self, url: str, options: ConnectOptions) -> SyncConnection:
        return _sync_ws.connect(url, options)

    # --- HTTP -------------------------------------------------------------------------------------

    def _acquire(
        self, key: tuple[str, str, int], options: ConnectOptions
    ) -> tuple[http.client.HTTPConnection, bool]:
        now = time.monotonic()
        stale: list[http.client.HTTPConnection] = []
        found: http.client.HTTPConnection | None = None
        with self._lock:
            idle = self._pool.get(key)
            while idle:
                p = idle.pop()
                if now - p.idle_since < options.keepalive_expiry:
                    found = p.conn
                    break
                stale.append(p.conn)
        for c in stale:
            c.close()
        if found is not None:
            return found, True
        scheme, host, port = key
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        conn = cls(host, port, timeout=options.dial_timeout)
        try:
            conn.connect()
        except OSError as exc:  # refused, unreachable, DNS, dial timeout
            conn.close()
            raise ConnectError(f"cannot connect to {host}:{port}: {exc!r}") from None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn, False

    def _release(
        self, key: tuple[str, str, int], conn: http.client.HTTPConnection, options: ConnectOptions
    ) -> None:
        with self._lock:
            if not self._closed:
                idle = self._pool.setdefault(key, [])
                if len(idle) < options.pool_size:
                    idle.append(_Pooled(conn, time.monotonic()))
                    return
        conn.close()

    def round_trip(
        self, url: str, frame: bytes, *, timeout: float, options: ConnectOptions
    ) -> bytes:
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme
        default_port = 443 if scheme == "https" else 80
        key = (scheme, parts.hostname or "", parts.port or default_port)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {"Content-Type": _JSON if options.text else _CONTENT_TYPE, **options.headers}
        # One retry, on a fresh connection, when a *reused* keep-alive connection turns out to
        # be closed by the server before it sent a single byte: a server only closes idle
        # connections, so that request was never read (the urllib3/httpx rule).
        for attempt in (0, 1):
            conn, reused = self._acquire(key, options)
            try:
                return self._exchange(key, conn, path, frame, headers, timeout, options)
            except _StaleConnection as exc:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise ConnectionLost(
                    f"connection closed by the server: {exc}", written=True
                ) from None
            except BaseException:
                conn.close()
                raise
        raise AssertionError("unreachable")

    def _exchange(
        self,
        key: tuple[str, str, int],
        conn: http.client.HTTPConnection,
        path: str,
        frame: bytes,
        headers: dict[str, str],
        timeout: float,
        options: ConnectOptions,
    ) -> bytes:
        # ``timeout`` bounds the whole exchange: a socket timeout alone is per read, so a peer
        # that drips a byte at a time would hold the caller far past it.
        deadline = time.monotonic() + timeout

        def arm() -> None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            if conn.sock is not None:
                conn.sock.settimeout(remaining)

        try:
            arm()
            conn.request("POST", path, body=frame, headers=headers)
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _StaleConnection(repr(exc)) from None
        except TimeoutError:
            raise RequestTimeout(f"no reply within {timeout:.3g} s", written=True) from None
        except OSError as exc:
            raise ConnectionLost(f"write failed: {exc!r}", written=True) from None
        try:
            arm()
            resp = conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError) as exc:
            raise _StaleConnection(repr(exc)) from None
        except TimeoutError:
            raise RequestTimeout(f"no reply within {timeout:.3g} s", written=True) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionLost(f"reading the reply failed: {exc!r}", written=True) from None
        limit = options.max_message_size
        length = resp.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise FrameTooLarge(
                f"reply body is {length} bytes; max_message_size is {limit}", written=True
            )
        chunks: list[bytes] = []
        size = 0
        try:
            while True:
                arm()
                chunk = resp.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > limit:
                    raise FrameTooLarge(
                        f"reply body exceeds max_message_size {limit}", written=True
                    )
                chunks.append(chunk)
            if not resp.isclosed():
                resp.read()  # read1 leaves a fully read response open; this releases conn
        except TimeoutError:
            raise RequestTimeout(f"no reply within {timeout:.3g} s", written=True) from None
        except (OSError, http.client.HTTPException) as exc:
            raise ConnectionLost(f"reading the reply failed: {exc!r}", written=True) from None
        body = b"".join(chunks)
        if not 200 <= resp.status < 300 and not body:
            raise UnexpectedResponse(f"HTTP {resp.status} {resp.reason} with an empty body")
        if resp.will_close:
            conn.close()
        else:
            self._release(key, conn, options)
        return body

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pools, self._pool = self._pool, {}
        for idle in pools.values():
            for p in idle:
                p.conn.close()


class _StaleConnection(Exception):
    pass
