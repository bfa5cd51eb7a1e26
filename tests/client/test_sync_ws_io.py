"""The blocking WebSocket against a raw peer that is slow to read."""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from rony.client._sync_ws import connect
from rony.client._transport import ConnectOptions

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_PAYLOAD = 16 * 1024 * 1024  # far more than loopback socket buffers hold
_FRAME = 2 + 8 + 4 + _PAYLOAD  # masked client frame with a 64-bit length


class SlowPeer:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sending = threading.Event()
        self.received = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            key = next(
                line.split(b":", 1)[1].strip()
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"sec-websocket-key:")
            )
            accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
            conn.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.sending.wait(10)
            time.sleep(0.5)  # the scenario: a peer that does not read for a while
            while self.received < _FRAME:
                data = conn.recv(1 << 20)
                if not data:
                    break
                self.received += len(data)


@pytest.fixture
def slow_peer() -> Iterator[SlowPeer]:
    peer = SlowPeer()
    yield peer
    peer.sending.set()
    peer.thread.join(10)
    peer.listener.close()


def test_a_reader_timeout_does_not_bound_a_blocked_write(slow_peer: SlowPeer) -> None:
    # The read deadline was a socket timeout, which also bounds sendall: after a recv that
    # timed out, a write blocked on a slow peer failed (mid-frame) after that read's timeout.
    ws = connect(f"ws://127.0.0.1:{slow_peer.port}/", ConnectOptions(ping_interval=None))
    try:
        with pytest.raises(TimeoutError):
            ws.recv(0.05)
        slow_peer.sending.set()
        ws.send(b"x" * _PAYLOAD)
        slow_peer.thread.join(10)
        assert slow_peer.received == _FRAME
    finally:
        ws.close()
