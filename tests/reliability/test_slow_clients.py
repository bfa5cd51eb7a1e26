"""Clients that hold a node's resources: a WebSocket reader that never reads (cut off by
``write_queue_size``, the node's memory does not grow with it), a slowloris HTTP client (cut
off by ``header_timeout``) and one that sends its POST body slowly (``body_timeout``). All
against a real ``rony serve`` process, whose other clients keep being served."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rony.client import Client, ClientSettings
from rony.core import C_Error, Error, Ping, Pong, decode_envelope, envelope, unwrap
from tests.reliability._app import C_Echo
from tests.reliability._load import never_reads
from tests.reliability._node import ServeProcess, wait_until
from tests.reliability._ws import BINARY, RawWS, frame

pytestmark = pytest.mark.slow

WRITE_QUEUE = 64
HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    data: Path = tmp_path_factory.mktemp("slow")
    settings = {
        "write_queue_size": WRITE_QUEUE,
        "header_timeout": HEADER_TIMEOUT,
        "body_timeout": BODY_TIMEOUT,
    }
    with ServeProcess(data, settings=settings) as proc:
        yield proc


def _served(node: ServeProcess) -> None:
    settings = ClientSettings(request_timeout=5.0, max_retries=0)
    with Client(node.url, settings=settings) as c:
        assert c.call(C_Echo, Ping(ID=5), Pong) == Pong(ID=5)


def test_reader_that_never_reads_is_cut_off_without_the_node_growing(node: ServeProcess) -> None:
    _served(node)
    before = node.rss()
    logged = sum("write queue full" in line for line in node.output)
    # Far more than the socket buffers and the write queue hold: 4,000 x 16 KiB = 64 MiB.
    code, replies = asyncio.run(never_reads(node.port, 4000))
    # The close frame (1008, policy violation) reaches the client only if the socket has room
    # for it; else the node drops the connection after its close timeout. Either way the
    # node says why.
    assert code in (1008, None), (code, replies)
    assert replies < 4000
    wait_until(lambda: sum("write queue full" in line for line in node.output) > logged, 10, "log")
    grown = node.rss() - before
    # The queue holds WRITE_QUEUE replies (1 MiB here) plus the kernel's socket buffer:
    # far under the 64 MiB the client asked for.
    assert grown < 16 * 1024 * 1024, grown
    print(f"\nslow reader: closed {code} after {replies} replies; node RSS +{grown >> 10} KiB")
    _served(node)


def _slowloris(port: int, gap: float) -> tuple[float, bytes]:
    """Send a request head one byte every ``gap`` seconds; when the node gives up, the
    seconds it took and what it answered."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 200 + b"\r\n\r\n"
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.settimeout(gap)
        for b in head:
            try:
                s.sendall(bytes([b]))
            except (BrokenPipeError, ConnectionResetError):
                break
            try:
                got = s.recv(4096)
            except TimeoutError:
                continue
            return time.monotonic() - start, got + _rest(s)
    return time.monotonic() - start, b""


def _response(s: socket.socket) -> tuple[bytes, bytes]:
    """One HTTP response with a Content-Length: (head, body). (Not to EOF: after an answer
    to an unfinished body aiohttp reads and drops the rest for up to 10 s, its
    ``lingering_time``, so the client gets the answer rather than a reset; then it closes.)"""
    s.settimeout(5)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        assert chunk, buf
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        chunk = s.recv(4096)
        assert chunk, body
        body += chunk
    return head, body


def _rest(s: socket.socket) -> bytes:
    out = b""
    s.settimeout(5)
    while chunk := s.recv(4096):
        out += chunk
    return out


def test_slowloris_head_is_cut_off_by_header_timeout(node: ServeProcess) -> None:
    took, answer = _slowloris(node.port, 0.05)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    # Cut off at header_timeout (the head would need ~11 s at this pace), not idle_timeout.
    assert HEADER_TIMEOUT <= took < HEADER_TIMEOUT + 5, took
    _served(node)


def test_slow_head_on_a_kept_alive_connection_is_cut_off(node: ServeProcess) -> None:
    """The second request of a kept-alive connection is timed from its own first byte."""
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.1 200 "), first
        # Idle for longer than header_timeout between requests: allowed (idle_timeout).
        time.sleep(HEADER_TIMEOUT * 2)  # the idleness under test, not a synchronisation
        s.sendall(b"GET /healthz HTTP/1.1\r\n")
        start = time.monotonic()
        s.settimeout(HEADER_TIMEOUT + 5)
        answer = _rest(s)
        took = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert took >= HEADER_TIMEOUT * 0.9, took


def test_quick_requests_are_not_timed_out(node: ServeProcess) -> None:
    """A head sent in a few quick pieces, and a WebSocket idle past header_timeout, live on."""

    async def run() -> None:
        ws = await RawWS.connect("127.0.0.1", node.port)
        try:
            await asyncio.sleep(HEADER_TIMEOUT * 2)  # idleness under test
            ws.send(frame(BINARY, envelope(Ping(ID=3), 3).SerializeToString()))
            msg = await ws.read_message()
            assert msg.opcode == BINARY
        finally:
            await ws.aclose()

    asyncio.run(run())
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as s:
        for piece in (b"GET /heal", b"thz HTTP/1.1\r\nHo", b"st: x\r\n", b"\r\n"):
            s.sendall(piece)
        assert s.recv(4096).startswith(b"HTTP/1.1 200 ")
    wait_until(node.alive, 1, "node alive")


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_slow_body_is_cut_off_by_body_timeout(node: ServeProcess, chunked: bool) -> None:
    """A POST whose head is quick and whose body never completes: 408 with an E06 Error
    envelope, and the connection is closed."""
    body = envelope(Ping(ID=1), 1).SerializeToString()
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as s:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\n" + framing + b"\r\n\r\n")
        s.sendall(b"%x\r\n" % len(body) + body[:2] if chunked else body[:2])
        start = time.monotonic()
        head, payload = _response(s)
        took = time.monotonic() - start
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"connection: close" in head.lower(), head
    env = decode_envelope(payload)
    assert env.Constructor == C_Error
    assert unwrap(env, Error).Code == "E06"
    assert took >= BODY_TIMEOUT * 0.9, took
    _served(node)


def test_slow_rest_body_is_cut_off_by_body_timeout(tmp_path: Path) -> None:
    """The same on a REST route (the echo example's app): 408, an Error as JSON, closed."""
    settings = {"body_timeout": BODY_TIMEOUT}
    app = "examples.echo.app:app"
    with (
        ServeProcess(tmp_path / "d", settings=settings, app=app) as proc,
        socket.create_connection(("127.0.0.1", proc.port), timeout=10) as s,
    ):
        s.sendall(b"GET /echo/1/x HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
        head, payload = _response(s)
    assert head.startswith(b"HTTP/1.1 408 "), head
    assert b"connection: close" in head.lower(), head
    assert b"E06" in payload, payload
