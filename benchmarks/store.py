"""rony.store beside raw lmdb, measured in the same run (100-byte values).

    hatch run bench:store            # all cases, 3 rounds each, median printed
    hatch run bench:store --rounds 5 --quick

Cases (goal in brackets):
  get       Store.get vs raw ``with env.begin() as txn: txn.get(k)``, once for keys
            without a TTL (the check reads the 8-byte header) and once for keys with a
            TTL (header + clock read)                                      [>= 0.8x]
            The goal's baseline is that natural raw point read: a transaction per call
            (``max_spare_txns=1``, so begin reuses a spare). Store.get reuses a cached
            snapshot internally, which a raw user can do too by holding one txn; that
            faster baseline is printed as well (information: the gap is our Python layer).
  get-view  ReadTxn.get inside one view vs raw txn.get inside one txn     (information)
  set-fast  Store.set in fast mode vs raw put + commit per put, sync=False [>= 0.6x]
  durable   Store.set in durable mode from 64 threads, and from 64 asyncio tasks, vs raw
            lmdb commit+fsync per put (one thread; and 64 threads)      [>= 20,000/s]
  aget      AsyncStore.get inline vs the same read through asyncio.to_thread (why reads
            run inline)

Every round measures ours and the baseline back to back; the machine is shared and noisy, so
compare the ratios, and the median over rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable

import lmdb

from rony.store import AsyncStore, Store

VALUE = b"v" * 100
WRITERS = 64


def keys(n: int, tag: bytes = b"k") -> list[bytes]:
    return [tag + b"%010d" % i for i in range(n)]


def rate(n: int, fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return n / (time.perf_counter() - t0)


def raw_env(path: str, *, sync: bool) -> lmdb.Environment:
    return lmdb.open(path, map_size=1 << 30, sync=sync, metasync=sync, max_spare_txns=1)


def report(name: str, ours: list[float], base: list[float], goal: str, unit: str = "ops/s") -> None:
    o, b = statistics.median(ours), statistics.median(base)
    ratios = ", ".join(f"{x / y:.2f}" for x, y in zip(ours, base, strict=True))
    print(
        f"{name:<34} ours {o:>11,.0f} {unit}   baseline {b:>11,.0f} {unit}   "
        f"ratio {o / b:5.2f}x  [{ratios}]  {goal}"
    )


# -- reads ---------------------------------------------------------------------------------


def bench_get(work: str, n: int, rounds: int) -> None:
    ks = keys(n)
    half = n // 2
    store = Store.open(os.path.join(work, "get"), durability="fast", sweep_interval=None)
    store.set_many([(k, VALUE) for k in ks[:half]])  # no TTL: the check reads the header
    store.set_many([(k, VALUE) for k in ks[half:]], ttl=3600.0)  # TTL: header + clock
    env = raw_env(os.path.join(work, "get-raw"), sync=False)
    with env.begin(write=True) as txn:
        for k in ks:
            txn.put(k, VALUE)
    get = store.get
    assert get(ks[0]) == VALUE
    assert get(ks[-1]) == VALUE

    def ours(part: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            for k in part:
                get(k)

        return run

    def raw(part: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            begin = env.begin
            for k in part:
                with begin() as txn:
                    txn.get(k)

        return run

    def ours_view() -> None:
        with store.view() as view:
            vget = view.get
            for k in ks:
                vget(k)

    def raw_txn() -> None:
        with env.begin() as txn:
            tget = txn.get
            for k in ks:
                tget(k)

    def raw_reused(part: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            with env.begin() as txn:
                tget = txn.get
                for k in part:
                    tget(k)

        return run

    plain, timed = ks[:half], ks[half:]
    o1, b1, o2, b2, b3, ov, bv = [], [], [], [], [], [], []
    for _ in range(rounds):
        o1.append(rate(half, ours(plain)))
        b1.append(rate(half, raw(plain)))
        o2.append(rate(half, ours(timed)))
        b2.append(rate(half, raw(timed)))
        b3.append(rate(half, raw_reused(timed)))
        ov.append(rate(n, ours_view))
        bv.append(rate(n, raw_txn))
    report("get, keys without TTL vs raw get", o1, b1, "[goal >= 0.80x]")
    report("get, keys with a TTL vs raw get", o2, b2, "[goal >= 0.80x]")
    report("get, TTL keys vs raw reused txn", o2, b3, "(information)")
    report("view.get vs raw get in one txn", ov, bv, "(information)")
    store.close()
    env.close()


# -- fast-mode writes ----------------------------------------------------------------------


def bench_set_fast(work: str, n: int, rounds: int) -> None:
    o, b = [], []
    for r in range(rounds):
        ks = keys(n, b"r%d-" % r)
        store = Store.open(os.path.join(work, f"fast{r}"), durability="fast", sweep_interval=None)
        env = raw_env(os.path.join(work, f"fast-raw{r}"), sync=False)
        set_ = store.set

        def ours(ks: list[bytes] = ks, set_: Callable[..., None] = set_) -> None:
            for k in ks:
                set_(k, VALUE)

        def raw(ks: list[bytes] = ks, env: lmdb.Environment = env) -> None:
            begin = env.begin
            for k in ks:
                with begin(write=True) as txn:
                    txn.put(k, VALUE)

        o.append(rate(n, ours))
        b.append(rate(n, raw))
        store.close()
        env.close()
    report("set fast mode vs raw put nosync", o, b, "[goal >= 0.60x]")


# -- durable writes ------------------------------------------------------------------------


def run_threads(writers: int, per_writer: int, fn: Callable[[int, int], None]) -> float:
    start = threading.Barrier(writers + 1)

    def worker(w: int) -> None:
        start.wait()
        for i in range(per_writer):
            fn(w, i)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return writers * per_writer / (time.perf_counter() - t0)


def bench_durable(work: str, per_writer: int, raw_n: int, rounds: int) -> None:
    ot, oa, b1, b64, batch_t, batch_a = [], [], [], [], [], []
    for r in range(rounds):
        store = Store.open(os.path.join(work, f"dur{r}"), sweep_interval=None)

        def ours(w: int, i: int, store: Store = store) -> None:
            store.set(b"t%03d-%08d" % (w, i), VALUE)

        txn0 = store.stats().last_txn_id
        ot.append(run_threads(WRITERS, per_writer, ours))
        txn1 = store.stats().last_txn_id
        batch_t.append(WRITERS * per_writer / (txn1 - txn0))

        astore = AsyncStore(store)

        async def tasks(astore: AsyncStore = astore) -> float:
            async def writer(w: int) -> None:
                for i in range(per_writer):
                    await astore.set(b"a%03d-%08d" % (w, i), VALUE)

            t0 = time.perf_counter()
            await asyncio.gather(*(writer(w) for w in range(WRITERS)))
            return WRITERS * per_writer / (time.perf_counter() - t0)

        oa.append(asyncio.run(tasks()))
        batch_a.append(WRITERS * per_writer / (store.stats().last_txn_id - txn1))
        stats = store.stats()
        assert stats.live == 2 * WRITERS * per_writer, stats
        store.close()

        env = raw_env(os.path.join(work, f"dur-raw{r}"), sync=True)

        def raw_serial(env: lmdb.Environment = env) -> None:
            for i in range(raw_n):
                with env.begin(write=True) as txn:
                    txn.put(b"s%08d" % i, VALUE)

        b1.append(rate(raw_n, raw_serial))

        def raw_put(w: int, i: int, env: lmdb.Environment = env) -> None:
            with env.begin(write=True) as txn:
                txn.put(b"p%03d-%08d" % (w, i), VALUE)

        b64.append(run_threads(WRITERS, max(1, raw_n // WRITERS), raw_put))
        env.close()
    report("durable set, 64 threads", ot, b1, "[goal >= 20,000/s]")
    report("durable set, 64 asyncio tasks", oa, b1, "[goal >= 20,000/s]")
    report("raw commit+fsync: 64 thr vs serial", b64, b1, "(baseline detail)")
    print(
        f"{'  writes per durable commit':<34} threads {statistics.median(batch_t):.1f}, "
        f"tasks {statistics.median(batch_a):.1f} (of {WRITERS} writers; raw: 1.0)"
    )


# -- async reads ---------------------------------------------------------------------------


def bench_aget(work: str, n: int, rounds: int) -> None:
    ks = keys(n)
    store = Store.open(os.path.join(work, "aget"), durability="fast", sweep_interval=None)
    store.set_many([(k, VALUE) for k in ks])
    astore = AsyncStore(store)

    async def inline() -> None:
        for k in ks:
            await astore.get(k)

    few = ks[: n // 20]  # a thread hop per read is slow: fewer of them

    async def threaded() -> None:
        for k in few:
            await asyncio.to_thread(store.get, k)

    o, b = [], []
    for _ in range(rounds):
        o.append(rate(n, lambda: asyncio.run(inline())))
        b.append(rate(len(few), lambda: asyncio.run(threaded())))
    report("aget inline vs asyncio.to_thread", o, b, "(why reads run inline)")
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--only", choices=["get", "set-fast", "durable", "aget"])
    parser.add_argument(
        "--dir", default=os.getcwd(), help="where to put the stores: a real disk (not tmpfs)"
    )
    args = parser.parse_args()
    scale = 4 if args.quick else 1
    work = tempfile.mkdtemp(prefix="rony-store-bench-", dir=args.dir)
    print(f"lmdb {lmdb.__version__} (LMDB {'.'.join(map(str, lmdb.version()))}), {work}")
    try:
        if args.only in (None, "get"):
            bench_get(work, 200_000 // scale, args.rounds)
        if args.only in (None, "set-fast"):
            bench_set_fast(work, 100_000 // scale, args.rounds)
        if args.only in (None, "durable"):
            bench_durable(work, 400 // scale, 1_500 // scale, args.rounds)
        if args.only in (None, "aget"):
            bench_aget(work, 100_000 // scale, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
