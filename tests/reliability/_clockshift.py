"""``python -m tests.reliability._clockshift serve ... --clock-file FILE``: ``rony serve`` with
a wall clock that the test moves while the node runs.

What is shifted: ``time.time`` and ``time.time_ns`` (every wall-clock read of rony's Python
code: the gossip incarnation, store TTLs, the status page's ``time``), by the seconds written
in ``FILE``, read at start and again on SIGUSR1.

What is not: the monotonic clock (``time.monotonic``, the event loop's ``loop.time()``), which
the gossip's timers run on and which a wall-clock jump does not move on a real host either;
the C-level wall clock (gRPC core, BoringSSL's and ``datetime.now``'s certificate validity),
which would take an LD_PRELOAD library (libfaketime 0.9.10, Debian 12, was tried: with the
monotonic clock left alone Python's ``time.sleep`` fails with EINVAL, and faking the monotonic
clock too is no wall-clock jump); and, so that it agrees with its C core, grpc.aio's own
``time.time() + timeout``. grpc.aio turns a call's timeout into an absolute wall-clock deadline
in Python that the core compares with its own wall clock: shifting only the Python half made
every gossip call of a node whose clock went back expire at once (measured: the node then
suspected its peers). On a real host both halves jump together; the exposure left is a jump
between the two reads, microseconds apart.
"""

from __future__ import annotations

import signal
import sys
import time
import types
from types import FrameType

_real_time = time.time
_real_time_ns = time.time_ns
_offset = 0.0
_clock_file = ""


def _load(signum: int = 0, frame: FrameType | None = None) -> None:
    global _offset
    with open(_clock_file) as fh:
        _offset = float(fh.read().strip() or 0)
    print(f"clockshift: wall clock offset {_offset:+.0f} s", file=sys.stderr, flush=True)


def _time() -> float:
    return _real_time() + _offset


def _time_ns() -> int:
    return _real_time_ns() + int(_offset * 1e9)


def main() -> int:
    global _clock_file
    args = sys.argv[1:]
    at = args.index("--clock-file")
    _clock_file = args[at + 1]
    del args[at : at + 2]
    _load()
    signal.signal(signal.SIGUSR1, _load)
    time.time = _time  # before rony is imported: modules that bind time.time get this one
    time.time_ns = _time_ns
    import grpc.aio._utils

    grpc.aio._utils.time = types.SimpleNamespace(time=_real_time)
    from rony.server.cli import main as rony_main

    return rony_main(args)


if __name__ == "__main__":
    sys.exit(main())
