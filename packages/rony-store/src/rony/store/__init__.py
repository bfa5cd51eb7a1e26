"""rony.store: an embedded key-value store on LMDB with per-key TTL and group commit.

    from rony.store import Store

    with Store.open("./data") as store:
        store.set(b"session:1", b"alice", ttl=30.0)
        store.get(b"session:1")          # b"alice" (None once expired)
        store.ttl(b"session:1")          # 29.998...; NO_KEY (-2.0) / NO_EXPIRY (-1.0)
        with store.update() as txn:      # atomic read-modify-write
            txn.incr(b"visits")

``AsyncStore`` (imported lazily, so this package does not import asyncio unless asked) is the
asyncio face. Depends on nothing of Rony's; only on ``lmdb``.
"""

from __future__ import annotations

import typing

from . import errors
from ._options import StoreOptions
from ._store import Store, StoreCounters, StoreStats
from ._ttl import NO_EXPIRY, NO_KEY
from ._txn import ReadTxn, WriteTxn

if typing.TYPE_CHECKING:
    from ._async import AsyncStore

__all__ = [
    "NO_EXPIRY",
    "NO_KEY",
    "AsyncStore",
    "ReadTxn",
    "Store",
    "StoreCounters",
    "StoreOptions",
    "StoreStats",
    "WriteTxn",
    "errors",
]


def __getattr__(name: str) -> typing.Any:
    if name == "AsyncStore":
        from ._async import AsyncStore

        return AsyncStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
