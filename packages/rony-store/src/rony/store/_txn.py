"""Transactions: :class:`ReadTxn` (``store.view()``) and :class:`WriteTxn` (``store.update()``).

Argument checking lives here, so the store-level methods and the transaction methods refuse the
same input with the same typed errors. The LMDB calls are the engine's ``_raw_*`` methods
(``_lmdb``); this module imports no lmdb.

Inside a transaction the clock is read once, when it begins: a key does not expire half-way
through a transaction, and every TTL set in it counts from the same instant.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol, TypeVar

from . import _ttl
from .errors import (
    InvalidArgumentError,
    InvalidKeyError,
    InvalidTTLError,
    InvalidValueError,
    TransactionError,
    WrongTypeError,
)

__all__ = ["ReadTxn", "WriteTxn"]

T = TypeVar("T")

_unpack = _ttl.unpack_expiry


class _Slot(Protocol):
    busy: bool


class _Backend(Protocol):
    """What the transaction classes need from the engine (``_lmdb.Engine``)."""

    _max_key: int
    _options: Any
    _local: Any
    _gate: int
    _epoch: int
    _closed: bool

    def _new_slot(self) -> _Slot: ...
    def _view_enter(self, epoch: int) -> _Slot: ...
    def _check_key(self, key: object) -> None: ...
    def _read_error(self, exc: BaseException) -> BaseException: ...
    def _raw_get(self, raw: Any, key: bytes) -> bytes | None: ...
    def _raw_get_many(self, raw: Any, keys: Iterable[bytes]) -> list[bytes | None]: ...
    def _raw_apply(self, raw: Any, key: bytes, change: _ttl.Change) -> None: ...
    def _raw_set(self, raw: Any, key: bytes, new_raw: bytes, expiry: int) -> bytes | None: ...
    def _raw_add(self, raw: Any, keys: list[bytes], new_raw: bytes, expiry: int) -> None: ...
    def _raw_delete(self, raw: Any, key: bytes) -> bytes | None: ...
    def _raw_chunk(
        self,
        raw: Any,
        low: bytes,
        high: bytes | None,
        reverse: bool,
        after: bytes | None,
        limit: int,
        now: int,
    ) -> tuple[list[tuple[bytes, bytes]], bytes | None]: ...
    def _raw_count(self, raw: Any, low: bytes, high: bytes | None, now: int) -> int: ...
    def _raw_sweep(self, raw: Any, now: int, limit: int) -> int: ...
    def _raw_nested(self, raw: Any) -> Any: ...
    def _raw_end(self, raw: Any, commit: bool) -> None: ...


# -- argument checks (shared with the store-level API) ---------------------------------------


def check_key(key: object, max_key: int) -> bytes:
    if type(key) is not bytes:
        if not isinstance(key, bytearray | memoryview):
            raise WrongTypeError(f"key must be bytes, not {type(key).__name__}")
        key = bytes(key)
    if not 0 < len(key) <= max_key:
        raise InvalidKeyError(f"key length {len(key)} not in [1, {max_key}]")
    return key


def check_value(value: object, max_value: int) -> bytes:
    if type(value) is not bytes:
        if not isinstance(value, bytearray | memoryview):
            raise WrongTypeError(f"value must be bytes, not {type(value).__name__}")
        value = bytes(value)
    if len(value) > max_value:
        raise InvalidValueError(f"value length {len(value)} > max_value_size {max_value}")
    return value


def check_set_ttl(ttl: object, keep_ttl: object) -> float | None:
    """TTL of ``set``: None, or positive seconds. ``set`` refuses ttl <= 0 as Redis' SET EX
    does; ``expire`` with ttl <= 0 deletes (Redis' EXPIRE)."""
    if type(keep_ttl) is not bool:
        raise WrongTypeError("keep_ttl must be a bool")
    if ttl is None:
        return None
    if keep_ttl:
        raise InvalidArgumentError("give either ttl or keep_ttl=True, not both")
    seconds = _ttl.check_ttl(ttl)
    if seconds <= 0:
        raise InvalidTTLError(f"set() needs a positive ttl, not {seconds!r} (use delete())")
    return seconds


def check_by(by: object) -> int:
    if type(by) is not int:
        raise WrongTypeError(f"incr() amount must be an int, not {type(by).__name__}")
    if not _ttl.INT64_MIN <= by <= _ttl.INT64_MAX:
        raise InvalidArgumentError("incr() amount must fit in a signed 64-bit integer")
    return by


def check_range(
    prefix: object, start: object, end: object, max_key: int
) -> tuple[bytes, bytes | None]:
    """The [low, high) key range of a scan or count."""
    if type(prefix) is not bytes:
        if not isinstance(prefix, bytearray | memoryview):
            raise WrongTypeError(f"prefix must be bytes, not {type(prefix).__name__}")
        prefix = bytes(prefix)
    if len(prefix) > max_key:
        raise InvalidKeyError(f"prefix length {len(prefix)} > max_key_size {max_key}")
    bounds = [None if b is None else check_key(b, max_key) for b in (start, end)]
    return _ttl.key_range(prefix, bounds[0], bounds[1])


def check_limit(limit: object) -> int | None:
    if limit is None:
        return None
    if type(limit) is not int:
        raise WrongTypeError(f"limit must be an int, not {type(limit).__name__}")
    if limit < 0:
        raise InvalidArgumentError("limit must be >= 0")
    return limit


def check_items(
    items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]], max_key: int, max_value: int
) -> list[tuple[bytes, bytes]]:
    pairs = items.items() if isinstance(items, Mapping) else items
    checked: list[tuple[bytes, bytes]] = []
    for pair in pairs:
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise WrongTypeError("set_many() takes a mapping or (key, value) pairs")
        checked.append((check_key(pair[0], max_key), check_value(pair[1], max_value)))
    return checked


def check_fn(fn: object) -> None:
    """The function of ``transact``: synchronous code (a coroutine function would only build
    a coroutine that is never awaited, so nothing would be written)."""
    if not callable(fn):
        raise TypeError("transact() needs a callable taking the transaction")
    if inspect.iscoroutinefunction(fn):
        raise WrongTypeError("transact() runs synchronous code, not a coroutine function")


def check_keys(keys: Iterable[bytes], max_key: int) -> list[bytes]:
    if isinstance(keys, bytes | bytearray | memoryview | str):
        raise WrongTypeError("keys must be an iterable of bytes keys, not a single key")
    return [check_key(k, max_key) for k in keys]


# -- range reads (shared with the store) ----------------------------------------------------


class RangeReads:
    """``scan``, ``keys`` and ``count``, written once for :class:`~rony.store.Store` and the
    transactions over two hooks: ``_chunk`` (one chunk of a scan) and ``_count``."""

    __slots__ = ()
    _max_key: int

    def _chunk(
        self, low: bytes, high: bytes | None, reverse: bool, after: bytes | None
    ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        """Up to ``scan_chunk`` entries of [low, high) past ``after`` (see ``_raw_chunk``)."""
        raise NotImplementedError

    def _count(self, low: bytes, high: bytes | None) -> int:
        raise NotImplementedError

    def scan(
        self,
        prefix: bytes = b"",
        *,
        start: bytes | None = None,
        end: bytes | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Live ``(key, value)`` pairs in key order (descending with ``reverse``) whose key
        starts with ``prefix`` and lies in ``[start, end)``, at most ``limit`` of them.

        Read in chunks of ``scan_chunk`` keys. On the store each chunk comes from the newest
        snapshot, so a long scan never pins old data (use ``view().scan`` for one consistent
        snapshot); in a transaction every chunk comes from its snapshot (a write transaction
        sees its own earlier writes).
        """
        low, high = check_range(prefix, start, end, self._max_key)
        return self._scan(low, high, bool(reverse), check_limit(limit))

    def _scan(
        self, low: bytes, high: bytes | None, reverse: bool, limit: int | None
    ) -> Iterator[tuple[bytes, bytes]]:
        if limit == 0 or (high is not None and high <= low):
            return
        after: bytes | None = None
        produced = 0
        while True:
            items, after = self._chunk(low, high, reverse, after)
            for item in items:
                yield item
                produced += 1
                if produced == limit:
                    return
            if after is None:
                return

    def keys(
        self,
        prefix: bytes = b"",
        *,
        start: bytes | None = None,
        end: bytes | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> Iterator[bytes]:
        """Live keys in key order (see :meth:`scan`)."""
        for key, _ in self.scan(prefix, start=start, end=end, reverse=reverse, limit=limit):
            yield key

    def count(
        self, prefix: bytes = b"", *, start: bytes | None = None, end: bytes | None = None
    ) -> int:
        """Number of live keys in the range. Counting everything costs O(expired keys);
        a prefix or range costs O(keys in it)."""
        low, high = check_range(prefix, start, end, self._max_key)
        if high is not None and high <= low:
            return 0
        return self._count(low, high)


# -- transactions ---------------------------------------------------------------------------


class ReadTxn(RangeReads):
    """A snapshot: every read sees the store as it was when the transaction began.

    Valid only inside its ``with`` block. Methods mirror the store's read methods.
    """

    __slots__ = ("_done", "_eng", "_epoch", "_max_key", "_now", "_raw")

    def __init__(self, eng: _Backend, raw: Any, now: int, epoch: int = -1) -> None:
        self._eng = eng
        self._max_key = eng._max_key
        self._raw = raw
        self._now = now
        self._epoch = epoch
        self._done = False

    @property
    def now(self) -> int:
        """The transaction's clock reading (ms since the epoch)."""
        return self._now

    def _enter(self) -> _Slot | None:
        """Before an LMDB call: flag this thread busy (see ``_lmdb``); slow cases (a resize
        under way, a lost snapshot, a closed store) go to the engine."""
        if self._done:
            raise TransactionError("the transaction has ended")
        eng = self._eng
        try:
            slot: _Slot = eng._local.slot
        except AttributeError:
            slot = eng._new_slot()
        slot.busy = True
        if eng._gate == 2 or self._epoch != eng._epoch or eng._closed:
            slot.busy = False
            return eng._view_enter(self._epoch)
        return slot

    def _finish(self) -> None:
        self._done = True

    def _get_raw(self, key: bytes) -> bytes | None:
        slot = self._enter()
        try:
            return self._eng._raw_get(self._raw, key)
        finally:
            if slot is not None:
                slot.busy = False

    def get(self, key: bytes) -> bytes | None:
        """The value of a live key, or None."""
        slot = self._enter()
        try:
            raw: bytes | None = self._raw.get(key)  # the txn's default db is the data db
        except BaseException as exc:
            raise self._eng._read_error(exc) from None
        finally:
            if slot is not None:
                slot.busy = False
        if raw is None:
            self._eng._check_key(key)
            return None
        value = raw[8:]
        if raw[:8] == _ttl.PERSISTENT_HEADER or _unpack(raw)[0] > self._now:
            return value
        return None

    def exists(self, key: bytes) -> bool:
        return self.get(key) is not None

    def ttl(self, key: bytes) -> float:
        """Remaining seconds, or :data:`NO_KEY` (-2.0) / :data:`NO_EXPIRY` (-1.0)."""
        return _ttl.remaining(self._get_raw(check_key(key, self._max_key)), self._now)

    def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        """Values of ``keys`` in order (None for missing or expired ones)."""
        checked = check_keys(keys, self._max_key)
        slot = self._enter()
        try:
            raws = self._eng._raw_get_many(self._raw, checked)
        finally:
            if slot is not None:
                slot.busy = False
        now = self._now
        return [_ttl.live_value(raw, now) for raw in raws]

    def _chunk(
        self, low: bytes, high: bytes | None, reverse: bool, after: bytes | None
    ) -> tuple[list[tuple[bytes, bytes]], bytes | None]:
        slot = self._enter()
        try:
            eng = self._eng
            return eng._raw_chunk(
                self._raw, low, high, reverse, after, eng._options.scan_chunk, self._now
            )
        finally:
            if slot is not None:
                slot.busy = False

    def _count(self, low: bytes, high: bytes | None) -> int:
        slot = self._enter()
        try:
            return self._eng._raw_count(self._raw, low, high, self._now)
        finally:
            if slot is not None:
                slot.busy = False


class WriteTxn(ReadTxn):
    """A read-write transaction: all of its writes commit together or not at all.

    Reads see the transaction's own writes. Use it only in the thread that opened it.
    """

    __slots__ = ("_owner",)

    def __init__(self, eng: _Backend, raw: Any, now: int) -> None:
        super().__init__(eng, raw, now)
        self._owner = threading.get_ident()

    def _enter(self) -> _Slot | None:
        if self._done:
            raise TransactionError("the transaction has ended")
        if threading.get_ident() != self._owner:
            raise TransactionError("a write transaction belongs to the thread that opened it")
        return None

    # The _-prefixed forms take checked arguments; the store's group-commit ops call them.

    def set(
        self, key: bytes, value: bytes, ttl: float | None = None, *, keep_ttl: bool = False
    ) -> None:
        """Store ``value``. ``ttl``: seconds until it expires (None: never). Without
        ``keep_ttl`` a set clears an existing TTL; with it a live key keeps its TTL."""
        eng = self._eng
        seconds = check_set_ttl(ttl, keep_ttl)
        self._set(
            check_key(key, eng._max_key),
            check_value(value, eng._options.max_value_size),
            seconds,
            keep_ttl,
        )

    def _set(self, key: bytes, value: bytes, ttl: float | None, keep_ttl: bool) -> None:
        self._enter()
        if keep_ttl:
            old = self._eng._raw_get(self._raw, key)
            change = _ttl.on_set(old, value, _ttl.PERSISTENT, True, self._now)
            self._eng._raw_apply(self._raw, key, change)
        elif ttl is None:
            self._eng._raw_set(self._raw, key, _ttl.PERSISTENT_HEADER + value, _ttl.PERSISTENT)
        else:
            expiry = _ttl.expiry_for(ttl, self._now)
            self._eng._raw_set(self._raw, key, _ttl.encode(value, expiry), expiry)

    def delete(self, key: bytes) -> bool:
        """Delete a key; True if it existed and was live."""
        return self._delete(check_key(key, self._max_key))

    def _delete(self, key: bytes) -> bool:
        self._enter()
        old = self._eng._raw_delete(self._raw, key)
        return _ttl.live_value(old, self._now) is not None

    def expire(self, key: bytes, ttl: float) -> bool:
        """Give a live key a TTL of ``ttl`` seconds; ``ttl <= 0`` deletes it (Redis' EXPIRE).
        False if the key is missing or expired."""
        return self._expire(check_key(key, self._max_key), _ttl.check_ttl(ttl))

    def _expire(self, key: bytes, ttl: float) -> bool:
        self._enter()
        old = self._eng._raw_get(self._raw, key)
        if old is None or _ttl.live_value(old, self._now) is None:
            return False
        if ttl <= 0:
            self._eng._raw_delete(self._raw, key)
            return True
        expiry = _ttl.expiry_for(ttl, self._now)
        self._eng._raw_apply(self._raw, key, _ttl.on_expire(old, expiry))
        return True

    def persist(self, key: bytes) -> bool:
        """Remove a live key's TTL; True if it had one."""
        return self._persist(check_key(key, self._max_key))

    def _persist(self, key: bytes) -> bool:
        self._enter()
        old = self._eng._raw_get(self._raw, key)
        if old is None or _ttl.remaining(old, self._now) < 0:
            return False
        self._eng._raw_apply(self._raw, key, _ttl.on_expire(old, _ttl.PERSISTENT))
        return True

    def incr(self, key: bytes, by: int = 1) -> int:
        """Add ``by`` to a base-10 integer value (missing = 0) and return it; keeps the TTL."""
        return self._incr(check_key(key, self._max_key), check_by(by))

    def _incr(self, key: bytes, by: int) -> int:
        self._enter()
        old = self._eng._raw_get(self._raw, key)
        change, result = _ttl.on_incr(old, by, self._now)
        self._eng._raw_apply(self._raw, key, change)
        return result

    def set_many(
        self,
        items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]],
        ttl: float | None = None,
    ) -> None:
        """Set every pair (all with the same ``ttl``, None: no TTL)."""
        eng = self._eng
        seconds = check_set_ttl(ttl, False)
        self._set_many(check_items(items, eng._max_key, eng._options.max_value_size), seconds)

    def _set_many(self, items: list[tuple[bytes, bytes]], ttl: float | None) -> None:
        for key, value in items:
            self._set(key, value, ttl, False)

    def delete_many(self, keys: Iterable[bytes]) -> int:
        """Delete keys; the number that existed and were live."""
        return self._delete_many(check_keys(keys, self._max_key))

    def _delete_many(self, keys: list[bytes]) -> int:
        return sum(self._delete(key) for key in keys)

    def sweep(self, limit: int) -> int:
        """Delete up to ``limit`` expired keys now; the number deleted."""
        self._enter()
        return self._eng._raw_sweep(self._raw, self._now, limit)

    def _nested(self, fn: Callable[[WriteTxn], T]) -> T:
        """Run ``fn`` in a child transaction: its writes vanish if it raises."""
        self._enter()
        raw = self._eng._raw_nested(self._raw)
        child = WriteTxn(self._eng, raw, self._now)
        try:
            result = fn(child)
        except BaseException:
            child._finish()
            self._eng._raw_end(raw, False)
            raise
        child._finish()
        self._eng._raw_end(raw, True)
        return result
