"""Store.counters(): writes and the writer's commits since the store opened, read without a
transaction (a metrics scrape reads them)."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

from rony.store import AsyncStore, Store, WriteTxn


def _bump(txn: WriteTxn) -> None:
    txn.set(b"t", b"1")


def test_counters_count_every_write_kind(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", sweep_interval=None) as s:
        start = s.counters()
        assert start.writes == 0
        assert start.commits == 0
        assert start.commit_seconds == 0.0
        s.set(b"a", b"1")
        s.set(b"b", b"2", ttl=60)
        assert s.delete(b"a")
        s.incr(b"n")
        s.set_many({b"x": b"1", b"y": b"2"})
        s.transact(_bump)
        after = s.counters()
        assert after.writes == 6  # set, set, delete, incr, set_many, transact: one each
        # Durable (the default): every write is a commit of the writer thread, fsync and all.
        assert after.commits >= 1
        bounds = [b for b, _ in after.commit_histogram]
        assert bounds[-1] == math.inf
        assert bounds == sorted(bounds)
        counts = [n for _, n in after.commit_histogram]
        assert counts == sorted(counts)  # cumulative
        assert counts[-1] == after.commits
        assert after.commit_seconds > 0.0


def test_fast_mode_writes_count_without_commits(tmp_path: Path) -> None:
    with Store.open(tmp_path / "s", durability="fast", sweep_interval=None) as s:
        for i in range(5):
            s.set(b"k%d" % i, b"v")
        c = s.counters()
        assert c.writes == 5
        assert c.commit_histogram[-1][1] == c.commits


async def test_async_writes_go_through_the_writer(tmp_path: Path) -> None:
    async with await AsyncStore.open(tmp_path / "s", sweep_interval=None) as s:
        await asyncio.gather(*(s.set(b"k%d" % i, b"v") for i in range(20)))
        c = s.counters()
        assert c.writes == 20
        # Group commit: concurrent writes share commits, so there are 1..20 of them.
        assert 1 <= c.commits <= 20
        assert c.commit_histogram[-1][1] == c.commits
        assert c.commit_seconds > 0.0
