"""``rony bench URL ...``: the load tester of rony.client (``rony.client.bench``) as a ``rony``
subcommand; ``python -m rony.client.bench`` is the same tool for a client-only install.

rony-server does not depend on rony-client: without it, ``rony bench`` says so (exit 2).
"""

from __future__ import annotations

import argparse
import sys
from types import ModuleType

from rony.server.cli import Subcommand

__all__ = ["SUBCOMMANDS"]

_USAGE_ERROR = 2


def _bench() -> ModuleType | None:
    try:
        from rony.client import bench
    except ModuleNotFoundError as exc:
        if exc.name is not None and "rony.client".startswith(exc.name):
            return None
        raise
    return bench


def _configure(p: argparse.ArgumentParser) -> None:
    bench = _bench()
    if bench is None:
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        return
    bench.add_arguments(p)


def _run(args: argparse.Namespace) -> int:
    bench = _bench()
    if bench is None:
        print("rony bench: needs rony-client (pip install rony-client)", file=sys.stderr)
        return _USAGE_ERROR
    code: int = bench.run_args(args)
    return code


SUBCOMMANDS = [
    Subcommand(
        "bench",
        "load-test a node: N clients x M requests in flight, latency percentiles",
        _configure,
        _run,
    )
]
