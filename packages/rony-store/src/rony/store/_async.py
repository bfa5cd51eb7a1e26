"""The asyncio face of a store: :class:`AsyncStore`.

Writes never run on the event loop: they go to the store's group-commit writer thread and the
coroutine awaits a future completed after the commit (after the fsync in durable mode), so
writes of many tasks share a commit. Reads run inline on the loop: an LMDB read from a cached
snapshot takes about a microsecond, less than a hop to a thread pool and back (tens of
microseconds; ``benchmarks/store.py`` measures both). A read that has to fault a page in from
disk blocks the loop for that page; open the store on a disk that fits its working set, or call
``asyncio.to_thread(store.get, key)`` where that matters.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from . import _ttl
from ._store import Store, StoreCounters, StoreStats, _ViewBlock
from ._txn import (
    WriteTxn,
    check_by,
    check_fn,
    check_items,
    check_key,
    check_keys,
    check_set_ttl,
    check_value,
)

T = TypeVar("T")


class AsyncStore:
    """Async methods over a :class:`Store`; ``AsyncStore(store)`` or ``await AsyncStore.open``.

    Closing an ``AsyncStore`` closes its store.
    """

    __slots__ = ("_store",)

    def __init__(self, store: Store) -> None:
        if not isinstance(store, Store):
            raise TypeError("AsyncStore wraps a rony.store.Store")
        self._store = store

    @classmethod
    async def open(cls, path: str | os.PathLike[str], **settings: Any) -> AsyncStore:
        """Open a store in a worker thread (opening touches the disk); settings as
        :meth:`Store.open`."""
        return cls(await asyncio.to_thread(Store.open, path, **settings))

    @property
    def store(self) -> Store:
        """The synchronous store underneath (same data, same writer)."""
        return self._store

    async def close(self) -> None:
        """Finish queued writes and close, in a worker thread."""
        await asyncio.to_thread(self._store.close)

    async def __aenter__(self) -> AsyncStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- reads: inline ---------------------------------------------------------------------

    async def get(self, key: bytes) -> bytes | None:
        return self._store.get(key)

    async def exists(self, key: bytes) -> bool:
        return self._store.get(key) is not None

    async def ttl(self, key: bytes) -> float:
        return self._store.ttl(key)

    async def get_many(self, keys: Iterable[bytes]) -> list[bytes | None]:
        return self._store.get_many(keys)

    async def count(
        self, prefix: bytes = b"", *, start: bytes | None = None, end: bytes | None = None
    ) -> int:
        return self._store.count(prefix, start=start, end=end)

    async def scan(
        self,
        prefix: bytes = b"",
        *,
        start: bytes | None = None,
        end: bytes | None = None,
        reverse: bool = False,
        limit: int | None = None,
    ) -> AsyncIterator[tuple[bytes, bytes]]:
        """``async for key, value in astore.scan(...)``; see :meth:`Store.scan`."""
        items = self._store.scan(prefix, start=start, end=end, reverse=reverse, limit=limit)
        for n, item in enumerate(items, 1):
            yield item
            if n % 256 == 0:
                await asyncio.sleep(0)  # let other tasks run during a long scan

    async def stats(self) -> StoreStats:
        return self._store.stats()

    def counters(self) -> StoreCounters:
        """:meth:`Store.counters` (plain reads: no thread, no await)."""
        return self._store.counters()

    def view(self) -> _ViewBlock:
        """``with astore.view() as txn:`` (a plain ``with``: snapshot reads run inline)."""
        return self._store.view()

    # -- writes: on the writer thread ------------------------------------------------------

    async def _submit(self, fn: Callable[[WriteTxn], T]) -> T:
        store = self._store
        store._check_writable()
        committer = store._committer
        assert committer is not None
        result: T = await committer.submit(fn, asyncio.get_running_loop())
        return result

    async def set(
        self, key: bytes, value: bytes, ttl: float | None = None, *, keep_ttl: bool = False
    ) -> None:
        """See :meth:`Store.set`. Cancelling the await does not undo the write."""
        store = self._store
        seconds = check_set_ttl(ttl, keep_ttl)
        k = check_key(key, store._max_key)
        v = check_value(value, store._options.max_value_size)
        await self._submit(lambda txn: txn._set(k, v, seconds, keep_ttl))

    async def delete(self, key: bytes) -> bool:
        k = check_key(key, self._store._max_key)
        return await self._submit(lambda txn: txn._delete(k))

    async def expire(self, key: bytes, ttl: float) -> bool:
        k = check_key(key, self._store._max_key)
        seconds = _ttl.check_ttl(ttl)
        return await self._submit(lambda txn: txn._expire(k, seconds))

    async def persist(self, key: bytes) -> bool:
        k = check_key(key, self._store._max_key)
        return await self._submit(lambda txn: txn._persist(k))

    async def incr(self, key: bytes, by: int = 1) -> int:
        k = check_key(key, self._store._max_key)
        amount = check_by(by)
        return await self._submit(lambda txn: txn._incr(k, amount))

    async def set_many(
        self,
        items: Mapping[bytes, bytes] | Iterable[tuple[bytes, bytes]],
        ttl: float | None = None,
    ) -> None:
        store = self._store
        seconds = check_set_ttl(ttl, False)
        pairs = check_items(items, store._max_key, store._options.max_value_size)
        await self._submit(lambda txn: txn._set_many(pairs, seconds))

    async def delete_many(self, keys: Iterable[bytes]) -> int:
        checked = check_keys(keys, self._store._max_key)
        return await self._submit(lambda txn: txn._delete_many(checked))

    async def transact(self, fn: Callable[[WriteTxn], T]) -> T:
        """Run ``fn(txn)`` on the writer thread in a (nested) transaction; see
        :meth:`Store.transact`. ``fn`` is plain synchronous code."""
        check_fn(fn)
        return await self._submit(lambda txn: txn._nested(fn))

    async def sweep(self, limit: int | None = None) -> int:
        """Delete expired keys now (in a worker thread); see :meth:`Store.sweep`."""
        return await asyncio.to_thread(self._store.sweep, limit)
