"""``rony bench``: a load tester to point at a Rony node (also ``python -m rony.client.bench``).

    python -m rony.client.bench ws://127.0.0.1:8080 --clients 8 --inflight 8 --duration 10
    rony bench http://127.0.0.1:8080 --count 100000 --constructor SampleEcho \\
        --import examples.echo.sample_rony --message-json '{"ID": 1}' --json

N ``AsyncClient`` connections (the URL's scheme picks WebSocket or HTTP), each with M requests
in flight, in one asyncio process, for ``--duration`` seconds or ``--count`` requests (after
``--warmup`` seconds whose requests are not recorded). A progress line on stderr; then a report:
throughput, latency min/mean/p50/p90/p99/p99.9/max, errors by code (the wire code ``E01``...,
or ``timeout``, ``connection``, ``protocol`` for failures on the client's side); ``--json``
prints it as one JSON object instead. Exit code 0 without errors, 1 with some, 2 for a bad
command line.

Latency is the time from just before ``call`` to its return (``perf_counter_ns``), kept for
successful requests only (a timeout's "latency" is the timeout). Percentiles are exact over the
kept samples: the nearest-rank value of the sorted list. Up to ``MAX_SAMPLES`` samples are kept;
beyond that a uniform reservoir sample of that size stands for all (Vitter's algorithm R), so
memory stays bounded on a long run and the percentiles are estimates (the report says how many
samples it kept).

The client does not retry (``max_retries=0``): a load tester reports failures, it does not hide
them. A reply of a class the bench process does not know counts as a success (it is not
decoded); ``--import`` a generated module to name its methods with ``--constructor``.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, TextIO
from urllib.parse import urlsplit

from google.protobuf import json_format
from google.protobuf.message import Message

from rony.client._async import AsyncClient
from rony.client._settings import ClientSettings
from rony.client.errors import ClientError, ProtocolError, RequestTimeout, UnexpectedResponse
from rony.core import C_Ping, Ping, registry
from rony.core.errors import RonyError

__all__ = [
    "MAX_CLIENTS",
    "MAX_INFLIGHT",
    "MAX_SAMPLES",
    "BenchConfig",
    "BenchReport",
    "add_arguments",
    "config_from_args",
    "main",
    "run_args",
    "run_bench",
]

MAX_SAMPLES = 1_000_000  # latency samples kept (8 MB of ints); a reservoir sample beyond
MAX_CLIENTS = 10_000  # connections one bench process may open
MAX_INFLIGHT = 10_000  # requests in flight per connection
PROGRESS_TTY_EVERY = 1.0  # s between progress lines rewritten in place (stderr is a terminal)
PROGRESS_PLAIN_EVERY = 5.0  # s between plain progress lines (stderr is a file or a pipe)
PERCENTILES = (50.0, 90.0, 99.0, 99.9)
_USAGE_ERROR = 2
_SCHEMES = {"ws": "ws", "wss": "ws", "http": "http", "https": "http"}


class BenchArgumentError(ValueError):
    """A command line that parses but makes no sense (exit code 2)."""


@dataclass(frozen=True)
class BenchConfig:
    """One run. ``count`` (total recorded requests) wins over ``duration`` when set."""

    url: str
    clients: int = 8
    inflight: int = 8
    duration: float = 10.0
    count: int | None = None
    warmup: float = 0.0
    timeout: float = 5.0
    constructor: int = C_Ping
    constructor_name: str = "Ping"
    request_class: type[Message] = Ping
    message: Message | None = None  # None: Ping(ID=n), n counting requests
    max_samples: int = MAX_SAMPLES

    @property
    def transport(self) -> Literal["ws", "http"]:
        return "http" if _SCHEMES.get(urlsplit(self.url).scheme) == "http" else "ws"


@dataclass
class BenchReport:
    """What a run measured; ``as_json()`` is the ``--json`` output. Latencies in milliseconds."""

    url: str
    transport: str
    constructor: str
    clients: int
    inflight: int
    elapsed_s: float
    requests: int
    ok: int
    errors: dict[str, int]
    throughput_rps: float
    latency_ms: dict[str, float | None]
    samples: int
    sampled: bool = False
    warmup_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        lat = self.latency_ms

        def ms(key: str) -> str:
            value = lat.get(key)
            return "-" if value is None else f"{value:.3f}"

        lines = [
            f"rony bench {self.url} ({self.transport})  {self.constructor}  "
            f"{self.clients} clients x {self.inflight} in flight, {self.elapsed_s:.2f} s",
            f"  requests   {self.requests}  ok {self.ok}  errors {self.error_count}  "
            f"{self.throughput_rps:.1f} req/s",
            "  latency ms min {}  mean {}  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}".format(
                *(ms(k) for k in ("min", "mean", "p50", "p90", "p99", "p99.9", "max"))
            ),
        ]
        if self.sampled:
            lines.append(f"  (percentiles over a uniform sample of {self.samples} requests)")
        if self.errors:
            codes = "  ".join(f"{code} {n}" for code, n in sorted(self.errors.items()))
            lines.append(f"  errors     {codes}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def percentile(ordered: Sequence[int], p: float) -> int:
    """Nearest-rank percentile of an ascending, non-empty sequence."""
    # (rounded first: 99.9 / 100 * 1000 is 999.0000000000001 in binary floating point)
    rank = max(1, math.ceil(round(p / 100.0 * len(ordered), 9)))
    return ordered[min(rank, len(ordered)) - 1]


class _Run:
    """Counters and samples of one run, shared by its worker coroutines (one loop, no locks)."""

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.recording = config.warmup <= 0
        self.stopping = False
        self.issued = 0  # recorded requests started (the --count budget)
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.samples: list[int] = []
        self.seen = 0  # successful samples offered to the reservoir
        self.total_ns = 0
        self.min_ns: int | None = None
        self.max_ns = 0
        self.seq = 0
        self._rng = random.Random()

    def take(self) -> bool | None:
        """May a worker start a request? None: yes, unrecorded (warm-up); True: recorded."""
        if self.stopping:
            return False
        if not self.recording:
            return None
        count = self.config.count
        if count is not None and self.issued >= count:
            return False
        self.issued += 1
        return True

    def sample(self, ns: int) -> None:
        self.ok += 1
        self.total_ns += ns
        if self.min_ns is None or ns < self.min_ns:
            self.min_ns = ns
        if ns > self.max_ns:
            self.max_ns = ns
        self.seen += 1
        if len(self.samples) < self.config.max_samples:
            self.samples.append(ns)
        else:  # algorithm R: the i-th sample replaces a kept one with probability k/i
            j = self._rng.randrange(self.seen)
            if j < self.config.max_samples:
                self.samples[j] = ns

    def message(self) -> Message:
        if self.config.message is not None:
            return self.config.message
        self.seq += 1
        return Ping(ID=self.seq)


def _outcome(exc: BaseException) -> str | None:
    """The error key of a failed call (None: count it as a success)."""
    if isinstance(exc, RonyError):
        return exc.code
    if isinstance(exc, RequestTimeout):
        return "timeout"
    if isinstance(exc, UnexpectedResponse) and exc.constructor not in registry:
        return None  # a reply class this process has no module for: the server did answer
    if isinstance(exc, ProtocolError):
        return "protocol"
    return "connection"


async def _worker(run: _Run, client: AsyncClient) -> None:
    cfg = run.config
    cid, timeout = cfg.constructor, cfg.timeout
    clock = time.perf_counter_ns
    while (recorded := run.take()) is not False:
        msg = run.message()
        t0 = clock()
        try:
            await client.call(cid, msg, None, timeout=timeout)
            key = None
        except (RonyError, ClientError) as exc:
            key = _outcome(exc)
        if recorded:
            if key is None:
                run.sample(clock() - t0)
            else:
                run.errors[key] += 1


async def _progress(run: _Run, out: TextIO, started: Callable[[], float]) -> None:
    tty = out.isatty()
    every = PROGRESS_TTY_EVERY if tty else PROGRESS_PLAIN_EVERY
    last_t, last_n = time.perf_counter(), 0
    while True:
        await asyncio.sleep(every)
        now = time.perf_counter()
        done = run.ok + sum(run.errors.values())
        rate = (done - last_n) / (now - last_t) if now > last_t else 0.0
        last_t, last_n = now, done
        phase = "warm-up" if not run.recording else f"{now - started():6.1f} s"
        line = (
            f"{phase}  {done} done  ok {run.ok}  errors {sum(run.errors.values())}  "
            f"{rate:.0f} req/s"
        )
        out.write(f"\r{line}\x1b[K" if tty else line + "\n")
        out.flush()


async def run_bench(config: BenchConfig, *, progress: TextIO | None = None) -> BenchReport:
    """Run ``config`` against its node; ``progress`` gets the live line (None: no line)."""
    settings = ClientSettings(
        request_timeout=config.timeout,
        dial_timeout=min(config.timeout, 3.0),
        max_retries=0,
        http_pool_size=max(1, config.inflight),
    )
    clients = [
        AsyncClient(config.url, transport=config.transport, settings=settings)
        for _ in range(config.clients)
    ]
    run = _Run(config)
    notes: list[str] = []
    t_start = time.perf_counter()
    tasks: list[asyncio.Task[None]] = []
    ticker: asyncio.Task[None] | None = None
    try:
        if config.transport == "ws":  # dial up front: the run measures requests, not dials
            dials = await asyncio.gather(*(c.connect() for c in clients), return_exceptions=True)
            failed = [d for d in dials if isinstance(d, BaseException)]
            if failed:
                notes.append(
                    f"{len(failed)} of {len(clients)} clients did not connect: {failed[0]}"
                )
        if progress is not None:
            ticker = asyncio.get_running_loop().create_task(
                _progress(run, progress, lambda: t_start)
            )
        tasks = [
            asyncio.get_running_loop().create_task(_worker(run, c))
            for c in clients
            for _ in range(config.inflight)
        ]
        if config.warmup > 0:
            await asyncio.sleep(config.warmup)  # the warm-up's length, not a synchronisation
            run.recording = True
        t_start = time.perf_counter()
        if config.count is None:
            await asyncio.wait(tasks, timeout=config.duration)
            run.stopping = True
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t_start
    finally:
        run.stopping = True
        for t in [*tasks, *([ticker] if ticker else [])]:
            t.cancel()
        await asyncio.gather(*tasks, *([ticker] if ticker else []), return_exceptions=True)
        if progress is not None and ticker is not None and progress.isatty():
            progress.write("\n")
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    return _report(config, run, elapsed, notes)


def _report(config: BenchConfig, run: _Run, elapsed: float, notes: list[str]) -> BenchReport:
    ordered = sorted(run.samples)
    keys = ["min", "mean", *(f"p{p:g}" for p in PERCENTILES), "max"]
    latency: dict[str, float | None] = dict.fromkeys(keys)
    if ordered:
        latency["min"] = (run.min_ns or 0) / 1e6
        latency["mean"] = run.total_ns / run.ok / 1e6
        latency["max"] = run.max_ns / 1e6
        for p in PERCENTILES:
            latency[f"p{p:g}"] = percentile(ordered, p) / 1e6
    errors = dict(sorted(run.errors.items()))
    done = run.ok + sum(errors.values())
    return BenchReport(
        url=config.url,
        transport=config.transport,
        constructor=config.constructor_name,
        clients=config.clients,
        inflight=config.inflight,
        elapsed_s=round(elapsed, 6),
        requests=done,
        ok=run.ok,
        errors=errors,
        throughput_rps=run.ok / elapsed if elapsed > 0 else 0.0,
        latency_ms=latency,
        samples=len(ordered),
        sampled=run.seen > len(ordered),
        warmup_s=config.warmup,
        notes=notes,
    )


# --- command line ---------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The bench's options (shared by ``rony bench`` and ``python -m rony.client.bench``)."""
    p.add_argument("url", metavar="URL", help="ws://, wss://, http:// or https:// of a node")
    p.add_argument("--clients", type=int, default=8, help="connections (default 8)")
    p.add_argument("--inflight", type=int, default=8, help="requests in flight per connection")
    run = p.add_mutually_exclusive_group()
    run.add_argument("--duration", type=float, default=10.0, help="seconds to run (default 10)")
    run.add_argument("--count", type=int, help="total requests to make instead of a duration")
    p.add_argument("--warmup", type=float, default=0.0, help="seconds run first, not recorded")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds per request (default 5)")
    p.add_argument(
        "--constructor",
        default="Ping",
        help="the method: a registered name (Ping, SampleEcho...) or a constructor number",
    )
    p.add_argument(
        "--message-json",
        help="the request as protobuf JSON for the constructor's request class "
        "(default: {}, or Ping(ID=n) for Ping)",
    )
    p.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE first so its constructors have names (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON only")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    """A ``BenchConfig`` from parsed options; ``BenchArgumentError`` says what is wrong."""
    scheme = urlsplit(args.url).scheme
    if scheme not in _SCHEMES:
        raise BenchArgumentError(
            f"URL must start with ws://, wss://, http:// or https://: {args.url!r}"
        )
    if not 1 <= args.clients <= MAX_CLIENTS:
        raise BenchArgumentError(f"--clients must be within 1..{MAX_CLIENTS}")
    if not 1 <= args.inflight <= MAX_INFLIGHT:
        raise BenchArgumentError(f"--inflight must be within 1..{MAX_INFLIGHT}")
    for name in ("duration", "timeout"):
        value = getattr(args, name)
        if not (value > 0 and math.isfinite(value)):
            raise BenchArgumentError(f"--{name} must be a positive number of seconds")
    if not (args.warmup >= 0 and math.isfinite(args.warmup)):
        raise BenchArgumentError("--warmup must be >= 0 seconds")
    if args.count is not None and args.count < 1:
        raise BenchArgumentError("--count must be >= 1")
    for module in args.imports:
        try:
            importlib.import_module(module)
        except Exception as exc:  # any failure to import is the user's input: say which
            raise BenchArgumentError(f"--import {module}: {exc}") from None
    cid, name, cls = _constructor(args.constructor)
    message: Message | None = None
    if args.message_json is not None or cid != C_Ping:
        try:
            message = json_format.Parse(args.message_json or "{}", cls())
        except json_format.ParseError as exc:
            raise BenchArgumentError(
                f"--message-json is not a {cls.DESCRIPTOR.name}: {exc}"
            ) from None
    return BenchConfig(
        url=args.url,
        clients=args.clients,
        inflight=args.inflight,
        duration=args.duration,
        count=args.count,
        warmup=args.warmup,
        timeout=args.timeout,
        constructor=cid,
        constructor_name=name,
        request_class=cls,
        message=message,
    )


def _constructor(text: str) -> tuple[int, str, type[Message]]:
    """(id, display name, request class) of a ``--constructor``. A number the registry does
    not know sends a Ping-shaped request (most test methods take one)."""
    text = text.strip()
    if text.isdigit() and len(text) <= 20:
        cid = int(text)
        if cid >= 2**64:
            raise BenchArgumentError("--constructor number must fit in 64 bits")
        return cid, registry.name_of(cid) or text, registry.class_of(cid) or Ping
    found = registry.id_of(text)
    if found is None:
        raise BenchArgumentError(
            f"--constructor {text!r} is not a registered name (give the number, "
            "or --import the module that defines it)"
        )
    cls = registry.class_of(found)
    assert cls is not None  # every registered id has a class
    return found, text, cls


def run_args(args: argparse.Namespace, *, out: TextIO | None = None) -> int:
    """Run from parsed options: print the report, return the exit code (0, 1, or 2)."""
    stdout = out if out is not None else sys.stdout
    try:
        config = config_from_args(args)
    except BenchArgumentError as exc:
        print(f"rony bench: {exc}", file=sys.stderr)
        return _USAGE_ERROR
    progress = None if args.quiet else sys.stderr
    try:
        report = asyncio.run(run_bench(config, progress=progress))
    except KeyboardInterrupt:
        print("rony bench: interrupted", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report.as_json()), file=stdout)
    else:
        print(report.text(), file=stdout)
    return 1 if report.error_count or report.notes else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rony.client.bench", description="load-test a Rony node"
    )
    add_arguments(parser)
    return run_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
