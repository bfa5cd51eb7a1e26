"""``Store.get`` takes its cached read transaction from a pool shared by all threads (see
``_lmdb``): a slot has one user at a time, goes back after every read (also a failed one),
never serves a snapshot older than a commit that returned, and the pool stays as small as the
number of threads that were inside ``get`` at once."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rony.store import Store
from rony.store.errors import InvalidKeyError, StoreClosedError, WrongTypeError


def test_one_thread_reuses_one_slot(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", durability="fast", sweep_interval=None) as s:
        s.set(b"k", b"v")
        for _ in range(100):
            assert s.get(b"k") == b"v"
            assert s.get(b"missing") is None
        assert len(s._pool) == 1


def test_failed_reads_put_their_slot_back(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", durability="fast", sweep_interval=None) as s:
        s.set(b"k", b"v")
        assert s.get(b"k") == b"v"
        for bad, error in ((b"", InvalidKeyError), ("text", WrongTypeError), (1, WrongTypeError)):
            with pytest.raises(error):
                s.get(bad)  # type: ignore[arg-type]
        assert len(s._pool) == 1
        assert s.get(b"k") == b"v"
    with pytest.raises(StoreClosedError):
        s.get(b"k")
    assert len(s._pool) == 1


def test_a_slot_cached_by_one_thread_serves_another_the_latest_commit(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", durability="fast", sweep_interval=None) as s:
        s.set(b"k", b"old")
        seen: list[bytes | None] = []
        t = threading.Thread(target=lambda: seen.append(s.get(b"k")))
        t.start()
        t.join()
        assert seen == [b"old"]
        s.set(b"k", b"new")  # the pooled slot still holds the pre-commit snapshot
        assert s.get(b"k") == b"new"
        assert len(s._pool) == 1


def test_concurrent_readers_and_a_writer(tmp_path: Path) -> None:
    """Every reader sees, for its own key, at least the last value it knows was committed, and
    the pool never holds more slots than threads."""
    readers = 6
    with Store.open(tmp_path / "s", durability="fast", sweep_interval=None) as s:
        for r in range(readers):
            s.set(b"r%d" % r, b"%08d" % 0)
        committed = [0] * readers
        stop = threading.Event()
        failures: list[BaseException] = []
        start = threading.Barrier(readers + 1)

        def reader(r: int) -> None:
            key = b"r%d" % r
            try:
                # One read before the writer starts: on a loaded machine the writer could
                # otherwise finish before a reader ran at all (then the pool was empty).
                assert s.get(key) == b"%08d" % 0
                start.wait()
                while not stop.is_set():
                    floor = committed[r]
                    value = s.get(key)
                    assert value is not None
                    assert int(value) >= floor, (r, value, floor)
            except BaseException as exc:
                failures.append(exc)
                start.abort()  # (the writer is not left waiting)

        threads = [threading.Thread(target=reader, args=(r,)) for r in range(readers)]
        for t in threads:
            t.start()
        start.wait()
        for i in range(1, 300):
            r = i % readers
            s.set(b"r%d" % r, b"%08d" % i)
            committed[r] = i
        stop.set()
        for t in threads:
            t.join()
        assert not failures, failures
        assert 1 <= len(s._pool) <= readers + 1
        slots = list(s._pool)
        assert len({id(slot) for slot in slots}) == len(slots)
        assert not any(slot.busy for slot in slots)
