"""The pure TTL bookkeeping (rony.store._ttl): plain bytes and a manual ``now``."""

from __future__ import annotations

import math

import pytest

from rony.store import NO_EXPIRY, NO_KEY, _ttl
from rony.store.errors import (
    IntegerOverflowError,
    InvalidTTLError,
    NotAnIntegerError,
    WrongTypeError,
)

NOW = 1_000_000


def test_encode_round_trip_and_header_is_big_endian() -> None:
    raw = _ttl.encode(b"v", 0x0102030405060708)
    assert raw[:8] == bytes(range(1, 9))
    assert _ttl.expiry_of(raw) == 0x0102030405060708
    assert _ttl.encode(b"v", 0) == bytes(8) + b"v"


def test_live_value_and_remaining_follow_redis_conventions() -> None:
    persistent = _ttl.encode(b"p", 0)
    timed = _ttl.encode(b"t", NOW + 1500)
    assert _ttl.live_value(None, NOW) is None
    assert _ttl.live_value(persistent, NOW) == b"p"
    assert _ttl.live_value(timed, NOW) == b"t"
    assert _ttl.live_value(timed, NOW + 1499) == b"t"
    assert _ttl.live_value(timed, NOW + 1500) is None  # expiry is exclusive
    assert _ttl.remaining(None, NOW) == NO_KEY == -2.0
    assert _ttl.remaining(persistent, NOW) == NO_EXPIRY == -1.0
    assert _ttl.remaining(timed, NOW) == 1.5
    assert _ttl.remaining(timed, NOW + 1500) == NO_KEY


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 1e300])
def test_check_ttl_refuses_nan_inf_and_huge(bad: float) -> None:
    with pytest.raises(InvalidTTLError):
        _ttl.check_ttl(bad)


@pytest.mark.parametrize("bad", ["1", None, True, b"1", [1]])
def test_check_ttl_refuses_wrong_types(bad: object) -> None:
    with pytest.raises(WrongTypeError):
        _ttl.check_ttl(bad)
    with pytest.raises(TypeError):  # also a TypeError for callers that expect that
        _ttl.check_ttl(bad)


def test_expiry_rounds_up_to_at_least_one_ms() -> None:
    assert _ttl.expiry_for(0.0000001, NOW) == NOW + 1
    assert _ttl.expiry_for(1.0, NOW) == NOW + 1000
    assert _ttl.expiry_for(0.0015, NOW) == NOW + 2


def test_on_set_index_changes() -> None:
    old_timed = _ttl.encode(b"a", NOW + 10)
    # plain set over a timed key: drop its index entry, add none
    assert _ttl.on_set(old_timed, b"b", 0, False, NOW) == (_ttl.encode(b"b", 0), NOW + 10, 0)
    # keep_ttl over a live timed key: same expiry, index untouched
    assert _ttl.on_set(old_timed, b"b", 0, True, NOW) == (_ttl.encode(b"b", NOW + 10), 0, 0)
    # keep_ttl over an expired key: no TTL, old index entry dropped
    assert _ttl.on_set(old_timed, b"b", 0, True, NOW + 10) == (_ttl.encode(b"b", 0), NOW + 10, 0)
    # new TTL on a missing key
    assert _ttl.on_set(None, b"b", NOW + 5, False, NOW) == (_ttl.encode(b"b", NOW + 5), 0, NOW + 5)


def test_on_expire_and_delete() -> None:
    old = _ttl.encode(b"a", NOW + 10)
    assert _ttl.on_expire(old, NOW + 20) == (_ttl.encode(b"a", NOW + 20), NOW + 10, NOW + 20)
    assert _ttl.on_expire(old, 0) == (_ttl.encode(b"a", 0), NOW + 10, 0)
    assert _ttl.on_delete(old) == (None, NOW + 10, 0)
    assert _ttl.on_delete(_ttl.encode(b"a", 0)) == (None, 0, 0)


def test_on_incr_keeps_ttl_and_restarts_expired() -> None:
    change, result = _ttl.on_incr(_ttl.encode(b"41", NOW + 10), 1, NOW)
    assert result == 42
    assert change == (_ttl.encode(b"42", NOW + 10), 0, 0)
    change, result = _ttl.on_incr(_ttl.encode(b"41", NOW + 10), 5, NOW + 10)  # expired
    assert result == 5
    assert change == (_ttl.encode(b"5", 0), NOW + 10, 0)
    assert _ttl.on_incr(None, -3, NOW)[1] == -3


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b"+1",
        b" 1",
        b"1 ",
        b"01",
        b"-0",
        b"1_0",
        b"1.0",
        b"abc",
        b"9223372036854775808",
        "٣".encode(),
        b"\xff",
    ],
)
def test_parse_int_refuses_what_redis_refuses(text: bytes) -> None:
    with pytest.raises(NotAnIntegerError):
        _ttl.parse_int(text)


def test_parse_int_limits_and_overflow() -> None:
    assert _ttl.parse_int(b"-9223372036854775808") == -(2**63)
    assert _ttl.parse_int(b"0") == 0
    with pytest.raises(IntegerOverflowError):
        _ttl.on_incr(_ttl.encode(b"9223372036854775807", 0), 1, NOW)


def test_key_range_and_prefix_end() -> None:
    assert _ttl.prefix_end(b"ab") == b"ac"
    assert _ttl.prefix_end(b"a\xff") == b"b"
    assert _ttl.prefix_end(b"\xff\xff") is None
    assert _ttl.key_range(b"", None, None) == (b"", None)
    assert _ttl.key_range(b"user:", None, None) == (b"user:", b"user;")
    assert _ttl.key_range(b"user:", b"user:5", b"zzz") == (b"user:5", b"user;")
    assert _ttl.key_range(b"user:", b"a", b"user:7") == (b"user:", b"user:7")
