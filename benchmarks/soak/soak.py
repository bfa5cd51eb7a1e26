"""The long reliability runs (issue #18), each bounded in time, stopping by itself and printing
its figures; the fast versions run in the normal test run (tests/reliability).

    hatch run soak:load        [--clients 1000 --seconds 60 --processes 4]
    hatch run soak:idle        [--connections 10000]
    hatch run soak:slow        [--readers 50]
    hatch run soak:durability  [--rounds 100]
    hatch run soak:fuzz        [--seconds 60]          (benchmarks/soak/fuzz.py, atheris)
    hatch run soak:all

Every run is against real ``rony serve tests.reliability._app:app`` processes on 127.0.0.1,
loaded from other processes. Baselines, measured in the same run:

* ``load``: the same node with one client (its p50 / p99 unloaded), so the p99 under load is
  also given as a ratio to it; the goal is 0 errors and 0 lost replies (a request with neither
  a reply nor an error).
* ``idle``: RSS per idle WebSocket of our node vs a bare aiohttp WebSocket server
  (``_bare_ws.py``) holding as many; a new client's first reply with the connections open vs
  on the same node before they were opened. Goals: <= 20 KiB per connection, < 50 ms.
* ``slow``: N clients that send requests for 16 KiB replies and never read, all at once, while
  a well-behaved client keeps calling: the node's RSS before and after (they are cut off by
  ``write_queue_size``); the good client's errors (goal 0).
* ``durability``: kill -9 of the node during 64 concurrent durable writers, ``--rounds``
  times on one data folder: acknowledged writes lost (goal 0), clean opens.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reliability._load import (  # noqa: E402
    BLOB,
    IdleConnections,
    first_reply_ms,
    never_reads,
    run_load,
)
from tests.reliability._node import ServeProcess, raise_nofile, rss_of  # noqa: E402


def _node(tmp: str, **settings: object) -> ServeProcess:
    return ServeProcess(Path(tmp) / "data", settings=settings, nofile=65536).start()


def load(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="soak-load-") as tmp:
        node = _node(tmp, max_connections=args.clients + 100)
        try:
            base = run_load(node.ws_url, clients=1, seconds=5, processes=1, constructor="RelEcho")
            print(
                f"baseline: 1 client x 5 s: {base.rps:,.0f} req/s, p50 {base.p50_ms:.2f} ms, "
                f"p99 {base.p99_ms:.2f} ms, errors {base.errors}"
            )
            r = run_load(
                node.ws_url,
                clients=args.clients,
                seconds=args.seconds,
                processes=args.processes,
                constructor="RelEcho",
                timeout=30.0,
            )
            alive = node.alive()
        finally:
            node.kill()
    print(
        f"load: {r.clients} clients x {r.seconds:.0f} s from {args.processes} processes: "
        f"{r.requests:,} requests ({r.rps:,.0f}/s), errors {sum(r.errors.values())} "
        f"{r.errors or ''}, lost {r.lost}; p50 {r.p50_ms:.2f} ms, p99 {r.p99_ms:.2f} ms "
        f"({r.p99_ms / base.p99_ms:.1f}x the unloaded p99); node alive: {alive}"
    )
    return 0 if not r.errors and r.lost == 0 and alive else 1


def _new_client_ms(port: int, rony: bool = True) -> float:
    return statistics.median(asyncio.run(first_reply_ms(port, rony=rony)) for _ in range(5))


def _idle_on(pid: int, port: int, n: int, rony: bool = True) -> tuple[float, float]:
    """(bytes of RSS per connection, median new-client ms with them open)."""
    before = rss_of(pid)
    idle = [IdleConnections("127.0.0.1", port, n // 4 + (1 if i < n % 4 else 0)) for i in range(4)]
    try:
        time.sleep(1)  # let the node settle after the burst of handshakes (a reading, not sync)
        per = (rss_of(pid) - before) / n
        return per, _new_client_ms(port, rony)
    finally:
        for c in idle:
            c.close()


def idle(args: argparse.Namespace) -> int:
    n = args.connections
    bare = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("_bare_ws.py"))],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert bare.stdout is not None
        port = int(bare.stdout.readline().split()[-1])
        bare_per, bare_ms = _idle_on(bare.pid, port, n, rony=False)
    finally:
        bare.kill()
        bare.wait()
    with tempfile.TemporaryDirectory(prefix="soak-idle-") as tmp:
        node = _node(tmp, max_connections=n + 100)
        try:
            cold_ms = _new_client_ms(node.port)
            per, new_ms = _idle_on(node.pid, node.port, n)
            alive = node.alive()
        finally:
            node.kill()
    print(
        f"idle: {n:,} WebSockets: {per / 1024:.1f} KiB RSS each (bare aiohttp "
        f"{bare_per / 1024:.1f} KiB: {per / bare_per:.2f}x; goal <= 20 KiB); a new client "
        f"answered in {new_ms:.1f} ms (no idle connections: {cold_ms:.1f} ms; bare aiohttp "
        f"with them: {bare_ms:.1f} ms; goal < 50 ms); node alive: {alive}"
    )
    return 0 if per <= 20 * 1024 and new_ms < 50 and alive else 1


def slow(args: argparse.Namespace) -> int:

    async def readers(node: ServeProcess) -> list[tuple[int | None, int]]:
        return await asyncio.gather(*(never_reads(node.port, 2000) for _ in range(args.readers)))

    with tempfile.TemporaryDirectory(prefix="soak-slow-") as tmp:
        node = _node(tmp, write_queue_size=64)
        try:
            before = node.rss()
            good = subprocess.Popen(
                [sys.executable, "-c", "from tests.reliability._load import run_load as r; "
                 f"x = r({node.ws_url!r}, clients=4, seconds=20, processes=1, "
                 "constructor='RelEcho'); print(sum(x.errors.values()), x.lost, x.requests)"],
                cwd=ROOT, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            results = asyncio.run(readers(node))
            peak = node.rss()  # right after the readers are cut off
            out, _ = good.communicate(timeout=120)
            errors, lost, requests = (int(x) for x in out.split())
            after = node.rss()
            alive = node.alive()
            logged = sum("write queue full" in line for line in node.output)  # once a conn
        finally:
            node.kill()
    asked = args.readers * 2000 * BLOB
    print(
        f"slow: {args.readers} readers that never read, asking {asked >> 20} MiB in all: "
        f"{logged} cut off by write_queue_size; node RSS {before >> 20} MiB before, "
        f"{peak >> 20} MiB with them, {after >> 20} MiB after; a good client meanwhile: "
        f"{requests:,} requests, {errors} errors, {lost} lost; node alive: {alive}"
    )
    cut = sum(1 for code, _ in results if code in (1008, None))
    return 0 if cut == args.readers and errors == 0 and lost == 0 and alive else 1


def durability(args: argparse.Namespace) -> int:
    from tests.reliability._durability import crash_round

    acked = lost = 0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="soak-durability-") as tmp:
        for i in range(args.rounds):
            r = crash_round(Path(tmp) / "data", i, kill_after=200 + (i * 37) % 400)
            acked += r.acked
            lost += r.lost
            if (i + 1) % 10 == 0:
                print(f"  {i + 1} rounds: {acked:,} acknowledged, {lost} lost", flush=True)
    print(
        f"durability: {args.rounds} x kill -9 during 64 durable writers "
        f"({time.monotonic() - start:.0f} s): {acked:,} acknowledged writes, {lost} lost, "
        f"the store opened cleanly {args.rounds} of {args.rounds} times"
    )
    return 0 if lost == 0 else 1


def fuzz(args: argparse.Namespace) -> int:
    from benchmarks.soak.fuzz import main as fuzz_main

    return fuzz_main(["--seconds", str(args.seconds)])


def main(argv: list[str]) -> int:
    raise_nofile()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("load")
    s.add_argument("--clients", type=int, default=1000)
    s.add_argument("--seconds", type=float, default=60.0)
    s.add_argument("--processes", type=int, default=4)
    s = sub.add_parser("idle")
    s.add_argument("--connections", type=int, default=10_000)
    s = sub.add_parser("slow")
    s.add_argument("--readers", type=int, default=50)
    s = sub.add_parser("durability")
    s.add_argument("--rounds", type=int, default=100)
    s = sub.add_parser("fuzz")
    s.add_argument("--seconds", type=float, default=60.0)
    args = p.parse_args(argv)
    cmd = {"load": load, "idle": idle, "slow": slow, "durability": durability, "fuzz": fuzz}
    return cmd[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
