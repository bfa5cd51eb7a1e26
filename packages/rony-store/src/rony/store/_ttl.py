"""TTL bookkeeping: pure functions, no I/O, the clock passed in as ``now`` (ms since the epoch).

Theory of operation
-------------------
Every stored value carries an 8-byte big-endian header: the absolute expiry time in
milliseconds since the Unix epoch, or 0 for "never expires". Absolute times mean a key's life
keeps running while the process is down. A key is *live* while ``expiry == 0 or expiry > now``;
every read checks that (lazy expiry), so an expired key is invisible at once.

Keys that expire are also listed in an index ordered by expiry (index key = the same 8 bytes,
index value = the user key), so the sweeper finds dead keys from the front of the index without
scanning the data. Each write computes, from the old raw value, which index entry to drop and
which to add; those rules live here so they are tested with plain bytes and a manual clock.

Return values of ``ttl()`` follow Redis: :data:`NO_KEY` (-2.0) when the key does not exist (or
has expired), :data:`NO_EXPIRY` (-1.0) when it exists without a TTL, else the remaining seconds
(a positive float with millisecond resolution).
"""

from __future__ import annotations

import math
import struct
from typing import Final, NamedTuple

from .errors import (
    IntegerOverflowError,
    InvalidTTLError,
    NotAnIntegerError,
    WrongTypeError,
)

HEADER_SIZE: Final = 8
PERSISTENT: Final = 0
"""Stored expiry meaning "never expires"."""
PERSISTENT_HEADER: Final = bytes(HEADER_SIZE)

NO_KEY: Final = -2.0
"""``ttl()`` of a key that does not exist or has expired (Redis: -2)."""
NO_EXPIRY: Final = -1.0
"""``ttl()`` of a key that exists and never expires (Redis: -1)."""

MAX_TTL: Final = 100 * 366 * 86_400.0
"""Largest TTL accepted, in seconds (about a century). Larger values are a typed error."""

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MAX_INT_TEXT: Final = 20
"""Longest base-10 text of a signed 64-bit integer ("-9223372036854775808")."""

_HEADER = struct.Struct(">Q")
pack_expiry = _HEADER.pack
"""8-byte big-endian encoding of an expiry (also the index key)."""
unpack_expiry = _HEADER.unpack_from


def check_ttl(ttl: object) -> float:
    """Validate a TTL argument (seconds) and return it as a float; may be <= 0.

    ``bool`` is refused although it is an ``int``: ``ttl=True`` is almost surely a bug.
    """
    if type(ttl) is bool or not isinstance(ttl, int | float):
        raise WrongTypeError(f"ttl must be int or float seconds, not {type(ttl).__name__}")
    value = float(ttl)
    if math.isnan(value) or math.isinf(value):
        raise InvalidTTLError(f"ttl must be a finite number of seconds, not {value!r}")
    if value > MAX_TTL:
        raise InvalidTTLError(f"ttl {value!r} s is larger than the maximum {MAX_TTL:.0f} s")
    return value


def expiry_for(ttl: float, now: int) -> int:
    """Absolute expiry (ms) of a positive, checked TTL given in seconds.

    Rounds up, so any positive TTL lives at least one millisecond.
    """
    return now + max(1, math.ceil(ttl * 1000.0))


def expiry_of(raw: bytes) -> int:
    """The expiry stored in a raw value (0 = persistent)."""
    return int(unpack_expiry(raw)[0])


def encode(value: bytes, expiry: int) -> bytes:
    """Raw stored form of ``value`` with ``expiry`` (0 = persistent)."""
    if expiry == PERSISTENT:
        return PERSISTENT_HEADER + value
    return pack_expiry(expiry) + value


def is_live(expiry: int, now: int) -> bool:
    return expiry == PERSISTENT or expiry > now


def live_value(raw: bytes | None, now: int) -> bytes | None:
    """The user value of a raw stored value, or None if absent or expired."""
    if raw is None:
        return None
    expiry = expiry_of(raw)
    if expiry != PERSISTENT and expiry <= now:
        return None
    return raw[HEADER_SIZE:]


def remaining(raw: bytes | None, now: int) -> float:
    """``ttl()`` of a raw stored value: NO_KEY, NO_EXPIRY or remaining seconds (> 0)."""
    if raw is None:
        return NO_KEY
    expiry = expiry_of(raw)
    if expiry == PERSISTENT:
        return NO_EXPIRY
    if expiry <= now:
        return NO_KEY
    return (expiry - now) / 1000.0


class Change(NamedTuple):
    """What one write does to a key: the new raw value (None = delete the key), the index entry
    to drop (old expiry, 0 = none) and the index entry to add (new expiry, 0 = none)."""

    raw: bytes | None
    drop_index: int
    add_index: int


def index_drop(old_raw: bytes | None) -> int:
    """Expiry whose index entry must go when ``old_raw`` is overwritten or deleted."""
    return PERSISTENT if old_raw is None else expiry_of(old_raw)


def on_set(old_raw: bytes | None, value: bytes, expiry: int, keep_ttl: bool, now: int) -> Change:
    """``set``: a new value with ``expiry`` (0 = none); with ``keep_ttl`` the live old key's
    expiry is kept instead (a missing or expired key gets none)."""
    drop = index_drop(old_raw)
    if keep_ttl:
        expiry = drop if drop != PERSISTENT and drop > now else PERSISTENT
    if drop == expiry:  # same index entry: leave it alone
        return Change(encode(value, expiry), PERSISTENT, PERSISTENT)
    return Change(encode(value, expiry), drop, expiry)


def on_delete(old_raw: bytes | None) -> Change:
    return Change(None, index_drop(old_raw), PERSISTENT)


def on_expire(old_raw: bytes, new_expiry: int) -> Change:
    """``expire``/``persist`` on a live key: same value, new expiry (0 = persist)."""
    drop = expiry_of(old_raw)
    if drop == new_expiry:
        return Change(old_raw, PERSISTENT, PERSISTENT)
    return Change(encode(old_raw[HEADER_SIZE:], new_expiry), drop, new_expiry)


def parse_int(value: bytes) -> int:
    """A stored counter: base-10 ASCII, optional leading '-', within int64 (Redis' rules)."""
    if not value or len(value) > MAX_INT_TEXT:
        raise NotAnIntegerError("value is not an integer or out of range")
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        raise NotAnIntegerError("value is not an integer or out of range") from None
    body = text[1:] if text.startswith("-") else text
    # int() would also take "+1", " 1", "1_0" and "٣"; Redis accepts none of them.
    if not body.isdigit() or not body.isascii() or (len(body) > 1 and body[0] == "0"):
        raise NotAnIntegerError("value is not an integer or out of range")
    number = int(text)
    if not INT64_MIN <= number <= INT64_MAX or text == "-0":
        raise NotAnIntegerError("value is not an integer or out of range")
    return number


def on_incr(old_raw: bytes | None, by: int, now: int) -> tuple[Change, int]:
    """``incr``: add ``by`` to a live counter (missing or expired = 0), keeping its TTL."""
    live = live_value(old_raw, now)
    current = 0 if live is None else parse_int(live)
    result = current + by
    if not INT64_MIN <= result <= INT64_MAX:
        raise IntegerOverflowError("increment or decrement would overflow")
    expiry = PERSISTENT if live is None or old_raw is None else expiry_of(old_raw)
    drop = index_drop(old_raw)
    text = str(result).encode("ascii")
    if drop == expiry:
        return Change(encode(text, expiry), PERSISTENT, PERSISTENT), result
    return Change(encode(text, expiry), drop, expiry), result


def prefix_end(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key starting with ``prefix`` (None: no such key)."""
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return None
    return stripped[:-1] + bytes((stripped[-1] + 1,))


def key_range(prefix: bytes, start: bytes | None, end: bytes | None) -> tuple[bytes, bytes | None]:
    """Half-open key range [low, high) of a scan by prefix and optional start/end."""
    low = prefix if start is None or start < prefix else start
    high = prefix_end(prefix) if prefix else None
    if end is not None and (high is None or end < high):
        high = end
    return low, high
