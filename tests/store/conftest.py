"""Fixtures for rony.store tests: real LMDB folders in tmp_path, a manual clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rony.store import Store

T0 = 1_700_000_000_000  # a fixed epoch-ms start for manual clocks


class ManualClock:
    """A clock in ms since the epoch that moves only when told."""

    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1000)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    """A durable store on a manual clock with no background sweeper."""
    with Store.open(tmp_path / "store", clock=clock, sweep_interval=None) as s:
        yield s


@pytest.fixture
def fast_store(tmp_path: Path, clock: ManualClock) -> Iterator[Store]:
    with Store.open(tmp_path / "fast", clock=clock, sweep_interval=None, durability="fast") as s:
        yield s
