"""The system-clock ``get`` fast path: its cached "now" bound is exact to the millisecond.

``Store.get`` on a store with the default clock does not call ``system_clock()``; it compares
the raw header bytes against a bound cached per millisecond and validated by a ``time.time()``
reading (see ``_lmdb``). These tests drive that path with a fake system clock (both readings
derived from one nanosecond counter, as CPython derives them) and with the real clock.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rony.store import Store, _lmdb
from rony.store._options import system_clock

MS = 1_000_000


class FakeSystemClock:
    """One ns counter behind ``time.time_ns()`` and ``time.time()`` (CPython's conversion)."""

    def __init__(self, ns: int) -> None:
        self.ns = ns

    def time_ns(self) -> int:
        return self.ns

    def time(self) -> float:
        # _PyTime_AsSecondsDouble: exact when a whole second, else (double)ns / 1e9.
        if self.ns % 1_000_000_000 == 0:
            return float(self.ns // 1_000_000_000)
        return self.ns / 1e9


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeSystemClock:
    clock = FakeSystemClock(1_700_000_000_123 * MS + 456_789)
    monkeypatch.setattr(time, "time_ns", clock.time_ns)  # system_clock(), used by set()
    monkeypatch.setattr(_lmdb, "_time_ns", clock.time_ns)
    monkeypatch.setattr(_lmdb, "_time", clock.time)
    monkeypatch.setattr(_lmdb, "_now", (1.0, 0.0, b""))
    return clock


@pytest.fixture
def sys_store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "s", durability="fast", sweep_interval=None) as s:
        assert s.options.clock is system_clock
        yield s


def test_expiry_is_exact_around_the_millisecond_edge(
    fake: FakeSystemClock, sys_store: Store
) -> None:
    sys_store.set(b"t", b"v", ttl=0.005)
    sys_store.set(b"p", b"forever")
    expiry = fake.ns // MS + 5
    edge = expiry * MS  # the first ns at which the key is expired
    # Every ns offset near the edge (and near the cache window's margins), in random order so
    # the cached bound is sometimes from an earlier ms, sometimes from a later one.
    offsets = [*range(-3_000, 3_000, 37), -MS - 1, -MS, -1, 0, 1, MS - 1, MS, 2 * MS]
    offsets += [d + k for d in (-2_000, 2_000, MS - 2_000) for k in (-1, 0, 1)]
    rng = random.Random(7)
    for _ in range(3):
        rng.shuffle(offsets)
        for offset in offsets:
            fake.ns = edge + offset
            live = fake.ns // MS < expiry
            assert (sys_store.get(b"t") == b"v") is live, offset
            assert sys_store.get(b"p") == b"forever"


def test_clock_stepping_back_is_followed(fake: FakeSystemClock, sys_store: Store) -> None:
    sys_store.set(b"t", b"v", ttl=0.010)
    edge = (fake.ns // MS + 10) * MS
    fake.ns = edge + 5 * MS
    assert sys_store.get(b"t") is None
    fake.ns = edge - 1  # NTP stepped the clock back: the key is live again, as system_clock says
    assert sys_store.get(b"t") == b"v"
    fake.ns = edge
    assert sys_store.get(b"t") is None


def test_real_clock_never_returns_an_expired_key(sys_store: Store) -> None:
    sys_store.set(b"t", b"v", ttl=0.003)
    expiry = system_clock() + 3  # at most this (set read the clock first)
    checked = 0
    deadline = time.monotonic() + 5.0
    while checked < 1_000 and time.monotonic() < deadline:
        before = system_clock()
        value = sys_store.get(b"t")
        if before >= expiry:
            assert value is None
            checked += 1
    assert checked == 1_000
