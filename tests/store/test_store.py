"""Store behaviour on real LMDB folders: key/value API, TTL, transactions, batches, growth."""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rony.store import NO_EXPIRY, NO_KEY, ReadTxn, Store, WriteTxn
from rony.store._writer import GroupCommitter
from rony.store.errors import (
    IntegerOverflowError,
    InvalidArgumentError,
    InvalidTTLError,
    MapGrownError,
    NotAnIntegerError,
    SnapshotLostError,
    StorageError,
    StoreClosedError,
    TransactionError,
)

from .conftest import ManualClock


@pytest.fixture(params=["durable", "fast"])
def any_store(request: pytest.FixtureRequest, store: Store, fast_store: Store) -> Store:
    return store if request.param == "durable" else fast_store


def test_set_get_delete_exists(any_store: Store) -> None:
    s = any_store
    assert s.get(b"k") is None
    assert not s.exists(b"k")
    s.set(b"k", b"v1")
    assert s.get(b"k") == b"v1"
    assert s.exists(b"k")
    s.set(b"k", bytearray(b"v2"))
    assert s.get(b"k") == b"v2"
    s.set(b"empty", b"")
    assert s.get(b"empty") == b""
    assert s.delete(b"k") is True
    assert s.delete(b"k") is False
    assert s.get(b"k") is None


def test_ttl_lazy_expiry_and_conventions(any_store: Store, clock: ManualClock) -> None:
    s = any_store
    s.set(b"p", b"1")
    s.set(b"t", b"2", ttl=1.5)
    assert s.ttl(b"missing") == NO_KEY
    assert s.ttl(b"p") == NO_EXPIRY
    assert s.ttl(b"t") == 1.5
    clock.advance(1.499)
    assert s.get(b"t") == b"2"
    assert s.ttl(b"t") == pytest.approx(0.001)
    clock.advance(0.001)
    # invisible to every read at once, before any sweep
    assert s.get(b"t") is None
    assert not s.exists(b"t")
    assert s.ttl(b"t") == NO_KEY
    assert s.get_many([b"t", b"p"]) == [None, b"1"]
    assert list(s.scan()) == [(b"p", b"1")]
    assert s.count() == 1
    assert s.stats().expired_unswept == 1
    with s.view() as txn:
        assert txn.get(b"t") is None
        assert txn.ttl(b"t") == NO_KEY


def test_set_clears_ttl_unless_keep_ttl(any_store: Store, clock: ManualClock) -> None:
    s = any_store
    s.set(b"k", b"a", ttl=10)
    s.set(b"k", b"b", keep_ttl=True)
    assert s.get(b"k") == b"b"
    assert s.ttl(b"k") == 10.0
    s.set(b"k", b"c")
    assert s.ttl(b"k") == NO_EXPIRY
    clock.advance(11)
    assert s.get(b"k") == b"c"  # the cleared TTL's index entry must not delete it
    assert s.sweep() == 0
    assert s.get(b"k") == b"c"
    s.set(b"new", b"x", keep_ttl=True)  # keep_ttl on a missing key: no TTL
    assert s.ttl(b"new") == NO_EXPIRY


def test_non_positive_ttl_set_refused_expire_deletes(any_store: Store) -> None:
    s = any_store
    for bad in (0, -1, -0.5):
        with pytest.raises(InvalidTTLError):
            s.set(b"k", b"v", ttl=bad)
    assert s.get(b"k") is None
    s.set(b"k", b"v")
    assert s.expire(b"k", 0) is True
    assert s.get(b"k") is None
    s.set(b"k", b"v")
    assert s.expire(b"k", -5) is True
    assert s.get(b"k") is None
    assert s.expire(b"k", 5) is False  # missing key
    with pytest.raises(InvalidArgumentError):
        s.set(b"k", b"v", ttl=1, keep_ttl=True)


def test_expire_persist(any_store: Store, clock: ManualClock) -> None:
    s = any_store
    s.set(b"k", b"v")
    assert s.persist(b"k") is False  # no TTL to remove
    assert s.expire(b"k", 2) is True
    assert s.ttl(b"k") == 2.0
    assert s.expire(b"k", 5) is True
    assert s.ttl(b"k") == 5.0
    assert s.persist(b"k") is True
    assert s.ttl(b"k") == NO_EXPIRY
    clock.advance(6)
    assert s.get(b"k") == b"v"
    s.expire(b"k", 1)
    clock.advance(1)
    assert s.expire(b"k", 10) is False  # expired keys cannot be revived
    assert s.persist(b"k") is False
    assert s.get(b"k") is None


def test_incr_keeps_ttl_and_validates(any_store: Store, clock: ManualClock) -> None:
    s = any_store
    assert s.incr(b"n") == 1
    assert s.incr(b"n", 41) == 42
    assert s.incr(b"n", -50) == -8
    assert s.get(b"n") == b"-8"
    s.expire(b"n", 3)
    assert s.incr(b"n") == -7
    assert s.ttl(b"n") == 3.0
    clock.advance(3)
    assert s.incr(b"n") == 1  # expired counts as missing
    assert s.ttl(b"n") == NO_EXPIRY
    s.set(b"text", b"abc")
    with pytest.raises(NotAnIntegerError):
        s.incr(b"text")
    assert s.get(b"text") == b"abc"
    s.set(b"big", b"9223372036854775807")
    with pytest.raises(IntegerOverflowError):
        s.incr(b"big")
    assert s.get(b"big") == b"9223372036854775807"


def test_scan_prefix_range_reverse_limit(any_store: Store, clock: ManualClock) -> None:
    s = any_store
    keys = [b"a", b"user:1", b"user:2", b"user:3", b"user;", b"z", b"\xff\xff"]
    s.set_many([(k, k.upper()) for k in keys])
    s.set(b"user:25", b"gone", ttl=1)
    clock.advance(2)
    assert [k for k, _ in s.scan()] == keys
    assert list(s.keys(b"user:")) == [b"user:1", b"user:2", b"user:3"]
    assert list(s.keys(b"user:", reverse=True)) == [b"user:3", b"user:2", b"user:1"]
    assert list(s.keys(start=b"user:2", end=b"z")) == [b"user:2", b"user:3", b"user;"]
    assert list(s.keys(start=b"user:2", end=b"z", reverse=True)) == [
        b"user;",
        b"user:3",
        b"user:2",
    ]
    assert list(s.keys(limit=2)) == [b"a", b"user:1"]
    assert list(s.keys(reverse=True, limit=2)) == [b"\xff\xff", b"z"]
    assert list(s.keys(b"\xff")) == [b"\xff\xff"]
    assert list(s.keys(start=b"z", end=b"a")) == []
    assert s.count(b"user:") == 3
    assert s.count(start=b"user:2", end=b"z") == 3
    assert s.count() == len(keys)
    assert dict(s.scan(b"user:"))[b"user:2"] == b"USER:2"


def test_scan_crosses_chunks_and_skips_expired(tmp_path: Path, clock: ManualClock) -> None:
    with Store.open(tmp_path / "s", clock=clock, scan_chunk=3, sweep_interval=None) as s:
        s.set_many([(b"k%03d" % i, b"v") for i in range(20)])
        s.set_many([(b"k%03d" % i, b"v") for i in range(0, 20, 2)], ttl=1)
        clock.advance(1)
        odd = [b"k%03d" % i for i in range(1, 20, 2)]
        assert list(s.keys()) == odd
        assert list(s.keys(reverse=True)) == odd[::-1]
        assert list(s.keys(limit=4)) == odd[:4]
        with s.view() as txn:
            assert list(txn.keys()) == odd
            assert list(txn.keys(reverse=True)) == odd[::-1]


def test_batches_are_atomic_and_typed(any_store: Store) -> None:
    s = any_store
    s.set_many({b"a": b"1", b"b": b"2"})
    s.set_many([(b"c", b"3")], ttl=5)
    assert s.get_many([b"a", b"b", b"c", b"d"]) == [b"1", b"2", b"3", None]
    assert s.ttl(b"c") == 5.0
    with pytest.raises(TypeError):
        s.set_many([(b"x", b"1"), (b"y", "not bytes")])  # type: ignore[list-item]
    assert s.get(b"x") is None  # nothing of a refused batch is written
    assert s.delete_many([b"a", b"b", b"nope"]) == 2
    assert s.get_many([b"a", b"b"]) == [None, None]


def test_update_commits_atomically_and_rolls_back(any_store: Store, clock: ManualClock) -> None:
    s = any_store
    s.set(b"balance", b"10")
    with s.update() as txn:
        assert isinstance(txn, WriteTxn)
        txn.incr(b"balance", -3)
        txn.set(b"log", b"spent 3", ttl=60)
        assert txn.get(b"balance") == b"7"  # sees its own writes
        assert txn.ttl(b"log") == 60.0
    assert s.get(b"balance") == b"7"

    def spend_all_then_fail() -> None:
        with s.update() as txn:
            txn.incr(b"balance", -7)
            txn.delete(b"log")
            raise RuntimeError("abort")

    with pytest.raises(RuntimeError):
        spend_all_then_fail()
    assert s.get(b"balance") == b"7"
    assert s.get(b"log") == b"spent 3"
    with pytest.raises(TransactionError):
        txn.get(b"balance")  # a finished transaction is dead


def test_view_is_a_snapshot(any_store: Store) -> None:
    s = any_store
    s.set(b"k", b"old")
    with s.view() as txn:
        assert isinstance(txn, ReadTxn)
        s.set(b"k", b"new")
        s.set(b"other", b"x")
        assert txn.get(b"k") == b"old"
        assert txn.get(b"other") is None
        assert not hasattr(txn, "set")
    assert s.get(b"k") == b"new"


def test_store_write_inside_update_of_same_thread_is_refused(any_store: Store) -> None:
    with any_store.update() as txn:
        txn.set(b"a", b"1")
        with pytest.raises(TransactionError):
            any_store.set(b"b", b"2")  # would deadlock on the writer lock
    assert any_store.get(b"a") == b"1"


def test_write_txn_used_from_another_thread_is_refused(any_store: Store) -> None:
    errors: list[BaseException] = []
    with any_store.update() as txn:

        def other() -> None:
            try:
                txn.set(b"x", b"1")
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert len(errors) == 1
    assert isinstance(errors[0], TransactionError)


def test_transact_runs_user_code_atomically(any_store: Store) -> None:
    s = any_store
    s.set(b"a", b"1")

    def move(txn: WriteTxn) -> int:
        value = txn.get(b"a")
        assert value is not None
        txn.delete(b"a")
        txn.set(b"b", value)
        return len(value)

    assert s.transact(move) == 1
    assert s.get_many([b"a", b"b"]) == [None, b"1"]

    def fail(txn: WriteTxn) -> None:
        txn.set(b"c", b"3")
        raise KeyError("nope")

    with pytest.raises(KeyError):
        s.transact(fail)
    assert s.get(b"c") is None


@pytest.mark.parametrize("error", [FileNotFoundError, TypeError])
def test_transact_user_exception_propagates_unchanged(
    any_store: Store, error: type[Exception]
) -> None:
    """User code's exceptions are not mistaken for LMDB's (an OSError is no StorageError)."""
    raised = error("from user code")

    def fail(txn: WriteTxn) -> None:
        txn.set(b"c", b"3")
        raise raised

    with pytest.raises(error) as caught:
        any_store.transact(fail)
    assert caught.value is raised
    assert any_store.get(b"c") is None


def test_group_commit_hands_each_caller_its_own_exception() -> None:
    """Two ops failing in one batch: each caller gets the very exception its code raised
    (traceback and all), while an error shared by the batch is copied per caller."""
    entered, gate = threading.Event(), threading.Event()
    batches: list[int] = []
    shared = StorageError("commit failed")

    def run_batch(fns: list[Callable[[Any], Any]]) -> list[tuple[bool, Any]]:
        entered.set()
        assert gate.wait(5)
        batches.append(len(fns))
        if len(batches) == 4:
            return [(False, shared)] * len(fns)
        outcomes: list[tuple[bool, Any]] = []
        for fn in fns:
            try:
                outcomes.append((True, fn(None)))
            except Exception as exc:
                outcomes.append((False, exc))
        return outcomes

    committer = GroupCommitter(run_batch, 16, "test-writer")
    raised = {i: KeyError(i) for i in range(2)}
    caught: dict[int, BaseException] = {}

    def fail(i: int, txn: object) -> None:
        raise raised[i]

    def caller(i: int, fn: Callable[[Any], Any]) -> None:
        try:
            committer.call(fn)
        except Exception as exc:
            caught[i] = exc

    try:
        first = threading.Thread(target=committer.call, args=(lambda _: None,))
        first.start()
        assert entered.wait(5)  # the writer holds a batch of one; the next two queue up
        threads = [
            threading.Thread(target=caller, args=(i, functools.partial(fail, i))) for i in (0, 1)
        ]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 5
        while len(committer._queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        gate.set()
        for t in [first, *threads]:
            t.join(5)
        assert batches == [1, 2]
        assert all(caught[i] is raised[i] for i in (0, 1))
        assert raised[0].__traceback__ is not None

        threads = [threading.Thread(target=caller, args=(i, lambda _: None)) for i in (2, 3)]
        entered.clear()
        gate.clear()
        blocker = threading.Thread(target=committer.call, args=(lambda _: None,))
        blocker.start()
        assert entered.wait(5)
        for t in threads:
            t.start()
        while len(committer._queue) < 2 and time.monotonic() < deadline:
            time.sleep(0.001)
        gate.set()
        for t in [blocker, *threads]:
            t.join(5)
        assert batches == [1, 2, 1, 2]
        assert type(caught[2]) is type(caught[3]) is StorageError
        assert caught[2] is not caught[3]  # one object per caller, each with its traceback
    finally:
        gate.set()
        committer.close()


def test_durable_batch_isolates_failing_ops(store: Store) -> None:
    """Many concurrent writers share commits; one writer's failure fails only that writer."""
    store.set(b"text", b"abc")
    results: dict[int, object] = {}
    barrier = threading.Barrier(16)

    def writer(i: int) -> None:
        barrier.wait()
        try:
            if i % 4 == 0:
                store.incr(b"text")
            elif i % 4 == 1:
                store.transact(lambda txn: (txn.set(b"t%d" % i, b"x"), 1 / 0))
            else:
                store.set(b"k%d" % i, b"v")
            results[i] = "ok"
        except BaseException as exc:
            results[i] = type(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(16):
        if i % 4 == 0:
            assert results[i] is NotAnIntegerError
        elif i % 4 == 1:
            assert results[i] is ZeroDivisionError
            assert store.get(b"t%d" % i) is None
        else:
            assert results[i] == "ok"
            assert store.get(b"k%d" % i) == b"v"
    assert store.get(b"text") == b"abc"


def test_group_commit_shares_commits(store: Store) -> None:
    """64 concurrent durable writers need far fewer LMDB commits than writes."""
    before = store.stats().last_txn_id
    per_thread = 20
    barrier = threading.Barrier(64)

    def writer(w: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            store.set(b"w%02d-%03d" % (w, i), b"v")

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    commits = store.stats().last_txn_id - before
    assert store.count() == 64 * per_thread
    assert commits < 64 * per_thread / 2, commits


def test_sweep_deletes_in_bounded_batches(tmp_path: Path, clock: ManualClock) -> None:
    with Store.open(tmp_path / "s", clock=clock, sweep_interval=None, sweep_batch=7) as s:
        s.set_many([(b"e%03d" % i, b"v") for i in range(50)], ttl=1)
        s.set_many([(b"l%03d" % i, b"v") for i in range(5)], ttl=100)
        s.set(b"p", b"v")
        before = s.stats().last_txn_id
        clock.advance(1)
        assert s.stats().expired_unswept == 50
        assert s.sweep(limit=10) == 10
        assert s.stats().entries == 46
        assert s.sweep() == 40
        # 10 = 7 + 3, then 40 in batches of at most 7: one commit per batch
        assert s.stats().last_txn_id - before == 2 + 6
        stats = s.stats()
        assert (stats.entries, stats.live, stats.with_ttl, stats.expired_unswept) == (6, 6, 5, 0)


def test_background_sweeper_deletes_expired_keys(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sweep_interval=0.02) as s:
        s.set_many([(b"k%d" % i, b"v") for i in range(100)], ttl=0.01)
        s.set(b"keep", b"v")
        deadline = time.monotonic() + 5
        while s.stats().entries > 1:
            assert time.monotonic() < deadline, s.stats()
            time.sleep(0.01)
        assert s.get(b"keep") == b"v"
        assert s.background_error is None


def test_ttl_survives_reopen_as_absolute_time(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "s"
    with Store.open(path, clock=clock, sweep_interval=None) as s:
        s.set(b"k", b"v", ttl=10)
    clock.advance(4)  # time passes while the store is closed
    with Store.open(path, clock=clock, sweep_interval=None) as s:
        assert s.ttl(b"k") == 6.0
        clock.advance(6)
        assert s.get(b"k") is None


def test_map_grows_instead_of_failing(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", map_size=1 << 16, sweep_interval=None) as s:
        value = b"x" * 1000
        for i in range(300):
            s.set(b"k%04d" % i, value)
        s.set_many([(b"b%04d" % i, value) for i in range(300)])
        grown = s.stats().map_size
        assert grown > 1 << 16
        assert s.count() == 600
        with s.update() as txn:  # headroom is made before the block starts
            for i in range(20):
                txn.set(b"u%02d" % i, value)
        assert s.count() == 620
    with Store.open(tmp_path / "s", map_size=1 << 16, sweep_interval=None) as s:
        stats = s.stats()
        assert stats.map_size > stats.used_bytes  # reopened with headroom
        assert s.get(b"b0299") == value
        s.set_many([(b"c%04d" % i, value) for i in range(300)])
        assert s.count() == 920


def test_update_block_that_outgrows_the_map_raises_map_grown(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", map_size=1 << 16, sweep_interval=None) as s:
        value = b"x" * 2000

        def fill() -> None:
            with s.update() as txn:
                for i in range(400):
                    txn.set(b"k%04d" % i, value)

        with pytest.raises(MapGrownError):
            fill()
        assert s.count() == 0  # nothing was written
        assert s.stats().map_size > 1 << 16

        def big(txn: WriteTxn) -> None:
            for i in range(400):
                txn.set(b"k%04d" % i, value)

        s.transact(big)  # transact retries by itself
        assert s.count() == 400


def test_map_growth_under_concurrent_readers(tmp_path: Path) -> None:
    """Readers in other threads keep reading (and views get a typed error at worst) while
    the writer remaps the file again and again."""
    with Store.open(
        tmp_path / "s", map_size=1 << 16, durability="fast", sweep_interval=None, resize_wait=0.05
    ) as s:
        s.set(b"anchor", b"A")
        stop = threading.Event()
        failures: list[BaseException] = []
        reads = [0]

        def reader() -> None:
            try:
                while not stop.is_set():
                    assert s.get(b"anchor") == b"A"
                    assert s.count(b"anchor") == 1
                    reads[0] += 1
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=reader) for _ in range(3)]
        for t in threads:
            t.start()
        value = b"y" * 3000
        for i in range(600):
            s.set(b"k%04d" % i, value)
        stop.set()
        for t in threads:
            t.join()
        assert not failures, failures
        assert reads[0] > 0
        assert s.stats().map_size >= 1 << 21
        assert s.count() == 601


def test_closed_store_raises_typed_errors(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "s", sweep_interval=None, resize_wait=0.05)
    s.set(b"k", b"v")
    assert s.get(b"k") == b"v"
    view = s.view()
    txn = view.__enter__()
    s.close()
    s.close()  # idempotent
    assert s.closed
    for call in (
        lambda: s.get(b"k"),
        lambda: s.set(b"k", b"v"),
        lambda: s.ttl(b"k"),
        lambda: list(s.scan()),
        lambda: s.count(),
        lambda: s.view().__enter__(),
        lambda: s.update().__enter__(),
        lambda: txn.get(b"k"),
    ):
        with pytest.raises(StoreClosedError):
            call()
    view.__exit__(None, None, None)
    with Store.open(tmp_path / "s") as again:  # closing released every lock
        assert again.get(b"k") == b"v"


def test_close_finishes_queued_writes(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "s", sweep_interval=None)
    barrier = threading.Barrier(9)
    outcomes: list[object] = []

    def writer(i: int) -> None:
        barrier.wait()
        try:
            s.set(b"k%d" % i, b"v")
            outcomes.append(True)
        except StoreClosedError:
            outcomes.append(False)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    barrier.wait()
    s.close()
    for t in threads:
        t.join()
    with Store.open(tmp_path / "s") as again:
        written = sum(again.exists(b"k%d" % i) for i in range(8))
    assert written == sum(1 for o in outcomes if o is True)  # every acknowledged write is there


def test_view_open_across_a_map_resize_gets_snapshot_lost(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", map_size=1 << 16, sweep_interval=None, resize_wait=0.05) as s:
        s.set(b"k", b"v")
        with s.view() as txn:
            assert txn.get(b"k") == b"v"
            done = threading.Event()

            def grow() -> None:  # durable writes: the writer thread grows the map
                s.set_many([(b"g%04d" % i, b"x" * 3000) for i in range(100)])
                done.set()

            t = threading.Thread(target=grow)
            t.start()
            assert done.wait(30)  # the resize did not wait for this view forever
            t.join()
            with pytest.raises(SnapshotLostError):
                txn.get(b"k")
        with s.view() as txn:  # a new view works
            assert txn.get(b"k") == b"v"
            assert txn.count(b"g") == 100


def test_janitor_releases_idle_threads_cached_snapshots(fast_store: Store) -> None:
    s = fast_store
    s.set(b"k", b"v1")
    read = threading.Event()
    leave = threading.Event()

    def idle_reader() -> None:
        assert s.get(b"k") == b"v1"  # caches a read transaction, then goes idle
        read.set()
        leave.wait(30)

    t = threading.Thread(target=idle_reader)
    t.start()
    assert read.wait(30)
    idle_slots = [slot for slot in list(s._slots) if slot.txn is not None]
    assert idle_slots
    for i in range(10):
        s.set(b"k", b"v%d" % i)
    s._janitor()  # first run marks, second run releases what stayed idle since
    s.set(b"k", b"last")
    s._janitor()
    assert all(slot.txn is None for slot in idle_slots)
    assert s.get(b"k") == b"last"
    leave.set()
    t.join()


class _FailingClock(ManualClock):
    fail = False

    def __call__(self) -> int:
        if self.fail:
            raise RuntimeError("clock failed")
        return self.now


@pytest.mark.parametrize("durability", ["durable", "fast"])
def test_failing_clock_leaks_no_transaction(tmp_path: Path, durability: str) -> None:
    """A clock that raises when a transaction begins leaves no view counted and no write
    transaction open (a leaked one would block every later write)."""
    clock = _FailingClock()
    with Store.open(
        tmp_path / "s",
        clock=clock,
        sweep_interval=None,
        durability=durability,  # type: ignore[arg-type]
    ) as s:
        clock.fail = True
        with pytest.raises(RuntimeError), s.view():
            pass
        assert s._views == 0
        with pytest.raises(RuntimeError), s.update():
            pass
        with pytest.raises(RuntimeError):
            s.transact(lambda txn: None)
        clock.fail = False
        done = threading.Event()

        def write() -> None:
            s.transact(lambda txn: txn.set(b"k", b"v"))
            done.set()

        threading.Thread(target=write, daemon=True).start()
        assert done.wait(5), "a later write is blocked by a leaked write transaction"
        assert s.get(b"k") == b"v"
