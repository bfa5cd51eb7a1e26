"""The client SDKs against raw clients doing the same, each measured in the same run.

    hatch run bench:client [--seconds S] [--rounds R] [--inflight N]

Figures (ours / baseline / goal):

* sync serial round trips, Ping, calls/s: ``rony.client.Client.call(C_Ping, Ping, Pong)`` / a raw
  ``websockets.sync`` client sending the same envelope bytes and reading the reply frame /
  >= 0.9x
* async, N (64) requests in flight on one WebSocket, calls/s: ``AsyncClient.call`` from N tasks /
  a raw aiohttp WebSocket client: N tasks sending pre-encoded envelopes, one reader task matching
  replies by RequestID through a dict of futures / >= 0.8x

The node is ``rony serve examples.echo.app:app`` in its own process (Ping is a builtin). Within
a round both clients stay connected and alternate 0.25 s blocks (``--seconds`` each in total), so
load from other processes hits both alike; the ratio is the median of the rounds' ratios. The
machine is shared, so compare ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from websockets.sync.client import connect as ws_connect

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rony.client import AsyncClient, Client, ClientSettings  # noqa: E402
from rony.core import C_Ping, MessageEnvelope, Ping, Pong, envelope  # noqa: E402

try:  # websockets >= 17.1 warns unless asked for a directly returned connection
    import inspect

    _LEGACY = {"legacy": True} if "legacy" in inspect.signature(ws_connect).parameters else {}
except (TypeError, ValueError):  # pragma: no cover
    _LEGACY = {}


class Node:
    def __init__(self, data_dir: str) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rony.server.cli",
                "serve",
                "examples.echo.app:app",
                "--gateway",
                "127.0.0.1:0",
                "--data-dir",
                data_dir,
                "--log-level",
                "ERROR",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening on "):
            self.stop()
            raise SystemExit(f"node did not start: {line!r}")
        self.url = line.split()[-1]
        self.ws_url = self.url.replace("http://", "ws://") + "/"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# --- sync, serial ----------------------------------------------------------------------------
#
# Both clients stay connected; the run alternates short blocks of one and the other, so load
# from other processes on this shared machine hits both alike.

BLOCK = 0.25  # seconds per alternating block


def _timed(fn: Callable[[], None], seconds: float) -> tuple[int, float]:
    n = 0
    t0 = time.perf_counter()
    end = t0 + seconds
    while True:
        for _ in range(20):
            fn()
        n += 20
        now = time.perf_counter()
        if now >= end:
            return n, now - t0


def sync_pair(node: Node, seconds: float) -> tuple[float, float]:
    frame = envelope(Ping(ID=1), 1).SerializeToString()
    ws = ws_connect(
        node.ws_url, compression=None, ping_interval=None, max_size=4 * 1024 * 1024, **_LEGACY
    )
    client = Client(node.ws_url, settings=ClientSettings(idle_timeout=None))
    ids = iter(range(1 << 62))

    def raw() -> None:
        ws.send(frame)
        ws.recv()

    def ours() -> None:
        client.call(C_Ping, Ping(ID=next(ids)), Pong)

    try:
        raw()
        ours()  # both dialled outside the timed part
        totals = {raw: [0, 0.0], ours: [0, 0.0]}
        for _ in range(max(1, round(seconds / BLOCK))):
            for fn in (raw, ours):
                n, dt = _timed(fn, BLOCK)
                totals[fn][0] += n
                totals[fn][1] += dt
        return totals[ours][0] / totals[ours][1], totals[raw][0] / totals[raw][1]
    finally:
        ws.close()
        client.close()


# --- async, N in flight -------------------------------------------------------------------------


async def async_pair(node: Node, seconds: float, inflight: int) -> tuple[float, float]:
    frames = [envelope(Ping(ID=i), i + 1).SerializeToString() for i in range(inflight)]
    settings = ClientSettings(idle_timeout=None)
    async with (
        AsyncClient(node.ws_url, settings=settings) as client,
        aiohttp.ClientSession() as session,
        session.ws_connect(node.ws_url, compress=0, autoping=True) as ws,
    ):
        loop = asyncio.get_running_loop()
        waiting: dict[int, asyncio.Future[bytes]] = {}

        async def reader() -> None:  # the raw client's one reader: match by RequestID
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.BINARY:
                    fut = waiting.pop(MessageEnvelope.FromString(msg.data).RequestID, None)
                    if fut is not None:
                        fut.set_result(msg.data)

        async def raw(i: int) -> None:
            fut = loop.create_future()
            waiting[i + 1] = fut
            await ws.send_bytes(frames[i])
            await fut

        async def ours(i: int) -> None:
            await client.call(C_Ping, Ping(ID=i), Pong)

        async def block(op: Callable[[int], Awaitable[None]]) -> tuple[int, float]:
            count = 0
            stop = False

            async def worker(i: int) -> None:
                nonlocal count
                while not stop:
                    await op(i)
                    count += 1

            t0 = time.perf_counter()
            tasks = [asyncio.create_task(worker(i)) for i in range(inflight)]
            await asyncio.sleep(BLOCK)
            stop = True
            await asyncio.gather(*tasks)
            return count, time.perf_counter() - t0

        read = asyncio.create_task(reader())
        await raw(0)
        await ours(0)
        totals: dict[str, list[float]] = {"raw": [0, 0.0], "ours": [0, 0.0]}
        for _ in range(max(1, round(seconds / BLOCK))):
            for name, op in (("raw", raw), ("ours", ours)):
                n, dt = await block(op)
                totals[name][0] += n
                totals[name][1] += dt
        read.cancel()
        return (
            totals["ours"][0] / totals["ours"][1],
            totals["raw"][0] / totals["raw"][1],
        )


def line(name: str, ours: list[float], base: list[float], goal: float) -> None:
    """Each round's ratio is taken within the round (same load); the figure is their median."""
    ratios = [o / b for o, b in zip(ours, base, strict=True)]
    ratio = statistics.median(ratios)
    mark = "ok" if ratio >= goal else "BELOW GOAL"
    print(
        f"{name}\n    ours     {statistics.median(ours):10.0f} calls/s   "
        f"(rounds: {', '.join(f'{x:.0f}' for x in ours)})"
        f"\n    baseline {statistics.median(base):10.0f} calls/s   "
        f"(rounds: {', '.join(f'{x:.0f}' for x in base)})"
        f"\n    ratio    {ratio:10.2f}x  (rounds: {', '.join(f'{r:.2f}' for r in ratios)}; "
        f"goal >= {goal}x: {mark})",
        flush=True,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=2.0, help="seconds per side per round")
    p.add_argument("--rounds", type=int, default=5, help="rounds (median of their ratios)")
    p.add_argument("--inflight", type=int, default=64, help="async requests in flight")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="rony-bench-client-") as tmp:
        node = Node(tmp)
        try:
            s_ours, s_raw, a_ours, a_raw = [], [], [], []
            for _ in range(args.rounds):
                o, r = sync_pair(node, args.seconds)
                s_ours.append(o)
                s_raw.append(r)
                o, r = asyncio.run(async_pair(node, args.seconds, args.inflight))
                a_ours.append(o)
                a_raw.append(r)
            line(
                "sync Client, serial Ping round trips (vs raw websockets.sync)", s_ours, s_raw, 0.9
            )
            line(
                f"AsyncClient, {args.inflight} in flight on one WebSocket (vs raw aiohttp)",
                a_ours,
                a_raw,
                0.8,
            )
        finally:
            node.stop()


if __name__ == "__main__":
    main()
