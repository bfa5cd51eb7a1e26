"""The public :class:`Store`: a key-value store on LMDB with TTLs and group commit."""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar

from . import _ttl
from ._lmdb import Engine
from ._options import (
    DEFAULT_MAP_SIZE,
    LMDB_MAX_KEY_SIZE,
    Durability,
    StoreOptions,
    system_clock,
)
from ._txn import (
    RangeReads,
    ReadTxn,
    WriteTxn,
    check_by,
    check_fn,
    check_items,
    check_key,
    check_keys,
    check_limit,
    check_set_ttl,
    check_value,
)
from ._writer import COMMIT_BUCKETS, GroupCommitter, Maintenance
from .errors import StoreClosedError, TransactionError

T = TypeVar("T")

JANITOR_INTERVAL: Final = 1.0
"""Seconds between releases of idle threads' cached read transactions."""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Figures of :meth:`Store.stats` (sizes in bytes)."""

    entries: int
    """Keys stored, including expired ones the sweeper has not deleted yet."""
    live: int
    with_ttl: int
    expired_unswept: int
    depth: int
    page_size: int
    pages: int
    map_size: int
    used_bytes: int
    file_size: int
    last_txn_id: int
    readers: int


@dataclass(frozen=True, slots=True)
class StoreCounters:
    """What :meth:`Store.counters` counts since the store opened (for metrics: cheap)."""

    writes: int
    """Write operations committed (set, delete, transact, ...; a batch of N counts N)."""
    commits: int
    """Commits run by the writer thread: every write in durable mode (one fsync each, for a
    whole group); in fast mode only the writes that ``AsyncStore`` hands to it."""
    commit_seconds: float
    """Total time of those commits."""
    commit_histogram: tuple[tuple[float, int], ...]
    """(upper bound in seconds, commits that took at most that long), cumulative, bounds of
    ``COMMIT_BUCKETS`` then ``inf``."""


class Store(Engine, RangeReads):
    """An LMDB key-value store with per-key TTL. Open it with :meth:`Store.open`.

    Keys and values are bytes (``bytearray``/``memoryview`` are accepted and copied). Every
    method is thread-safe. Reads are served from a per-thread cached LMDB snapshot that is
    renewed after each commit of this process; writes are atomic; in durable mode a write
    returns only once it is on disk. Use :class:`~rony.store.AsyncStore` from asyncio code.
    """

    def __init__(self, path: str | os.PathLike[str], options: StoreOptions) -> None:
        super().__init__(path, options)
        self._close_lock = threading.Lock()
        self._committer: GroupCommitter | None = None
        self._maintenance: Maintenance | None = None
        try:
            tasks: list[tuple[float, Callable[[], object]]] = [(JANITOR_INTERVAL, self._janitor)]
            if not options.readonly:
                self._committer = GroupCommitter(
                    self._run_batch, options.max_batch, f"rony-store-writer:{self._path}"
                )
                if options.sweep_interval is not None:
                    tasks.append((options.sweep_interval, self._background_sweep))
                if not self._durable and options.sync_interval is not None:
                    tasks.append((options.sync_interval, self._sync))
            self._maintenance = Maintenance(tasks, f"rony-store-maintenance:{self._path}")
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        map_size: int = DEFAULT_MAP_SIZE,
        max_key_size: int = LMDB_MAX_KEY_SIZE,
        max_value_size: int = 64 << 20,
        durability: Durability = "durable",
        sync_interval: float | None = 1.0,
        sweep_interval: float | None = 1.0,
        sweep_batch: int = 256,
        max_batch: int = 1024,
        resize_wait: float = 1.0,
        scan_chunk: int = 256,
        max_readers: int = 126,
        readonly: bool = False,
        create: bool = True,
        clock: Callable[[], int] = system_clock,
    ) -> Store:
        """Open (or create) the store in folder ``path``. Settings: see :class:`StoreOptions`."""
        options = StoreOptions(
            map_size=map_size,
            max_key_size=max_key_size,
            max_value_size=max_value_size,
            durability=durability,
            sync_interval=sync_interval,
            sweep_interval=sweep_interval,
            sweep_batch=sweep_batch,
            max_batch=max_batch,
            resize_wait=resize_wait,
            scan_chunk=scan_chunk,
            max_readers=max_readers,
            readonly=readonly,
            create=create,
            clock=clock,
        )
        return cls(path, options)

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Finish queued writes, stop the background threads, sync (fast mode), close.

        Idempotent. Open views get :class:`StoreClosedError` on their next read.
        """
        if self._wowner == threading.get_ident():
            raise TransactionError("close() from inside a write transaction of this store")
        with self._close_lock:
            if self._closed:
                return
            self._closing = True
            if self._maintenance is not None:
                self._maintenance.close()
            if self._committer is not None:
                self._committer.close()
            self._close_env()

    @property
    def closed(self) -> bool:
        return self._closing or self._closed

    @property
    def path(self) -> str:
        return self._path

    @property
    def options(self) -> StoreOptions:
        return self._options

    @property
    def readonly(self) -> bool:
        return self._readonly

    @property
    def background_error(self) -> BaseException | None:
        """The last exception of a background task (sweep, sync), if any."""
        return None if self._maintenance is None else self._maintenance.last_error

    # -- reads (get is the engine's fast path) ---------------------------------------------

    def _read(self, fn: Callable[[Any], T]) -> T:
        slot = self._slot()
        slot.busy = True
        try:
            txn = self._renew(slot) if self._gate or slot.gen != self._gen else slot.txn
            return fn(txn)
        except BaseException as exc:
            raise self._read_error(exc) from None
        finally:
            slot.busy = False

    def _get_raw(self, key: bytes) -> bytes | None:
        return self._read(lambda txn: self._raw_get(txn, key))

    def exists(self, key: bytes) -> bool:
        """True if ``key`` is live."""
        return self.get(key) is not None

    def ttl(self, key: bytes) -> float:
        """Seconds ``key`` has left (ms resolution), :data:`NO_KEY` (-2.0) if it is missing
        or expired, :data:`NO_EXPIRY` (-1.0) if it never expires."""
        raw = self._get_raw(check_key(key, self._max_key))
        return _ttl.remaining(raw, self._clock())

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        """Values of ``keys`` from one snapshot, in order (None: missing or expired)."""
        checked = check_keys(keys, self._max_key)
        raws = self._read(lambda txn: self._raw_get_many(txn, checked))
        now = self._clock()
        return [_ttl.live_value(raw, now) for raw in raws]

    def _chunk(
        self, low: bytes, high: bytes | None, reverse: bool, after: bytes | None
    ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        chunk = self._options.scan_chunk
        return self._read(
            lambda txn: self._raw_chunk(txn, low, high, reverse, after, chunk, self._clock())
        )

    def _count(self, low: bytes, high: bytes | None) -> int:
        return self._read(lambda txn: self._raw_count(txn, low, high, self._clock()))

    def stats(self) -> StoreStats:
        """Sizes and counts (counting expired keys costs O(expired keys))."""
        return StoreStats(**self._read(lambda txn: self._raw_stats(txn, self._clock())))

    def counters(self) -> StoreCounters:
        """Counts since the store opened: no transaction, no I/O (a metrics scrape reads it)."""
        committer = self._committer
        buckets = committer.commit_buckets if committer is not None else [0]
        running = 0
        histogram: list[tuple[float, int]] = []
        for bound, n in zip((*COMMIT_BUCKETS, math.inf), buckets, strict=False):
            running += n
            histogram.append((bound, running))
        return StoreCounters(
            writes=self._writes,
            commits=sum(buckets) if committer is not None else 0,
            commit_seconds=committer.commit_total if committer is not None else 0.0,
            commit_histogram=tuple(histogram),
        )

    def view(self) -> _ViewBlock:
        """``with store.view() as txn:`` a read-only snapshot (:class:`ReadTxn`)."""
        return _ViewBlock(self)

    # -- writes ----------------------------------------------------------------------------

    def _write(self, fn: Callable[[WriteTxn], T]) -> T:
        self._check_writable()
        if self._durable:
            assert self._committer is not None
            return self._committer.call(fn)
        return self._run_write(fn)  # fast mode: commit in the caller's thread, no fsync

    def set(
        self, key: bytes, value: bytes, ttl: float | None = None, *, keep_ttl: bool = False
    ) -> None:
        """Store ``value`` under ``key``.

        ``ttl``: seconds until the key expires (> 0; None: never). Without ``keep_ttl`` a set
        clears any TTL the key had; with ``keep_ttl=True`` a live key keeps its TTL.
        """
        seconds = check_set_ttl(ttl, keep_ttl)
        k = check_key(key, self._max_key)
        v = check_value(value, self._options.max_value_size)
        if keep_ttl:
            self._write(lambda txn: txn._set(k, v, None, True))
            return
        # The hot write paths: the raw value is built here, the TTL counts from this call.
        self._check_writable()
        if seconds is None:
            new_raw, expiry = _ttl.PERSISTENT_HEADER + v, _ttl.PERSISTENT
        else:
            expiry = _ttl.expiry_for(seconds, self._clock())
            new_raw = _ttl.encode(v, expiry)
        if self._durable:
            assert self._committer is not None
            self._committer.call(functools.partial(self._batch_set, k, new_raw, expiry))
        else:
            self._set_now(k, new_raw, expiry)

    def _batch_set(self, key: bytes, new_raw: bytes, expiry: int, txn: WriteTxn) -> None:
        self._raw_set(txn._raw, key, new_raw, expiry)

    def delete(self, key: bytes) -> bool:
        """Delete ``key``; True if it was live."""
        k = check_key(key, self._max_key)
        return self._write(lambda txn: txn._delete(k))

    def expire(self, key: bytes, ttl: float) -> bool:
        """Set a live key's TTL to ``ttl`` seconds from now; ``ttl <= 0`` deletes the key
        (Redis' EXPIRE). False if the key is missing or expired."""
        k = check_key(key, self._max_key)
        seconds = _ttl.check_ttl(ttl)
        return self._write(lambda txn: txn._expire(k, seconds))

    def persist(self, key: bytes) -> bool:
        """Remove a live key's TTL; True if it had one."""
        k = check_key(key, self._max_key)
        return self._write(lambda txn: txn._persist(k))

    def incr(self, key: bytes, by: int = 1) -> int:
        """Add ``by`` to the base-10 integer stored at ``key`` (missing: 0), keeping its
        TTL, and return the new value. Signed 64-bit, as Redis' INCRBY."""
        k = check_key(key, self._max_key)
        amount = check_by(by)
        return self._write(lambda txn: txn._incr(k, amount))

    def set_many(
        self,
        items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]],
        ttl: float | None = None,
    ) -> None:
        """Set all pairs atomically (one commit), all with ``ttl`` (None: no TTL)."""
        seconds = check_set_ttl(ttl, False)
        pairs = check_items(items, self._max_key, self._options.max_value_size)
        self._write(lambda txn: txn._set_many(pairs, seconds))

    def delete_many(self, keys: Iterable[bytes]) -> int:
        """Delete keys atomically; the number that were live."""
        checked = check_keys(keys, self._max_key)
        return self._write(lambda txn: txn._delete_many(checked))

    def transact(self, fn: Callable[[WriteTxn], T]) -> T:
        """Run ``fn(txn)`` in a write transaction and commit; return its result.

        If ``fn`` raises, none of its writes happen and the exception propagates. ``fn`` may
        run more than once (after the map grew), so it must act only through ``txn``. In
        durable mode it shares a commit with concurrent writers.
        """
        check_fn(fn)
        if self._durable:
            return self._write(lambda txn: txn._nested(fn))
        return self._write(fn)

    def update(self) -> _UpdateBlock:
        """``with store.update() as txn:`` a read-write transaction (:class:`WriteTxn`)
        committed when the block ends, rolled back if it raises.

        It holds the writer lock for the whole block, so keep it short. If the block outgrows
        the map it raises :class:`MapGrownError` after growing it (run it again), which
        :meth:`transact` does by itself.
        """
        return _UpdateBlock(self)

    def sweep(self, limit: int | None = None) -> int:
        """Delete expired keys now, ``sweep_batch`` per commit, until none is left (or
        ``limit`` are deleted); the number deleted. The background sweeper calls this."""
        limit = check_limit(limit)
        batch = self._options.sweep_batch
        total = 0
        while limit is None or total < limit:
            size = batch if limit is None else min(batch, limit - total)
            deleted = self._write(functools.partial(WriteTxn.sweep, limit=size))
            total += deleted
            if deleted < size:
                break
        return total

    def _background_sweep(self) -> None:
        interval = self._options.sweep_interval or 1.0
        budget = self._clock_budget(interval / 4)
        batch = self._options.sweep_batch
        while not self._closing:
            if self._write(lambda txn: txn.sweep(batch)) < batch or budget():
                return

    @staticmethod
    def _clock_budget(seconds: float) -> Callable[[], bool]:
        end = time.monotonic() + seconds
        return lambda: time.monotonic() >= end

    def sync(self) -> None:
        """Flush to disk now (fast mode; in durable mode every commit is already synced)."""
        if self._closed:
            raise StoreClosedError("the store is closed")
        self._sync()


class _ViewBlock:
    __slots__ = ("_raw", "_store", "_txn")

    def __init__(self, store: Store) -> None:
        self._store = store
        self._txn: ReadTxn | None = None
        self._raw: Any = None

    def __enter__(self) -> ReadTxn:
        store = self._store
        now = store._clock()  # before begin: a raising clock leaks no view
        self._raw, epoch = store._view_begin()
        self._txn = ReadTxn(store, self._raw, now, epoch)
        return self._txn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._txn is not None:
            self._txn._finish()
            self._txn = None
            self._store._view_end(self._raw)
            self._raw = None


class _UpdateBlock:
    __slots__ = ("_store", "_txn")

    def __init__(self, store: Store) -> None:
        self._store = store
        self._txn: WriteTxn | None = None

    def __enter__(self) -> WriteTxn:
        self._txn = self._store._update_begin()
        return self._txn

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._txn is not None:
            txn, self._txn = self._txn, None
            self._store._update_end(txn, commit=exc_type is None)
