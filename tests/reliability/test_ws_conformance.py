"""WebSocket conformance (RFC 6455), the Autobahn|Testsuite cases that matter for a Rony node,
from a raw-socket client (``_ws.py``) against a real gateway.

The Autobahn suite itself does not run here: its fuzzing client needs Python 2 (``wstest``) or
a Docker engine, and this machine has neither. The cases below follow its sections: framing (1,
2, 3, 4: lengths, ping/pong, reserved bits and opcodes), fragmentation (5), UTF-8 of text frames
(6), close handling (7), and the limits (9: a message over ``max_message_size`` is 1009). Each
case ends by checking what the server did: the reply, or the close code and the TCP close.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from rony.core import C_Pong, Ping, Pong, decode_envelope, envelope, unwrap
from rony.server import Edge
from rony.server.testing import serve
from tests.reliability._app import build_app
from tests.reliability._ws import BINARY, CLOSE, CONT, PING, PONG, TEXT, RawWS, close_payload, frame

LIMIT = 64 * 1024  # max_message_size of the node under test


_OPEN: list[RawWS] = []


@pytest.fixture
async def node() -> AsyncIterator[Edge]:
    async with serve(build_app(), max_message_size=LIMIT) as edge:
        try:
            yield edge
        finally:
            while _OPEN:
                await _OPEN.pop().aclose()


async def connect(edge: Edge) -> RawWS:
    host, port = edge.gateway.address
    ws = await RawWS.connect(host, port)
    _OPEN.append(ws)  # closed by the fixture, whatever the test did
    return ws


def ping_env(n: int) -> bytes:
    return envelope(Ping(ID=n), n).SerializeToString()


async def expect_pong(ws: RawWS, n: int) -> None:
    msg = await ws.read_message()
    assert msg.opcode == BINARY
    env = decode_envelope(msg.payload)
    assert (env.RequestID, env.Constructor, unwrap(env, Pong).ID) == (n, C_Pong, n)


async def test_binary_frames_of_each_length_encoding(node: Edge) -> None:
    """7-bit, 16-bit and 64-bit payload lengths (Autobahn 1.2); a reply is one final frame."""
    ws = await connect(node)
    for n, pad in enumerate((0, 200, 70_000 - 30), start=1):
        # A Ping envelope with an unknown field padding it to the wanted size: still a Ping.
        body = ping_env(n) + b"\xfa\x07" + _varint(pad) + b"p" * pad if pad else ping_env(n)
        if len(body) > LIMIT:
            continue
        ws.send(frame(BINARY, body))
        await expect_pong(ws, n)
    await ws.aclose()


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


async def test_fragmented_message_with_ping_between_fragments(node: Edge) -> None:
    """A message in three fragments, a ping between them (Autobahn 5.6, 5.19): the pong comes
    at once with the ping's payload, the reply once the message is complete."""
    ws = await connect(node)
    body = ping_env(7)
    ws.send(frame(BINARY, body[:3], fin=False))
    ws.send(frame(PING, b"mid-message", fin=True))
    pong = await ws.read_frame()
    assert (pong.opcode, pong.payload) == (PONG, b"mid-message")
    ws.send(frame(CONT, body[3:5], fin=False))
    ws.send(frame(CONT, body[5:], fin=True))
    await expect_pong(ws, 7)
    await ws.aclose()


async def test_ping_pong_and_unsolicited_pong(node: Edge) -> None:
    """Ping payloads of 0 and 125 bytes are echoed (2.1, 2.4); an unsolicited pong is ignored
    (2.7); the connection keeps serving."""
    ws = await connect(node)
    for payload in (b"", b"\x00\xff" * 62 + b"!"):
        ws.send(frame(PING, payload))
        pong = await ws.read_frame()
        assert (pong.opcode, pong.payload) == (PONG, payload)
    ws.send(frame(PONG, b"unasked"))
    ws.send(frame(BINARY, ping_env(3)))
    await expect_pong(ws, 3)
    await ws.aclose()


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("2.5 ping payload of 126 bytes", frame(PING, b"x" * 126)),
        ("3.1 RSV1 without an extension", frame(BINARY, ping_env(1), rsv=4)),
        ("3.7 RSV bits on a control frame", frame(PING, b"", rsv=7)),
        ("4.1.1 reserved data opcode 3", frame(3, b"")),
        ("4.2.1 reserved control opcode 11", frame(11, b"")),
        ("5.1 fragmented ping", frame(PING, b"a", fin=False) + frame(CONT, b"b")),
        ("5.9 continuation with nothing to continue", frame(CONT, ping_env(1))),
        (
            "5.18 a new message inside a fragmented one",
            frame(BINARY, b"\x08", fin=False) + frame(BINARY, ping_env(1)),
        ),
        ("7.3.2 close payload of one byte", frame(CLOSE, b"\x03")),
        ("7.9.1 close code 0", frame(CLOSE, close_payload(0))),
        ("7.9.2 close code 999", frame(CLOSE, close_payload(999))),
        ("7.9.3 close code 1004 (reserved)", frame(CLOSE, close_payload(1004))),
        ("7.9.4 close code 1005 (must not be sent)", frame(CLOSE, close_payload(1005))),
        ("7.9.9 close code 1016 (unassigned)", frame(CLOSE, close_payload(1016))),
        ("7.9.12 close code 2999", frame(CLOSE, close_payload(2999))),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_protocol_errors_close_with_1002(node: Edge, case: str, data: bytes) -> None:
    ws = await connect(node)
    ws.send(data)
    assert await ws.expect_close() == 1002, case
    await _still_serving(node)


@pytest.mark.parametrize(
    ("case", "data"),
    [
        (
            "6.3.1 invalid UTF-8 in a text frame (a lone surrogate)",
            frame(TEXT, b'{"cmd": "\xce\xba\xe1\xbd\xb9\xed\xa0\x80"}'),
        ),
        (
            "6.4.1 invalid UTF-8 across fragments",
            frame(TEXT, b'{"a": "\xce', fin=False) + frame(CONT, b'\xff"}'),
        ),
        ("6.x a lone continuation byte", frame(TEXT, b"\x80")),
        (
            "7.5.1 close reason that is not UTF-8",
            frame(CLOSE, close_payload(1000, b"\xce\xba\xff")),
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_invalid_utf8_closes_with_1007(node: Edge, case: str, data: bytes) -> None:
    ws = await connect(node)
    ws.send(data)
    assert await ws.expect_close() == 1007, case
    await _still_serving(node)


async def test_valid_utf8_split_inside_a_code_point(node: Edge) -> None:
    """6.2.3/6.2.4: a text message whose fragments split a multi-byte code point is valid."""
    ws = await connect(node)
    msg = {"requestId": 5, "cmd": "Ping", "message": {"ID": "5"}, "h": "κόσμε"}
    text = json.dumps(msg, ensure_ascii=False)
    raw = text.encode()
    cut = raw.index("ό".encode()) + 1  # inside the two bytes of ό
    ws.send(frame(TEXT, raw[:cut], fin=False))
    ws.send(frame(CONT, raw[cut:]))
    msg = await ws.read_message()
    assert msg.opcode == TEXT
    reply = json.loads(msg.payload)
    assert str(reply["requestId"]) == "5", reply
    await ws.aclose()


@pytest.mark.parametrize("fragments", [2, 4])
async def test_message_over_the_limit_closes_with_1009(node: Edge, fragments: int) -> None:
    """9.x: fragments each under max_message_size whose sum is over it. (One frame over the
    limit is refused on its header: the next test.)"""
    ws = await connect(node)
    part = b"x" * (LIMIT // fragments + 1)
    for i in range(fragments):
        op = BINARY if i == 0 else CONT
        ws.send(frame(op, part, fin=i == fragments - 1))
    assert await ws.expect_close() == 1009
    await _still_serving(node)


@pytest.mark.xfail(
    strict=True,
    reason="aiohttp (3.14) accepts unmasked client frames; RFC 6455 5.1 says a server MUST "
    "close. Only a non-browser client sends them (masking guards proxies against browser "
    "script); the check needs aiohttp's frame parser, which is compiled",
)
async def test_unmasked_client_frame_closes_with_1002(node: Edge) -> None:
    ws = await connect(node)
    ws.send(frame(BINARY, ping_env(1), mask=False))
    assert await ws.expect_close(within=2) == 1002


@pytest.mark.xfail(
    strict=True,
    reason="aiohttp (3.14) echoes a close frame carrying 1006, a code that must never be "
    "sent (Autobahn 7.9.5), with 1000 instead of failing it with 1002; harmless",
)
async def test_close_code_1006_is_a_protocol_error(node: Edge) -> None:
    ws = await connect(node)
    ws.send(frame(CLOSE, close_payload(1006)))
    assert await ws.expect_close(within=2) == 1002


async def test_announced_length_over_the_limit_closes_before_the_payload(node: Edge) -> None:
    """A header announcing 2^62 bytes: refused on the header, nothing is buffered."""
    ws = await connect(node)
    ws.send(frame(BINARY, b"", length=1 << 62))
    assert await ws.expect_close() == 1009
    await _still_serving(node)


@pytest.mark.parametrize("code", [1000, 1001, 1003, 1011, 3000, 4999])
async def test_clean_close_is_echoed(node: Edge, code: int) -> None:
    """7.1.1, 7.7.x: a valid close code (with a UTF-8 reason) is answered with a close frame
    and the server closes TCP; data after the close is ignored (7.1.3)."""
    ws = await connect(node)
    ws.send(frame(BINARY, ping_env(1)))
    await expect_pong(ws, 1)
    ws.send(frame(CLOSE, close_payload(code, "bye κ".encode())))
    ws.send(frame(BINARY, ping_env(2)))  # after the close: never answered
    f = await ws.read_frame()
    assert f.opcode == CLOSE, f
    assert f.close_code in (code, 1000)
    assert await ws.reader.read() == b""
    await ws.aclose()


async def test_close_without_a_code(node: Edge) -> None:
    """7.3.1: an empty close payload is valid; the server closes."""
    ws = await connect(node)
    ws.send(frame(CLOSE, b""))
    f = await ws.read_frame()
    assert f.opcode == CLOSE
    assert await ws.reader.read() == b""
    await ws.aclose()


async def _still_serving(edge: Edge) -> None:
    ws = await connect(edge)
    ws.send(frame(BINARY, ping_env(99)))
    await expect_pong(ws, 99)
    await ws.aclose()
