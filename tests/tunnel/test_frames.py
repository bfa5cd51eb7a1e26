"""The tunnel framing alone: plain bytes, any chunking, limits checked before allocation."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rony.core.errors import InvalidError, MalformedError
from rony.server.tunnel._frames import (
    CANCEL,
    ERROR,
    HEADER_SIZE,
    KINDS,
    REPLY,
    REQUEST,
    Frame,
    FrameDecoder,
    FrameError,
    FrameTooLarge,
    FrameTooLargeError,
    encode_frame,
)

LIMIT = 64

frames_st = st.lists(
    st.builds(
        Frame,
        kind=st.sampled_from(sorted(KINDS)),
        call_id=st.integers(0, 2**64 - 1),
        payload=st.binary(max_size=LIMIT),
    ),
    max_size=12,
)


def feed_in(decoder: FrameDecoder, data: bytes, cuts: list[int]) -> list[Frame | FrameTooLarge]:
    out: list[Frame | FrameTooLarge] = []
    bounds = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    for a, b in itertools.pairwise(bounds):
        out += decoder.feed(data[a:b])
    return out


def test_round_trip_of_one_frame() -> None:
    data = encode_frame(REQUEST, 7, b"hello", LIMIT)
    assert len(data) == HEADER_SIZE + 5
    assert FrameDecoder(LIMIT).feed(data) == [Frame(REQUEST, 7, b"hello")]


@given(frames_st)
def test_one_byte_at_a_time(frames: list[Frame]) -> None:
    data = b"".join(encode_frame(f.kind, f.call_id, f.payload, LIMIT) for f in frames)
    decoder = FrameDecoder(LIMIT)
    out: list[Frame | FrameTooLarge] = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    assert out == frames
    assert decoder.buffered == 0


@given(frames_st, st.lists(st.integers(0, 10_000), max_size=8))
def test_any_chunking_gives_the_same_frames(frames: list[Frame], cuts: list[int]) -> None:
    data = b"".join(encode_frame(f.kind, f.call_id, f.payload, LIMIT) for f in frames)
    assert feed_in(FrameDecoder(LIMIT), data, cuts) == frames


@given(frames_st, st.binary(min_size=1, max_size=HEADER_SIZE - 1))
def test_a_trailing_partial_frame_waits(frames: list[Frame], tail: bytes) -> None:
    data = b"".join(encode_frame(f.kind, f.call_id, f.payload, LIMIT) for f in frames)
    decoder = FrameDecoder(LIMIT)
    assert decoder.feed(data + tail) == frames
    assert decoder.buffered == len(tail)


@settings(max_examples=60)
@given(
    st.lists(st.tuples(st.integers(0, 3 * LIMIT), st.integers(0, 2**64 - 1)), max_size=8),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_oversized_frames_are_reported_in_place_and_skipped(
    sizes: list[tuple[int, int]], cuts: list[int]
) -> None:
    # The sender's limit is larger than the receiver's: the receiver reports each frame over
    # its own limit, keeps none of its payload, and still reads the frames after it.
    data = b"".join(encode_frame(REPLY, cid, b"\xab" * n, 3 * LIMIT) for n, cid in sizes)
    decoder = FrameDecoder(LIMIT)
    out = feed_in(decoder, data, cuts)
    expected = [
        FrameTooLarge(REPLY, cid, n) if n > LIMIT else Frame(REPLY, cid, b"\xab" * n)
        for n, cid in sizes
    ]
    assert out == expected
    assert decoder.buffered == 0


def test_an_oversized_payload_is_never_buffered() -> None:
    decoder = FrameDecoder(LIMIT)
    header = encode_frame(REQUEST, 1, b"x" * (LIMIT + 1), LIMIT + 1)[:HEADER_SIZE]
    # A header announcing 4 GiB: the decoder reports it at once and keeps nothing of what follows.
    huge = bytearray(header)
    huge[0:4] = (2**32 - 1).to_bytes(4, "big")
    assert decoder.feed(bytes(huge)) == [FrameTooLarge(REQUEST, 1, 2**32 - 1)]
    for _ in range(10):
        assert decoder.feed(b"\x00" * 100_000) == []
        assert decoder.buffered == 0


def test_sender_refuses_an_oversized_payload() -> None:
    with pytest.raises(FrameTooLargeError) as err:
        encode_frame(REPLY, 1, b"x" * (LIMIT + 1), LIMIT)
    assert isinstance(err.value, InvalidError)
    assert err.value.code == "E01"
    assert "max_frame_size" in err.value.description


def test_an_unknown_kind_breaks_the_stream() -> None:
    bad = bytearray(encode_frame(CANCEL, 3, b"", LIMIT))
    bad[4] = 99
    with pytest.raises(FrameError) as err:
        FrameDecoder(LIMIT).feed(encode_frame(ERROR, 1, b"e", LIMIT) + bytes(bad))
    assert isinstance(err.value, MalformedError)


@pytest.mark.parametrize("limit", [0, -1, 2**32])
def test_limits_are_checked(limit: int) -> None:
    with pytest.raises(ValueError, match="max_frame_size"):
        FrameDecoder(limit)


def test_bad_kind_or_call_id_is_refused_by_the_encoder() -> None:
    with pytest.raises(ValueError, match="kind"):
        encode_frame(0, 1, b"", LIMIT)
    with pytest.raises(ValueError, match="call id"):
        encode_frame(REQUEST, 2**64, b"", LIMIT)
