"""Repositories: protobuf records in a store, by primary key, views and secondary indexes.

    from rony.store import Store
    from rony.store.repo import Index, KeyOrder, ModelSpec, Repository

    spec = ModelSpec(Post, KeyOrder("", ("user_id", "-created", "id")),
                     views=(KeyOrder("by_topic", ("topic", "user_id", "-created", "id")),),
                     indexes=(Index("tags"),))
    posts = Repository(spec, store)
    posts.create(post)                      # RecordExistsError if its key is taken
    posts.read(7, 1700000000, 1)            # Post | None
    posts.list(7, limit=20)                 # user 7's posts, newest first

``rony gen`` writes a typed ``<Model>Repo`` / ``Async<Model>Repo`` over these classes for every
message with a ``rony_model`` option. Every write of a record (its table entry, each view's copy,
each index entry; the old ones it replaces) happens in one store transaction, so a crash never
leaves an index pointing nowhere. Values are the message's protobuf bytes: a field added to the
message later keeps reading the old records. The key layout is in ``rony.store._repo_spec``.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final, Generic, TypeVar

from google.protobuf.message import Message

from . import _ttl
from ._repo_spec import NAMESPACE, Index, KeyOrder, ModelSpec, _Order
from ._store import Store
from ._txn import ReadTxn, WriteTxn, check_set_ttl
from .errors import (
    InvalidArgumentError,
    InvalidKeyError,
    InvalidValueError,
    RecordExistsError,
    RecordNotFoundError,
    WrongTypeError,
)

__all__ = [
    "DEFAULT_LIST_LIMIT",
    "MAX_LIST_LIMIT",
    "NAMESPACE",
    "AsyncRepository",
    "AsyncSingleton",
    "Index",
    "KeyOrder",
    "ModelSpec",
    "Repository",
    "Singleton",
    "prefix_of",
]

M = TypeVar("M", bound=Message)

DEFAULT_LIST_LIMIT: Final = 100
"""Records a ``list`` returns when no limit is given (Go Rony's default)."""
MAX_LIST_LIMIT: Final = 999
"""Most records one ``list`` returns (Go Rony's ``SetLimit`` bound); page with ``after``."""

_CREATE, _UPDATE, _SAVE = 0, 1, 2


def prefix_of(names: tuple[str, ...], *values: Any) -> tuple[Any, ...]:
    """The key prefix of a generated ``list(a=..., b=...)``: the leading values that are not
    None. A value given after one left out would be silently ignored, so it is an error."""
    n = 0
    while n < len(values) and values[n] is not None:
        n += 1
    for name, value in zip(names[n:], values[n:], strict=False):
        if value is not None:
            raise InvalidArgumentError(
                f"key field {name!r} is given but {names[n]!r} before it is not: a key prefix "
                "is the leading fields"
            )
    return values[:n]


def _check_page(skip: object, limit: object) -> tuple[int, int]:
    if type(skip) is not int or type(limit) is not int:
        raise WrongTypeError("skip and limit are ints")
    if skip < 0:
        raise InvalidArgumentError(f"skip must be >= 0, not {skip}")
    if not 1 <= limit <= MAX_LIST_LIMIT:
        raise InvalidArgumentError(f"limit must be in [1, MAX_LIST_LIMIT={MAX_LIST_LIMIT}]")
    return skip, limit


def _key(order: _Order, values: tuple[Any, ...]) -> bytes:
    try:
        return order.key(*values)
    except TypeError:  # the wrong number of values (or a wrong type): the checked path says so
        return order.full(values)


class _Base(Generic[M]):
    """The logic both faces share; every method here runs inside one transaction."""

    __slots__ = ("_parse", "_pk", "spec")

    def __init__(self, spec: ModelSpec[M]) -> None:
        if not isinstance(spec, ModelSpec):
            raise WrongTypeError("a repository takes a rony.store.repo.ModelSpec")
        self.spec = spec
        self._pk: _Order = spec._table
        self._parse = spec.message.FromString

    def key_of(self, m: M, view: str | None = None) -> tuple[Any, ...]:
        """The primary key of ``m`` (or its key in ``view``): the ``after`` of the next page of
        a ``list`` (of ``list(view=...)``)."""
        order = self._order(view)
        return tuple(getattr(m, n) for n in order.names)

    def _check(self, m: object) -> M:
        if not isinstance(m, self.spec.message):
            raise WrongTypeError(
                f"this repository stores {self.spec.message.__name__}, not {type(m).__name__}"
            )
        return m

    def _write(self, txn: WriteTxn, m: M, ttl: float | None, mode: int) -> None:
        spec = self.spec
        pk = self._pk.of(m)
        table_key = self._pk.prefix + pk
        data = m.SerializeToString()
        eng = txn._eng
        if len(data) > eng._options.max_value_size:
            raise InvalidValueError(f"record of {len(data)} bytes > max_value_size")
        if ttl is None:
            header, expiry = _ttl.PERSISTENT_HEADER, _ttl.PERSISTENT
        else:
            seconds = check_set_ttl(ttl, False)
            assert seconds is not None
            expiry = _ttl.expiry_for(seconds, txn.now)
            header = _ttl.encode(b"", expiry)
        txn._enter()
        view_keys, index_keys = spec._keys(m, pk)
        # Every key is checked before anything is written: an error leaves the transaction
        # as it was (the caller's ``transact`` function may catch it and go on).
        max_key = eng._max_key
        for group in ((table_key,), view_keys, index_keys):
            for key in group:
                if len(key) > max_key:
                    raise InvalidKeyError(f"{spec.name}: a key of {len(key)} bytes > {max_key}")
        # Every entry of the record gets the same header (so they expire together), written
        # straight to the engine. The table entry is set first, in the one B-tree pass that
        # also returns the old record (no look-up before it); a mode error puts it back.
        raw = txn._raw
        with_data = header + data
        old = eng._raw_set(raw, table_key, with_data, expiry)
        live = old is not None and _ttl.live_value(old, txn.now) is not None
        if (mode == _CREATE and live) or (mode == _UPDATE and not live):
            if old is None:
                eng._raw_delete(raw, table_key)
            else:
                eng._raw_set(raw, table_key, old, _ttl.expiry_of(old))
            if live:
                raise RecordExistsError(f"{spec.name} {spec.key_of(m)!r} exists")
            raise RecordNotFoundError(f"{spec.name} {spec.key_of(m)!r} does not exist")
        if old is None:
            # A new record: its entries are new keys too (one pass each, no look-up).
            if view_keys:
                eng._raw_add(raw, view_keys, with_data, expiry)
            eng._raw_add(raw, index_keys, header, expiry)
            return
        # Replacing a record (live or expired): its old entries that the new one lacks go,
        # the others are set over (a view's copy changes; the TTL of every entry follows).
        old_views, old_indexes = spec._keys(self._parse(old[_ttl.HEADER_SIZE :]), pk)
        for key in {*old_views, *old_indexes}.difference(view_keys, index_keys):
            eng._raw_delete(raw, key)
        for key in view_keys:
            eng._raw_set(raw, key, with_data, expiry)
        for key in index_keys:
            eng._raw_set(raw, key, header, expiry)

    def _remove(self, txn: WriteTxn, key: tuple[Any, ...]) -> bool:
        pk = _key(self._pk, key)
        table_key = self._pk.prefix + pk
        old_raw = txn.get(table_key)
        if old_raw is None:
            return False
        view_keys, index_keys = self.spec._keys(self._parse(old_raw), pk)
        for k in (*view_keys, *index_keys):
            txn._delete(k)
        txn._delete(table_key)
        return True

    def create_in(self, txn: WriteTxn, m: M, *, ttl: float | None = None) -> None:
        """``create`` inside ``txn`` (``store.transact(fn)`` / ``store.update()``, or
        ``AsyncStore.transact(fn)``: these run on the writer thread), to write several records
        atomically."""
        self._write(txn, self._check(m), ttl, _CREATE)

    def update_in(self, txn: WriteTxn, m: M, *, ttl: float | None = None) -> None:
        self._write(txn, self._check(m), ttl, _UPDATE)

    def save_in(self, txn: WriteTxn, m: M, *, ttl: float | None = None) -> None:
        self._write(txn, self._check(m), ttl, _SAVE)

    def delete_in(self, txn: WriteTxn, *key: Any) -> bool:
        return self._remove(txn, key)

    def _order(self, view: str | None) -> _Order:
        if view is None:
            return self._pk
        order = self.spec._views.get(view)
        if order is None:
            raise InvalidArgumentError(f"{self.spec.name} has no view {view!r}")
        return order

    def _range(
        self, order: _Order, prefix: tuple[Any, ...], reverse: bool, after: tuple[Any, ...] | None
    ) -> tuple[bytes, bytes | None, bytes | None]:
        """(prefix, start, end) of a scan: ``after`` (a full key of ``order``) is excluded."""
        low = order.prefix + order.encode(prefix, "key prefix")
        if after is None:
            return low, None, None
        mark = order.prefix + _key(order, after)
        # A full key is a prefix of no other full key of its order, so the next key up is
        # ``mark + 0x00`` and everything below is below ``mark``.
        return (low, None, mark) if reverse else (low, mark + b"\x00", None)

    def _list_in(
        self,
        txn: ReadTxn,
        view: str | None,
        prefix: tuple[Any, ...],
        skip: int,
        limit: int,
        reverse: bool,
        after: tuple[Any, ...] | None,
    ) -> builtins.list[M]:
        skip, limit = _check_page(skip, limit)
        order = self._order(view)
        low, start, end = self._range(order, prefix, bool(reverse), after)
        items = txn.scan(low, start=start, end=end, reverse=bool(reverse), limit=skip + limit)
        parse = self._parse
        return [parse(v) for _, v in list(items)[skip:]]

    def _by_index_in(
        self,
        txn: ReadTxn,
        field: str,
        value: Any,
        skip: int,
        limit: int,
        reverse: bool,
        after: tuple[Any, ...] | None,
    ) -> builtins.list[M]:
        skip, limit = _check_page(skip, limit)
        ix = self.spec._indexes.get(field)
        if ix is None:
            raise InvalidArgumentError(f"{self.spec.name} has no index on {field!r}")
        low = ix.prefix + ix.encode(value)
        start = end = None
        if after is not None:
            mark = low + _key(self._pk, after)
            start, end = (None, mark) if reverse else (mark + b"\x00", None)
        items = list(txn.scan(low, start=start, end=end, reverse=bool(reverse), limit=skip + limit))
        # An index key is ``low`` + the record's packed primary key.
        table, cut = self._pk.prefix, len(low)
        raws = txn.get_many([table + key[cut:] for key, _ in items[skip:]])
        parse = self._parse
        return [parse(raw) for raw in raws if raw is not None]


class Repository(_Base[M]):
    """Records of one model in a :class:`~rony.store.Store` (blocking; thread-safe).

    Reads by key read the store's newest snapshot; ``list`` reads one snapshot; writes are one
    transaction each (``*_in(txn, ...)`` run inside yours, to write several atomically).
    """

    # No __slots__: ``read`` is replaced per instance by a function compiled for the key.

    def __init__(self, spec: ModelSpec[M], store: Store) -> None:
        super().__init__(spec)
        if not isinstance(store, Store):
            raise WrongTypeError("a Repository takes a rony.store.Store (AsyncRepository: an "
                                 "AsyncStore)")  # fmt: skip
        self._store = store
        # A read by primary key is the hot path (benchmarks/repo.py): one compiled function,
        # parameters named as the key fields, shadowing the method below.
        self.__dict__["read"] = self._pk.reader(store.get, self._parse)

    @property
    def store(self) -> Store:
        return self._store

    # -- writes ----------------------------------------------------------------------------

    def create(self, m: M, *, ttl: float | None = None) -> None:
        """Store a new record; :class:`RecordExistsError` if its primary key is taken.
        ``ttl``: seconds until the record (with its view and index entries) expires."""
        m = self._check(m)
        self._store.transact(lambda txn: self._write(txn, m, ttl, _CREATE))

    def update(self, m: M, *, ttl: float | None = None) -> None:
        """Replace an existing record; :class:`RecordNotFoundError` if there is none. As a
        store ``set``, it clears a TTL unless ``ttl`` is given again."""
        m = self._check(m)
        self._store.transact(lambda txn: self._write(txn, m, ttl, _UPDATE))

    def save(self, m: M, *, ttl: float | None = None) -> None:
        """Create or replace (upsert)."""
        m = self._check(m)
        self._store.transact(lambda txn: self._write(txn, m, ttl, _SAVE))

    def delete(self, *key: Any) -> bool:
        """Delete the record with primary key ``key``; True if there was one."""
        return self._store.transact(lambda txn: self._remove(txn, key))

    # -- reads -----------------------------------------------------------------------------

    def read(self, *key: Any) -> M | None:
        """The record with primary key ``key`` (all the table's key fields), or None. (A
        missing value is a TypeError naming the field, as for any Python function.)"""
        raise AssertionError("replaced in __init__")  # pragma: no cover

    def read_by(self, view: str, *key: Any) -> M | None:
        """The record whose key in ``view`` is ``key`` (every field of the view), or None."""
        order = self._order(view)
        raw = self._store.get(order.prefix + _key(order, key))
        return None if raw is None else self._parse(raw)

    def list(
        self,
        *prefix: Any,
        skip: int = 0,
        limit: int = DEFAULT_LIST_LIMIT,
        reverse: bool = False,
        after: tuple[Any, ...] | None = None,
        view: str | None = None,
    ) -> builtins.list[M]:
        """Records whose key (in the table's order, or ``view``'s) starts with ``prefix``, in
        key order (``reverse``: descending), past the first ``skip``, at most ``limit``.
        ``after``: a full key (of that order) to start after, for the next page."""
        with self._store.view() as txn:
            return self._list_in(txn, view, prefix, skip, limit, reverse, after)

    def list_by_index(
        self,
        field: str,
        value: Any,
        *,
        skip: int = 0,
        limit: int = DEFAULT_LIST_LIMIT,
        reverse: bool = False,
        after: tuple[Any, ...] | None = None,
    ) -> builtins.list[M]:
        """Records whose indexed ``field`` is (or, repeated, holds) ``value``, in primary key
        order; ``after``: a primary key to start after."""
        with self._store.view() as txn:
            return self._by_index_in(txn, field, value, skip, limit, reverse, after)

    def iter(self, *prefix: Any, reverse: bool = False, view: str | None = None) -> Iterator[M]:
        """Every record under ``prefix``, in key order, read in chunks (each chunk from the
        newest snapshot: a long iteration pins no old data)."""
        order = self._order(view)
        low = order.prefix + order.encode(prefix, "key prefix")
        parse = self._parse
        for _, raw in self._store.scan(low, reverse=bool(reverse)):
            yield parse(raw)

    def count(self, *prefix: Any) -> int:
        """Number of records under ``prefix`` of the primary key."""
        return self._store.count(self._pk.prefix + self._pk.encode(prefix, "key prefix"))


class AsyncRepository(_Base[M]):
    """:class:`Repository` over an :class:`~rony.store.AsyncStore`: reads run inline (as
    AsyncStore's do), writes on the store's writer thread."""

    __slots__ = ("_astore", "_store")

    def __init__(self, spec: ModelSpec[M], store: Any) -> None:
        super().__init__(spec)
        from ._async import AsyncStore  # lazily, as rony.store does: no asyncio unless asked

        if not isinstance(store, AsyncStore):
            raise WrongTypeError("an AsyncRepository takes a rony.store.AsyncStore")
        self._astore = store
        self._store = store.store

    async def create(self, m: M, *, ttl: float | None = None) -> None:
        m = self._check(m)
        await self._astore.transact(lambda txn: self._write(txn, m, ttl, _CREATE))

    async def update(self, m: M, *, ttl: float | None = None) -> None:
        m = self._check(m)
        await self._astore.transact(lambda txn: self._write(txn, m, ttl, _UPDATE))

    async def save(self, m: M, *, ttl: float | None = None) -> None:
        m = self._check(m)
        await self._astore.transact(lambda txn: self._write(txn, m, ttl, _SAVE))

    async def delete(self, *key: Any) -> bool:
        result: bool = await self._astore.transact(lambda txn: self._remove(txn, key))
        return result

    async def read(self, *key: Any) -> M | None:
        raw = self._store.get(self._pk.prefix + _key(self._pk, key))
        return None if raw is None else self._parse(raw)

    async def read_by(self, view: str, *key: Any) -> M | None:
        order = self._order(view)
        raw = self._store.get(order.prefix + _key(order, key))
        return None if raw is None else self._parse(raw)

    async def list(
        self,
        *prefix: Any,
        skip: int = 0,
        limit: int = DEFAULT_LIST_LIMIT,
        reverse: bool = False,
        after: tuple[Any, ...] | None = None,
        view: str | None = None,
    ) -> builtins.list[M]:
        with self._store.view() as txn:
            return self._list_in(txn, view, prefix, skip, limit, reverse, after)

    async def list_by_index(
        self,
        field: str,
        value: Any,
        *,
        skip: int = 0,
        limit: int = DEFAULT_LIST_LIMIT,
        reverse: bool = False,
        after: tuple[Any, ...] | None = None,
    ) -> builtins.list[M]:
        with self._store.view() as txn:
            return self._by_index_in(txn, field, value, skip, limit, reverse, after)

    async def iter(
        self, *prefix: Any, reverse: bool = False, view: str | None = None
    ) -> AsyncIterator[M]:
        order = self._order(view)
        low = order.prefix + order.encode(prefix, "key prefix")
        async for _, raw in self._astore.scan(low, reverse=bool(reverse)):
            yield self._parse(raw)

    async def count(self, *prefix: Any) -> int:
        return self._store.count(self._pk.prefix + self._pk.encode(prefix, "key prefix"))


class Singleton(Generic[M]):
    """The one record of a ``singleton: true`` model (``save`` / ``read`` / ``delete``)."""

    __slots__ = ("_key", "_message", "_store")

    def __init__(self, message: type[M], store: Store, *, name: str = "") -> None:
        if not isinstance(store, Store):
            raise WrongTypeError("a Singleton takes a rony.store.Store")
        self._message = message
        self._store = store
        self._key = NAMESPACE + _pack_singleton(message, name)

    def save(self, m: M, *, ttl: float | None = None) -> None:
        if not isinstance(m, self._message):
            raise WrongTypeError(f"this singleton is a {self._message.__name__}")
        self._store.set(self._key, m.SerializeToString(), ttl)

    def read(self) -> M | None:
        raw = self._store.get(self._key)
        return None if raw is None else self._message.FromString(raw)

    def delete(self) -> bool:
        return self._store.delete(self._key)


class AsyncSingleton(Generic[M]):
    """:class:`Singleton` over an :class:`~rony.store.AsyncStore`."""

    __slots__ = ("_astore", "_key", "_message")

    def __init__(self, message: type[M], store: Any, *, name: str = "") -> None:
        from ._async import AsyncStore

        if not isinstance(store, AsyncStore):
            raise WrongTypeError("an AsyncSingleton takes a rony.store.AsyncStore")
        self._message = message
        self._astore = store
        self._key = NAMESPACE + _pack_singleton(message, name)

    async def save(self, m: M, *, ttl: float | None = None) -> None:
        if not isinstance(m, self._message):
            raise WrongTypeError(f"this singleton is a {self._message.__name__}")
        await self._astore.set(self._key, m.SerializeToString(), ttl)

    async def read(self) -> M | None:
        raw = self._astore.store.get(self._key)
        return None if raw is None else self._message.FromString(raw)

    async def delete(self) -> bool:
        result: bool = await self._astore.delete(self._key)
        return result


def _pack_singleton(message: type[Message], name: str) -> bytes:
    from . import keys

    return keys.pack("s", name or message.DESCRIPTOR.full_name)
