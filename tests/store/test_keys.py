"""rony.store.keys: the order of the bytes is the order of the tuples; round trip; no two keys
confused; a prefix of parts is a prefix of bytes (and of nothing else)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rony.store import keys
from rony.store.errors import InvalidArgumentError, WrongTypeError
from rony.store.keys import MAX_INT_BYTES, Desc, KeyDecodeError, pack, unpack

INTS = st.integers(min_value=-(1 << 200), max_value=1 << 200) | st.integers(-300, 300)
FLOATS = st.floats(allow_nan=False)
TEXT = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("\x00\x01\x02a"))
BYTES = st.binary(max_size=12) | st.lists(st.sampled_from(b"\x00\x01\x02\xff"), max_size=6).map(
    bytes
)
SCALARS = [INTS, FLOATS, TEXT, BYTES, st.booleans()]


def _schema_tuples() -> st.SearchStrategy[tuple[tuple[Any, ...], tuple[Any, ...]]]:
    """Two tuples of one random schema (types position by position), possibly of different
    lengths (so one may be a prefix of the other), some parts Desc."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        n = draw(st.integers(0, 4))
        schema = [(draw(st.sampled_from(SCALARS)), draw(st.booleans())) for _ in range(n)]

        def one() -> tuple[Any, ...]:
            size = draw(st.integers(0, n))
            out = []
            for strat, desc in schema[:size]:
                value: Any = draw(strat)
                out.append(Desc(value) if desc else value)
            return tuple(out)

        return one(), one()

    return build()


def _norm(t: tuple[Any, ...]) -> tuple[Any, ...]:
    # -0.0 == 0.0 and is written as 0.0; everything else round-trips exactly.
    return tuple(_norm_part(p) for p in t)


def _norm_part(p: Any) -> Any:
    if isinstance(p, Desc):
        return Desc(_norm_part(p.value))
    return 0.0 if type(p) is float and p == 0.0 else p


@given(_schema_tuples())
def test_byte_order_is_tuple_order(pair: tuple[tuple[Any, ...], tuple[Any, ...]]) -> None:
    a, b = pair
    ka, kb = pack(*a), pack(*b)
    assert (ka < kb) == (a < b)
    assert (ka == kb) == (_norm(a) == _norm(b))


@given(_schema_tuples())
def test_round_trip(pair: tuple[tuple[Any, ...], tuple[Any, ...]]) -> None:
    for t in pair:
        assert unpack(pack(*t)) == _norm(t)


@given(_schema_tuples())
def test_a_prefix_of_parts_is_exactly_a_prefix_of_bytes(
    pair: tuple[tuple[Any, ...], tuple[Any, ...]],
) -> None:
    a, b = pair
    is_part_prefix = _norm(b[: len(a)]) == _norm(a)
    assert pack(*b).startswith(pack(*a)) == is_part_prefix


@given(st.lists(st.one_of(*SCALARS), max_size=5), st.lists(st.one_of(*SCALARS), max_size=5))
def test_mixed_types_never_confused(a: list[Any], b: list[Any]) -> None:
    # Any two tuples, any types: equal bytes only for the same parts of the same types.
    same = len(a) == len(b) and all(
        type(x) is type(y) and (x == y or (isinstance(x, float) and x == y == 0))
        for x, y in zip(a, b, strict=True)
    )
    assert (pack(*a) == pack(*b)) == same


def test_negative_ints_sort_before_positive_ones() -> None:
    values = [-(1 << 64) - 1, -(1 << 64), -(1 << 63) - 1, -(1 << 63), -257, -256, -1, 0, 1, 256,
              (1 << 63) - 1, 1 << 63, 1 << 64]  # fmt: skip
    assert sorted(values, key=pack) == values
    assert [unpack(pack(v))[0] for v in values] == values


def test_prefix_strings() -> None:
    # Go Rony's raw concatenation made ("ab", "c") and ("a", "bc") one key.
    assert sorted(["ab", "a\x00", "a", "a\x01", "b", ""], key=pack) == [
        "",
        "a",
        "a\x00",
        "a\x01",
        "ab",
        "b",
    ]
    assert pack("ab", "c") != pack("a", "bc")
    assert not pack("ab").startswith(pack("a"))
    assert pack(b"a", b"") != pack(b"a\x00")


def test_floats_sort_and_refuse_nan() -> None:
    values = [-math.inf, -1e300, -1.0, -5e-324, 0.0, 5e-324, 1.0, math.inf]
    assert sorted(reversed(values), key=pack) == values
    assert pack(-0.0) == pack(0.0)
    with pytest.raises(InvalidArgumentError, match="NaN"):
        pack(math.nan)


def test_desc_reverses_the_order() -> None:
    assert sorted([1, -3, 2], key=lambda v: pack(Desc(v))) == [2, 1, -3]
    assert sorted(["a", "ab", "b"], key=lambda v: pack(Desc(v))) == ["b", "ab", "a"]
    assert unpack(pack(Desc("x"), 1)) == (Desc("x"), 1)


def test_subclasses_are_written_as_their_base() -> None:
    class Name(str):
        pass

    assert pack(Name("x"), bytearray(b"y")) == pack("x", b"y")  # type: ignore[arg-type]
    assert pack(True) != pack(1)


def test_bad_parts_are_typed_errors() -> None:
    with pytest.raises(WrongTypeError, match="not NoneType"):
        pack(None)  # type: ignore[arg-type]
    with pytest.raises(WrongTypeError):
        pack(Desc(Desc(1)))  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="MAX_INT_BYTES"):
        pack(1 << (8 * MAX_INT_BYTES))
    pack((1 << (8 * MAX_INT_BYTES)) - 1)  # the largest that fits
    with pytest.raises(WrongTypeError):
        unpack("text")  # type: ignore[arg-type]


GARBAGE = [
    b"\x10\x00",  # truncated int
    b"\x11",  # no length
    b"\x11\x02\x01",  # truncated big int
    b"\x11\x01\x05",  # non-canonical int (fits in 64 bits)
    b"\x0f\xfe\x00",  # non-canonical negative big int
    b"\x31abc",  # no terminator
    b"\x31a\x01\x05\x00",  # bad escape
    b"\x20\x00",  # truncated float
    b"\x20\xff\xf8\x00\x00\x00\x00\x00\x00",  # NaN
    b"\x20\x7f\xff\xff\xff\xff\xff\xff\xff",  # -0.0
    b"\x77",  # unknown tag
]


@pytest.mark.parametrize("data", GARBAGE)
def test_garbage_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(KeyDecodeError):
        unpack(data)


@given(st.binary(max_size=20))
def test_unpack_of_any_bytes_is_a_value_or_a_decode_error(data: bytes) -> None:
    try:
        parts = unpack(data)
    except KeyDecodeError:
        return
    assert pack(*parts) == data  # whatever decodes is canonical


def test_the_module_is_pure() -> None:
    assert "lmdb" not in keys.__dict__
