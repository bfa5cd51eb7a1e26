"""The gateway against its baselines, each measured in the same run.

    hatch run bench:gateway [--seconds S] [--block S] [--clients N] [--rounds R] [--warmup S]
                            [--loaders L] [--only ws]

Figures (ours / baseline / goal):

* WS RPC, N concurrent clients, calls/s: `rony serve` echo app (Sample.Echo) / a raw aiohttp WS
  echo server / >= 0.8x
* HTTP RPC, N concurrent clients, calls/s: `rony serve`, POST Sample.Echo / raw aiohttp POST
  echo / >= 0.8x
* WS RPC vs gRPC, N concurrent, calls/s: the WS RPC figure / grpc.aio unary echo / >= 8x
* in-process dispatch, µs/op: Dispatcher (decode, route, handler, encode) / a bare
  decode-dict-call-encode loop / ours <= 8 µs
* idle node RSS, MB: `rony serve` echo app / a bare aiohttp server process / ours <= 60 MB

How it is measured. Every server runs in its own process. The load comes from ``--loaders``
(default 2) separate load processes, started once and reused, each driving N / loaders
clients, so one Python client process is not the ceiling of the fast baseline (a client costs
about as much CPU per call as a raw echo server). Each client sends one request and waits for
its reply (no pipelining). Ours and the baselines are driven by the same client code with the
same request bytes (a ~64-byte Sample.Echo envelope; the raw servers echo it back, so replies
are the same size): every reply is parsed as a MessageEnvelope and its constructor checked
(EchoResponse from rony, the echoed SampleEcho from a raw server; gRPC replies likewise).

A figure and its baseline are measured in one run: each load process connects its clients to
both servers, then, on one signal to all, loads them in turns of ``--block`` seconds (0.25)
until each side had ``--seconds``. This machine is a shared 2-core VM whose speed changes from
second to second; runs of a few seconds one after the other (the way this benchmark worked
before) gave per-round ratios from 0.67 to 1.09 for the same code. calls/s of a side = its
calls / the longest loader's time on that side. The server's own CPU time per call (from
/proc/PID/stat over the run; a server waits idle while the other side is loaded) is printed
too: load processes and server compete for the cores, so calls/s ratios move with the
machine while server CPU µs/call (lower is better) is the steadier view of the server's own
cost. Each server first serves ``--warmup`` seconds of each load, not measured. A ratio is
the median of the rounds' own ratios (the side that goes first alternates between rounds),
with their range in brackets; the calls/s shown are medians of the rounds. The gRPC
baseline, 8x slower, runs alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PAYLOAD_TEXT = "x" * 40  # ~64-byte envelopes, as in design.md's measurements

RAW_SERVER = r"""
import asyncio, sys
from aiohttp import web, WSMsgType

async def handle(request):
    if request.headers.get("Upgrade", "").lower() == "websocket":
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is WSMsgType.BINARY:
                await ws.send_bytes(msg.data)
        return ws
    return web.Response(body=await request.read(), content_type="application/octet-stream")

async def main():
    runner = web.ServerRunner(web.Server(handle, access_log=None))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print("listening on http://127.0.0.1:%d" % site._server.sockets[0].getsockname()[1],
          flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""

GRPC_SERVER = r"""
import asyncio, grpc

async def echo(request, context):
    return request

async def main():
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "bench.Echo", {"Echo": grpc.unary_unary_rpc_method_handler(echo)})
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    print("listening on http://127.0.0.1:%d" % port, flush=True)
    await server.wait_for_termination()

asyncio.run(main())
"""


# Every server process gets the same fixed glibc mmap and trim thresholds. asyncio reads a
# socket into a fresh 256 KiB buffer per recv(); under glibc's *dynamic* thresholds that buffer
# is mmap'ed, mremap'ed and munmap'ed on every message until the process happens to free a large
# block, after which it comes from the heap (glibc then raises both thresholds). That state
# flips with a process's history (a raw aiohttp echo server measured 28 µs/call before serving
# any HTTP request and 14 µs after), so without this the ratios measured the allocator's
# history, not the servers.
SERVER_ENV = {
    **os.environ,
    "MALLOC_MMAP_THRESHOLD_": str(4 * 1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(8 * 1024 * 1024),  # else each free at the heap top trims
}


class Server:
    """A server subprocess that prints ``listening on URL`` once ready."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=SERVER_ENV,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if "listening on " not in line:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = line.split("listening on ", 1)[1].strip()

    def rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def rony_server(data_dir: str, *extra: str) -> Server:
    return Server(
        [sys.executable, "-m", "rony.server.cli", "serve", "examples.echo.app:app",
         "--gateway", "127.0.0.1:0", "--data-dir", data_dir, "--log-level", "WARNING", *extra]
    )  # fmt: skip


def raw_server() -> Server:
    return Server([sys.executable, "-c", RAW_SERVER])


def grpc_server() -> Server:
    return Server([sys.executable, "-c", GRPC_SERVER])


Op = Callable[[], Awaitable[None]]
Make = Callable[[], Awaitable[Op]]  # opens one client (a connection), gives its call


async def run_block(ops: list[Op], end: float) -> tuple[int, float]:
    """Every client calls its op in a loop until the loop's time ``end``; calls, seconds."""
    count = 0
    loop = asyncio.get_running_loop()

    async def worker(op: Op) -> None:
        nonlocal count
        while loop.time() < end:
            await op()
            count += 1

    t0 = loop.time()
    await asyncio.gather(*(worker(op) for op in ops))
    return count, loop.time() - t0


# --- load generators (run inside the load processes) ---------------------------------------------


def _echo_request() -> bytes:
    from examples.echo.sample_pb2 import EchoRequest
    from examples.echo.sample_rony import C_SampleEcho
    from rony.core import envelope

    return envelope(
        EchoRequest(ID=1, RandomText=PAYLOAD_TEXT), 1, constructor=C_SampleEcho
    ).SerializeToString()


def _expected(rony: bool) -> int:
    """The constructor of a good reply: EchoResponse from rony, the echoed request otherwise."""
    from examples.echo.sample_rony import C_EchoResponse, C_SampleEcho

    return C_EchoResponse if rony else C_SampleEcho


@contextlib.asynccontextmanager
async def ws_clients(url: str, rony: bool) -> AsyncIterator[Make]:
    import aiohttp

    from rony.core import MessageEnvelope

    body = _echo_request()
    expect = _expected(rony)
    parse = MessageEnvelope.FromString
    async with aiohttp.ClientSession() as http:
        sockets: list[aiohttp.ClientWebSocketResponse] = []

        async def make() -> Op:
            ws = await http.ws_connect(url, compress=0)
            sockets.append(ws)

            async def op() -> None:
                await ws.send_bytes(body)
                msg = await ws.receive()
                assert parse(msg.data).Constructor == expect, msg

            return op

        try:
            yield make
        finally:
            for ws in sockets:
                await ws.close()


@contextlib.asynccontextmanager
async def http_clients(url: str, rony: bool) -> AsyncIterator[Make]:
    import aiohttp

    from rony.core import MessageEnvelope

    body = _echo_request()
    expect = _expected(rony)
    parse = MessageEnvelope.FromString
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:

        async def make() -> Op:
            async def op() -> None:
                async with http.post(url, data=body) as r:
                    data = await r.read()
                assert parse(data).Constructor == expect

            return op

        yield make


@contextlib.asynccontextmanager
async def grpc_clients(url: str, rony: bool) -> AsyncIterator[Make]:
    import grpc

    from rony.core import MessageEnvelope

    body = _echo_request()
    expect = _expected(False)
    parse = MessageEnvelope.FromString
    async with grpc.aio.insecure_channel(url.removeprefix("http://")) as channel:
        call = channel.unary_unary("/bench.Echo/Echo")
        await channel.channel_ready()

        async def make() -> Op:
            async def op() -> None:
                assert parse(await call(body)).Constructor == expect

            return op

        yield make


CLIENTS = {"ws": ws_clients, "http": http_clients, "grpc": grpc_clients}


async def load(
    sides: list[tuple[str, str, bool]], clients: int, seconds: float, block: float, go: Op
) -> list[tuple[int, float]]:
    """``clients`` clients on each side (kind, url, rony), all connected first; after ``go``
    the sides take turns, ``block`` seconds each, until each had ``seconds``. Block ends are
    set from the start (not from the previous block's end) so that the load processes, told
    to go at once, switch together. Gives (calls, seconds) per side."""
    async with contextlib.AsyncExitStack() as stack:
        teams: list[list[Op]] = []
        for kind, url, rony in sides:
            make = await stack.enter_async_context(CLIENTS[kind](url, rony))
            teams.append([await make() for _ in range(clients)])
        await go()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        blocks = max(1, round(seconds / block)) if len(sides) > 1 else 1
        step = seconds / blocks
        totals = [(0, 0.0)] * len(sides)
        for i in range(blocks * len(sides)):
            side = i % len(sides)
            count, spent = await run_block(teams[side], t0 + (i + 1) * step)
            totals[side] = (totals[side][0] + count, totals[side][1] + spent)
        return totals


def loader_main() -> None:
    """A load process: reads ``CLIENTS SECONDS BLOCK KIND URL RONY [KIND URL RONY]`` lines,
    connects, prints ``ready``, waits for ``go``, runs, prints ``COUNT SECONDS`` per side."""
    stdin = sys.stdin
    for line in stdin:
        clients, seconds, block, *rest = line.split()
        sides = [(rest[i], rest[i + 1], rest[i + 2] == "1") for i in range(0, len(rest), 3)]

        async def go() -> None:
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, stdin.readline)

        totals = asyncio.run(load(sides, int(clients), float(seconds), float(block), go))
        print(" ".join(f"{count} {spent}" for count, spent in totals), flush=True)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Loaders:
    """``n`` load processes; ``run`` splits the clients between them and starts them at once."""

    def __init__(self, n: int) -> None:
        self.procs = [
            subprocess.Popen(
                [sys.executable, __file__, "--loader"],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(n)
        ]

    def run(
        self, sides: list[tuple[str, Server, bool]], clients: int, seconds: float, block: float
    ) -> list[tuple[float, float]]:
        """Load each side (kind, server, is rony) with ``clients`` clients split between the
        load processes, the sides taking turns (see ``load``); per side, calls/s of all
        loaders and the server's CPU µs per call (its CPU over the whole run: a server waits
        idle while the other side is loaded)."""
        n = len(self.procs)
        shares = [clients // n + (1 if i < clients % n else 0) for i in range(n)]
        active = [(p, c) for p, c in zip(self.procs, shares, strict=True) if c]
        spec = " ".join(f"{kind} {server.url} {int(rony)}" for kind, server, rony in sides)
        for p, c in active:
            assert p.stdin is not None
            p.stdin.write(f"{c} {seconds} {block} {spec}\n")
            p.stdin.flush()
        for p, _ in active:
            assert p.stdout is not None
            line = p.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"load process failed: {line!r}")
        cpu0 = [cpu_seconds(server.proc.pid) for _, server, _ in sides]
        for p, _ in active:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        totals = [0] * len(sides)
        longest = [0.0] * len(sides)
        for p, _ in active:
            assert p.stdout is not None
            fields = p.stdout.readline().split()
            for i in range(len(sides)):
                totals[i] += int(fields[2 * i])
                longest[i] = max(longest[i], float(fields[2 * i + 1]))
        out = []
        for i, (_, server, _) in enumerate(sides):
            cpu = cpu_seconds(server.proc.pid) - cpu0[i]
            out.append((totals[i] / longest[i], cpu / totals[i] * 1e6))
        return out

    def close(self) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


# --- in-process dispatch -----------------------------------------------------------------------


async def dispatch_us(number: int) -> tuple[float, float]:
    from examples.echo.app import app
    from examples.echo.sample_pb2 import EchoRequest, EchoResponse
    from examples.echo.sample_rony import C_EchoResponse, C_SampleEcho
    from rony.core import MessageEnvelope, decode_envelope, envelope
    from rony.core.testing import MemoryConn
    from rony.server import Edge

    body = _echo_request()
    with tempfile.TemporaryDirectory() as tmp:
        edge = Edge(app, data_dir=tmp)
        dispatcher = edge.dispatcher
        conn = MemoryConn(persistent=True)
        out: list[bytes] = []

        def reply(env: MessageEnvelope) -> None:
            out.append(env.SerializeToString())

        for _ in range(1000):
            await dispatcher.dispatch_bytes(conn, body, reply=reply)
        t0 = time.perf_counter()
        for _ in range(number):
            await dispatcher.dispatch_bytes(conn, body, reply=reply)
        ours = (time.perf_counter() - t0) / number * 1e6

    # Baseline: the same work with nothing around it.
    async def echo(req: EchoRequest) -> EchoResponse:
        return EchoResponse(ReqID=req.ID, RandomText=req.RandomText)

    table = {C_SampleEcho: echo}
    out.clear()
    t0 = time.perf_counter()
    for _ in range(number):
        env = decode_envelope(body)
        handler = table[env.Constructor]
        res = await handler(EchoRequest.FromString(env.Message))
        out.append(envelope(res, env.RequestID, constructor=C_EchoResponse).SerializeToString())
    base = (time.perf_counter() - t0) / number * 1e6
    return ours, base


# --- the cost of metrics -------------------------------------------------------------------------


def metrics_cost(args: argparse.Namespace) -> None:
    """``--metrics``: two rony nodes, metrics on (the default) and ``--no-metrics``, loaded in
    turns as a figure and its baseline are (see the module's docstring). "Off" still has the
    gateway's plain counters (always on: a few integer additions per message); it drops the
    dispatcher's per-constructor series (a bucket search and a few additions per request)."""
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.clients} clients "
          f"from {args.loaders} load processes, {args.seconds}s per side per round in turns "
          f"of {args.block}s, median of {args.rounds} rounds", flush=True)  # fmt: skip
    loaders = Loaders(args.loaders)
    with tempfile.TemporaryDirectory() as tmp_on, tempfile.TemporaryDirectory() as tmp_off:
        on = rony_server(tmp_on)
        off = rony_server(tmp_off, "--no-metrics")
        try:
            rate: dict[str, list[float]] = {}
            cpu: dict[str, list[float]] = {}
            c, sec, blk = args.clients, args.seconds, args.block
            for kind in ("ws", "http"):
                if args.warmup > 0:
                    for server in (on, off):
                        loaders.run([(kind, server, True)], c, args.warmup, blk)
            for rnd in range(args.rounds):
                for kind in ("ws", "http"):
                    sides = [(kind, on, True), (kind, off, True)]
                    if rnd % 2:
                        sides.reverse()
                    results = dict(
                        zip((s[1] for s in sides), loaders.run(sides, c, sec, blk), strict=True)
                    )
                    for name, server in ((f"{kind}_on", on), (f"{kind}_off", off)):
                        rate.setdefault(name, []).append(results[server][0])
                        cpu.setdefault(name, []).append(results[server][1])
            med = statistics.median
            for title, kind, goal in (
                ("WS RPC, metrics on/off (calls/s)", "ws", ">= 0.95x"),
                ("HTTP RPC, metrics on/off (calls/s)", "http", "info"),
            ):
                on_name, off_name = f"{kind}_on", f"{kind}_off"
                line(title, med(rate[on_name]), med(rate[off_name]), "calls/s", goal,
                     paired(rate[on_name], rate[off_name]))  # fmt: skip
                line("  server CPU (µs/call)", med(cpu[on_name]), med(cpu[off_name]),
                     "µs/call", "info: lower is better",
                     paired(cpu[on_name], cpu[off_name]))  # fmt: skip
        finally:
            loaders.close()
            on.stop()
            off.stop()


# --- main ----------------------------------------------------------------------------------------


def line(
    name: str, ours: float, base: float, unit: str, goal: str, ratios: list[float] | None = None
) -> None:
    """One figure. With ``ratios`` (ours / baseline of each round, measured back to back), the
    ratio printed is their median and their range follows: steadier than the ratio of the
    medians when the machine's speed drifts between rounds."""
    if math.isnan(ours) or math.isnan(base):
        return  # not measured in this run (--only)
    spread = ""
    if ratios:
        ratio = statistics.median(ratios)
        spread = f" [{min(ratios):.2f}-{max(ratios):.2f}]"
    else:
        ratio = ours / base if base else float("nan")
    print(f"{name:<36} ours {ours:>10.1f} {unit:<8} baseline {base:>10.1f} {unit:<8} "
          f"ratio {ratio:6.2f}x{spread}  (goal {goal})", flush=True)  # fmt: skip


def paired(ours: list[float], base: list[float]) -> list[float]:
    """ours / baseline round by round (rounds where either was not measured are skipped)."""
    return [o / b for o, b in zip(ours, base, strict=True) if b and not math.isnan(o + b)]


def main() -> None:
    if sys.argv[1:] == ["--loader"]:
        loader_main()
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.5)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--block", type=float, default=0.25, help="seconds per turn of a pair")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of unmeasured load first")
    ap.add_argument("--loaders", type=int, default=2, help="load processes (clients split)")
    ap.add_argument("--number", type=int, default=50_000)
    ap.add_argument(
        "--only", choices=("ws", "http", "grpc"), action="append",
        help="run only these socket figures (repeatable); skips dispatch and RSS",
    )  # fmt: skip
    ap.add_argument(
        "--metrics", action="store_true",
        help="only the cost of metrics: WS and HTTP RPC, a node with metrics on vs one with "
        "--no-metrics, in the same run (goal: WS RPC loses <= 5%%)",
    )  # fmt: skip
    args = ap.parse_args()
    if args.metrics:
        metrics_cost(args)
        return
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.clients} clients "
          f"from {args.loaders} load processes, {args.seconds}s per side per round in turns "
          f"of {args.block}s, median of {args.rounds} rounds", flush=True)  # fmt: skip

    loaders = Loaders(args.loaders)
    with tempfile.TemporaryDirectory() as tmp:
        rony = rony_server(tmp)
        raw = raw_server()
        grpc_srv = grpc_server()
        try:
            names = ("ws_ours", "ws_raw", "http_ours", "http_raw", "grpc")
            rate: dict[str, list[float]] = {k: [] for k in names}
            cpu: dict[str, list[float]] = {k: [] for k in names}
            c, sec, blk = args.clients, args.seconds, args.block
            wanted = {
                "ws": not args.only or "ws" in args.only or "grpc" in args.only,
                "http": not args.only or "http" in args.only,
                "grpc": not args.only or "grpc" in args.only,
            }
            # One unmeasured run per server and load first: a fresh process's first seconds
            # (its first connections, lazy imports and caches, the heap growing) measured
            # 0.68x where the rounds after it gave 0.81-1.05x.
            if args.warmup > 0:
                for kind, server, is_rony in (
                    ("ws", rony, True),
                    ("ws", raw, False),
                    ("http", rony, True),
                    ("http", raw, False),
                    ("grpc", grpc_srv, False),
                ):
                    if wanted[kind]:
                        loaders.run([(kind, server, is_rony)], c, args.warmup, blk)
            for rnd in range(args.rounds):
                # A figure and its baseline share a run: the loaders hold clients of both and
                # load them in turns of --block seconds, so the machine's changing speed falls
                # on both alike. The side that goes first alternates between rounds.
                for kind, ours_name, base_name in (
                    ("ws", "ws_ours", "ws_raw"),
                    ("http", "http_ours", "http_raw"),
                ):
                    if not wanted[kind]:
                        for name in (ours_name, base_name):
                            rate[name].append(float("nan"))
                            cpu[name].append(float("nan"))
                        continue
                    sides = [(kind, rony, True), (kind, raw, False)]
                    if rnd % 2:
                        sides.reverse()
                    results = dict(
                        zip((s[1] for s in sides), loaders.run(sides, c, sec, blk), strict=True)
                    )
                    for name, server in ((ours_name, rony), (base_name, raw)):
                        rate[name].append(results[server][0])
                        cpu[name].append(results[server][1])
                if wanted["grpc"]:  # (a ratio of 8x or more: one side at a time is enough)
                    ((r, u),) = loaders.run([("grpc", grpc_srv, False)], c, sec, blk)
                else:
                    r = u = float("nan")
                rate["grpc"].append(r)
                cpu["grpc"].append(u)
            med = statistics.median
            for title, ours, base, goal in (
                ("WS RPC (calls/s)", "ws_ours", "ws_raw", ">= 0.8x"),
                ("HTTP RPC (calls/s)", "http_ours", "http_raw", ">= 0.8x"),
                ("WS RPC vs grpc.aio (calls/s)", "ws_ours", "grpc", ">= 8x"),
            ):
                line(title, med(rate[ours]), med(rate[base]), "calls/s", goal,
                     paired(rate[ours], rate[base]))  # fmt: skip
            for title, ours, base in (
                ("  WS server CPU (µs/call)", "ws_ours", "ws_raw"),
                ("  HTTP server CPU (µs/call)", "http_ours", "http_raw"),
                ("  WS vs gRPC server CPU (µs/call)", "ws_ours", "grpc"),
            ):
                line(title, med(cpu[ours]), med(cpu[base]), "µs/call", "info: lower is better",
                     paired(cpu[ours], cpu[base]))  # fmt: skip
        finally:
            loaders.close()
            rony.stop()
            raw.stop()
            grpc_srv.stop()
    if args.only:
        return

    runs = [asyncio.run(dispatch_us(args.number)) for _ in range(args.rounds)]
    ours_us = statistics.median(r[0] for r in runs)
    base_us = statistics.median(r[1] for r in runs)
    line("in-process dispatch (µs/op)", ours_us, base_us, "µs/op", "ours <= 8 µs")

    with tempfile.TemporaryDirectory() as tmp:
        rony = rony_server(tmp)
        raw = raw_server()
        try:
            time.sleep(1.0)  # let both settle after start-up before reading RSS
            line("idle node RSS (MB)", rony.rss_mb(), raw.rss_mb(), "MB", "ours <= 60 MB")
        finally:
            rony.stop()
            raw.stop()


if __name__ == "__main__":
    main()
