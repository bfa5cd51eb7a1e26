"""What tracing costs a request, against tracing off, measured in the same run.

    hatch run bench:tracing [--number N] [--rounds R] [--seconds S] [--clients N] [--only micro]

Figures (extra per request over tracing off / goal):

* in-process dispatch, µs/request: the Dispatcher running the echo app's Sample.Echo over a
  persistent in-memory conn (decode, route, handler, encode), with

  - ``no SDK``: tracing on, no SDK TracerProvider installed (the default deployment): the
    Edge finds the API's proxy provider at start and makes no Tracing at all;
  - ``unsampled root``: an SDK installed, ``trace_ratio`` 0, a request without traceparent;
  - ``unsampled parent``: an SDK, a request whose traceparent has flags 00 (against tracing
    off with the same request bytes);
  - ``sampled``: an SDK with a BatchSpanProcessor into an exporter that drops the spans,
    ``trace_ratio`` 1 (a root span per request, its message event, the attributes);

  goal: an unsampled request costs < 2 µs extra. Then the decision alone (``Tracing.begin`` +
  ``end`` on a decoded request, against making the request's context alone; minimum of the
  rounds), which a loaded machine disturbs less. Each variant runs ``--number`` requests per
  round, the variants interleaved; the figure is the median over ``--rounds`` of each round's
  difference to that round's tracing-off run.
* WebSocket RPC end to end, calls/s and server CPU µs/call: a node per mode (off, unsampled
  root, sampled), each in its own process with the SDK installed, loaded in turns of
  ``--seconds`` by ``--clients`` raw aiohttp WebSocket clients of this process (one request
  in flight each, the same echo request bytes; ``--modes`` picks them); ratio to the
  tracing-off node in the same round, median over the rounds with the range in brackets;
  server CPU time per call from /proc/PID/stat. On a shared 2-core machine these move by
  several µs from round to round: the in-process figures are the ones that resolve ~1 µs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAYLOAD_TEXT = "x" * 40  # ~64-byte envelopes, as the other benchmarks
TRACEPARENT_00 = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"


def _request(traceparent: str | None = None) -> bytes:
    from examples.echo.sample_pb2 import EchoRequest
    from examples.echo.sample_rony import C_SampleEcho
    from rony.core import envelope

    header = {"traceparent": traceparent} if traceparent else {}
    return envelope(
        EchoRequest(ID=1, RandomText=PAYLOAD_TEXT), 1, constructor=C_SampleEcho, header=header
    ).SerializeToString()


def _sdk_provider() -> Any:
    """An SDK TracerProvider whose spans go through a BatchSpanProcessor into nothing."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return provider


# --- in-process dispatch -----------------------------------------------------------------------


async def micro(number: int, rounds: int) -> None:
    from opentelemetry import trace

    from examples.echo.app import app
    from rony.core import MessageEnvelope
    from rony.core.testing import MemoryConn
    from rony.server import Edge
    from rony.server._tracing import Tracing

    provider = _sdk_provider()
    plain, with_00 = _request(), _request(TRACEPARENT_00)
    with tempfile.TemporaryDirectory() as tmp:
        edge = Edge(app, data_dir=tmp)
        dispatcher = edge.dispatcher
        conn = MemoryConn(persistent=True)
        sink: list[MessageEnvelope] = []

        def reply(env: MessageEnvelope) -> None:
            sink.append(env)
            if len(sink) > 1000:
                sink.clear()

        def tracing(ratio: float) -> Tracing:
            return Tracing(provider, server_id="bench", ratio=ratio)

        # (name, Tracing or None, request bytes); "no SDK" is what Edge.start makes then
        no_sdk = Tracing.create(
            enabled=True,
            server_id="bench",
            sampler="parentbased_traceidratio",
            ratio=1.0,
            provider=trace.get_tracer_provider(),
        )
        assert no_sdk is None, "a global TracerProvider is installed: the figure would lie"
        variants: list[tuple[str, Tracing | None, bytes]] = [
            ("off", None, plain),
            ("no SDK", no_sdk, plain),
            ("unsampled root", tracing(0.0), plain),
            ("off, traceparent", None, with_00),
            ("unsampled parent", tracing(1.0), with_00),
            ("sampled", tracing(1.0), plain),
        ]

        async def run(t: Tracing | None, body: bytes, n: int) -> float:
            dispatcher.tracing = t
            t0 = time.perf_counter()
            for _ in range(n):
                await dispatcher.dispatch_bytes(conn, body, reply=reply)
            return (time.perf_counter() - t0) / n * 1e6

        for _, t, body in variants:  # warm-up
            await run(t, body, 2000)
        per: dict[str, list[float]] = {name: [] for name, _, _ in variants}
        for _ in range(rounds):
            for name, t, body in variants:
                per[name].append(await run(t, body, number))
    provider.shutdown()
    med = {k: statistics.median(v) for k, v in per.items()}
    print(f"in-process dispatch, µs/request (median of {rounds} rounds of {number}):")
    print(f"  {'tracing off':<34} {med['off']:6.2f}")
    for name, base in (
        ("no SDK", "off"),
        ("unsampled root", "off"),
        ("unsampled parent", "off, traceparent"),
        ("sampled", "off"),
    ):
        extra = [a - b for a, b in zip(per[name], per[base], strict=True)]
        goal = "goal < 2 µs" if name != "sampled" else "(no goal)"
        print(
            f"  {name:<34} {med[name]:6.2f}   extra {statistics.median(extra):+6.2f} µs"
            f"  [{min(extra):+.2f} .. {max(extra):+.2f}]  {goal}"
        )


def decision(number: int, rounds: int) -> None:
    """``Tracing.begin`` + ``end`` alone on a decoded request (no handler, no loop), against
    making the same RequestCtx alone: the sampling decision's own cost, steadier than the
    dispatch figure on a loaded machine. Minimum over the rounds (the least disturbed)."""
    import timeit

    from examples.echo.app import app
    from rony.core import DispatchCtx, Kind, RequestCtx, decode_envelope
    from rony.core.testing import MemoryConn
    from rony.server._tracing import Tracing

    provider = _sdk_provider()
    conn = MemoryConn(persistent=True)
    entry = next(iter(app.handlers.values()))
    plain, with_00 = _request(), _request(TRACEPARENT_00)
    root, parent = (Tracing(provider, server_id="bench", ratio=r) for r in (0.0, 1.0))

    def make(body: bytes) -> RequestCtx:
        return RequestCtx(DispatchCtx(conn, Kind.GATEWAY), decode_envelope(body))

    def decide(t: Tracing, body: bytes) -> None:
        ctx = make(body)
        t.end(t.begin(ctx, entry), ctx)

    cases = {
        "ctx alone": lambda: make(plain),
        "ctx alone, traceparent": lambda: make(with_00),
        "unsampled root": lambda: decide(root, plain),
        "unsampled parent": lambda: decide(parent, with_00),
    }
    best = dict.fromkeys(cases, float("inf"))
    for _ in range(rounds):
        for name, fn in cases.items():
            best[name] = min(best[name], timeit.timeit(fn, number=number) / number * 1e6)
    provider.shutdown()
    print(f"the decision alone (begin + end), µs/request (min of {rounds} rounds of {number}):")
    pairs = (("unsampled root", "ctx alone"), ("unsampled parent", "ctx alone, traceparent"))
    for name, base in pairs:
        print(f"  {name:<34} extra {best[name] - best[base]:+6.2f} µs  goal < 2 µs")


# --- WebSocket end to end ----------------------------------------------------------------------

SERVER = r"""
import asyncio, os, sys, tempfile
sys.path.insert(0, os.getcwd())
from opentelemetry import trace
from benchmarks.tracing import _sdk_provider
trace.set_tracer_provider(_sdk_provider())
from examples.echo.app import app
from rony.server import Edge

async def main():
    with tempfile.TemporaryDirectory() as tmp:
        mode = sys.argv[1]
        edge = Edge(app, data_dir=tmp, tracing=mode != "off",
                    trace_ratio=1.0 if mode == "sampled" else 0.0)
        await edge.start()
        print("listening on", edge.url, flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


class Server:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, mode],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = line.split("listening on ", 1)[1].strip()

    def cpu(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


async def end_to_end(seconds: float, clients: int, rounds: int, modes: list[str]) -> None:
    import aiohttp

    body = _request()
    servers = [Server(m) for m in ("off", *modes)]
    try:
        async with aiohttp.ClientSession() as session:
            sockets = {
                s.mode: [await session.ws_connect(s.url + "/", compress=0) for _ in range(clients)]
                for s in servers
            }

            async def load(mode: str, until: float) -> int:
                async def one(ws: aiohttp.ClientWebSocketResponse) -> int:
                    n = 0
                    while time.perf_counter() < until:
                        await ws.send_bytes(body)
                        await ws.receive_bytes()
                        n += 1
                    return n

                return sum(await asyncio.gather(*(one(ws) for ws in sockets[mode])))

            async def block(s: Server) -> tuple[float, float]:
                cpu0, t0 = s.cpu(), time.perf_counter()
                n = await load(s.mode, t0 + seconds)
                took = time.perf_counter() - t0
                return n / took, (s.cpu() - cpu0) / n * 1e6

            for s in servers:  # warm-up
                await load(s.mode, time.perf_counter() + 0.5)
            rate: dict[str, list[float]] = {s.mode: [] for s in servers}
            cpu: dict[str, list[float]] = {s.mode: [] for s in servers}
            for r in range(rounds):
                order = servers if r % 2 == 0 else servers[::-1]
                for s in order:
                    calls, us = await block(s)
                    rate[s.mode].append(calls)
                    cpu[s.mode].append(us)
            for ws_list in sockets.values():
                for ws in ws_list:
                    await ws.close()
    finally:
        for s in servers:
            s.stop()
    print(f"WebSocket RPC, {clients} clients, median of {rounds} rounds of {seconds} s:")
    for mode in ("off", *modes):
        ratios = [a / b for a, b in zip(rate[mode], rate["off"], strict=True)]
        extra = [a - b for a, b in zip(cpu[mode], cpu["off"], strict=True)]
        print(
            f"  {mode:<10} {statistics.median(rate[mode]):8.0f} calls/s"
            f"  x{statistics.median(ratios):.3f} [{min(ratios):.3f} .. {max(ratios):.3f}]"
            f"   server CPU {statistics.median(cpu[mode]):6.1f} µs/call"
            f" (extra {statistics.median(extra):+.1f})"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--number", type=int, default=20000, help="requests per variant and round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=1.0, help="seconds per end-to-end turn")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--only", choices=("micro", "ws"))
    ap.add_argument(
        "--modes",
        default="unsampled,sampled",
        help="end-to-end nodes beside the tracing-off one (a sampled node's span export "
        "thread runs on after its turn: leave it out to see the unsampled cost alone)",
    )
    args = ap.parse_args()
    print("(a shared 2-core machine: compare the figures of one run only)")
    if args.only != "ws":
        asyncio.run(micro(args.number, args.rounds))
        decision(args.number * 5, args.rounds)
    if args.only != "micro":
        modes = [m for m in args.modes.split(",") if m in ("unsampled", "sampled")]
        asyncio.run(end_to_end(args.seconds, args.clients, args.rounds, modes))


if __name__ == "__main__":
    main()
