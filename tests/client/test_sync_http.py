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
from tests.client.conftest import raw_peer


@pytest.fixture
def dripping_peer() -> Iterator[str]:
    """Answers every POST with a 20-byte body sent one byte per 0.1 s."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
        for _ in range(20):
            if stop.wait(0.1):  # pacing of the peer, not synchronisation
                return
            try:
                conn.sendall(b"x")
            except OSError:
                return

    with raw_peer("http", answer) as url:
        yield url


def test_http_timeout_bounds_a_dripping_reply(dripping_peer: str) -> None:
    transport = SyncNetTransport()
    try:
        start = time.monotonic()
        with pytest.raises(RequestTimeout):
            transport.round_trip(dripping_peer, b"req", timeout=0.5, options=ConnectOptions())
        assert time.monotonic() - start < 1.5
    finally:
        transport.close()
