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
from tests.client.conftest import raw_peer


@pytest.fixture
def garbage_peer() -> Iterator[str]:
    """Answers the upgrade request with a non-HTTP reply and keeps the connection open."""

    def answer(conn: socket.socket, stop: threading.Event) -> None:
        conn.sendall(b"this is not HTTP\r\n\r\n")
        stop.wait(10)

    with raw_peer("ws", answer) as url:
        yield url


def test_unparsable_handshake_reply_fails_at_once(garbage_peer: str) -> None:
    start = time.monotonic()
    with pytest.raises(ConnectError, match="valid HTTP response"):
        connect(garbage_peer, ConnectOptions(dial_timeout=3.0, ping_interval=None))
    assert time.monotonic() - start < 1.5
