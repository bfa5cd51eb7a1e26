"""The LMDB engine under :class:`~rony.store.Store`; the only module that imports ``lmdb``.

Theory of operation
-------------------
*Files.* A store is a folder holding LMDB's ``data.mdb`` and ``lock.mdb`` plus our
``writer.lock``. Three named databases: ``data`` (key -> 8-byte expiry header + value, see
``_ttl``), ``expiry`` (sorted duplicates: 8-byte expiry -> key, read by the sweeper) and
``meta`` (format marker, so a foreign LMDB folder is refused).

*One writer.* LMDB allows one write transaction at a time per environment. Inside a process
``_wlock`` serialises writers (inline fast-mode writes, the group-commit thread, ``update()``
blocks, the sweeper). Across processes the writer holds an exclusive ``flock`` on
``writer.lock``; a second writer gets :class:`StoreLockedError`, readers open with
``readonly=True``. The kernel drops the flock when a process dies, so a crash leaves no stale
lock. LMDB also forbids opening one environment twice in a process, so opens are registered by
(device, inode).

*Cached read transactions.* Beginning and ending an LMDB read transaction costs as much as the
lookup itself, so a read transaction is kept in a ``_Slot`` and reused while no commit has
happened since (``_gen`` counts this process's commits; only the writer process caches, and it
is the only writer, so a cached snapshot is never stale when used). ``get`` takes a slot from
``_pool`` (a deque: ``pop``/``append`` are atomic under the GIL, so a slot has one user at a
time) and puts it back after the lookup; that is cheaper than a ``threading.local`` lookup, and
py-lmdb opens every environment with MDB_NOTLS, so a read transaction may move between threads
when its use is serialised, as the pool does. The pool holds at most as many slots as threads
were ever inside ``get`` at once. Views, scans and ``_read`` keep a slot per thread
(``_local``). The janitor (run by the maintenance thread) releases cached transactions of slots
that went idle, so an idle slot never pins old pages.

*Map growth.* ``env.set_mapsize`` remaps the file and invalidates every transaction of the
process, so nothing may be inside LMDB meanwhile. Each reader flags ``slot.busy`` of the slot it
holds around each LMDB call and then checks ``_gate`` (``get`` checks ``_gen``, -2 meanwhile);
the resizer raises ``_gate``, waits (bounded by ``resize_wait``) for open views to finish and
for every busy flag to drop, resizes, then opens the gate. Under the GIL these flag writes and
reads are sequentially consistent (a Dekker-style handshake): either the reader sees the raised
gate and backs off, or the resizer sees the busy flag and waits. No cursor lives across user
code: scans read in chunks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

import lmdb

from . import _ttl
from ._options import StoreOptions, system_clock
from ._txn import WriteTxn
from .errors import (
    AlreadyOpenError,
    InvalidKeyError,
    MapGrownError,
    NotAStoreError,
    ReadOnlyError,
    SnapshotLostError,
    StorageError,
    StoreAccessError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    TransactionError,
    WrongTypeError,
)

T = TypeVar("T")

FORMAT: Final = b"rony-store 1"
_DB_NAMES: Final = frozenset((b"data", b"expiry", b"meta"))
_LMDB_FILES: Final = frozenset(("data.mdb", "lock.mdb", "writer.lock"))
_Z: Final = _ttl.PERSISTENT_HEADER
_unpack = struct.Struct(">Q").unpack_from
_pack = _ttl.pack_expiry
_time = time.time
_time_ns = time.time_ns

# -- the clock of the read fast path -------------------------------------------------------
#
# ``get`` must hide a key whose expiry ms is <= system_clock() (= time_ns() // 1e6) at the
# moment of the read, exactly. Doing that with ``time_ns() // 1e6`` plus decoding the 8-byte
# header costs more than the LMDB lookup, so ``get`` compares bytes instead: fixed-width
# big-endian headers order like the numbers, and ``raw >= pack(now_ms + 1)`` holds exactly
# when the header's expiry is > now_ms (a header equal to the bound compares >= because the
# raw value is at least as long as the bound). ``_now`` caches, for the current ms ``m``, that
# bound ``pack(m + 1)`` with a window [lo, hi) of ``time.time()`` floats that lies strictly
# inside ms ``m``: ``_NOW_MARGIN_NS`` from either edge. ``time.time()`` reads the same clock
# as ``time_ns()`` and is ``float(ns) / 1e9`` (error < 0.25 us at today's epoch; lo and hi
# carry the same < 0.25 us rounding), so a reading inside the window proves ``ns // 1e6 == m``
# for the real ns: the cached bound is exactly now's, never stale and never early. A reading
# outside the window (the ms changed, or the clock stepped back) takes the exact path,
# ``_now_bound``, which reads ``time_ns()`` and refreshes the cache. The tuple is replaced
# whole (atomic under the GIL), so racing threads each see a consistent (lo, hi, bound).
_NOW_MARGIN_NS: Final = 2_000
_now: tuple[float, float, bytes] = (1.0, 0.0, b"")  # an empty window until the first read


def _now_bound() -> bytes:
    """``pack(system_clock() + 1)``, exactly, read from ``time_ns()``; refreshes ``_now``."""
    global _now
    ms = _time_ns() // 1_000_000
    bound = _pack(ms + 1)
    low = (ms * 1_000_000 + _NOW_MARGIN_NS) / 1e9
    high = ((ms + 1) * 1_000_000 - _NOW_MARGIN_NS) / 1e9
    _now = (low, high, bound)
    return bound


_FOREVER_BELOW: Final = bytes(7) + b"\x01"
"""``raw < _FOREVER_BELOW`` exactly when the raw value's header is 0 (never expires)."""
_VALUE: Final = slice(_ttl.HEADER_SIZE, None)
"""``raw[_VALUE]``: the user value (a prebuilt slice: no BUILD_SLICE per read)."""

_open_paths: dict[tuple[int, int], str] = {}
_open_paths_lock = threading.Lock()


class _MapFull(MapGrownError):
    """LMDB said MDB_MAP_FULL. The write loops grow the map and run the work again; inside an
    ``update()`` block the caller sees it as :class:`MapGrownError`."""

    def __init__(self) -> None:
        super().__init__(
            "the map is full: this transaction is rolled back and the map grown; run it again"
        )


class _Slot:
    """A cached read transaction and its busy flag (see module docstring); used by one thread at
    a time: a thread's own (``_local``) or, for ``get``, one taken from ``_pool``."""

    __slots__ = ("__weakref__", "busy", "gen", "txn")

    def __init__(self) -> None:
        self.busy = False
        self.gen = -1
        self.txn: Any = None


def _message(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def translate(exc: BaseException) -> BaseException:
    """An lmdb (or OS) exception as a rony.store error; other exceptions unchanged."""
    if isinstance(exc, StoreError | _MapFull):
        return exc
    if isinstance(exc, lmdb.MapFullError):
        return _MapFull()
    if isinstance(exc, lmdb.ReadonlyError):
        return ReadOnlyError("the store is read-only")
    if isinstance(exc, lmdb.BadValsizeError):
        return InvalidKeyError("key or value size not accepted by LMDB")
    if isinstance(exc, TypeError):
        return WrongTypeError(f"keys and values must be bytes: {exc}")
    if isinstance(exc, lmdb.Error | OSError):
        return StorageError(_message(exc))
    return exc


def _own_error(exc: BaseException) -> BaseException:
    """An exception out of a write function: LMDB's translated, any other unchanged.

    The function may be user code (``transact``), whose exceptions must propagate as they are:
    ``translate`` would turn its OSError into StorageError and its TypeError into a
    WrongTypeError about keys. The transaction's own methods translate their errors already.
    """
    return translate(exc) if isinstance(exc, lmdb.Error) else exc


class Engine:
    """Opens the LMDB environment, owns the locks, caches reads, grows the map.

    :class:`~rony.store.Store` is this engine plus the public API and background threads.
    """

    def __init__(self, path: str | os.PathLike[str], options: StoreOptions) -> None:
        self._options = options
        self._clock = options.clock
        if options.clock is not system_clock:
            self.get = self._get_with_clock  # type: ignore[method-assign]
        self._max_key = options.max_key_size
        self._readonly = options.readonly
        self._durable = options.durability == "durable"
        self._closed = True  # until fully open; set when LMDB is being closed
        self._closing = False  # set first by close(): refuse new writes, finish queued ones
        self._lock_fd = -1
        self._registered: tuple[int, int] | None = None
        self._gen = 0
        # Write operations committed (a batch of N counts N): read by Store.counters().
        self._writes = 0
        self._gate = 0  # 0 open, 1 draining views, 2 closed to every read
        self._epoch = 0  # map resizes so far (views opened before one lose their snapshot)
        self._views = 0
        self._gate_cond = threading.Condition(threading.Lock())
        self._slots: weakref.WeakSet[_Slot] = weakref.WeakSet()
        self._local = threading.local()
        self._pool: deque[_Slot] = deque()  # get's slots not in use (see module docstring)
        self._wlock = threading.Lock()
        self._wowner = 0
        self._map_full = False
        self._janitor_mark = 0
        self._path = ""
        try:
            self._path = self._prepare(path)
            self._open_env()
        except BaseException:
            self._release_files()  # a failed open leaves no lock and no registration behind
            raise
        self._closed = False

    # -- opening ---------------------------------------------------------------------------

    def _prepare(self, path: str | os.PathLike[str]) -> str:
        try:
            text = os.fspath(path)
        except TypeError:
            raise WrongTypeError(
                f"path must be str or os.PathLike, not {type(path).__name__}"
            ) from None
        if not isinstance(text, str):
            raise WrongTypeError("path must be a str path")
        if not text:
            raise NotAStoreError("empty path")
        text = os.path.abspath(text)
        opts = self._options
        try:
            if os.path.lexists(text) and not os.path.isdir(text):
                raise NotAStoreError(f"{text} is not a folder")
            if not os.path.exists(text):
                if opts.readonly or not opts.create:
                    raise NotAStoreError(f"{text} does not exist")
                os.makedirs(text, exist_ok=True)
            names = set(os.listdir(text))
            if "data.mdb" not in names:
                if opts.readonly or not opts.create:
                    raise NotAStoreError(f"{text} holds no store (no data.mdb)")
                if names - _LMDB_FILES:
                    raise NotAStoreError(f"{text} holds other files; refusing to create a store")
            info = os.stat(text)
        except PermissionError as exc:
            raise StoreAccessError(f"{text}: {exc.strerror}") from None
        except NotADirectoryError:
            raise NotAStoreError(f"{text} is not a folder") from None
        except OSError as exc:
            if exc.errno == 30:  # EROFS
                raise StoreAccessError(f"{text}: read-only file system") from None
            raise StorageError(f"{text}: {exc}") from None
        key = (info.st_dev, info.st_ino)
        with _open_paths_lock:
            if key in _open_paths:
                raise AlreadyOpenError(f"{text} is already open in this process")
            _open_paths[key] = text
        self._registered = key
        if not opts.readonly:
            self._take_writer_lock(text)
        return text

    def _take_writer_lock(self, path: str) -> None:
        lock_path = os.path.join(path, "writer.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except PermissionError:
            raise StoreAccessError(f"{path}: no write access (open with readonly=True)") from None
        except OSError as exc:
            if exc.errno == 30:
                raise StoreAccessError(f"{path}: read-only file system") from None
            raise StorageError(f"{lock_path}: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreLockedError(
                f"{path} is open for writing by another process; open it with readonly=True"
            ) from None
        except OSError as exc:
            os.close(fd)
            raise StorageError(f"{lock_path}: {exc}") from None
        self._lock_fd = fd

    def _open_env(self) -> None:
        opts = self._options
        try:
            self._env = lmdb.open(
                self._path,
                map_size=opts.map_size,
                subdir=True,
                readonly=opts.readonly,
                metasync=self._durable,
                sync=self._durable,
                create=False,
                max_dbs=len(_DB_NAMES),
                max_readers=opts.max_readers,
                max_spare_txns=0,
            )
        except lmdb.Error as exc:
            raise self._open_error(exc) from None
        try:
            if opts.readonly:
                self._open_dbs_readonly()
            else:
                self._open_dbs_writer()
                self._env.reader_check()  # clear reader slots left by dead processes
            self._map_size = int(self._env.info()["map_size"])
            self._psize = int(self._env.stat()["psize"])
            if not opts.readonly:
                # LMDB takes the map size given at open (raised to what is in use), not the
                # size the map had grown to: start with headroom again.
                used = (int(self._env.info()["last_pgno"]) + 1) * self._psize
                if used * 4 > self._map_size * 3:
                    self._map_size = max(self._map_size, used) * 2
                    self._env.set_mapsize(self._map_size)
        except BaseException as exc:
            self._env.close()
            if isinstance(exc, lmdb.Error):
                raise self._open_error(exc) from None
            raise

    def _open_error(self, exc: lmdb.Error) -> StoreError:
        text = _message(exc)
        if isinstance(
            exc,
            lmdb.InvalidError
            | lmdb.VersionMismatchError
            | lmdb.CorruptedError
            | lmdb.IncompatibleError
            | lmdb.NotFoundError
            | lmdb.PageNotFoundError,
        ):
            return NotAStoreError(f"{self._path} is not a rony store: {text}")
        if "Permission denied" in text or "Read-only file system" in text:
            return StoreAccessError(f"{self._path}: {text}")
        return StorageError(f"{self._path}: {text}")

    def _open_dbs_writer(self) -> None:
        env = self._env
        with env.begin(write=True) as txn:
            names = [bytes(k) for k in txn.cursor().iternext(keys=True, values=False)]
            foreign = [n for n in names if n not in _DB_NAMES]
            if foreign or (names and b"meta" not in names):
                raise NotAStoreError(f"{self._path} is an LMDB environment of something else")
            self._meta = env.open_db(b"meta", txn=txn)
            marker = txn.get(b"format", db=self._meta)
            if marker is None and names:
                raise NotAStoreError(f"{self._path} has no rony store format marker")
            if marker is not None and marker != FORMAT:
                raise NotAStoreError(f"{self._path}: unknown store format {marker!r}")
            self._data = env.open_db(b"data", txn=txn)
            self._index = env.open_db(b"expiry", txn=txn, dupsort=True)
            if marker is None:
                txn.put(b"format", FORMAT, db=self._meta)

    def _open_dbs_readonly(self) -> None:
        env = self._env
        with env.begin() as txn:
            names = {bytes(k) for k in txn.cursor().iternext(keys=True, values=False)}
        if names != _DB_NAMES:
            raise NotAStoreError(f"{self._path} is not a rony store")
        # Without txn=, py-lmdb opens each handle in its own transaction and commits it,
        # which a handle opened in a read-only environment needs to stay valid.
        self._meta = env.open_db(b"meta", create=False)
        self._data = env.open_db(b"data", create=False)
        self._index = env.open_db(b"expiry", create=False, dupsort=True)
        with env.begin(db=self._meta) as txn:
            if txn.get(b"format") != FORMAT:
                raise NotAStoreError(f"{self._path}: unknown store format")

    def _release_files(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # drops the flock
            self._lock_fd = -1
        if self._registered is not None:
            with _open_paths_lock:
                _open_paths.pop(self._registered, None)
            self._registered = None

    # -- the read fast path ----------------------------------------------------------------

    def get(self, key: bytes) -> bytes | None:
        """The value of a live key, or None if it is missing or expired."""
        pool = self._pool
        try:
            slot = pool.pop()
        except IndexError:
            slot = self._new_pooled_slot()
        slot.busy = True
        try:
            # _gen is -2 while an exclusive section runs, so this one test covers the gate.
            raw = (slot.txn if slot.gen == self._gen else self._renew(slot)).get(key)
        except BaseException as exc:
            slot.busy = False
            pool.append(slot)
            raise self._read_error(exc) from None
        slot.busy = False
        pool.append(slot)
        if raw is None:
            self._check_key(key)
            return None
        # _ttl.live_value by byte comparisons (see "the clock of the read fast path" above);
        # _get_with_clock replaces this for other clocks.
        value: bytes
        if raw < _FOREVER_BELOW:
            value = raw[_VALUE]
            return value
        low, high, bound = _now
        if not low <= _time() < high:
            bound = _now_bound()
        if raw >= bound:
            value = raw[_VALUE]
            return value
        return None

    def _get_with_clock(self, key: bytes) -> bytes | None:
        """``get`` for a store opened with its own ``clock``."""
        pool = self._pool
        try:
            slot = pool.pop()
        except IndexError:
            slot = self._new_pooled_slot()
        slot.busy = True
        try:
            raw = (slot.txn if slot.gen == self._gen else self._renew(slot)).get(key)
        except BaseException as exc:
            slot.busy = False
            pool.append(slot)
            raise self._read_error(exc) from None
        slot.busy = False
        pool.append(slot)
        if raw is None:
            self._check_key(key)
            return None
        value: bytes
        if raw < _FOREVER_BELOW or _unpack(raw)[0] > self._clock():
            value = raw[8:]
            return value
        return None

    def _check_key(self, key: object) -> None:
        if not isinstance(key, bytes | bytearray | memoryview):
            raise WrongTypeError(f"key must be bytes, not {type(key).__name__}")
        if not 0 < len(key) <= self._max_key:
            raise InvalidKeyError(f"key length {len(key)} not in [1, {self._max_key}]")

    def _new_pooled_slot(self) -> _Slot:
        """A new slot the resizer knows of; for ``get`` (the pool was empty) it joins the pool
        when put back."""
        slot = _Slot()
        with self._gate_cond:
            self._slots.add(slot)
        return slot

    def _new_slot(self) -> _Slot:
        """A new slot of this thread's own (views, scans, ``_read``)."""
        slot = self._local.slot = self._new_pooled_slot()
        return slot

    def _slot(self) -> _Slot:
        try:
            slot: _Slot = self._local.slot
        except AttributeError:
            slot = self._new_slot()
        return slot

    def _renew(self, slot: _Slot) -> Any:
        """A fresh read transaction for ``slot`` (called with ``slot.busy`` set)."""
        while True:
            if self._gate:
                slot.busy = False
                self._wait_gate(1)
                slot.busy = True
                continue
            old = slot.txn
            if old is not None:
                slot.txn = None
                slot.gen = -1
                old.abort()
            if self._closed:
                raise StoreClosedError("the store is closed")
            gen = self._gen
            if gen < 0:  # an exclusive section started since the gate test: wait for it
                continue
            try:
                txn = self._env.begin(db=self._data)
            except lmdb.MapResizedError:
                # Another process grew the map: adopt its size (needs no one inside LMDB).
                slot.busy = False
                self._adopt_map_size()
                slot.busy = True
                continue
            slot.txn = txn
            slot.gen = -1 if self._readonly else gen
            return txn

    def _read_error(self, exc: BaseException) -> BaseException:
        if self._closed and isinstance(exc, lmdb.Error):
            return StoreClosedError("the store is closed")
        if isinstance(exc, TypeError):
            return WrongTypeError(f"key must be bytes: {exc}")
        if isinstance(exc, lmdb.BadValsizeError):
            return InvalidKeyError("key must not be empty")
        return translate(exc)

    def _wait_gate(self, level: int) -> None:
        with self._gate_cond:
            while self._gate >= level:
                self._gate_cond.wait()

    def _exclusive(self, action: Callable[[], object], *, resize: bool) -> None:
        """Run ``action`` while no thread of this process is inside LMDB (see module doc).
        The caller holds the writer lock (``_gen`` changes only under it).

        ``resize``: first wait up to ``resize_wait`` for open views to end, and release every
        cached read transaction (a remap invalidates them); otherwise only release cached
        transactions of threads idle since the previous janitor run.
        """
        with self._gate_cond:
            while self._gate:
                self._gate_cond.wait()
            self._gate = 1
            saved_gen, self._gen = self._gen, -2  # every cached-read fast path now misses
            if resize:
                deadline = time.monotonic() + self._options.resize_wait
                while self._views:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._gate_cond.wait(left)
                self._epoch += 1
            self._gate = 2
            slots = list(self._slots)
        try:
            pause = 1e-6
            while any(slot.busy for slot in slots):
                time.sleep(pause)  # in-flight LMDB calls take microseconds
                pause = min(pause * 2, 1e-3)
            mark = self._janitor_mark
            for slot in slots:
                if slot.txn is not None and (resize or slot.gen < mark):
                    txn, slot.txn, slot.gen = slot.txn, None, -1
                    txn.abort()
            action()
        finally:
            with self._gate_cond:
                self._gen = saved_gen + 1
                self._gate = 0
                self._gate_cond.notify_all()

    def _janitor(self) -> None:
        """Release cached read transactions of threads that did not read since the last run
        although commits happened (they pin old pages). Called by the maintenance thread."""
        with self._wlock:  # exclusive sections change _gen, so they run under the writer lock
            if self._closed:
                return
            mark = self._janitor_mark
            if any(s.txn is not None and s.gen < mark for s in list(self._slots)):
                self._exclusive(lambda: None, resize=False)
            self._janitor_mark = self._gen

    def _adopt_map_size(self) -> None:
        """Another process grew the map: adopt its size (read-only stores only)."""
        with self._wlock:
            if not self._closed:
                self._exclusive(lambda: self._env.set_mapsize(0), resize=True)

    # -- views -----------------------------------------------------------------------------

    def _view_begin(self) -> tuple[Any, int]:
        with self._gate_cond:
            self._views_enter()
        slot = self._slot()
        try:
            while True:
                slot.busy = True
                if self._gate == 2:
                    slot.busy = False
                    self._wait_gate(2)
                    continue
                try:
                    if self._closed:
                        raise StoreClosedError("the store is closed")
                    epoch = self._epoch
                    return self._env.begin(db=self._data), epoch
                except lmdb.MapResizedError:
                    slot.busy = False
                    self._views_done()
                    try:
                        self._adopt_map_size()
                    finally:  # counted again either way: the handler below uncounts once
                        with self._gate_cond:
                            self._views_enter()
                finally:
                    slot.busy = False
        except BaseException as exc:
            self._views_done()
            raise self._read_error(exc) from None

    def _views_enter(self) -> None:
        """Count a new view once no resize is draining (``_gate_cond`` held)."""
        while self._gate:
            self._gate_cond.wait()
        self._views += 1

    def _views_done(self) -> None:
        with self._gate_cond:
            self._views -= 1
            if self._gate:
                self._gate_cond.notify_all()

    def _view_end(self, raw: Any) -> None:
        slot = self._slot()
        slot.busy = True
        try:
            if self._gate == 2:
                slot.busy = False
                self._wait_gate(2)
                slot.busy = True
            with contextlib.suppress(lmdb.Error):  # a resize or close may have ended it
                raw.abort()
        finally:
            slot.busy = False
            self._views_done()

    def _view_enter(self, epoch: int) -> _Slot:
        """Before a view's LMDB call: flag busy, wait out a resize, detect a lost snapshot."""
        slot = self._slot()
        slot.busy = True
        if self._gate == 2:
            slot.busy = False
            self._wait_gate(2)
            slot.busy = True
        if epoch != self._epoch or self._closed:
            slot.busy = False
            if self._closed:
                raise StoreClosedError("the store is closed")
            raise SnapshotLostError("the map was resized while this view was open; retry")
        return slot

    # -- writes ----------------------------------------------------------------------------

    def _check_writable(self) -> None:
        if self._readonly:
            raise ReadOnlyError("the store was opened read-only")
        if self._closing or self._closed:
            raise StoreClosedError("the store is closed")
        if self._wowner == threading.get_ident():
            raise TransactionError(
                "store-level write inside an update() block of this thread; use the txn"
            )

    def _run_write(self, fn: Callable[[WriteTxn], T]) -> T:
        """Run ``fn`` in its own write transaction in this thread and commit it.

        MDB_MAP_FULL: abort, grow the map, run ``fn`` again (it must only touch the txn).
        """
        with self._wlock:
            self._wowner = threading.get_ident()
            try:
                while True:
                    if self._closed:
                        raise StoreClosedError("the store is closed")
                    now = self._clock()  # before begin: a raising clock leaks no txn
                    raw = self._begin_write()
                    txn = WriteTxn(self, raw, now)
                    try:
                        result = fn(txn)
                        raw.commit()
                    except BaseException as exc:
                        txn._finish()
                        err = _own_error(exc)
                        if self._take_map_full() | isinstance(err, _MapFull):
                            self._abort_write(raw, grow=True)
                            continue
                        self._abort_write(raw)
                        if err is exc:
                            raise
                        raise err from None
                    txn._finish()
                    self._map_full = False
                    self._gen += 1
                    self._writes += 1
                    return result
            finally:
                self._wowner = 0

    def _run_batch(self, fns: list[Callable[[WriteTxn], Any]]) -> list[tuple[bool, Any]]:
        """Run every ``fn`` in one write transaction, commit once (group commit).

        Returns ``(ok, result_or_exception)`` per fn. A fn's own exception fails only that fn
        (store ops validate before they mutate; ``transact`` runs user code in a nested txn).
        A failed commit fails them all.
        """
        with self._wlock:
            self._wowner = threading.get_ident()
            try:
                while True:
                    if self._closed:
                        closed = StoreClosedError("the store is closed")
                        return [(False, closed)] * len(fns)
                    try:
                        now = self._clock()  # before begin: a raising clock leaks no txn
                        raw = self._begin_write()
                    except Exception as exc:
                        return [(False, exc)] * len(fns)
                    txn = WriteTxn(self, raw, now)
                    outcomes: list[tuple[bool, Any]] = []
                    try:
                        for fn in fns:
                            try:
                                outcomes.append((True, fn(txn)))
                            except _MapFull:
                                raise
                            except BaseException as exc:
                                outcomes.append((False, _own_error(exc)))
                            if self._map_full:
                                raise _MapFull()
                        raw.commit()
                    except BaseException as exc:
                        txn._finish()
                        err = translate(exc)
                        if self._take_map_full() | isinstance(err, _MapFull):
                            self._abort_write(raw, grow=True)
                            continue
                        self._abort_write(raw)
                        return [(False, err)] * len(fns)
                    txn._finish()
                    self._gen += 1
                    self._writes += len(fns)
                    return outcomes
            finally:
                self._wowner = 0

    def _write_error(self, exc: BaseException) -> BaseException:
        err = translate(exc)
        if isinstance(err, _MapFull):
            self._map_full = True  # remembered even if the caller's code swallows the error
        return err

    def _take_map_full(self) -> bool:
        seen, self._map_full = self._map_full, False
        return seen

    def _begin_write(self) -> Any:
        try:
            return self._env.begin(write=True, db=self._data)
        except lmdb.Error as exc:
            raise translate(exc) from None

    def _update_begin(self) -> WriteTxn:
        """Start an ``update()`` block: take the writer lock, make room, begin."""
        self._check_writable()
        self._wlock.acquire()
        try:
            self._wowner = threading.get_ident()
            if self._closed:
                raise StoreClosedError("the store is closed")
            self._ensure_headroom()
            now = self._clock()  # before begin: a raising clock leaks no txn
            return WriteTxn(self, self._begin_write(), now)
        except BaseException:
            self._wowner = 0
            self._wlock.release()
            raise

    def _update_end(self, txn: WriteTxn, commit: bool) -> None:
        raw = txn._raw
        try:
            map_full = self._take_map_full()
            txn._finish()
            if not commit or map_full:
                self._abort_write(raw, grow=map_full)
                if map_full and commit:
                    raise MapGrownError("the map was full and has been grown; run again")
                return
            try:
                raw.commit()
            except BaseException as exc:
                err = translate(exc)
                if self._take_map_full() | isinstance(err, _MapFull):
                    self._abort_write(raw, grow=True)
                    raise MapGrownError("the map was full and has been grown; run again") from None
                self._abort_write(raw)
                raise err from None
            self._gen += 1
            self._writes += 1
        finally:
            self._wowner = 0
            self._wlock.release()

    def _ensure_headroom(self) -> None:
        """Grow before an update() block if under a quarter of the map is left unused."""
        try:
            used = (int(self._env.info()["last_pgno"]) + 1) * self._psize
        except lmdb.Error as exc:
            raise translate(exc) from None
        if self._map_size - used < self._map_size // 4:
            self._abort_write(None, grow=True)

    def _abort_write(self, raw: Any, *, grow: bool = False) -> None:
        """Abort a write transaction (None: none) and, with ``grow``, double the map, while no
        reader of this process is inside LMDB (writer lock held).

        py-lmdb's abort of a write transaction first waits until no thread is inside LMDB on
        the environment; under a steady stream of reads from other threads that wait can last
        forever (seen with three reading threads). Inside an exclusive section it cannot.
        """
        new_size = self._map_size * 2

        def action() -> None:
            if raw is not None:
                raw.abort()
            if grow:
                self._env.set_mapsize(new_size)
                self._map_size = new_size

        try:
            self._exclusive(action, resize=grow)
        except lmdb.Error as exc:
            raise StorageError(f"cannot grow the map to {new_size} bytes: {exc}") from None

    def _sync(self) -> None:
        if self._closed or self._readonly:
            return
        try:
            self._env.sync(True)
        except lmdb.Error as exc:
            if not self._closed:
                raise translate(exc) from None

    # -- raw operations used by the transaction classes (inputs already validated) ----------

    def _raw_get(self, raw: Any, key: bytes) -> bytes | None:
        try:
            value: bytes | None = raw.get(key, db=self._data)
        except BaseException as exc:
            raise self._read_error(exc) from None
        return value

    def _raw_apply(self, raw: Any, key: bytes, change: _ttl.Change) -> None:
        try:
            if change.drop_index:
                raw.delete(_pack(change.drop_index), key, db=self._index)
            if change.raw is None:
                raw.delete(key, db=self._data)
            else:
                raw.put(key, change.raw, db=self._data)
            if change.add_index:
                raw.put(_pack(change.add_index), key, db=self._index)
        except BaseException as exc:
            raise self._write_error(exc) from None

    def _raw_set(self, raw: Any, key: bytes, new_raw: bytes, expiry: int) -> bytes | None:
        """``set`` without keep_ttl: one B-tree pass for the value, index fixed after. The
        old raw value (expired or not; None: there was none)."""
        try:
            old: bytes | None = raw.replace(key, new_raw, db=self._data)
            if old is not None and old[:8] != _Z:
                old_expiry = _unpack(old)[0]
                if old_expiry == expiry:
                    return old
                raw.delete(old[:8], key, db=self._index)
            if expiry:
                raw.put(_pack(expiry), key, db=self._index)
        except BaseException as exc:
            raise self._write_error(exc) from None
        return old

    def _raw_add(self, raw: Any, keys: list[bytes], new_raw: bytes, expiry: int) -> None:
        """``new_raw`` under each of ``keys``, which should not exist (a repository record's
        new entries): one B-tree pass each, with no look-up of an old value first. A key that
        does exist (an entry an expired record left behind, or one value twice) is set as
        ``_raw_set`` does, so its TTL entry is right."""
        for key in keys:
            try:
                added = raw.put(key, new_raw, overwrite=False)
                if added and expiry:
                    raw.put(_pack(expiry), key, db=self._index)
            except BaseException as exc:
                raise self._write_error(exc) from None
            if not added:
                self._raw_set(raw, key, new_raw, expiry)

    def _set_now(self, key: bytes, new_raw: bytes, expiry: int) -> None:
        """Fast mode ``set`` (no keep_ttl) as its own commit in the caller's thread: the
        general ``_run_write`` path with its layers flattened (this is the hot write path).
        The caller has run ``_check_writable``."""
        with self._wlock:
            while True:
                if self._closed:
                    raise StoreClosedError("the store is closed")
                try:
                    raw = self._env.begin(write=True, db=self._data)
                except lmdb.Error as exc:
                    raise translate(exc) from None
                try:
                    old = raw.replace(key, new_raw)
                    if old is not None and old[:8] != _Z:
                        if _unpack(old)[0] != expiry:
                            raw.delete(old[:8], key, db=self._index)
                            if expiry:
                                raw.put(new_raw[:8], key, db=self._index)
                    elif expiry:
                        raw.put(new_raw[:8], key, db=self._index)
                    raw.commit()
                except BaseException as exc:
                    err = translate(exc)
                    if isinstance(err, _MapFull):
                        self._abort_write(raw, grow=True)
                        continue
                    self._abort_write(raw)
                    if err is exc:
                        raise
                    raise err from None
                self._gen += 1
                self._writes += 1
                return

    def _raw_delete(self, raw: Any, key: bytes) -> bytes | None:
        """Delete a key and its index entry; the old raw value (None: there was none)."""
        try:
            old: bytes | None = raw.pop(key, db=self._data)
            if old is not None and old[:8] != _Z:
                raw.delete(old[:8], key, db=self._index)
        except BaseException as exc:
            raise self._write_error(exc) from None
        return old

    def _raw_chunk(
        self,
        raw: Any,
        low: bytes,
        high: bytes | None,
        reverse: bool,
        after: bytes | None,
        limit: int,
        now: int,
    ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        """Up to ``limit`` entries (live ones returned) of [low, high) past ``after``.

        Returns the live items and the last key looked at (None: the range is exhausted).
        """
        items: list[tuple[bytes, bytes]] = []
        try:
            with raw.cursor(db=self._data) as cur:
                if not reverse:
                    ok = cur.set_range(low if after is None else after)
                    if ok and after is not None and cur.key() == after:
                        ok = cur.next()
                else:
                    bound = high if after is None else after
                    if bound is None:
                        ok = cur.last()
                    else:
                        ok = cur.prev() if cur.set_range(bound) else cur.last()
                seen = 0
                while ok:
                    key = cur.key()
                    if (high is not None and key >= high) if not reverse else key < low:
                        return items, None
                    value = cur.value()
                    if value[:8] == _Z or _unpack(value)[0] > now:
                        items.append((key, value[8:]))
                    seen += 1
                    if seen >= limit:
                        return items, key
                    ok = cur.prev() if reverse else cur.next()
        except BaseException as exc:
            raise self._read_error(exc) from None
        return items, None

    def _raw_count(self, raw: Any, low: bytes, high: bytes | None, now: int) -> int:
        try:
            if not low and high is None:
                total = int(raw.stat(self._data)["entries"])
                return total - len(self._raw_expired(raw, now, None))
            count = 0
            with raw.cursor(db=self._data) as cur:
                ok = cur.set_range(low)
                while ok:
                    key = cur.key()
                    if high is not None and key >= high:
                        break
                    value = cur.value()
                    if value[:8] == _Z or _unpack(value)[0] > now:
                        count += 1
                    ok = cur.next()
            return count
        except BaseException as exc:
            raise self._read_error(exc) from None

    def _raw_expired(self, raw: Any, now: int, limit: int | None) -> list[tuple[bytes, bytes]]:
        """Index entries (expiry bytes, key) with expiry <= now, oldest first."""
        found: list[tuple[bytes, bytes]] = []
        with raw.cursor(db=self._index) as cur:
            for exp, key in cur.iternext():
                if _unpack(exp)[0] > now or (limit is not None and len(found) >= limit):
                    break
                found.append((exp, key))
        return found

    def _raw_sweep(self, raw: Any, now: int, limit: int) -> int:
        """Delete up to ``limit`` expired keys and their index entries."""
        try:
            deleted = 0
            for exp, key in self._raw_expired(raw, now, limit):
                value = raw.get(key, db=self._data)
                if value is not None and value[:8] == exp:
                    raw.delete(key, db=self._data)
                    deleted += 1
                raw.delete(exp, key, db=self._index)
            return deleted
        except BaseException as exc:
            raise self._write_error(exc) from None

    def _raw_stats(self, raw: Any, now: int) -> dict[str, int]:
        try:
            data = raw.stat(self._data)
            index = raw.stat(self._index)
            info = self._env.info()
            expired = len(self._raw_expired(raw, now, None))
        except BaseException as exc:
            raise self._read_error(exc) from None
        try:
            file_size = os.stat(os.path.join(self._path, "data.mdb")).st_size
        except OSError:
            file_size = 0
        return {
            "entries": int(data["entries"]),
            "live": int(data["entries"]) - expired,
            "with_ttl": int(index["entries"]),
            "expired_unswept": expired,
            "depth": int(data["depth"]),
            "page_size": int(data["psize"]),
            "pages": int(data["branch_pages"] + data["leaf_pages"] + data["overflow_pages"]),
            "map_size": int(info["map_size"]),
            "used_bytes": (int(info["last_pgno"]) + 1) * self._psize,
            "file_size": file_size,
            "last_txn_id": int(info["last_txnid"]),
            "readers": int(info["num_readers"]),
        }

    def _raw_nested(self, raw: Any) -> Any:
        try:
            return self._env.begin(write=True, parent=raw, db=self._data)
        except BaseException as exc:
            raise self._write_error(exc) from None

    def _raw_end(self, raw: Any, commit: bool) -> None:
        try:
            if commit:
                raw.commit()
            else:
                self._abort_write(raw)  # a child transaction of the caller's
        except BaseException as exc:
            raise self._write_error(exc) from None

    def _raw_get_many(self, raw: Any, keys: Iterable[bytes]) -> list[bytes | None]:
        try:
            return [raw.get(k, db=self._data) for k in keys]
        except BaseException as exc:
            raise self._read_error(exc) from None

    # -- closing ---------------------------------------------------------------------------

    def _close_env(self) -> None:
        """Close LMDB once every writer and reader of this process is out (idempotent)."""
        with self._wlock:
            self._closed = True
            env = getattr(self, "_env", None)
            if env is None:
                return
            if not self._durable and not self._readonly:
                with contextlib.suppress(lmdb.Error):  # nothing more to do; close anyway
                    env.sync(True)

            self._exclusive(env.close, resize=True)
            del self._env
        self._release_files()
