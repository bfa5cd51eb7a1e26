"""The tunnel's framing, with no I/O: bytes in, frames out.

Every call, reply and cancel travels on one QUIC stream as a frame::

    length  u32 big-endian   bytes of the payload that follows the header
    kind    u8               REQUEST, REPLY, ERROR or CANCEL
    call id u64 big-endian   chosen by the caller, echoed by the replier
    payload length bytes     REQUEST/REPLY: a TunnelMessage; ERROR: a rony Error; CANCEL: empty

Many calls share the stream, told apart by their call id, so a caller never waits for a stream
or a handshake of its own. The length comes first and is checked against ``max_frame_size``
before a byte of the payload is kept: a frame announced as too large is reported as
``FrameTooLarge`` and its payload skipped as it streams by, so a peer cannot make the receiver
allocate more than the limit and the stream stays in step for the frames after it.
"""

from __future__ import annotations

import struct
from typing import Final, NamedTuple

from rony.core.errors import InvalidError, MalformedError

__all__ = [
    "CANCEL",
    "ERROR",
    "HEADER_SIZE",
    "KINDS",
    "MAX_FRAME_SIZE_LIMIT",
    "REPLY",
    "REQUEST",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameTooLarge",
    "FrameTooLargeError",
    "encode_frame",
    "pack_header",
]

REQUEST: Final = 1
REPLY: Final = 2
ERROR: Final = 3
CANCEL: Final = 4
KINDS: Final = frozenset((REQUEST, REPLY, ERROR, CANCEL))

_HEADER: Final = struct.Struct(">IBQ")
HEADER_SIZE: Final = _HEADER.size  # 13
pack_header: Final = _HEADER.pack
"""(length, kind, call id) -> a frame's header: for hot paths that checked the size already."""
# The length field is a u32; a larger max_frame_size could not be honoured.
MAX_FRAME_SIZE_LIMIT: Final = 2**32 - 1
_MAX_CALL_ID: Final = 2**64 - 1


class FrameTooLargeError(InvalidError):
    """A frame's payload is over ``max_frame_size`` (E01, items ``TUNNEL``)."""

    default_items = "TUNNEL"


class FrameError(MalformedError):
    """Bytes on the tunnel stream that are not a frame (an unknown kind): the link is broken."""

    default_items = "TUNNEL"


class Frame(NamedTuple):
    kind: int
    call_id: int
    payload: bytes


class FrameTooLarge(NamedTuple):
    """A frame whose header announced ``size`` bytes, over the limit; its payload was skipped."""

    kind: int
    call_id: int
    size: int


_new_frame: Final = tuple.__new__


def check_max_frame_size(max_frame_size: int) -> int:
    if not 0 < max_frame_size <= MAX_FRAME_SIZE_LIMIT:
        raise ValueError(
            f"max_frame_size must be within 1..{MAX_FRAME_SIZE_LIMIT}, not {max_frame_size}"
        )
    return max_frame_size


def encode_frame(kind: int, call_id: int, payload: bytes, max_frame_size: int) -> bytes:
    """One frame's bytes; a payload over ``max_frame_size`` raises ``FrameTooLargeError``."""
    size = len(payload)
    if size > max_frame_size:
        raise FrameTooLargeError(
            description=f"a frame of {size} bytes is over max_frame_size ({max_frame_size})"
        )
    if kind not in KINDS or not 0 <= call_id <= _MAX_CALL_ID:
        raise ValueError(f"no frame of kind {kind} with call id {call_id}")
    return _HEADER.pack(size, kind, call_id) + payload


class FrameDecoder:
    """Cuts one stream's bytes into frames, whatever the chunking (one byte at a time works).

    ``feed`` returns the frames completed by the bytes given, in order; a frame over the limit
    comes out as ``FrameTooLarge`` in its place. Bytes that cannot start a frame raise
    ``FrameError``: the stream is out of step and the decoder must not be fed again.
    """

    __slots__ = ("_buf", "_max", "_skip")

    def __init__(self, max_frame_size: int) -> None:
        self._max = check_max_frame_size(max_frame_size)
        self._buf = bytearray()
        self._skip = 0  # payload bytes of an oversized frame still to throw away

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not complete yet (at most a header plus ``max_frame_size``)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame | FrameTooLarge]:
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        buf = self._buf
        if buf:
            buf += data
            frames, used = self._cut(buf)
            del buf[:used]  # bytearray drops a prefix without moving the rest
        else:
            # The usual case: a chunk that starts on a frame boundary is cut as it is, with no
            # copy into the buffer; only an unfinished tail is kept.
            frames, used = self._cut(data)
            if used < len(data):
                buf += data[used:]
        return frames

    def _cut(self, src: bytes | bytearray) -> tuple[list[Frame | FrameTooLarge], int]:
        frames: list[Frame | FrameTooLarge] = []
        end = len(src)
        pos = 0
        unpack = _HEADER.unpack_from
        # A slice of bytes is bytes already (a bytearray's must be copied out); a Frame is
        # made as a tuple, without NamedTuple's __new__ (twice the cost, once per frame).
        copy = type(src) is not bytes
        while end - pos >= HEADER_SIZE:
            size, kind, call_id = unpack(src, pos)
            if kind not in KINDS:
                raise FrameError(description=f"unknown frame kind {kind}")
            start = pos + HEADER_SIZE
            if size > self._max:
                frames.append(FrameTooLarge(kind, call_id, size))
                if end - start >= size:
                    pos = start + size
                    continue
                self._skip = size - (end - start)
                return frames, end
            stop = start + size
            if stop > end:
                break
            payload = bytes(src[start:stop]) if copy else src[start:stop]
            frames.append(_new_frame(Frame, (kind, call_id, payload)))
            pos = stop
        return frames, pos
