"""Named settings of a store, each with a documented default, validated once at open."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from .errors import InvalidArgumentError, WrongTypeError

Durability = Literal["durable", "fast"]

LMDB_MAX_KEY_SIZE: Final = 511
"""Longest key LMDB accepts (its compiled-in limit for keys and sorted duplicates)."""
DEFAULT_MAP_SIZE: Final = 1 << 30
MIN_MAP_SIZE: Final = 1 << 16


def system_clock() -> int:
    """Wall clock in milliseconds since the Unix epoch (the default ``clock``)."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True, slots=True)
class StoreOptions:
    """Settings of :meth:`Store.open`. Every limit is here, with its default.

    Attributes:
        map_size: initial LMDB map size in bytes (1 GiB). The map is address space, not disk:
            the data file only grows as data is written. When a write finds the map full the
            store doubles it and retries the write, so a write never fails for that.
        max_key_size: longest key in bytes (511, LMDB's limit; may be lowered).
        max_value_size: longest value in bytes (64 MiB).
        durability: ``"durable"`` (default): a write is acknowledged only after its commit is
            on disk (fsync); concurrent writes share one commit (group commit). ``"fast"``: no
            fsync per commit; the data is synced every ``sync_interval`` seconds and on
            ``close()``. A process crash loses nothing acknowledged in either mode; an OS
            crash or power loss in fast mode can lose the last ``sync_interval`` seconds and,
            as LMDB documents for MDB_NOSYNC, may leave the file needing a restore.
        sync_interval: seconds between background syncs in fast mode (1.0; None: only on
            close).
        sweep_interval: seconds between runs of the expired-key sweeper (1.0; None: no
            background sweeper, call ``Store.sweep()`` yourself).
        sweep_batch: most expired keys one sweeper commit deletes (256); a run keeps going
            batch after batch while they are full, for at most a quarter of the interval.
        max_batch: most queued writes the group-commit writer puts in one commit (1024).
        resize_wait: seconds a map resize waits for open ``view()`` blocks to end (1.0);
            views still open then lose their snapshot (:class:`SnapshotLostError`).
        scan_chunk: keys a scan reads per LMDB transaction (256). A scan outside a view
            reads each chunk from the newest snapshot; inside a view it stays on the view's.
        max_readers: LMDB reader slots, shared by all processes (126); one per thread that
            reads, plus one per open view.
        readonly: open without the writer lock; every write raises ``ReadOnlyError``.
        create: create the folder and an empty store if missing (True; ignored if readonly).
        clock: callable returning the time in ms since the epoch (the system clock); tests
            pass a manual clock.
    """

    map_size: int = DEFAULT_MAP_SIZE
    max_key_size: int = LMDB_MAX_KEY_SIZE
    max_value_size: int = 64 << 20
    durability: Durability = "durable"
    sync_interval: float | None = 1.0
    sweep_interval: float | None = 1.0
    sweep_batch: int = 256
    max_batch: int = 1024
    resize_wait: float = 1.0
    scan_chunk: int = 256
    max_readers: int = 126
    readonly: bool = False
    create: bool = True
    clock: Callable[[], int] = field(default=system_clock)

    def __post_init__(self) -> None:
        _int("map_size", self.map_size, MIN_MAP_SIZE, 1 << 62)
        _int("max_key_size", self.max_key_size, 1, LMDB_MAX_KEY_SIZE)
        _int("max_value_size", self.max_value_size, 0, (1 << 32) - 1 - 8)
        if self.durability not in ("durable", "fast"):
            raise InvalidArgumentError(
                f"durability must be 'durable' or 'fast', not {self.durability!r}"
            )
        _interval("sync_interval", self.sync_interval, optional=True)
        _interval("sweep_interval", self.sweep_interval, optional=True)
        _int("sweep_batch", self.sweep_batch, 1, 1 << 20)
        _int("max_batch", self.max_batch, 1, 1 << 20)
        _interval("resize_wait", self.resize_wait, optional=False)
        _int("scan_chunk", self.scan_chunk, 1, 1 << 20)
        _int("max_readers", self.max_readers, 1, 1 << 16)
        for name in ("readonly", "create"):
            if type(getattr(self, name)) is not bool:
                raise WrongTypeError(f"{name} must be a bool")
        if not callable(self.clock):
            raise WrongTypeError("clock must be a callable returning milliseconds")


def _int(name: str, value: object, low: int, high: int) -> None:
    if type(value) is not int:
        raise WrongTypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidArgumentError(f"{name} must be in [{low}, {high}], not {value}")


def _interval(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if type(value) is bool or not isinstance(value, int | float):
        raise WrongTypeError(f"{name} must be seconds (int or float), not {type(value).__name__}")
    if not (math.isfinite(value) and value > 0):
        raise InvalidArgumentError(f"{name} must be a positive number of seconds, not {value}")
