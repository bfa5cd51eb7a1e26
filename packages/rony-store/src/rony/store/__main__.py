"""Operator CLI: ``python -m rony.store PATH stats|get|scan|ttl`` (also the ``rony-store`` script).

Opens the store read-only, so it works beside a running server. Keys are given as text
(UTF-8) or, with ``--hex``, as hex; keys and values are printed as Python bytes literals
(``--hex`` prints hex). Exit status: 0 done, 1 key not found, 2 usage or store error.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
from collections.abc import Sequence

from . import _ttl
from ._store import Store
from .errors import StoreError

PREVIEW = 64
"""Bytes of a value shown by ``scan`` (use ``get`` for the whole value)."""


def _parse_key(text: str, hex_keys: bool) -> bytes:
    if hex_keys:
        try:
            return bytes.fromhex(text)
        except ValueError:
            # A usage error: exit 2 as argparse does (SystemExit(str) would exit 1, which
            # means "key not found").
            print(f"error: {text!r} is not hex", file=sys.stderr)
            raise SystemExit(2) from None
    return text.encode("utf-8")


def _show(data: bytes, hex_keys: bool, limit: int | None = None) -> str:
    cut = data if limit is None or len(data) <= limit else data[:limit]
    text = cut.hex() if hex_keys else repr(cut)
    return text + ("…" if len(cut) < len(data) else "")


def _expiry(remaining: float, now_ms: int) -> str:
    if remaining == _ttl.NO_EXPIRY:
        return "never"
    if remaining == _ttl.NO_KEY:
        return "expired"
    at = dt.datetime.fromtimestamp(now_ms / 1000 + remaining, tz=dt.UTC)
    return f"in {remaining:.3f}s ({at.isoformat(timespec='milliseconds')})"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rony-store", description="Inspect a rony store (opened read-only)."
    )
    parser.add_argument("path", help="the store's folder")
    parser.add_argument("--hex", action="store_true", help="keys in and out as hex")
    sub = parser.add_subparsers(dest="command", required=True)
    stats = sub.add_parser("stats", help="entries, sizes and expiry counts")
    stats.add_argument("--json", action="store_true", help="print JSON")
    get = sub.add_parser("get", help="print one value")
    get.add_argument("key")
    get.add_argument("--raw", action="store_true", help="write the value bytes to stdout")
    ttl = sub.add_parser("ttl", help="remaining seconds (-2: no such key, -1: no expiry)")
    ttl.add_argument("key")
    scan = sub.add_parser("scan", help="list entries in key order")
    scan.add_argument("--prefix", default="")
    scan.add_argument("--start", help="first key (inclusive)")
    scan.add_argument("--end", help="last key (exclusive)")
    scan.add_argument("--limit", type=int, default=100, help="most entries shown (100)")
    scan.add_argument("--reverse", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    hx: bool = args.hex
    try:
        with Store.open(args.path, readonly=True) as store:
            now = store.options.clock()
            if args.command == "stats":
                stats = store.stats()
                fields = dataclasses.asdict(stats)
                if args.json:
                    print(json.dumps({"path": store.path, **fields}, indent=2))
                else:
                    print(f"path: {store.path}")
                    for name, value in fields.items():
                        print(f"{name}: {value:,}")
                return 0
            if args.command == "get":
                value = store.get(_parse_key(args.key, hx))
                if value is None:
                    print("(not found)", file=sys.stderr)
                    return 1
                if args.raw:
                    sys.stdout.buffer.write(value)
                else:
                    print(_show(value, hx))
                return 0
            if args.command == "ttl":
                key = _parse_key(args.key, hx)
                remaining = store.ttl(key)
                print(f"{remaining:g}\t{_expiry(remaining, now)}")
                return 1 if remaining == _ttl.NO_KEY else 0
            items = store.scan(
                _parse_key(args.prefix, hx),
                start=None if args.start is None else _parse_key(args.start, hx),
                end=None if args.end is None else _parse_key(args.end, hx),
                reverse=args.reverse,
                limit=args.limit,
            )
            shown = 0
            for key, value in items:
                remaining = store.ttl(key)
                print(
                    f"{_show(key, hx)}\t{len(value)} B\t{_expiry(remaining, now)}\t"
                    f"{_show(value, hx, PREVIEW)}"
                )
                shown += 1
            print(f"({shown} entries)", file=sys.stderr)
            return 0
    except StoreError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
