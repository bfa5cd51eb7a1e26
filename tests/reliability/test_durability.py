"""kill -9 of a real ``rony serve`` node during 64 concurrent durable writers, 5 times on the
same data folder: 0 acknowledged writes lost, the store opens cleanly every time (100 rounds:
``benchmarks/soak``). The store's own crash test (tests/store/test_processes.py) kills a
process using the store directly; this one kills the whole node, gateway and group commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability._durability import crash_round

pytestmark = pytest.mark.slow


def test_kill_9_during_64_durable_writers_loses_no_acknowledged_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    total = entries = 0
    for round_ in range(5):
        result = crash_round(data, round_, kill_after=200 + 50 * round_)
        assert result.lost == 0, result
        assert result.acked >= 200 + 50 * round_
        assert result.entries >= total + result.acked  # earlier rounds' writes are kept too
        total += result.acked
        entries = result.entries
    print(f"\ndurability: 5 kill -9, {total} acknowledged writes, 0 lost, {entries} keys")
