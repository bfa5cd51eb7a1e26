"""An order-preserving, self-delimiting encoding of key tuples: :func:`pack` and :func:`unpack`.

    from rony.store import keys

    keys.pack(42, "alice")                    # bytes; store.scan(prefix=keys.pack(42)) lists
    keys.unpack(keys.pack(42, "alice"))       # (42, 'alice')   every key that starts with 42

For tuples whose parts have the same types position by position, the bytes compare as the
tuples do (``pack(a) < pack(b)`` exactly when ``a < b``), two different tuples never encode
alike, and ``pack(*t[:n])`` is a byte prefix of ``pack(*t)`` while being a prefix of no key
whose first ``n`` parts differ. :class:`Desc` wraps a part to sort it in descending order.

Go Rony joined key parts with no separator and wrote signed integers as two's complement
(inventory §14.12): ``("ab", "c")`` and ``("a", "bc")`` were one key, a prefix scan for ``"a"``
also returned ``"ab…"``, and -1 sorted after every positive number. Here every part carries a
type tag and its own end:

- ``int``: in the signed 64-bit range, tag ``0x10`` and ``n + 2**63`` as 8 bytes big-endian
  (one ``struct`` call: the hot path of repositories); beyond it (any size whose magnitude
  fits in ``MAX_INT_BYTES`` bytes) tag ``0x11`` with a length byte and the magnitude for
  positives, tag ``0x0F`` with ``255 - length`` and the complemented magnitude for negatives.
  So negatives sort before zero before positives, and within a sign by magnitude.
- ``float``: tag and the IEEE-754 double made sortable (sign bit flipped for positives, every
  bit flipped for negatives); -0.0 is written as 0.0 (they are equal) and NaN is refused (it
  has no place in an order).
- ``str`` (UTF-8; lone surrogates kept, which keeps code point order) and ``bytes``: tag, the
  bytes with ``0x00`` escaped as ``01 01`` and ``0x01`` as ``01 02``, then a ``0x00``
  terminator. The terminator is smaller than any byte of a longer string, so ``"a"`` <
  ``"a\\0"`` < ``"ab"``, and no string's encoding is a prefix of another's.
- ``bool``: tag and ``0``/``1``.

A :class:`Desc` part is the encoding of its value with every byte complemented: the order
flips and the part stays self-delimiting. This module is pure (no lmdb, no I/O).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeAlias

from .errors import InvalidArgumentError, WrongTypeError

__all__ = ["MAX_INT_BYTES", "Desc", "KeyDecodeError", "Part", "pack", "pack_part", "unpack"]

MAX_INT_BYTES: Final = 127
"""Most magnitude bytes of an int part (so |n| < 2**1016); a store key is at most 511 bytes
anyway."""

TAG_FALSE: Final = 0x02
TAG_TRUE: Final = 0x03
TAG_BIG_NEG: Final = 0x0F
TAG_INT: Final = 0x10
TAG_BIG_POS: Final = 0x11
TAG_FLOAT: Final = 0x20
TAG_BYTES: Final = 0x30
TAG_STR: Final = 0x31

_DOUBLE = struct.Struct(">d")
_U64 = struct.Struct(">Q")
_INT64 = struct.Struct(">BQ")
_SIGN = 1 << 63
_MASK64 = (1 << 64) - 1
_FLIP = bytes(255 - i for i in range(256))


class KeyDecodeError(InvalidArgumentError):
    """Bytes that :func:`pack` did not write (or a truncated key)."""


@dataclass(frozen=True, slots=True)
class Desc:
    """A key part that sorts in descending order: ``pack(Desc(2)) < pack(Desc(1))``."""

    value: int | float | str | bytes | bool

    def __lt__(self, other: object) -> bool:  # the reverse of the value's order
        if not isinstance(other, Desc):
            return NotImplemented
        return bool(other.value < self.value)  # type: ignore[operator]

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Desc):
            return NotImplemented
        return bool(other.value > self.value)  # type: ignore[operator]

    def __le__(self, other: object) -> bool:
        return self == other or self < other

    def __ge__(self, other: object) -> bool:
        return self == other or self > other


Part: TypeAlias = int | float | str | bytes | bool | Desc


def _escape(raw: bytes) -> bytes:
    # An int operand: ``b"\x00" in raw`` first tries the operand as an int and pays for the
    # TypeError (~0.15 us each, most of a str key part's cost).
    if 0 in raw or 1 in raw:
        raw = raw.replace(b"\x01", b"\x01\x02").replace(b"\x00", b"\x01\x01")
    return raw + b"\x00"


def encode_int(value: int) -> bytes:
    """The encoding of one int part (``value`` must be an int, not a bool)."""
    if -_SIGN <= value < _SIGN:
        return _INT64.pack(TAG_INT, value + _SIGN)
    if value > 0:
        n = (value.bit_length() + 7) >> 3
        if n > MAX_INT_BYTES:
            raise InvalidArgumentError(f"key int part has {n} bytes > MAX_INT_BYTES")
        return bytes((TAG_BIG_POS, n)) + value.to_bytes(n, "big")
    n = ((-value).bit_length() + 7) >> 3
    if n > MAX_INT_BYTES:
        raise InvalidArgumentError(f"key int part has {n} bytes > MAX_INT_BYTES")
    return bytes((TAG_BIG_NEG, 255 - n)) + ((1 << (8 * n)) - 1 + value).to_bytes(n, "big")


def encode_str(value: str) -> bytes:
    """The encoding of one str part."""
    return b"\x31" + _escape(value.encode("utf-8", "surrogatepass"))


def encode_bytes(value: bytes) -> bytes:
    """The encoding of one bytes part."""
    return b"\x30" + _escape(bytes(value))


def encode_bool(value: bool) -> bytes:
    return b"\x03" if value else b"\x02"


def encode_float(value: float) -> bytes:
    if math.isnan(value):
        raise InvalidArgumentError("a key part cannot be NaN (it has no order)")
    (bits,) = _U64.unpack(_DOUBLE.pack(value + 0.0 if value == 0 else value))
    bits = bits ^ _MASK64 if bits & _SIGN else bits | _SIGN
    return b"\x20" + _U64.pack(bits)


def pack_part(part: Part) -> bytes:
    """The encoding of one part (``pack(a, b) == pack_part(a) + pack_part(b)``)."""
    kind = type(part)
    if kind is int:
        return encode_int(part)  # type: ignore[arg-type]
    if kind is str:
        return encode_str(part)  # type: ignore[arg-type]
    if kind is bytes:
        return encode_bytes(part)  # type: ignore[arg-type]
    if kind is bool:
        return encode_bool(part)  # type: ignore[arg-type]
    if kind is float:
        return encode_float(part)  # type: ignore[arg-type]
    if kind is Desc:
        assert isinstance(part, Desc)
        if isinstance(part.value, Desc):
            raise WrongTypeError("Desc(Desc(...)) is not a key part")
        return pack_part(part.value).translate(_FLIP)
    # Subclasses (IntEnum, a str subclass, bytearray...) are written as their base type.
    for base, fn in _BASES:
        if isinstance(part, base):
            encoded: bytes = fn(part)
            return encoded
    raise WrongTypeError(
        f"a key part is int, float, str, bytes, bool or Desc, not {type(part).__name__}"
    )


_BASES: tuple[tuple[Any, Callable[[Any], bytes]], ...] = (
    (bool, encode_bool),
    (int, lambda v: encode_int(int(v))),
    (float, lambda v: encode_float(float(v))),
    (str, lambda v: encode_str(str(v))),
    ((bytes, bytearray, memoryview), lambda v: encode_bytes(bytes(v))),
)


def pack(*parts: Part) -> bytes:
    """The key of ``parts`` (see the module's docstring for the order it keeps)."""
    return b"".join([pack_part(p) for p in parts])


def _unescape(data: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    end = len(data)
    while True:
        nul = data.find(b"\x00", pos)
        if nul < 0:
            raise KeyDecodeError("a string part has no terminator")
        chunk = data[pos:nul]
        if b"\x01" in chunk:
            i = 0
            while i < len(chunk):
                b = chunk[i]
                if b == 1:
                    if i + 1 >= len(chunk) or chunk[i + 1] not in (1, 2):
                        raise KeyDecodeError("a bad escape in a string part")
                    out.append(chunk[i + 1] - 1)
                    i += 2
                else:
                    out.append(b)
                    i += 1
        else:
            out += chunk
        if nul + 1 > end:  # pragma: no cover - find() bounds it
            raise KeyDecodeError("a string part has no terminator")
        return bytes(out), nul + 1


_TAGS = frozenset(
    {TAG_FALSE, TAG_TRUE, TAG_BIG_NEG, TAG_INT, TAG_BIG_POS, TAG_FLOAT, TAG_BYTES, TAG_STR}
)


def _part(data: bytes, pos: int) -> tuple[Part, int]:
    if pos >= len(data):
        raise KeyDecodeError("a key ends inside a part")
    tag = data[pos]
    pos += 1
    if tag == TAG_INT:
        body = data[pos : pos + 8]
        if len(body) != 8:
            raise KeyDecodeError("a truncated int part")
        return _U64.unpack(body)[0] - _SIGN, pos + 8
    if tag in (TAG_BIG_POS, TAG_BIG_NEG):
        if pos >= len(data):
            raise KeyDecodeError("an int part has no length")
        n = data[pos] if tag == TAG_BIG_POS else 255 - data[pos]
        body = data[pos + 1 : pos + 1 + n]
        if len(body) != n or n > MAX_INT_BYTES:
            raise KeyDecodeError("a truncated int part")
        magnitude = int.from_bytes(body, "big")
        value = magnitude if tag == TAG_BIG_POS else magnitude - ((1 << (8 * n)) - 1)
        if encode_int(value) != data[pos - 1 : pos + 1 + n]:
            raise KeyDecodeError("an int part that is not in canonical form")
        return value, pos + 1 + n
    if tag in (TAG_STR, TAG_BYTES):
        raw, pos = _unescape(data, pos)
        if tag == TAG_BYTES:
            return raw, pos
        try:
            return raw.decode("utf-8", "surrogatepass"), pos
        except UnicodeDecodeError:
            raise KeyDecodeError("a str part is not UTF-8") from None
    if tag in (TAG_FALSE, TAG_TRUE):
        return tag == TAG_TRUE, pos
    if tag == TAG_FLOAT:
        body = data[pos : pos + 8]
        if len(body) != 8:
            raise KeyDecodeError("a truncated float part")
        (bits,) = _U64.unpack(body)
        bits = bits ^ _SIGN if bits & _SIGN else bits ^ _MASK64
        number: float = _DOUBLE.unpack(_U64.pack(bits))[0]
        if math.isnan(number) or (number == 0 and math.copysign(1.0, number) < 0):
            raise KeyDecodeError("a float part pack() never writes (NaN or -0.0)")
        return number, pos + 8
    if 255 - tag in _TAGS:
        # A Desc part: decode the complemented bytes up to where the part ends.
        flipped = data[pos - 1 :].translate(_FLIP)
        inner, used = _part(flipped, 0)
        assert not isinstance(inner, Desc)
        return Desc(inner), pos - 1 + used
    raise KeyDecodeError(f"unknown key part tag 0x{tag:02x}")


def unpack(data: bytes) -> tuple[Part, ...]:
    """The parts :func:`pack` encoded into ``data`` (``KeyDecodeError`` if it did not)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise WrongTypeError(f"unpack() takes bytes, not {type(data).__name__}")
    data = bytes(data)
    parts: list[Part] = []
    pos = 0
    while pos < len(data):
        part, pos = _part(data, pos)
        parts.append(part)
    return tuple(parts)
