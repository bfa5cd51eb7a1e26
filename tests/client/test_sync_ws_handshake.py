"""The blocking WebSocket dial against a raw socket peer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from rony.client._sync_ws import connect
from rony.client._transport import ConnectOptions
from rony.client.errors import ConnectError


@pytest.fixture
def garbage_peer() -> Iterator[str]:
    """Answers the upgrade request with a non-HTTP reply and keeps the connection open."""
    srv = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while b"\r\n\r\n" not in buf:
                buf += conn.recv(4096)
            conn.sendall(b"this is not HTTP\r\n\r\n")
            done.wait(10)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        yield f"ws://127.0.0.1:{srv.getsockname()[1]}/"
    finally:
        done.set()
        srv.close()
        t.join(timeout=5)


def test_unparsable_handshake_reply_fails_at_once(garbage_peer: str) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectError, match="valid HTTP response"):
        connect(garbage_peer, ConnectOptions(dial_timeout=3.0, ping_interval=None))
    assert time.monotonic() - start < 1.5
