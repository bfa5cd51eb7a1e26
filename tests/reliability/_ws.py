"""A raw-socket WebSocket client (RFC 6455) for conformance cases no library client would send.

Frames are built byte by byte (``frame``: any opcode, FIN, RSV bits, masked or not, a lying
length), the handshake is written by hand, and the server's frames are parsed strictly: a
server frame must not be masked (RFC 6455 §5.1) and a control frame must be final and at
most 125 bytes (§5.5); ``read_frame`` fails the test otherwise.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import struct
from dataclasses import dataclass

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """One frame as a client sends it (masked unless ``mask=False``); ``length`` overrides
    the announced payload length."""
    n = len(payload) if length is None else length
    head = bytearray([(0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode & 0xF])
    bit = 0x80 if mask else 0
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(bit | 127)
        head += struct.pack("!Q", n)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    head += key
    body = (
        bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        if len(payload) < 256
        else (_mask_fast(payload, key))
    )
    return bytes(head) + body


def _mask_fast(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    k = int.from_bytes((key * (n // 4 + 1))[:n], "big")
    return (int.from_bytes(payload, "big") ^ k).to_bytes(n, "big")


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        """The status code of a close frame (None for one without a payload)."""
        assert self.opcode == CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


class RawWS:
    """One WebSocket connection over a plain asyncio stream."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(
        cls, host: str, port: int, path: str = "/", *, extra_headers: str = ""
    ) -> RawWS:
        reader, writer = await asyncio.open_connection(host, port)
        return await cls.connect_on(reader, writer, host, port, path, extra_headers=extra_headers)

    @classmethod
    async def connect_on(
        cls,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        host: str,
        port: int,
        path: str = "/",
        *,
        extra_headers: str = "",
    ) -> RawWS:
        """The handshake over a stream already open (a socket with options of the test's)."""
        key = base64.b64encode(os.urandom(16))
        writer.write(
            b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + f"{host}:{port}".encode()
            + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key
            + b"\r\nSec-WebSocket-Version: 13\r\n" + extra_headers.encode() + b"\r\n"
        )  # fmt: skip
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        assert status.startswith(b"HTTP/1.1 101"), head
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        assert b"sec-websocket-accept: " + accept.lower() in head.lower(), head
        return cls(reader, writer)

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_frame(self, within: float = 10.0) -> Frame:
        async with asyncio.timeout(within):
            b0, b1 = await self.reader.readexactly(2)
            assert not b1 & 0x80, "a server frame must not be masked"
            assert not b0 & 0x70, "RSV bits set without an extension"
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(n)
        f = Frame(bool(b0 & 0x80), b0 & 0xF, payload)
        if f.opcode >= 0x8:
            assert f.fin, f"a fragmented control frame from the server: {f}"
            assert n <= 125, f"a control frame over 125 bytes from the server: {f}"
        return f

    async def read_message(self, within: float = 10.0) -> Frame:
        """The next data message, fragments joined (control frames in between are skipped,
        pings are not answered)."""
        first = await self.read_frame(within)
        while first.opcode in (PING, PONG):
            first = await self.read_frame(within)
        parts = [first.payload]
        while not first.fin:
            nxt = await self.read_frame(within)
            if nxt.opcode in (PING, PONG):
                continue
            assert nxt.opcode == CONT, nxt
            parts.append(nxt.payload)
            first.fin = nxt.fin
        return Frame(True, first.opcode, b"".join(parts))

    async def expect_close(self, within: float = 10.0) -> int | None:
        """Read until the server's close frame (data frames before it are dropped); its
        code. The client answers it; then the server closes the TCP connection."""
        while True:
            f = await self.read_frame(within)
            if f.opcode == CLOSE:
                break
        self.send(frame(CLOSE, f.payload[:2]))
        async with asyncio.timeout(within):
            rest = await self.reader.read()  # EOF: the server closed the TCP connection
        assert rest == b"", rest[:16]
        return f.close_code

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()
