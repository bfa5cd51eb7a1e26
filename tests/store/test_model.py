"""Model-based test: the store against a dict-with-expiry model under a manual clock."""

from __future__ import annotations

import shutil
import tempfile

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from rony.store import NO_EXPIRY, NO_KEY, Store
from rony.store.errors import NotAnIntegerError

from .conftest import ManualClock

KEYS = st.sampled_from([b"a", b"ab", b"b", b"b\x00", b"c", b"\xff"])
VALUES = st.sampled_from([b"", b"x", b"7", b"-3", b"long" * 10])
TTLS = st.sampled_from([0.001, 0.5, 1.0, 2.5])


class StoreModel(RuleBasedStateMachine):
    """``model``: key -> (value, expiry ms or None); expired entries linger like in LMDB."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="rony-store-model-")
        self.clock = ManualClock()
        self.store = Store.open(
            self.dir, clock=self.clock, sweep_interval=None, durability="fast", scan_chunk=2
        )
        self.model: dict[bytes, tuple[bytes, int | None]] = {}

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def live(self) -> dict[bytes, bytes]:
        now = self.clock.now
        return {k: v for k, (v, exp) in self.model.items() if exp is None or exp > now}

    @rule(key=KEYS, value=VALUES, ttl=st.none() | TTLS, keep=st.booleans())
    def set(self, key: bytes, value: bytes, ttl: float | None, keep: bool) -> None:
        if ttl is not None and keep:
            keep = False
        self.store.set(key, value, ttl=ttl, keep_ttl=keep)
        old = self.model.get(key)
        if keep:
            exp = old[1] if old is not None and key in self.live() else None
        else:
            exp = None if ttl is None else self.clock.now + max(1, round(ttl * 1000))
        self.model[key] = (value, exp)

    @rule(key=KEYS)
    def delete(self, key: bytes) -> None:
        assert self.store.delete(key) == (key in self.live())
        self.model.pop(key, None)

    @rule(key=KEYS, ttl=st.sampled_from([-1.0, 0.0, 0.25, 3.0]))
    def expire(self, key: bytes, ttl: float) -> None:
        live = key in self.live()
        assert self.store.expire(key, ttl) == live
        if live:
            if ttl <= 0:
                del self.model[key]
            else:
                self.model[key] = (self.model[key][0], self.clock.now + round(ttl * 1000))

    @rule(key=KEYS)
    def persist(self, key: bytes) -> None:
        live = key in self.live()
        had_ttl = live and self.model[key][1] is not None
        assert self.store.persist(key) == had_ttl
        if had_ttl:
            self.model[key] = (self.model[key][0], None)

    @rule(key=KEYS, by=st.integers(-5, 5))
    def incr(self, key: bytes, by: int) -> None:
        live = self.live()
        current = live.get(key, b"0")
        try:
            number = int(current)
            ok = current == str(number).encode()
        except ValueError:
            ok = False
        if not ok:
            try:
                self.store.incr(key, by)
            except NotAnIntegerError:
                return
            raise AssertionError(f"incr accepted {current!r}")
        assert self.store.incr(key, by) == number + by
        exp = self.model[key][1] if key in live else None
        self.model[key] = (str(number + by).encode(), exp)

    @rule(items=st.dictionaries(KEYS, VALUES, max_size=3), ttl=st.none() | TTLS)
    def set_many(self, items: dict[bytes, bytes], ttl: float | None) -> None:
        self.store.set_many(items, ttl=ttl)
        for k, v in items.items():
            exp = None if ttl is None else self.clock.now + max(1, round(ttl * 1000))
            self.model[k] = (v, exp)

    @rule(seconds=st.sampled_from([0.001, 0.25, 0.5, 1.0, 3.0]))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @precondition(lambda self: bool(self.model))
    @rule()
    def sweep(self) -> None:
        now = self.clock.now
        expired = [k for k, (_, exp) in self.model.items() if exp is not None and exp <= now]
        assert self.store.sweep() == len(expired)
        for k in expired:
            del self.model[k]
        assert self.store.stats().entries == len(self.model)

    @rule(key=KEYS)
    def read_one(self, key: bytes) -> None:
        live = self.live()
        assert self.store.get(key) == live.get(key)
        assert self.store.exists(key) == (key in live)
        ttl = self.store.ttl(key)
        if key not in live:
            assert ttl == NO_KEY
        elif self.model[key][1] is None:
            assert ttl == NO_EXPIRY
        else:
            assert ttl == (self.model[key][1] - self.clock.now) / 1000  # type: ignore[operator]

    @rule(prefix=st.sampled_from([b"", b"a", b"b", b"\xff"]), reverse=st.booleans())
    def scan(self, prefix: bytes, reverse: bool) -> None:
        expect = sorted((k, v) for k, v in self.live().items() if k.startswith(prefix))
        if reverse:
            expect.reverse()
        assert list(self.store.scan(prefix, reverse=reverse)) == expect
        assert self.store.count(prefix) == len(expect)

    @invariant()
    def everything_matches(self) -> None:
        live = self.live()
        assert dict(self.store.scan()) == live
        assert self.store.count() == len(live)
        with self.store.view() as txn:
            assert txn.get_many(sorted(self.model)) == [live.get(k) for k in sorted(self.model)]
        stats = self.store.stats()
        assert stats.entries == len(self.model)
        assert stats.with_ttl == sum(1 for _, exp in self.model.values() if exp is not None)


StoreModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestStoreModel = StoreModel.TestCase
