"""Typed errors of rony.store.

Every failure a caller can see is a :class:`StoreError`. Bad arguments are also ``ValueError`` or
``TypeError`` (so ``except ValueError`` keeps working); failures to open a store say why
(:class:`NotAStoreError`, :class:`StoreAccessError`, :class:`StoreLockedError`,
:class:`AlreadyOpenError`). LMDB's own exceptions never leak: they are translated to one of these
at the boundary (``rony.store._lmdb``).
"""

from __future__ import annotations

__all__ = [
    "AlreadyOpenError",
    "IntegerOverflowError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "InvalidTTLError",
    "InvalidValueError",
    "MapGrownError",
    "NotAStoreError",
    "NotAnIntegerError",
    "OpenError",
    "ReadOnlyError",
    "RecordExistsError",
    "RecordNotFoundError",
    "SnapshotLostError",
    "StorageError",
    "StoreAccessError",
    "StoreClosedError",
    "StoreError",
    "StoreLockedError",
    "TransactionError",
    "WrongTypeError",
]


class StoreError(Exception):
    """Base of every error raised by rony.store."""


# -- bad input -------------------------------------------------------------------------------


class InvalidArgumentError(StoreError, ValueError):
    """An argument has the right type but a value the store refuses."""


class InvalidKeyError(InvalidArgumentError):
    """A key is empty or longer than the store's ``max_key_size``."""


class InvalidValueError(InvalidArgumentError):
    """A value is longer than the store's ``max_value_size``."""


class InvalidTTLError(InvalidArgumentError):
    """A TTL is NaN, infinite, too large, or not positive where a positive one is required."""


class NotAnIntegerError(InvalidArgumentError):
    """``incr`` found a value that is not a base-10 signed 64-bit integer."""


class IntegerOverflowError(InvalidArgumentError):
    """``incr`` would leave the signed 64-bit range (as Redis refuses to)."""


class WrongTypeError(StoreError, TypeError):
    """An argument has the wrong type (keys and values are bytes, TTLs are int or float)."""


# -- state -----------------------------------------------------------------------------------


class StoreClosedError(StoreError):
    """The store (or the transaction's store) has been closed."""


class ReadOnlyError(StoreError):
    """A write on a store opened with ``readonly=True`` or inside a ``view()`` transaction."""


class TransactionError(StoreError):
    """A transaction was used wrongly: after its block ended, or a store-level write was made
    from inside an ``update()`` block of the same thread (use the transaction object instead)."""


class SnapshotLostError(TransactionError):
    """A ``view()`` was open for longer than ``resize_wait`` while the map had to grow, so its
    snapshot was released. Open a new view and read again."""


class MapGrownError(TransactionError):
    """An ``update()`` block outgrew the map. The map has been grown and nothing was written:
    run the block again, or use ``Store.transact(fn)``, which retries by itself."""


class RecordExistsError(StoreError):
    """A repository's ``create`` found a record with the same primary key (``rony.store.repo``);
    ``save`` is the upsert."""


class RecordNotFoundError(StoreError):
    """A repository's ``update`` found no record with the primary key (``rony.store.repo``)."""


class StorageError(StoreError):
    """LMDB or the operating system failed (disk full, I/O error, corrupted file...)."""


# -- opening ---------------------------------------------------------------------------------


class OpenError(StoreError):
    """A store could not be opened."""


class NotAStoreError(OpenError):
    """The path is not a rony store: a file, a folder holding other things, a foreign or damaged
    LMDB environment, or (with ``create=False`` / ``readonly=True``) nothing at all."""


class StoreAccessError(OpenError):
    """The operating system refused access to the path (permissions, read-only file system)."""


class StoreLockedError(OpenError):
    """Another process holds the store's writer lock. One process writes; others may open the
    store with ``readonly=True``."""


class AlreadyOpenError(OpenError):
    """This process already has the store open. LMDB forbids opening one environment twice in a
    process (its locks are per process); share the open :class:`~rony.store.Store` instead."""
