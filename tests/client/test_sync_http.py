"""The blocking HTTP transport against a raw socket peer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from rony.client._sync_transport import SyncNetTransport
from rony.client._transport import ConnectOptions
from rony.client.errors import RequestTimeout


@pytest.fixture
def dripping_peer() -> Iterator[str]:
    """Answers every POST with a 20-byte body sent one byte per 0.1 s."""
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
            for _ in range(20):
                if stop.wait(0.1):  # pacing of the peer, not synchronisation
                    return
                try:
                    conn.sendall(b"x")
                except OSError:
                    return

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}/"
    finally:
        stop.set()
        srv.close()
        t.join(timeout=5)


def test_http_timeout_bounds_a_dripping_reply(dripping_peer: str) -> None:
    transport = SyncNetTransport()
    try:
        start = time.monotonic()
        with pytest.raises(RequestTimeout):
            transport.round_trip(dripping_peer, b"req", timeout=0.5, options=ConnectOptions())
        assert time.monotonic() - start < 1.5
    finally:
        transport.close()
