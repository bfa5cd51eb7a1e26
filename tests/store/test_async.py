"""AsyncStore: writes go to the writer thread (the loop never waits on a commit), reads inline."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rony.store import AsyncStore, Store, WriteTxn
from rony.store.errors import (
    NotAnIntegerError,
    ReadOnlyError,
    StoreClosedError,
    WrongTypeError,
)

from .conftest import ManualClock


async def test_async_api_round_trip(tmp_path: Path) -> None:
    clock = ManualClock()
    async with await AsyncStore.open(tmp_path / "s", clock=clock, sweep_interval=None) as s:
        await s.set(b"k", b"v", ttl=2)
        assert await s.get(b"k") == b"v"
        assert await s.exists(b"k")
        assert await s.ttl(b"k") == 2.0
        assert await s.incr(b"n", 5) == 5
        assert await s.expire(b"n", 1)
        assert await s.persist(b"n")
        await s.set_many({b"a": b"1", b"b": b"2"})
        assert await s.get_many([b"a", b"b", b"zz"]) == [b"1", b"2", None]
        assert [k async for k, _ in s.scan()] == [b"a", b"b", b"k", b"n"]
        assert await s.count() == 4
        assert await s.delete_many([b"a", b"b"]) == 2
        assert await s.delete(b"k")

        def swap(txn: WriteTxn) -> bytes | None:
            old = txn.get(b"n")
            txn.set(b"n", b"swapped")
            return old

        assert await s.transact(swap) == b"5"
        with pytest.raises(NotAnIntegerError):
            await s.incr(b"n")
        with s.view() as view:
            assert view.get(b"n") == b"swapped"
        clock.advance(10)
        await s.set(b"t", b"x", ttl=1)
        clock.advance(1)
        assert await s.sweep() == 1
        assert (await s.stats()).entries == 1
    assert s.store.closed
    with pytest.raises(StoreClosedError):
        await s.set(b"k", b"v")


async def test_writes_run_off_the_loop(tmp_path: Path) -> None:
    """A write that takes long on the writer thread (as an fsync can) leaves the loop free:
    the loop turns 100 times while the write is held up, then the write completes."""
    async with AsyncStore(Store.open(tmp_path / "s", sweep_interval=None)) as s:
        loop_thread = threading.get_ident()
        turned = threading.Event()

        def slow(txn: WriteTxn) -> tuple[int, bool]:
            txn.set(b"k", b"v")
            return threading.get_ident(), turned.wait(10)

        pending = asyncio.ensure_future(s.transact(slow))
        for _ in range(100):
            await asyncio.sleep(0)
        assert not pending.done()
        turned.set()
        writer_thread, loop_was_free = await pending
        assert writer_thread != loop_thread
        assert loop_was_free
        assert await s.get(b"k") == b"v"


async def test_async_tasks_share_durable_commits(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", sweep_interval=None)
    s = AsyncStore(store)

    async def writer(w: int) -> None:
        for i in range(20):
            await s.set(b"w%02d-%02d" % (w, i), b"v" * 100)

    before = store.stats().last_txn_id
    await asyncio.gather(*(writer(w) for w in range(64)))
    commits = store.stats().last_txn_id - before
    assert await s.count() == 64 * 20
    assert commits < 64 * 20 / 2, commits
    await s.close()


async def test_cancelled_write_still_happens_or_not_but_never_hangs(tmp_path: Path) -> None:
    async with AsyncStore(Store.open(tmp_path / "s", sweep_interval=None)) as s:
        task = asyncio.create_task(s.set(b"k", b"v"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await s.set(b"k2", b"v2")  # the writer goes on
        assert await s.get(b"k2") == b"v2"


async def test_async_writes_from_many_loops_and_threads(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s", sweep_interval=None)

    def other_loop(n: int) -> None:
        async def main() -> None:
            a = AsyncStore(store)
            await asyncio.gather(*(a.set(b"l%d-%d" % (n, i), b"v") for i in range(30)))

        asyncio.run(main())

    threads = [threading.Thread(target=other_loop, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    a = AsyncStore(store)
    await asyncio.gather(*(a.set(b"main-%d" % i, b"v") for i in range(30)))
    for t in threads:
        t.join()
    assert store.count() == 120
    store.close()


async def test_read_only_async_store(tmp_path: Path) -> None:
    Store.open(tmp_path / "s").close()
    async with await AsyncStore.open(tmp_path / "s", readonly=True) as s:
        assert await s.get(b"k") is None
        with pytest.raises(ReadOnlyError):
            await s.set(b"k", b"v")


def test_importing_rony_store_does_not_import_asyncio() -> None:
    code = "import sys, rony.store; assert 'asyncio' not in sys.modules; rony.store.AsyncStore"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def test_transact_refuses_a_coroutine_function(tmp_path: Path) -> None:
    """A coroutine function would only build a coroutine, never awaited: nothing written."""

    async def fn(txn: WriteTxn) -> None:
        txn.set(b"k", b"v")

    async with await AsyncStore.open(tmp_path / "s", sweep_interval=None) as s:
        with pytest.raises(WrongTypeError):
            await s.transact(fn)
        with pytest.raises(WrongTypeError):
            s.store.transact(fn)
        assert await s.get(b"k") is None
