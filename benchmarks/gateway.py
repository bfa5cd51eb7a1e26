"""The gateway against its baselines, each measured in the same run.

    hatch run bench:gateway [--seconds S] [--clients N] [--rounds R]

Figures (ours / baseline / goal):

* WS RPC, N concurrent clients, calls/s: `rony serve` echo app (Sample.Echo) / a raw aiohttp WS
  echo server / >= 0.8x
* HTTP RPC, N concurrent clients, calls/s: `rony serve`, POST Sample.Echo / raw aiohttp POST
  echo / >= 0.8x
* WS RPC vs gRPC, N concurrent, calls/s: the WS RPC figure / grpc.aio unary echo / >= 8x
* in-process dispatch, µs/op: Dispatcher (decode, route, handler, encode) / a bare
  decode-dict-call-encode loop / ours <= 8 µs
* idle node RSS, MB: `rony serve` echo app / a bare aiohttp server process / ours <= 60 MB

Every server runs in its own process and the load generator in this one, so they do not share
an event loop. Each client sends one request and waits for its reply (no pipelining). Each
figure is the median of ``--rounds`` runs; the machine is shared, so compare ratios.
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
from collections.abc import Awaitable, Callable
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


class Server:
    """A server subprocess that prints ``listening on URL`` once ready."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
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


def rony_server(data_dir: str) -> Server:
    return Server(
        [sys.executable, "-m", "rony.server.cli", "serve", "examples.echo.app:app",
         "--gateway", "127.0.0.1:0", "--data-dir", data_dir, "--log-level", "WARNING"]
    )  # fmt: skip


def raw_server() -> Server:
    return Server([sys.executable, "-c", RAW_SERVER])


def grpc_server() -> Server:
    return Server([sys.executable, "-c", GRPC_SERVER])


async def run_clients(
    n: int, seconds: float, make: Callable[[], Awaitable[Callable[[], Awaitable[None]]]]
) -> float:
    """``n`` clients, each calling its op in a loop for ``seconds``; calls per second."""
    ops = [await make() for _ in range(n)]
    count = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def worker(op: Callable[[], Awaitable[None]]) -> None:
        nonlocal count
        while loop.time() < end:
            await op()
            count += 1

    t0 = loop.time()
    await asyncio.gather(*(worker(op) for op in ops))
    return count / (loop.time() - t0)


# --- load generators ---------------------------------------------------------------------------


def _echo_request() -> bytes:
    from examples.echo.sample_pb2 import EchoRequest
    from examples.echo.sample_rony import C_SampleEcho
    from rony.core import envelope

    return envelope(
        EchoRequest(ID=1, RandomText=PAYLOAD_TEXT), 1, constructor=C_SampleEcho
    ).SerializeToString()


async def ws_rate(url: str, clients: int, seconds: float, rony: bool) -> float:
    import aiohttp

    from examples.echo.sample_rony import C_EchoResponse
    from rony.core import MessageEnvelope

    body = _echo_request()
    async with aiohttp.ClientSession() as http:
        sockets: list[aiohttp.ClientWebSocketResponse] = []

        async def make() -> Callable[[], Awaitable[None]]:
            ws = await http.ws_connect(url, compress=0)
            sockets.append(ws)

            async def op() -> None:
                await ws.send_bytes(body)
                msg = await ws.receive()
                if rony:
                    env = MessageEnvelope.FromString(msg.data)
                    assert env.Constructor == C_EchoResponse, env
                else:
                    assert msg.data == body

            return op

        try:
            return await run_clients(clients, seconds, make)
        finally:
            for ws in sockets:
                await ws.close()


async def http_rate(url: str, clients: int, seconds: float, rony: bool) -> float:
    import aiohttp

    from examples.echo.sample_rony import C_EchoResponse
    from rony.core import MessageEnvelope

    body = _echo_request()
    conn = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=conn) as http:

        async def make() -> Callable[[], Awaitable[None]]:
            async def op() -> None:
                async with http.post(url, data=body) as r:
                    data = await r.read()
                if rony:
                    assert MessageEnvelope.FromString(data).Constructor == C_EchoResponse
                else:
                    assert data == body

            return op

        return await run_clients(clients, seconds, make)


async def grpc_rate(url: str, clients: int, seconds: float) -> float:
    import grpc

    body = _echo_request()
    target = url.removeprefix("http://")
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary("/bench.Echo/Echo")

        async def make() -> Callable[[], Awaitable[None]]:
            async def op() -> None:
                assert await call(body) == body

            return op

        return await run_clients(clients, seconds, make)


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


# --- main ----------------------------------------------------------------------------------------


def line(name: str, ours: float, base: float, unit: str, goal: str) -> None:
    ratio = ours / base if base else float("nan")
    print(f"{name:<34} ours {ours:>10.1f} {unit:<8} baseline {base:>10.1f} {unit:<8} "
          f"ratio {ratio:6.2f}x  (goal {goal})", flush=True)  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.5)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--number", type=int, default=50_000)
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.clients} clients, "
          f"{args.seconds}s per run, median of {args.rounds}", flush=True)  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        rony = rony_server(tmp)
        raw = raw_server()
        grpc_srv = grpc_server()
        try:
            ws_ours, ws_raw, http_ours, http_raw, grpc_calls = [], [], [], [], []
            for _ in range(args.rounds):
                c, s = args.clients, args.seconds
                ws_ours.append(asyncio.run(ws_rate(rony.url, c, s, True)))
                ws_raw.append(asyncio.run(ws_rate(raw.url, c, s, False)))
                http_ours.append(asyncio.run(http_rate(rony.url, c, s, True)))
                http_raw.append(asyncio.run(http_rate(raw.url, c, s, False)))
                grpc_calls.append(asyncio.run(grpc_rate(grpc_srv.url, c, s)))
            med = statistics.median
            line("WS RPC (calls/s)", med(ws_ours), med(ws_raw), "calls/s", ">= 0.8x")
            line("HTTP RPC (calls/s)", med(http_ours), med(http_raw), "calls/s", ">= 0.8x")
            line("WS RPC vs grpc.aio (calls/s)", med(ws_ours), med(grpc_calls), "calls/s",
                 ">= 8x")  # fmt: skip
        finally:
            rony.stop()
            raw.stop()
            grpc_srv.stop()

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
